"""The mailbox audit on local Maildirs and the embedded CRM: counts by class over a window, the
unprocessed backlog against the routing ledger, CRM-versus-configuration findings, parameters,
the Excel workbook and the command line. (Real servers: test_audit_servers.py; the report in a
browser: test_report_browser.py.)"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import openpyxl
import pandas as pd
import pytest
from fixtures_audit import audit_demo
from routing_helpers import crm_store, demo_crm, drop, message, route

from emailrouter_lib import audit
from emailrouter_lib.audit.cli import register
from emailrouter_lib.audit.params import AuditParams
from emailrouter_lib.crm import demo
from emailrouter_lib.errors import ParameterError, SecretError
from emailrouter_lib.mailboxes.url import local_mailbox_url

NOW = datetime.now(UTC)


def dated(subject: str, days_ago: float, **headers: str):
    msg = message(subject, **headers)
    msg.replace_header("Date", format_datetime(NOW - timedelta(days=days_ago)))
    return msg


def meeting(subject: str, days_ago: float):
    msg = dated(subject, days_ago)
    msg.add_alternative(
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n", subtype="calendar"
    )
    return msg


def row(result, mailbox: str) -> dict:
    rows = [r for r in result.table.to_dict("records") if r["mailbox"] == mailbox]
    assert len(rows) == 1, rows
    return rows[0]


def test_counts_by_class_inside_the_window_and_the_oldest_unprocessed(tmp_path):
    box = tmp_path / "support"
    drop(
        box,
        dated("Ancient", 400),
        dated("Question", 3),
        meeting("Team call", 2),
        dated("Away", 1, Auto_Submitted="auto-replied"),
    )
    url = local_mailbox_url(box, owner="queue:support@contoso.example")
    result = audit.run({"mailboxes": [url], "since": "30d"})
    found = row(result, "support@contoso.example")
    assert found["state"] == "ok" and found["items"] == 4
    assert found["in_window"] == 3 and found["tracked"] == 2 and found["untracked"] == 1
    assert found["unprocessed"] == 4 and found["oldest_unprocessed_subject"] == "Ancient"
    classes = result.classes_table.set_index("message_class")["items"].to_dict()
    assert classes == {
        "IPM.Note": 1,
        "IPM.Note.Rules.OofTemplate.Microsoft": 1,
        "IPM.Schedule.Meeting.Request": 1,
    }
    everything = audit.run({"mailboxes": [url], "since": None})
    assert row(everything, "support@contoso.example")["in_window"] == 4


def test_a_large_old_mailbox_is_read_only_back_to_the_window(tmp_path):
    box = tmp_path / "big"
    drop(box, *[dated(f"Old {n}", 300) for n in range(180)], dated("New", 1))
    url = local_mailbox_url(box)
    result = audit.run({"mailboxes": [url], "since": "7d"})
    probe = result.rows[0].probe
    assert probe.items == 181 and probe.in_window == 1 and probe.read <= 101
    assert not probe.sampled
    capped = audit.run({"mailboxes": [url], "since": None, "max_items": 60})
    assert capped.rows[0].probe.sampled and capped.rows[0].probe.read == 100  # whole batches
    assert bool(capped.table.loc[0, "sampled"])


def test_forward_mailbox_items_are_classified_by_their_original(tmp_path):
    wrapper = message("FW: question", sender="frank@contoso.example")
    wrapper.add_attachment(dated("Original", 1).as_bytes(), maintype="message", subtype="rfc822")
    inline = dated("FW: pasted inline", 1)
    box = tmp_path / "forward"
    drop(box, wrapper, inline)
    result = audit.run({"mailboxes": [local_mailbox_url(box, forward="1")], "since": None})
    assert result.rows[0].target.kind == "forward"
    assert dict(result.rows[0].probe.classes) == {"IPM.Note": 1, "InvalidForwardMailItem": 1}


def test_unprocessed_and_last_run_come_from_the_routing_ledger(tmp_path):
    crm_url = demo_crm(tmp_path)
    box = tmp_path / "support"
    drop(box, message("First"), meeting("Call", 1))
    url = local_mailbox_url(box, owner="queue:support@contoso.example")
    route(crm_url, url)
    drop(box, message("Later"))
    result = audit.run({"mailboxes": [url], "crm": crm_url, "since": None})
    found = row(result, "support@contoso.example")
    assert found["unprocessed"] == 1 and found["oldest_unprocessed_subject"] == "Later"
    assert found["last_run_outcomes"] == "created: 1, skipped: 1"
    assert found["name"] == "Support" and found["approval"] == "approved"
    runs = result.last_runs_table
    assert set(runs["outcome"]) == {"created", "skipped"} and runs["items"].sum() == 2
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_no_ledger_is_created_by_an_audit(tmp_path):
    crm_url = demo_crm(tmp_path)
    audit.run({"crm": crm_url, "since": None})
    assert not list(tmp_path.glob("*.ledger.sqlite*"))


CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<Configuration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider</ProviderClass>
    <ProfileName>{name}</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerUrl>127.0.0.1:1</EmailServerUrl>
    <UseSsl>false</UseSsl>
    {ids}
  </ProviderConfiguration>
</Configuration>
"""


def write_config(path, name: str, *ids: str) -> str:
    path.write_text(CONFIG.format(name=name, ids="".join(f"<UserId>{i}</UserId>" for i in ids)))
    return str(path)


def test_findings_compare_the_crm_with_the_configuration(tmp_path):
    crm_url = demo_crm(tmp_path)
    with crm_store(crm_url) as crm, crm.transaction() as conn:
        conn.execute("UPDATE organization SET requireapprovalforuseremail = 1")
        conn.execute(
            "UPDATE mailbox SET emailaddress = 'alice.admin@contoso.example', "
            "incomingemailstatus = 2 WHERE mailboxid = (SELECT defaultmailbox FROM systemuser "
            "WHERE systemuserid = ?)",
            (demo.ALICE.id,),
        )
    first = write_config(
        tmp_path / "router1.xml",
        "Router 1",
        demo.BOB.id,
        demo.DANA.id,
        "0a1b2c3d-0000-0000-0000-000000000000",
    )
    second = write_config(tmp_path / "router2.xml", "Router 2", demo.BOB.id, demo.GINA.id)
    stranger = local_mailbox_url(tmp_path / "x", owner="queue:helpdesk@contoso.example")
    result = audit.run(
        {
            "crm": crm_url,
            "config": [first, second],
            "mailboxes": [stranger],
            "config_password": "env:PW_{local}",
            "since": None,
        }
    )
    codes = {(f.code, f.where) for f in result.findings}
    assert ("two-routers", demo.BOB.address) in codes
    assert ("disabled-still-configured", demo.DANA.address) in codes
    assert ("delivery-method", demo.DANA.address) in codes
    assert ("config-id-not-in-crm", "0a1b2c3d-0000-0000-0000-000000000000") in codes
    assert ("address-not-in-crm", "helpdesk@contoso.example") in codes
    assert ("address-mismatch", demo.ALICE.address) in codes
    assert ("mailbox-status-failure", demo.ALICE.address) in codes
    assert ("not-approved", demo.GINA.address) in codes
    bob = [r for r in result.table.to_dict("records") if r["mailbox"] == demo.BOB.address]
    assert len(bob) == 1 and bob[0]["state"] == "unreachable"  # one server, one connection
    assert "router1.xml" in bob[0]["named_by"] and "router2.xml" in bob[0]["named_by"]
    alice = row(result, demo.ALICE.address)  # routed by the CRM, named by nobody
    assert alice["state"] == "not-checked" and "url_template" in alice["error"]
    assert alice["incoming_status"] == "failure"
    frank = row(result, demo.FRANK.address)
    assert frank["state"] == "not-checked" and "forward mailbox" in frank["error"]
    assert row(result, "crm-forward@contoso.example")["kind"] == "forward"


def test_url_template_reaches_crm_mailboxes_nobody_listed(tmp_path):
    crm_url = demo_crm(tmp_path)
    for local in ("alice", "bob", "gina", "support", "sales", "crm-forward"):
        drop(tmp_path / "boxes" / f"{local}@contoso.example", dated(f"to {local}", 1))
    template = f"maildir://{tmp_path / 'boxes'}/{{address}}"
    result = audit.run(
        {"crm": crm_url, "url_template": template, "since": None, "max_concurrency": 3}
    )
    assert row(result, demo.ALICE.address)["items"] == 1
    assert row(result, demo.SUPPORT.address)["state"] == "ok"
    assert row(result, demo.FRANK.address)["state"] == "not-checked"  # via the forward mailbox
    assert demo.DANA.address not in set(result.table["mailbox"])  # disabled, routed by nobody


def test_concurrency_changes_the_time_not_the_answer(tmp_path):
    urls = []
    for n in range(12):
        drop(tmp_path / f"m{n}", *[dated(f"m{n} {k}", k) for k in range(n % 4 + 1)])
        urls.append(local_mailbox_url(tmp_path / f"m{n}"))
    one = audit.run({"mailboxes": urls, "since": None, "max_concurrency": 1}).table
    eight = audit.run({"mailboxes": urls, "since": None, "max_concurrency": 8}).table
    columns = ["mailbox", "state", "items", "in_window", "tracked"]
    pd.testing.assert_frame_equal(one[columns], eight[columns])


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        (5, timedelta(days=5)),
    ],
)
def test_since_forms(since, expected):
    moment = AuditParams(mailboxes=["maildir:///x"], since=since).since_datetime(NOW)
    assert moment == NOW - expected


def test_parameters_are_checked_at_the_door():
    assert AuditParams(mailboxes=["x"], since="2024-03-01").since_datetime() == datetime(
        2024, 3, 1, tzinfo=UTC
    )
    with pytest.raises(ParameterError, match="nothing to audit"):
        audit.run({})
    with pytest.raises(ParameterError, match="since="):
        audit.run({"mailboxes": ["maildir:///x"], "since": "last tuesday"})
    with pytest.raises(ParameterError, match="reference") as caught:
        audit.run({"mailboxes": ["maildir:///x"], "config_password": "hunter2"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ParameterError, match="unknown audit parameter"):
        audit.run({"mailboxes": ["maildir:///x"], "mailbx": []})
    with pytest.raises(ParameterError, match="max_concurrency"):
        audit.run({"mailboxes": ["maildir:///x"], "max_concurrency": 0})


def test_a_bad_url_is_a_row_with_its_reason_and_no_secret(tmp_path):
    result = audit.run({"mailboxes": ["imap://u@h/INBOX", "ftp://x"], "since": None})
    assert set(result.table["state"]) == {"error"}
    text = str(result) + result.table.to_csv()
    assert "reference" in text and "unknown mailbox type" in text


def test_a_literal_password_refuses_the_audit_before_it_starts(tmp_path):
    with pytest.raises(SecretError) as caught:
        audit.run({"mailboxes": ["imap://u@h/INBOX?password=hunter2", "ftp://x"], "since": None})
    assert "hunter2" not in str(caught.value) and "mailboxes[0]" in str(caught.value)


def test_artifacts_workbook_has_a_sheet_per_table_frozen_and_filtered(tmp_path):
    box = tmp_path / "box"
    drop(box, dated('=HYPERLINK("http://x.test","open")', 1), dated("\x07bell", 1))
    result = audit.run({"mailboxes": [local_mailbox_url(box)], "since": None})
    artifacts = result.write_artifacts(tmp_path / "run")
    assert {
        "report.html",
        "audit.xlsx",
        "summary.json",
        "mailboxes.csv",
        "findings.csv",
        "message_classes.csv",
        "last_runs.csv",
    } <= set(artifacts)
    book = openpyxl.load_workbook(artifacts["audit.xlsx"])
    assert book.sheetnames == ["mailboxes", "findings", "message_classes", "last_runs"]
    sheet = book["mailboxes"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    subject_column = [c.value for c in sheet[1]].index("oldest_unprocessed_subject")
    cell = sheet.cell(row=2, column=subject_column + 1)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")  # text, not a formula
    html = artifacts["report.html"].read_text(encoding="utf-8")
    assert 'href="audit.xlsx"' in html and html.count("data:image/png;base64,") >= 2


def test_command_line(tmp_path, capsys):
    drop(tmp_path / "box", dated("hello", 1))
    parser = argparse.ArgumentParser(prog="emailrouter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "audit",
            "--mailbox",
            local_mailbox_url(tmp_path / "box"),
            "--since",
            "all",
            "--run-dir",
            str(tmp_path / "run"),
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ok             1" in out and "report.html" in out
    args = parser.parse_args(
        ["audit", "--mailbox", local_mailbox_url(tmp_path / "gone"), "--quiet"]
    )
    assert args.func(args) == 1
    assert "unreachable" in capsys.readouterr().out


def test_the_demo_lists_each_mailbox_once(tmp_path):
    """Alice (an Exchange provider in the configuration, a Maildir URL in the parameters) and Bob
    (POP3 and Exchange providers) were each listed twice, as "skipped" and as checked."""
    result = audit_demo(tmp_path / "demo")
    table = result.table
    addresses = table["mailbox"].tolist()
    assert len(addresses) == len(set(addresses)), table[["state", "mailbox"]]
    alice = table[table["mailbox"] == demo.ALICE_ADDRESS].iloc[0]
    assert alice["state"] == "ok"
    # where the configuration named her stays, with why that connection was not used
    assert "Exchange incoming" in alice["named_by"] and "(not used: " in alice["named_by"]
    bob = table[table["mailbox"] == demo.BOB.address].iloc[0]
    assert bob["state"] == "unreachable"
