"""Incoming routing against the real embedded CRM and real Maildirs: one outcome per message."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route

from emailrouter_lib.crm import demo
from emailrouter_lib.crm.base import CORRELATION_INREPLYTO, CORRELATION_TRACKINGTOKEN
from emailrouter_lib.errors import ParameterError

SUPPORT = f"queue:{demo.SUPPORT.address}"


@pytest.fixture
def crm_url(tmp_path):
    return demo_crm(tmp_path)


def routed(crm_url, tmp_path, *messages, owner=SUPPORT, **url_params):
    maildir = tmp_path / "Maildir"
    drop(maildir, *messages)
    params = {"owner": owner, **url_params} if owner else url_params
    return route(crm_url, maildir_url(maildir, **params))


def test_note_to_support_queue_is_created_with_parties(crm_url, tmp_path):
    msg = message("Need help", cc=f"{demo.UNKNOWN_ADDRESS}, {demo.ALICE.address}")
    result = routed(crm_url, tmp_path, msg)
    assert result.counts == {"created": 1}
    row = result.rows[0]
    store = crm_store(crm_url)
    email = store.email(row.activityid)
    assert email["messageid"] == msg["Message-ID"]
    assert email["statuscode"] == 4 and email["directioncode"] in (0, False)
    assert email["acceptingentityid"] == demo.SUPPORT.id
    parties = {
        (p["participationtypemask"], p["addressused"], p["partyid"])
        for p in store.email_parties(row.activityid)
    }
    assert (1, "carol@fabrikam.example", demo.CAROL.id) in parties
    assert (2, "support@contoso.example", demo.SUPPORT.id) in parties
    assert (3, demo.UNKNOWN_ADDRESS, None) in parties  # unresolved keeps addressused
    assert (3, demo.ALICE.address, demo.ALICE.id) in parties


def test_in_reply_to_beats_a_tracking_token(crm_url, tmp_path):
    msg = message(
        f"RE: something {demo.TOKEN_QUOTE}",
        in_reply_to=demo.SENT_PRINTER.messageid,
    )
    result = routed(crm_url, tmp_path, msg)
    row = result.rows[0]
    email = crm_store(crm_url).email(row.activityid)
    assert email["correlationmethod"] == CORRELATION_INREPLYTO
    assert email["regardingobjectid"] == demo.SENT_PRINTER.regarding.id
    assert email["trackingtoken"] == demo.TOKEN_QUOTE  # still recorded, just not used to link
    assert row.correlation == "in-reply-to"


def test_token_in_reply_subject_correlates(crm_url, tmp_path):
    result = routed(
        crm_url, tmp_path, message(f"RE: Quote Q-1042 for 20 licences {demo.TOKEN_QUOTE}")
    )
    email = crm_store(crm_url).email(result.rows[0].activityid)
    assert email["correlationmethod"] == CORRELATION_TRACKINGTOKEN
    assert email["regardingobjectid"] == demo.SENT_QUOTE.regarding.id
    assert "tracking token CRM:0001003" in result.rows[0].reason


def test_references_correlate_when_in_reply_to_is_unknown(crm_url, tmp_path):
    msg = message(
        "RE: welcome",
        in_reply_to="<unknown@elsewhere.example>",
        references=f"{demo.SENT_WELCOME.messageid} <unknown@elsewhere.example>",
    )
    result = routed(crm_url, tmp_path, msg)
    email = crm_store(crm_url).email(result.rows[0].activityid)
    assert email["correlationmethod"] == CORRELATION_INREPLYTO
    assert email["regardingobjectid"] == demo.SENT_WELCOME.regarding.id


def test_conversation_index_correlates(crm_url, tmp_path):
    reply_index = base64.b64decode(demo.SENT_PILOT.conversationindex) + b"\x01\x02\x03\x04\x05"
    msg = message("RE: pilot", thread_index=base64.b64encode(reply_index).decode())
    result = routed(crm_url, tmp_path, msg)
    assert result.rows[0].correlation == "conversation-index"


@pytest.mark.parametrize(
    ("owner", "sender", "subject", "outcome"),
    [
        (f"user:{demo.ALICE.address}", demo.UNKNOWN_ADDRESS, "hi", "created"),  # 0 all
        (f"user:{demo.BOB.address}", demo.CAROL.address, "hi", "filtered:not-a-response"),  # 1
        (f"user:{demo.BOB.address}", demo.CAROL.address, f"RE: {demo.TOKEN_PILOT}", "created"),
        (f"queue:{demo.SALES.address}", demo.CAROL.address, "hi", "created"),  # 2, contact
        (f"queue:{demo.SALES.address}", demo.GRACE.address, "hi", "created"),  # 2, lead
        (
            f"queue:{demo.SALES.address}",
            demo.UNKNOWN_ADDRESS,
            "hi",
            "filtered:sender-not-lead-contact-account",
        ),
        (
            f"queue:{demo.SALES.address}",
            demo.ALICE.address,
            "hi",
            "filtered:sender-not-lead-contact-account",
        ),
        (f"user:{demo.DANA.address}", demo.CAROL.address, "hi", "filtered:recipient-disabled"),
        ("user:nobody@contoso.example", demo.CAROL.address, "hi", "filtered:no-crm-recipient"),
    ],
)
def test_filtering_methods_of_the_owner(crm_url, tmp_path, owner, sender, subject, outcome):
    result = routed(crm_url, tmp_path, message(subject, sender=sender), owner=owner)
    assert [r.outcome for r in result.rows] == [outcome]


@pytest.mark.parametrize(
    ("method", "sender", "outcome"),
    [
        (3, demo.ALICE.address, "created"),
        (3, demo.UNKNOWN_ADDRESS, "filtered:sender-not-in-crm"),
        (4, demo.CAROL.address, "filtered:no-email-tracked"),
    ],
)
def test_filtering_methods_three_and_four(crm_url, tmp_path, method, sender, outcome):
    store = crm_store(crm_url)
    with store.transaction() as conn:
        conn.execute("UPDATE queue SET incomingemailfilteringmethod = ?", (method,))
    result = routed(crm_url, tmp_path, message("hi", sender=sender))
    assert [r.outcome for r in result.rows] == [outcome]


def test_approval_required(crm_url, tmp_path):
    with crm_store(crm_url).transaction() as conn:
        conn.execute("UPDATE organization SET requireapprovalforuseremail = 1")
    result = routed(crm_url, tmp_path, message("hi"), owner=f"user:{demo.GINA.address}")
    assert [r.outcome for r in result.rows] == ["filtered:not-approved"]


def test_ignore_internal_email(crm_url, tmp_path):
    with crm_store(crm_url).transaction() as conn:
        conn.execute("UPDATE organization SET ignoreinternalemail = 1")
    result = routed(crm_url, tmp_path, message("hi", sender=demo.ALICE.address))
    assert [r.outcome for r in result.rows] == ["filtered:internal-email"]


def test_multiple_matches_link_every_record_unless_told_not_to(crm_url, tmp_path):
    result = routed(crm_url, tmp_path, message("hi", sender=demo.SHARED_ADDRESS))
    parties = crm_store(crm_url).email_parties(result.rows[0].activityid)
    senders = {
        (p["partyobjecttypecode"], p["partyid"]) for p in parties if p["participationtypemask"] == 1
    }
    assert senders == set(demo.SHARED_ADDRESS_MATCHES)

    with crm_store(crm_url).transaction() as conn:
        conn.execute("UPDATE organization SET unresolveemailaddressifmultiplematch = 1")
    result = routed(crm_url, tmp_path / "again", message("hi again", sender=demo.SHARED_ADDRESS))
    parties = crm_store(crm_url).email_parties(result.rows[0].activityid)
    senders = [(p["partyid"], p["addressused"]) for p in parties if p["participationtypemask"] == 1]
    assert senders == [(None, demo.SHARED_ADDRESS)]


def test_without_owner_the_crm_recipients_among_to_and_cc_decide(crm_url, tmp_path):
    to_bob = message("hi", to=demo.BOB.address)
    to_both = message("hi", to=f"{demo.BOB.address}, {demo.ALICE.address}")
    result = routed(crm_url, tmp_path, to_bob, to_both, owner=None)
    assert [r.outcome for r in result.rows] == ["filtered:not-a-response", "created"]
    assert "alice@contoso.example" in result.rows[1].reason


def test_duplicates_in_crm_and_in_batch_are_not_created_twice(crm_url, tmp_path):
    msg = message("twice")
    first = routed(crm_url, tmp_path, msg, msg)
    assert [r.outcome for r in first.rows] == ["created", "duplicate"]
    again = routed(crm_url, tmp_path / "other", msg)  # another mailbox, same message
    assert [r.outcome for r in again.rows] == ["duplicate"]
    assert len(crm_store(crm_url).emails_with_message_id(msg["Message-ID"])) == 1


def test_message_without_message_id_gets_a_stable_synthetic_one(crm_url, tmp_path):
    msg = message("no id")
    del msg["Message-ID"]
    first = routed(crm_url, tmp_path, msg)
    again = routed(crm_url, tmp_path / "other", msg)
    assert first.rows[0].outcome == "created" and again.rows[0].outcome == "duplicate"
    assert first.rows[0].message_id == again.rows[0].message_id


def test_untracked_classes_are_skipped_and_left_in_place(crm_url, tmp_path):
    bounce = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@contoso.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx.example>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example\r\n\r\n"
        b"Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    result = routed(crm_url, tmp_path, bounce, after="delete")
    assert result.rows[0].outcome == "skipped:REPORT.IPM.Note.NDR"
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 1  # not deleted


def test_processed_items_are_deleted_or_moved_as_the_mailbox_says(crm_url, tmp_path):
    routed(crm_url, tmp_path, message("a"), message("b"), after="delete")
    assert not list((tmp_path / "Maildir" / "new").iterdir())
    routed(crm_url, tmp_path / "m", message("c"), after="move:Processed")
    moved = tmp_path / "m" / "Maildir" / ".Processed"
    assert len(list((moved / "new").iterdir()) + list((moved / "cur").iterdir())) == 1


def test_rerun_routes_nothing_twice(crm_url, tmp_path):
    routed(crm_url, tmp_path, message("a"), message("b"))
    again = route(crm_url, maildir_url(tmp_path / "Maildir", owner=SUPPORT))
    assert again.rows == [] and again.mailboxes[0].already_done == 2


def test_broken_message_is_quarantined_with_its_reason(crm_url, tmp_path):
    result = routed(crm_url, tmp_path, b"\x00\x01\x02 not a message at all")
    row = result.rows[0]
    assert row.outcome == "quarantined:unparseable"
    copies = list((tmp_path / "crm.ledger.sqlite").parent.glob("quarantine/**/*.eml"))
    assert len(copies) == 1 and copies[0].read_bytes().startswith(b"\x00\x01\x02")


def _forwarded(original: EmailMessage, by: str) -> EmailMessage:
    wrapper = message(f"FW: {original['Subject']}", sender=by, to="crm-sink@contoso.example")
    wrapper.add_attachment(original)
    return wrapper


def test_forward_mailbox_unwraps_and_routes_for_the_forwarding_user(crm_url, tmp_path):
    original = message("Order question", to=demo.FRANK.address)
    plain = message("not forwarded as attachment", sender=demo.FRANK.address)
    result = routed(
        crm_url,
        tmp_path,
        _forwarded(original, demo.FRANK.address),
        plain,
        owner=None,
        forward="1",
        after="delete",
    )
    assert [r.outcome for r in result.rows] == ["created", "invalid-forward"]
    email = crm_store(crm_url).email(result.rows[0].activityid)
    assert email["messageid"] == original["Message-ID"]
    assert email["acceptingentityid"] == demo.FRANK.id
    undeliverable = tmp_path / "Maildir" / ".Undeliverable"
    assert (
        len(list((undeliverable / "new").iterdir()) + list((undeliverable / "cur").iterdir())) == 1
    )
    assert not list((tmp_path / "Maildir" / "new").iterdir())


def test_attachments_are_stored_and_oversized_ones_flagged(crm_url, tmp_path):
    msg = message("with files")
    msg.add_attachment(b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment(
        b"x" * 2_000, maintype="application", subtype="octet-stream", filename="big.bin"
    )
    with crm_store(crm_url).transaction() as conn:
        conn.execute("UPDATE organization SET maxuploadfilesize = 1000")
    result = routed(crm_url, tmp_path, msg)
    store = crm_store(crm_url)
    email = store.email(result.rows[0].activityid)
    names = [
        a["filename"] for a in store.rows("activitymimeattachment", objectid=email["activityid"])
    ]
    assert names == ["a.pdf"] and email["notifications"] == 1


def test_bad_parameters_are_refused_with_the_names(crm_url):
    with pytest.raises(ParameterError, match=r"unknown routing parameter.*mailbox\b"):
        route(crm_url, "maildir:///nowhere", mailbox="x")
    with pytest.raises(ParameterError, match="no mailbox"):
        route(crm_url)


def test_unreachable_mailbox_is_reported_and_the_others_still_run(crm_url, tmp_path, free_port):
    drop(tmp_path / "Maildir", message("ok"))
    result = route(
        crm_url,
        f"imap://crm@127.0.0.1:{free_port}/INBOX?password=env:NOPE",
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
    )
    assert [m.status for m in result.mailboxes] == ["error", "ok"]
    assert result.counts == {"created": 1} and not result.ok
