"""The routing tests of POP3/IMAP (test_routing_servers, test_routing_exactly_once, the forward
mailbox cases of test_routing), mirrored over EWS against the protocol-level fake Exchange, plus
what only EWS has: request counts from the server's log, throttling, impersonation."""

from __future__ import annotations

import math
import signal
import time
from collections import Counter

import pytest
from fixtures_ews import FORWARD_BOX, SUPPORT_BOX, ews_url
from routing_helpers import crm_store, demo_crm, message, route, route_in_subprocess

from emailrouter_lib.crm import demo
from emailrouter_lib.routing.faults import CRASH_POINTS

SUPPORT = "queue:support@contoso.example"


@pytest.fixture
def crm_url(tmp_path):
    return demo_crm(tmp_path)


def deliver(server, count: int, *, size: int = 20, mailbox: str = SUPPORT_BOX) -> list[str]:
    ids = []
    for n in range(count):
        msg = message(f"Question {n}", body=f"line {n}\n" * size)
        server.deliver(mailbox, msg)
        ids.append(msg["Message-ID"])
    return ids


def stored_ids(crm_url: str) -> list[str]:
    emails = crm_store(crm_url).emails(directioncode=0)
    return sorted(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


# -- the POP3/IMAP routing cases, over EWS ---------------------------------------------------------
def test_routes_and_deletes_then_a_rerun_finds_nothing(ews, crm_url):
    ids = deliver(ews, 3)
    url = ews_url(ews, owner=SUPPORT, after="delete")
    result = route(crm_url, url)
    assert result.ok and result.counts == {"created": 3}
    assert stored_ids(crm_url) == sorted(ids)
    assert ews.items(SUPPORT_BOX) == [] and len(ews.items(SUPPORT_BOX, "deleteditems")) == 3
    again = route(crm_url, url)
    assert again.rows == [] and again.mailboxes[0].seen == 0
    assert result.mailboxes[0].mailbox == "ews://support@contoso.example/Inbox"


def test_leave_keeps_items_and_the_ledger_stops_a_second_copy(ews, crm_url):
    deliver(ews, 2)
    url = ews_url(ews, owner=SUPPORT)
    assert route(crm_url, url).counts == {"created": 2}
    again = route(crm_url, url)
    assert again.rows == [] and again.mailboxes[0].already_done == 2
    assert len(ews.items(SUPPORT_BOX)) == 2


def test_processed_items_move_to_a_folder_created_on_first_use(ews, crm_url):
    deliver(ews, 2)
    result = route(crm_url, ews_url(ews, owner=SUPPORT, after="move:Processed"))
    assert result.counts == {"created": 2}
    assert ews.items(SUPPORT_BOX) == [] and len(ews.items(SUPPORT_BOX, "Processed")) == 2


def test_ews_item_class_untracked_items_are_skipped_and_left(ews, crm_url):
    bounce = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@contoso.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx.example>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    ews.deliver(SUPPORT_BOX, bounce, item_class="REPORT.IPM.Note.NDR")
    result = route(crm_url, ews_url(ews, owner=SUPPORT, after="delete"))
    assert [r.outcome for r in result.rows] == ["skipped:REPORT.IPM.Note.NDR"]
    assert len(ews.items(SUPPORT_BOX)) == 1


def test_the_servers_item_class_is_believed_over_mime_inference(ews, crm_url):
    # A meeting request whose MIME looks like a plain note: only the ItemClass tells.
    ews.deliver(SUPPORT_BOX, message("Team sync"), item_class="IPM.Schedule.Meeting.Request")
    ews.deliver(SUPPORT_BOX, message("A question"), item_class="IPM.Note")
    result = route(crm_url, ews_url(ews, owner=SUPPORT))
    rows = sorted((r.subject, r.outcome, r.reason) for r in result.rows)
    assert rows == [
        ("A question", "created", rows[0][2]),
        ("Team sync", "skipped:IPM.Schedule.Meeting.Request", "ItemClass from the server"),
    ]


def test_wrong_password_fails_fast_and_names_the_account(ews, crm_url, monkeypatch):
    deliver(ews, 1)
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    url = ews_url(ews, owner=SUPPORT).replace("env:EWS_PASSWORD", "env:WRONG_PW")
    started = time.monotonic()
    result = route(crm_url, url)  # under exchangelib's FaultTolerance this retried for ~85 min
    assert time.monotonic() - started < 5
    error = result.mailboxes[0].error
    assert result.mailboxes[0].status == "error" and "refused the credentials" in error
    assert "CONTOSO\\svc" in error and "not-the-password" not in error and result.rows == []


def test_connection_dropped_on_the_first_fetch_routes_nothing_and_resumes(ews, crm_url):
    ids = deliver(ews, 6)
    url = ews_url(ews, owner=SUPPORT, after="delete", chunk="2")
    ews.inject("drop", op="GetItem")
    first = route(crm_url, url, batch_size=2)
    assert first.mailboxes[0].status == "interrupted" and first.mailboxes[0].resumable == 6
    assert "dropped the connection" in first.mailboxes[0].error and stored_ids(crm_url) == []
    second = route(crm_url, url, batch_size=2)
    assert second.ok and stored_ids(crm_url) == sorted(ids)
    assert route(crm_url, url).mailboxes[0].seen == 0


def test_connection_dropped_mid_batch_leaves_the_batch_resumable(ews, crm_url):
    ids = deliver(ews, 6)
    url = ews_url(ews, owner=SUPPORT, after="delete", chunk="2")
    ews.inject("drop", op="GetItem", skip=2)  # batches one and two arrive, three is cut off
    first = route(crm_url, url, batch_size=2)
    assert first.mailboxes[0].status == "interrupted" and first.mailboxes[0].resumable == 2
    assert len(stored_ids(crm_url)) == 4 and len(ews.items(SUPPORT_BOX)) == 2
    second = route(crm_url, url, batch_size=2)
    assert second.ok and stored_ids(crm_url) == sorted(ids)  # every message once, none lost
    assert route(crm_url, url).mailboxes[0].seen == 0


def test_throttled_mailbox_fails_alone_and_the_next_one_routes(ews, crm_url):
    deliver(ews, 2, mailbox=SUPPORT_BOX)
    ews.deliver("alice@contoso.example", message("for alice", to="alice@contoso.example"))
    ews.inject("busy", mailbox=SUPPORT_BOX, back_off_ms=2000, times=100)
    started = time.monotonic()
    result = route(
        crm_url,
        ews_url(ews, owner=SUPPORT, max_wait="1"),
        ews_url(ews, "alice@contoso.example", owner="user:alice@contoso.example"),
    )
    assert time.monotonic() - started < 5  # no back-off carried over to alice's mailbox
    support, alice = result.mailboxes
    assert support.status == "error" and "throttling" in support.error
    assert alice.status == "ok" and result.counts == {"created": 1}


def test_server_back_off_is_honoured_then_routing_goes_on(ews, crm_url):
    deliver(ews, 2)
    ews.inject("busy", op="FindItem", back_off_ms=400, times=1)
    started = time.monotonic()
    result = route(crm_url, ews_url(ews, owner=SUPPORT))
    assert time.monotonic() - started >= 0.4
    assert result.ok and result.counts == {"created": 2}
    assert [r.fault for r in ews.requests("FindItem")] == ["busy", None]


# -- forward mailboxes -----------------------------------------------------------------------------
def _forwarded(original, by: str):
    wrapper = message(f"FW: {original['Subject']}", sender=by, to=FORWARD_BOX)
    wrapper.add_attachment(original)
    return wrapper


def _route_forward(ews, crm_url, *messages, after="delete"):
    for msg in messages:
        ews.deliver(FORWARD_BOX, msg)
    return route(crm_url, ews_url(ews, FORWARD_BOX, forward="1", after=after))


def test_forward_mailbox_valid_wrapper_routes_the_original_for_the_forwarding_user(ews, crm_url):
    original = message("Order question", to=demo.FRANK.address)
    result = _route_forward(ews, crm_url, _forwarded(original, demo.FRANK.address))
    assert [r.outcome for r in result.rows] == ["created"]
    email = crm_store(crm_url).email(result.rows[0].activityid)
    assert email["messageid"] == original["Message-ID"]
    assert email["acceptingentityid"] == demo.FRANK.id
    assert ews.items(FORWARD_BOX) == [] and len(ews.items(FORWARD_BOX, "deleteditems")) == 1
    assert ews.folder(FORWARD_BOX, "Undeliverable") is None  # not created when not needed


def test_forward_mailbox_item_not_forwarded_as_attachment_goes_to_undeliverable(ews, crm_url):
    plain = message("not forwarded as attachment", sender=demo.FRANK.address, to=FORWARD_BOX)
    result = _route_forward(ews, crm_url, plain)
    assert [r.outcome for r in result.rows] == ["invalid-forward"]
    assert "InvalidForwardMailItem" in result.rows[0].reason
    assert ews.items(FORWARD_BOX) == []
    moved = ews.items(FORWARD_BOX, "Undeliverable")  # created on first use
    assert [i.message_id for i in moved] == [plain["Message-ID"]]
    assert route(crm_url, ews_url(ews, FORWARD_BOX, forward="1")).rows == []


def test_forward_mailbox_mixed_batch(ews, crm_url):
    first = message("Order question", to=demo.FRANK.address)
    second = message("Invoice", to=demo.FRANK.address)
    plain = message("inline forward", sender=demo.FRANK.address, to=FORWARD_BOX)
    ews.store.create_folder(
        ews.store.distinguished(FORWARD_BOX, "msgfolderroot"), "Undeliverable", None
    )  # an existing Undeliverable folder is reused, not duplicated
    result = _route_forward(
        ews,
        crm_url,
        _forwarded(first, demo.FRANK.address),
        plain,
        _forwarded(second, demo.FRANK.address),
        after="move:Processed",
    )
    assert [r.outcome for r in result.rows] == ["created", "invalid-forward", "created"]
    assert len(ews.items(FORWARD_BOX, "Processed")) == 2
    assert len(ews.items(FORWARD_BOX, "Undeliverable")) == 1
    assert len(ews.requests("CreateFolder")) == 1  # Processed only
    assert ews.items(FORWARD_BOX) == []


# -- request counts --------------------------------------------------------------------------------
@pytest.mark.parametrize(("count", "page", "chunk"), [(45, 10, 10), (120, 50, 7)])
def test_routing_costs_pages_plus_chunks_plus_a_constant_not_a_request_per_message(
    ews, crm_url, count, page, chunk
):
    deliver(ews, count, size=5)
    ews.clear_log()
    url = ews_url(ews, owner=SUPPORT, page=str(page), chunk=str(chunk), after="delete")
    result = route(crm_url, url, batch_size=count)  # one engine batch: one bulk delete
    assert result.counts == {"created": count}
    ops = ews.counts()
    assert ops["FindItem"] == math.ceil(count / page)
    assert ops["GetItem"] == math.ceil(count / chunk)
    assert ops["DeleteItem"] == math.ceil(count / 100)
    constant = 4  # 2 GetFolder (root, inbox), the bulk delete, slack
    assert sum(ops.values()) <= math.ceil(count / page) + math.ceil(count / chunk) + constant
    assert {r.impersonated for r in ews.requests()} == {SUPPORT_BOX}


# -- exactly once under SIGKILL --------------------------------------------------------------------
def routed_ids(crm_url: str) -> Counter:
    emails = crm_store(crm_url).emails(directioncode=0)
    return Counter(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_ews_batch_killed_at_each_point_routes_each_message_once(ews, crm_url, crash_at):
    messages = [message(f"m{n}") for n in range(5)]
    for msg in messages:
        ews.deliver(SUPPORT_BOX, msg)
    url = ews_url(ews, owner=SUPPORT, after="delete")
    killed = route_in_subprocess(crm_url, url, crash_at=crash_at, extra=("--batch-size", "2"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = route_in_subprocess(crm_url, url, extra=("--batch-size", "2"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    assert ews.items(SUPPORT_BOX) == []  # every source item handled
    assert len(ews.items(SUPPORT_BOX, "deleteditems")) == 5
