"""The outgoing engine sending over Exchange (EWS) against the protocol-level fake.

Each demo sender gets its own Exchange mailbox (``ews://…?mailbox=ADDRESS``, the service account
impersonating it). Counted at both ends: the copies in each mailbox's Sent Items, what the fake's
CreateItem sent, and each email's status in the CRM. The crash test kills ``emailrouter route`` for
real (SIGKILL) right after Exchange accepted the first message: the rerun finds it in Sent Items,
marks it Sent and does not send it again.
"""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter

from fixtures_ews import SUPPORT_BOX, ews_url
from fixtures_smtp import send_pending
from routing_helpers import crm_store, demo_crm, message, route_in_subprocess

from emailrouter_lib.crm import demo as seed
from emailrouter_lib.routing.outgoing_message import message_id_for

PENDING = [e.activityid for e in seed.PENDING_EMAILS]
SENDERS = (seed.ALICE_ADDRESS, seed.SUPPORT_ADDRESS, seed.BOB_ADDRESS)


def transports(ews, **params: str) -> list[str]:
    """One ``ADDRESS=ews://…`` transport per demo sender, each sending from its own mailbox."""
    return [f"{a}={ews_url(ews, a, **params)}" for a in SENDERS]


def sent_items(ews) -> list[str]:
    """Message-IDs of every copy in the senders' Sent Items."""
    return [i.message_id for a in SENDERS for i in ews.items(a, "sentitems")]


def sql(crm_url: str, statement: str, *params) -> None:
    conn = sqlite3.connect(crm_url.removeprefix("sqlite:///"))
    with conn:
        conn.execute(statement, params)
    conn.close()


def status(crm_url: str, activityid: str) -> tuple[int, int]:
    email = crm_store(crm_url).email(activityid)
    return email["statuscode"], email["statecode"]


def test_pending_emails_are_sent_through_exchange_with_a_copy_in_sent_items(tmp_path, ews):
    crm_url = demo_crm(tmp_path)
    result = send_pending(crm_url, *transports(ews))
    assert result.outgoing_counts == {"sent": 3}, result.outgoing_table.to_string()
    crm = crm_store(crm_url)
    ids = {crm.email(i)["messageid"] for i in PENDING}
    assert sorted(sent_items(ews)) == sorted(ids) and len(ids) == 3
    assert len(ews.sent) == 3
    assert {s["disposition"] for s in ews.sent} == {"SendAndSaveCopy"}
    assert {s["saved_in"] for s in ews.sent} == set(SENDERS)  # each from its own mailbox
    assert {status(crm_url, i) for i in PENDING} == {(3, 1)}
    rows = result.outgoing_table
    assert set(rows["transport"]) == {f"ews://{a}" for a in SENDERS}
    assert set(rows["transport_rule"]) == {f"address: transports[{a!r}]" for a in SENDERS}
    # a second run finds nothing to send
    assert send_pending(crm_url, *transports(ews)).outgoing == [] and len(ews.sent) == 3


def test_a_message_exchange_refuses_is_failed_at_once(tmp_path, ews):
    crm_url = demo_crm(tmp_path)
    sql(crm_url, "DELETE FROM activityparty WHERE activityid = ? AND participationtypemask > 1",
        seed.PENDING_CASE.activityid)  # fmt: skip
    result = send_pending(crm_url, *transports(ews))
    assert result.outgoing_counts == {"sent": 2, "failed": 1}
    assert status(crm_url, seed.PENDING_CASE.activityid) == (8, 0)
    error = crm_store(crm_url).email(seed.PENDING_CASE.activityid)["emailrouter_lasterror"]
    assert "ErrorInvalidRecipients" in error
    assert len(ews.sent) == 2 and ews.items(SUPPORT_BOX, "sentitems") == []


def _stuck(crm_url: str, activityid: str) -> None:
    """Leave an email in Sending, as a router that died long ago would (no ledger of ours)."""
    sql(crm_url, "UPDATE email SET statuscode = 7, emailrouter_attemptid = 'elsewhere', "
        "modifiedon = '2024-03-07T08:00:00Z', deliveryattempts = 0 WHERE activityid = ?",
        activityid)  # fmt: skip


def test_a_stuck_send_is_settled_by_what_sent_items_holds(tmp_path, ews):
    crm_url = demo_crm(tmp_path)
    delivered, lost = seed.PENDING_SHIPPING.activityid, seed.PENDING_CASE.activityid
    _stuck(crm_url, delivered)
    _stuck(crm_url, lost)
    # Exchange has the first one in Sent Items: it was sent before the other router died.
    copy = message("sent before the crash", sender=seed.ALICE_ADDRESS)
    del copy["Message-ID"]
    copy["Message-ID"] = message_id_for(delivered, "contoso.example")
    ews.deliver(seed.ALICE_ADDRESS, copy, folder="sentitems")
    result = send_pending(crm_url, *transports(ews))
    rows = {r.activityid: r for r in result.outgoing}
    assert rows[delivered].outcome == "reconciled:sent"
    assert "Sent Items" in rows[delivered].reason
    assert rows[lost].outcome == "sent"  # not in Sent Items: back to Pending Send, then sent
    assert result.outgoing_counts == {"reconciled:sent": 1, "reconciled:pending": 1, "sent": 2}
    assert status(crm_url, delivered) == (3, 1) and status(crm_url, lost) == (3, 1)
    assert crm_store(crm_url).email(delivered)["messageid"] == copy["Message-ID"]
    assert len(ews.sent) == 2  # the one already in Sent Items was not sent again


def test_a_stuck_send_waits_while_exchange_cannot_be_asked(tmp_path, ews, free_port):
    crm_url = demo_crm(tmp_path)
    _stuck(crm_url, seed.PENDING_SHIPPING.activityid)
    down = ews_url(ews, seed.ALICE_ADDRESS).replace(f":{ews.port}/", f":{free_port}/")
    result = send_pending(crm_url, f"{seed.ALICE_ADDRESS}={down}", *transports(ews)[1:])
    rows = {r.activityid: r for r in result.outgoing}
    later = rows[seed.PENDING_SHIPPING.activityid]
    assert later.outcome == "reconciled:later" and "left in Sending" in later.reason
    assert status(crm_url, seed.PENDING_SHIPPING.activityid) == (7, 1)  # neither failed nor resent
    # Exchange is back: the next run asks it, finds nothing in Sent Items, and sends it once.
    again = send_pending(crm_url, *transports(ews))
    assert Counter(r.outcome for r in again.outgoing) == {"reconciled:pending": 1, "sent": 1}
    assert status(crm_url, seed.PENDING_SHIPPING.activityid) == (3, 1)


def test_killed_after_exchange_accepted_is_marked_sent_from_sent_items_not_resent(tmp_path, ews):
    crm_url = demo_crm(tmp_path)
    sql(crm_url, "UPDATE email SET deliveryattempts = 0")  # every email due at once
    extra = tuple(arg for t in transports(ews) for arg in ("--transport", t))
    killed = route_in_subprocess(crm_url, crash_at="after-smtp-data", extra=extra)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(ews.sent) == 1 and len(sent_items(ews)) == 1  # Exchange took the first one
    first = ews.sent[0]["message_id"]
    rerun = route_in_subprocess(crm_url, extra=extra)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "reconciled:sent" in rerun.stdout and "uncertain" not in rerun.stdout
    ids = Counter(sent_items(ews))
    assert len(ids) == 3 and max(ids.values()) == 1  # three copies, none twice
    assert Counter(s["message_id"] for s in ews.sent)[first] == 1 and len(ews.sent) == 3
    crm = crm_store(crm_url)
    assert {crm.email(i)["messageid"] for i in PENDING} == set(ids)
    assert {status(crm_url, i) for i in PENDING} == {(3, 1)}
