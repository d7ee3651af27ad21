"""The per-message firewall: one message's text never stops a batch, a mailbox or a run.

Issue 12 items 1-3, 7 and 9. Each message below once crashed ``routing.run()`` (or the run's
artifacts) for every message beside it; now it is created with storable text or quarantined, and
the ordinary messages of the same batch, later mailboxes and the outgoing direction go on.
Everything runs against the real embedded CRM (SQLite) and real Maildirs, the CRM refusals against
a real SQLite trigger (and the fake Dataverse Web API), and the command as its own process.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from routing_helpers import (
    ROOT,
    crm_store,
    demo_crm,
    drop,
    maildir_url,
    message,
    route,
    route_in_subprocess,
)

from emailrouter_lib.crm import demo, sqlite_path
from emailrouter_lib.routing.ledger import DONE, Ledger
from emailrouter_lib.routing.quarantine import quarantine

SUPPORT = f"queue:{demo.SUPPORT.address}"
SURROGATE_SUBJECT = "=?utf-7?Q?+2AA-?="  # decodes to a lone UTF-16 surrogate, U+D800
REFUSED = "refused by the CRM"


def poison(subject: str = SURROGATE_SUBJECT) -> bytes:
    return (
        b"From: mallory@fabrikam.example\r\nTo: support@contoso.example\r\n"
        b"Subject: " + subject.encode() + b"\r\nMessage-ID: <poison@fabrikam.example>\r\n"
        b"Date: Mon, 04 Mar 2024 12:00:00 +0000\r\n\r\nHello.\r\n"
    )


def bounce(
    subject: bytes, sender: bytes = b"MAILER-DAEMON@fabrikam.example", mid: bytes = b"bounce"
) -> bytes:
    """A delivery status notification (untracked: REPORT.IPM.Note.NDR), headers as given."""
    return (
        b"From: " + sender + b"\r\nTo: support@contoso.example\r\nSubject: " + subject + b"\r\n"
        b"Message-ID: <" + mid + b"@fabrikam.example>\r\n"
        b"Date: Mon, 04 Mar 2024 12:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.fabrikam.example\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@fabrikam.example\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n--b--\r\n"
    )


def ordinary(n: int) -> bytes:
    return message(f"Ordinary {n}", message_id=f"<ordinary-{n}@fabrikam.example>").as_bytes()


def refuse_subject(crm_file: Path, subject: str) -> None:
    """A real CRM refusal for one record: a trigger that RAISEs on one subject."""
    with sqlite3.connect(crm_file) as db:
        db.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON email "
            f"WHEN NEW.subject = '{subject}' BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        )


def assert_storable(text: str | None) -> None:
    assert text is None or text.encode("utf-8")  # raises on a lone surrogate


@pytest.fixture
def crm_url(tmp_path):
    return demo_crm(tmp_path)


def routed(crm_url, tmp_path, *raw, folder="Maildir", **params):
    drop(tmp_path / folder, *raw)
    return route(crm_url, maildir_url(tmp_path / folder, owner=SUPPORT), **params)


def by_key_subject(result) -> dict[str, str]:
    return {row.subject: row.outcome for row in result.rows if row.subject}


def test_poison_subject_beside_ordinary_mail_routes_every_mailbox_and_sends(crm_url, tmp_path):
    drop(tmp_path / "first", ordinary(1), poison(), ordinary(2))
    drop(tmp_path / "second", ordinary(3))
    result = route(
        crm_url,
        maildir_url(tmp_path / "first", owner=SUPPORT),
        maildir_url(tmp_path / "second", owner=SUPPORT),
        directions=["incoming", "outgoing"],
    )
    assert [m.status for m in result.mailboxes] == ["ok", "ok"], result.mailboxes
    outcomes = {row.message_id: row for row in result.rows}
    for n in (1, 2, 3):
        assert outcomes[f"<ordinary-{n}@fabrikam.example>"].outcome == "created"
    bad = outcomes["<poison@fabrikam.example>"]
    # Made storable at the boundary (with the defect on the row), or quarantined: never a crash.
    assert bad.outcome == "created" or bad.outcome.startswith("quarantined:"), bad
    if bad.outcome == "created":
        stored = crm_store(crm_url).email(bad.activityid)["subject"]
        assert "\ud800" not in stored and "\ufffd" in stored
        assert "replaced by U+FFFD" in bad.reason
    assert result.outgoing_counts.get("sent", 0) >= 1, result.outgoing_counts
    result.write_artifacts(tmp_path / "run")  # and the run keeps its record


@pytest.mark.parametrize(
    "subject",
    [
        b"=?iso-8859-1?Q?Unzustellbar=3A_caf\xe9?=",  # a raw 8-bit byte inside an encoded word
        b"=?base64?Q?Undeliverable?=",  # a bytes-to-bytes codec as the charset label
        SURROGATE_SUBJECT.encode(),  # a lone surrogate in an untracked message's Subject
    ],
    ids=["raw-8bit-encoded-word", "charset-base64", "surrogate"],
)
def test_untracked_message_with_unreadable_subject_keeps_the_run_and_its_record(
    crm_url, tmp_path, subject
):
    result = routed(crm_url, tmp_path, bounce(subject), ordinary(1))
    assert result.mailboxes[0].status == "ok", result.mailboxes
    rows = {row.message_id: row for row in result.rows}
    assert rows["<ordinary-1@fabrikam.example>"].outcome == "created"
    kept = rows.get("<bounce@fabrikam.example>") or next(
        r for r in result.rows if r.outcome.startswith("quarantined:")
    )
    assert kept.outcome.startswith(("skipped:", "quarantined:")), kept
    assert_storable(kept.subject)
    written = result.write_artifacts(tmp_path / "run")
    with open(written["results.csv"], encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 2
    summary = json.loads(written["summary.json"].read_text(encoding="utf-8"))
    assert summary["details"]["messages"] == 2
    assert "Ordinary 1" in written["report.html"].read_text(encoding="utf-8")


def test_bounce_with_raw_8bit_in_an_encoded_from(crm_url, tmp_path):
    raw = bounce(
        b"Undeliverable", sender=b'"=?utf-8?Q?Mail_Deliv\xe9ry?=" <mailer@fabrikam.example>'
    )
    result = routed(crm_url, tmp_path, raw, ordinary(1))
    assert sorted(r.outcome.split(":")[0] for r in result.rows) in (
        ["created", "skipped"],
        ["created", "quarantined"],
    )
    result.write_artifacts(tmp_path / "run")


def test_a_message_the_crm_refuses_is_quarantined_and_the_rest_created(crm_url, tmp_path):
    refuse_subject(sqlite_path(crm_url), "Ordinary 3")
    raws = [ordinary(n) for n in range(1, 8)]
    result = routed(crm_url, tmp_path, *raws)
    outcomes = {row.subject: row for row in result.rows}
    assert result.mailboxes[0].status == "ok", result.mailboxes
    refused = outcomes["Ordinary 3"]
    assert refused.outcome == "quarantined:crm-refused" and REFUSED in refused.reason
    assert refused.activityid is None
    created = [r for r in result.rows if r.outcome == "created"]
    assert len(created) == 6
    store = crm_store(crm_url)
    assert all(store.email(r.activityid) for r in created)
    # The copy is the message's bytes exactly; the ledger says done, with the quarantine.
    copies = list((tmp_path / "quarantine").glob("**/*.eml"))
    assert [c.read_bytes() for c in copies] == [raws[2]]
    ledger = Ledger(tmp_path / "crm.ledger.sqlite")
    entries = ledger.entries(result.rows[0].mailbox)
    ledger.close()
    assert {e.state for e in entries.values()} == {DONE}
    assert entries[refused.item_key].outcome == "quarantined:crm-refused"
    assert entries[refused.item_key].activityid is None
    # A rerun creates nothing twice and sees every item as done.
    again = routed(crm_url, tmp_path)
    assert again.rows == [] and again.mailboxes[0].already_done == 7


def test_a_message_dataverse_refuses_is_quarantined_and_the_rest_created(
    fake_dataverse,
    tmp_path,
):
    refuse_subject(fake_dataverse.store.path, "Ordinary 2")
    drop(tmp_path / "Maildir", *[ordinary(n) for n in range(1, 6)])
    result = route(
        fake_dataverse.crm_url(),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
        quarantine_dir=str(tmp_path / "quarantine"),
    )
    assert result.mailboxes[0].status == "ok", result.mailboxes
    outcomes = {row.subject: row.outcome for row in result.rows}
    assert outcomes.pop("Ordinary 2") == "quarantined:crm-refused"
    assert set(outcomes.values()) == {"created"} and len(outcomes) == 4
    assert len(list((tmp_path / "quarantine").glob("**/*.eml"))) == 1


def test_quarantine_names_are_unique_and_the_copy_byte_exact(tmp_path):
    long_ews = "AAMkAD" + "x" * 200  # EWS item ids share far more than 120 leading characters
    keys = [long_ews + "A", long_ews + "B", "a:b.eml", "a?b.eml", "a/b.eml"]
    paths = [
        quarantine(tmp_path, "eml:///drop", key, f"{key}\r\n\xff".encode("latin-1"), "q", "r")
        for key in keys
    ]
    assert len(set(paths)) == len(keys)
    for key, path in zip(keys, paths, strict=True):
        assert path.read_bytes() == f"{key}\r\n\xff".encode("latin-1")
        assert json.loads(path.with_suffix(".json").read_text())["item"] == key
        assert len(path.name) < 120


def test_route_command_survives_poison_and_refusal(crm_url, tmp_path):
    """Items 1-4 through ``emailrouter route`` as its own process: exit 0, poison quarantined."""
    refuse_subject(sqlite_path(crm_url), "Ordinary 2")
    drop(
        tmp_path / "Maildir",
        ordinary(1),
        poison(),
        ordinary(2),
        bounce(b"=?base64?Q?x?=", mid=b"b64"),
        bounce(b"=?iso-8859-1?Q?caf\xe9?=", mid=b"raw8bit"),
        bounce(SURROGATE_SUBJECT.encode(), mid=b"surrogate"),
    )
    drop(tmp_path / "Later", ordinary(3))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("EMAILROUTER_CRASH_AT", None)
    args = [sys.executable, "-m", "emailrouter_lib.cli", "route", "--crm", crm_url, "--quiet"]
    for folder in ("Maildir", "Later"):
        args += ["--mailbox", maildir_url(tmp_path / folder, owner=SUPPORT)]
    run = subprocess.run(
        [*args, "--run-dir", str(tmp_path / "run")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # exit 1: the run finished, and a message (the one the CRM refused) is in quarantine
    assert run.returncode == 1, run.stdout + run.stderr
    assert "quarantined:crm-refused" in run.stderr and "Traceback" not in run.stderr
    with open(tmp_path / "run" / "results.csv", encoding="utf-8") as f:
        listed = list(csv.DictReader(f))
    rows = {r["message_id"]: r for r in listed}
    assert rows["<ordinary-1@fabrikam.example>"]["outcome"] == "created"
    assert rows["<ordinary-3@fabrikam.example>"]["outcome"] == "created"
    assert rows["<ordinary-2@fabrikam.example>"]["outcome"] == "quarantined:crm-refused"
    assert rows["<poison@fabrikam.example>"]["outcome"] in ("created", "quarantined:crm-refused")
    assert len(listed) == 7  # every message has its row: the bounces skipped or quarantined
    copies = sorted(p.read_bytes() for p in (tmp_path / "quarantine").glob("**/*.eml"))
    assert ordinary(2) in copies


def test_killed_after_a_refusal_rerun_creates_each_once(crm_url, tmp_path):
    """SIGKILL after the CRM commit of a batch with a refused email: the rerun repairs the
    ledger, creates nothing twice, and the refused one ends quarantined."""
    refuse_subject(sqlite_path(crm_url), "Ordinary 2")
    drop(tmp_path / "Maildir", *[ordinary(n) for n in range(1, 5)])
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT, after="delete")
    killed = route_in_subprocess(crm_url, url, crash_at="after-crm-commit")
    assert killed.returncode == -9, killed.stderr
    rerun = route_in_subprocess(crm_url, url)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    ids = Counter(e["messageid"] for e in crm_store(crm_url).emails(directioncode=0))
    assert [ids[f"<ordinary-{n}@fabrikam.example>"] for n in range(1, 5)] == [1, 0, 1, 1]
    ledger = Ledger(tmp_path / "crm.ledger.sqlite")
    entries = ledger.entries(next(iter(ledger_mailboxes(tmp_path))))
    ledger.close()
    assert sorted(e.outcome for e in entries.values()) == [
        "created",
        "created",
        "created",
        "quarantined:crm-refused",
    ]
    assert {e.state for e in entries.values()} == {DONE}
    # The refused message stays in the mailbox (its copy in quarantine); the others are deleted.
    assert (
        len(list((tmp_path / "Maildir" / "new").iterdir()))
        + len(list((tmp_path / "Maildir" / "cur").iterdir()))
        == 1
    )


def ledger_mailboxes(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "crm.ledger.sqlite") as db:
        return [row[0] for row in db.execute("SELECT DISTINCT mailbox_id FROM ledger_item")]
