"""The mailbox audit over Exchange, against the protocol-level fake EWS server (tests/ews_server):
Test Access per mailbox (good, wrong password, throttled beyond the bound), message classes from
the server's ItemClass, and the forward rule of every forward-delivery user and queue (present,
missing, altered, a user's own rule only, cannot be checked), read once per mailbox through the
rules package's EWS reader and never changed.

Nothing in the fake needed extending: ``deliver(..., item_class=)``, ``seed_rule`` and ``inject``
cover these cases.
"""

from __future__ import annotations

import json
from collections import Counter
from email.message import EmailMessage

import pandas as pd
from fixtures_ews import FORWARD_BOX, SUPPORT_BOX, ews_url
from fixtures_rules import RULE_NAME, rule_names, rule_xml, rules_url
from routing_helpers import crm_store, demo_crm, message

from emailrouter_lib import audit
from emailrouter_lib.crm import demo

ALICE, BOB, FRANK = demo.ALICE.address, demo.BOB.address, demo.FRANK.address
GINA, DANA, SALES = demo.GINA.address, demo.DANA.address, demo.SALES.address
FORWARD_DELIVERY = 3


def rows_by_mailbox(result) -> dict[str, dict]:
    rows = result.table.to_dict("records")
    by = {r["mailbox"]: r for r in rows}
    assert len(by) == len(rows), rows
    return by


def blank(value) -> bool:
    return value is None or pd.isna(value)


def findings_of(result, code: str) -> dict[str, str]:
    return {f.where: f.message for f in result.findings if f.code == code}


# -- Test Access and ItemClass ---------------------------------------------------------------------
def wrapped(original: EmailMessage | None, subject: str = "FW: question") -> EmailMessage:
    """A forward-mailbox item: the original attached (or, without one, an invalid wrapper)."""
    wrapper = message(subject, sender=FRANK, to=FORWARD_BOX)
    if original is not None:
        wrapper.add_attachment(original)
    return wrapper


def test_good_wrong_password_throttled_and_the_itemclass_mix(ews, monkeypatch):
    # The good mailbox: five items whose MIME alone reads as five plain notes. The server's
    # ItemClass says otherwise, and the audit believes the server.
    classes = [
        "IPM.Note",
        "IPM.Note",
        "REPORT.IPM.Note.NDR",
        "IPM.Schedule.Meeting.Request",
        "IPM.Note.Rules.OofTemplate.Microsoft",
    ]
    for n, item_class in enumerate(classes):
        ews.deliver(SUPPORT_BOX, message(f"Item {n}"), item_class=item_class)
    # A forward mailbox over EWS: its wrappers are all IPM.Note, the originals decide.
    ews.deliver(FORWARD_BOX, wrapped(message("Order", sender="carol@fabrikam.example")))
    ews.deliver(FORWARD_BOX, wrapped(None, "FW: forwarded inline"))
    # A throttled mailbox: ErrorServerBusy on every listing, more than max_wait allows.
    ews.deliver(ALICE, message("Stuck"))
    ews.inject("busy", op="FindItem", mailbox=ALICE, times=1000, back_off_ms=2000)
    monkeypatch.setenv("AUDIT_WRONG_EWS_PW", "not-the-ews-password")

    good = ews_url(ews, SUPPORT_BOX, owner="queue:support@contoso.example")
    forward = ews_url(ews, FORWARD_BOX, forward="1")
    wrong = ews_url(ews, BOB).replace("env:EWS_PASSWORD", "env:AUDIT_WRONG_EWS_PW")
    throttled = ews_url(ews, ALICE, max_wait="0")

    result = audit.run(
        {"mailboxes": [good, forward, wrong, throttled], "since": None, "max_concurrency": 4}
    )

    rows = rows_by_mailbox(result)
    ok = rows[SUPPORT_BOX]
    assert ok["state"] == "ok" and blank(ok["error"])
    assert ok["connection"] == "ews://support@contoso.example/Inbox"
    assert (ok["items"], ok["in_window"], ok["tracked"], ok["untracked"]) == (5, 5, 3, 2)
    assert ok["classes_from"] == "ItemClass"
    mix = result.classes_table
    assert dict(mix[mix.mailbox == SUPPORT_BOX][["message_class", "items"]].values) == {
        "IPM.Note": 2,
        "REPORT.IPM.Note.NDR": 1,
        "IPM.Schedule.Meeting.Request": 1,
        "IPM.Note.Rules.OofTemplate.Microsoft": 1,
    }
    assert ok["oldest_unprocessed_subject"] == "Item 0"

    wrappers = rows[FORWARD_BOX]
    assert wrappers["state"] == "ok" and wrappers["classes_from"] == "MIME"
    assert dict(mix[mix.mailbox == FORWARD_BOX][["message_class", "items"]].values) == {
        "IPM.Note": 1,
        "InvalidForwardMailItem": 1,
    }

    refused = rows[BOB]
    assert refused["state"] == "auth-failed"
    assert "refused the credentials of 'CONTOSO\\svc' (ntlm) while connecting" in refused["error"]
    assert blank(refused["items"]) and blank(refused["classes_from"])

    busy = rows[ALICE]
    assert busy["state"] == "throttled"
    assert "kept throttling this mailbox" in busy["error"]
    # the server's own words, which our summary of the error would otherwise hide
    assert "[server: ErrorServerBusy: The server cannot service this request" in busy["error"]
    assert blank(busy["items"])

    assert result.counts == {"auth-failed": 1, "throttled": 1, "ok": 2}
    assert not result.ok
    assert result.class_mix["REPORT.IPM.Note.NDR"] == 1
    # each mailbox listed once; the throttled one was never let through
    listed = Counter(m for r in ews.requests("FindItem") for m in r.mailboxes)
    assert listed[SUPPORT_BOX] == listed[FORWARD_BOX] == 1
    assert "not-the-ews-password" not in str(result) + result.table.to_csv()
    assert not result.rule_counts and "forward_rule" in result.table.columns  # no CRM: no rules


# -- the forward rule ------------------------------------------------------------------------------
def forward_delivery_org(tmp_path, ews) -> str:
    """The demo CRM with Alice, Bob, Frank, Gina, Dana (disabled) and the Support queue
    (POP3 profile) delivering incoming mail through the forward mailbox; each Exchange mailbox
    in its own starting state. Returns the CRM URL."""
    crm_url = demo_crm(tmp_path)
    users = [demo.ALICE.id, demo.BOB.id, demo.FRANK.id, demo.GINA.id, demo.DANA.id]
    marks = ",".join("?" * len(users))
    with crm_store(crm_url).transaction() as conn:
        conn.execute(
            "UPDATE systemuser SET incomingemaildeliverymethod = ? "
            f"WHERE systemuserid IN ({marks})",
            [FORWARD_DELIVERY, *users],
        )
        conn.execute(
            "UPDATE queue SET incomingemaildeliverymethod = ? WHERE queueid = ?",
            [FORWARD_DELIVERY, demo.SUPPORT.id],
        )
        conn.execute(
            f"UPDATE mailbox SET incomingemaildeliverymethod = ? "
            f"WHERE regardingobjectid IN ({marks}, ?)",
            [FORWARD_DELIVERY, *users, demo.SUPPORT.id],
        )
    ews.add_user(GINA)
    ews.seed_rule(FRANK, rule_xml())  # ours, as deployed
    # Bob's: ours, but someone disabled it and pointed it elsewhere
    ews.seed_rule(BOB, rule_xml(enabled=False, forward_to="someone@elsewhere.example"))
    # Gina's: only a rule of her own
    ews.seed_rule(
        GINA,
        rule_xml("Newsletters to junk", forward_to=None, except_from=None, move_to_junk=True),
    )
    # Alice: no rule at all
    return crm_url


def test_forward_rule_present_missing_altered_own_and_unreadable(ews, tmp_path):
    crm_url = forward_delivery_org(tmp_path, ews)
    ews.clear_log()

    result = audit.run({"crm": crm_url, "ews": rules_url(ews), "since": None, "max_concurrency": 4})

    rows = rows_by_mailbox(result)
    rule = {m: (r["forward_rule"], r["forward_rule_detail"]) for m, r in rows.items()}
    assert rule[FRANK] == ("present", f"forwards as attachment to {FORWARD_BOX}")
    assert rule[ALICE] == ("missing", f"no rule named {RULE_NAME!r}")
    state, detail = rule[BOB]
    assert state == "altered"
    assert detail.startswith("disabled; forwards to someone@elsewhere.example")
    assert rule[GINA] == (
        "missing",
        f"no rule named {RULE_NAME!r}; 1 rule(s) of the mailbox's own, left alone",
    )
    state, detail = rule[SUPPORT_BOX]
    assert state == "cannot-check" and detail.startswith("POP3 mailbox: EWS rules do not exist")
    assert rule[DANA] == ("cannot-check", "disabled for incoming email in the CRM")
    # mailboxes that need no rule have none in the table
    assert all(blank(rows[m]["forward_rule"]) for m in (SALES, FORWARD_BOX))
    # the rows still say the Inbox itself was not read (no mailbox URL for it), and why
    assert rows[FRANK]["state"] == "not-checked"
    assert "through the forward mailbox" in rows[FRANK]["error"]

    assert result.rule_counts == {"missing": 2, "altered": 1, "cannot-check": 2, "present": 1}
    assert result.report_summary()["forward_rules_by_state"] == result.rule_counts
    assert result.summary["details"]["forward_rules"] == result.rule_counts
    assert set(findings_of(result, "forward-rule-missing")) == {ALICE, GINA}
    assert "someone@elsewhere.example" in findings_of(result, "forward-rule-altered")[BOB]
    unchecked = {f.where: f.severity for f in result.findings if "not-checked" in f.code}
    assert unchecked == {SUPPORT_BOX: "info", DANA: "info"}  # by design, not a failure
    assert "forward rules: 2 missing, 1 altered, 2 cannot-check, 1 present" in str(result)

    # each mailbox's rules read exactly once, nothing changed, nothing read for the others
    reads = Counter(m for r in ews.requests("GetInboxRules") for m in r.mailboxes)
    assert reads == {ALICE: 1, BOB: 1, FRANK: 1, GINA: 1}
    assert not ews.requests("UpdateInboxRules")
    assert rule_names(ews, BOB) == [RULE_NAME] and rule_names(ews, ALICE) == []


def test_rule_reads_that_fail_are_rows_not_a_failed_audit(ews, tmp_path, monkeypatch):
    crm_url = forward_delivery_org(tmp_path, ews)
    ews.inject("busy", op="GetInboxRules", mailbox=ALICE, times=1000, back_off_ms=2000)
    ews.store.users.pop(GINA)  # the mailbox is gone from the server
    monkeypatch.delenv("AUDIT_NO_SUCH_PW", raising=False)

    result = audit.run(
        {"crm": crm_url, "ews": rules_url(ews, max_wait="0"), "since": None, "max_concurrency": 4}
    )

    rule = {
        m: (r["forward_rule"], r["forward_rule_detail"]) for m, r in rows_by_mailbox(result).items()
    }
    state, detail = rule[ALICE]
    assert state == "cannot-check" and "kept throttling" in detail and "ErrorServerBusy" in detail
    state, detail = rule[GINA]
    assert state == "cannot-check" and detail.startswith("mailbox not found")
    assert rule[FRANK][0] == "present" and rule[BOB][0] == "altered"  # the others finished
    severity = {f.where: f.severity for f in result.findings if "not-checked" in f.code}
    assert severity[ALICE] == severity[GINA] == "warning"  # tried and failed

    # without any way to reach the mailboxes: every rule says so, as information
    bare = audit.run({"crm": crm_url, "since": None})
    bare_rules = {r["mailbox"]: r for r in bare.table.to_dict("records")}
    assert bare_rules[FRANK]["forward_rule"] == "cannot-check"
    assert bare_rules[FRANK]["forward_rule_detail"].startswith("no EWS connection")
    # a service account whose password reference names nothing: said once per row, no crash
    broken = audit.run(
        {
            "crm": crm_url,
            "since": None,
            "ews": rules_url(ews).replace("EWS_PASSWORD", "AUDIT_NO_SUCH_PW"),
        }
    )
    detail = rows_by_mailbox(broken)[FRANK]["forward_rule_detail"]
    assert "password reference" in detail and "AUDIT_NO_SUCH_PW" in detail


def test_url_template_reads_inboxes_and_rules_and_the_report_carries_them(ews, tmp_path):
    crm_url = forward_delivery_org(tmp_path, ews)
    ews.add_user(SALES)
    ews.deliver(SALES, message("For Sales"), item_class="IPM.Note")
    ews.deliver(FRANK, message("In Frank's own Inbox"))
    template = ews_url(ews, "{address}")
    frank = ews_url(ews, FRANK, owner=f"user:{FRANK}", auth="basic")  # his own URL wins
    ews.clear_log()

    result = audit.run(
        {
            "crm": crm_url,
            "mailboxes": [frank],
            "url_template": template,
            "since": None,
            "max_concurrency": 4,
        }
    )

    rows = rows_by_mailbox(result)
    assert rows[FRANK]["forward_rule"] == "present"
    assert rows[GINA]["forward_rule"] == "missing"
    # The Router-delivery queue's Inbox is read through the template; forward-delivery users'
    # mailboxes only for their rules (the router never reads them).
    assert rows[SALES]["state"] == "ok" and rows[SALES]["items"] == 1
    assert blank(rows[SALES]["forward_rule"])
    assert rows[GINA]["state"] == "not-checked"
    # a mailbox URL given for a forward-delivery user: its Inbox is read and its rules too
    assert rows[FRANK]["state"] == "ok" and rows[FRANK]["items"] == 1
    reads = Counter(m for r in ews.requests("GetInboxRules") for m in r.mailboxes)
    assert reads == {ALICE: 1, BOB: 1, FRANK: 1, GINA: 1}
    run_dir = tmp_path / "run"
    written = result.write_artifacts(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["details"]["forward_rules"] == result.rule_counts
    assert summary["details"]["rule_name"] == RULE_NAME
    table = pd.read_csv(run_dir / "mailboxes.csv")
    assert {"forward_rule", "forward_rule_detail", "classes_from"} <= set(table.columns)
    assert "Forward rules in forward-delivery mailboxes" in written["report.html"].read_text()
