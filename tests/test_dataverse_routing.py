"""Incoming routing end to end with ``crm`` = the Dataverse backend against the fake Web API.

Mirrors the main cases of test_routing.py (which routes into SQLite), then shows what the Web
API costs: request counts for 1,000 messages, and a 429 storm that loses and duplicates nothing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fixtures_dataverse import (
    NTLM_ENV,
    ntlm_url,
)
from routing_helpers import drop, maildir_url, message, route

from emailrouter_lib.crm import SqliteCrm, demo
from emailrouter_lib.crm.base import CORRELATION_INREPLYTO, CORRELATION_TRACKINGTOKEN
from emailrouter_lib.errors import CrmError
from emailrouter_lib.tracking.correlate import METHOD_NAMES

SUPPORT = f"queue:{demo.SUPPORT.address}"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_dataverse(flavoured_dataverse):
    """The strict fake in each flavour (online, onprem, crm2016): every test here runs thrice."""
    return flavoured_dataverse


def routed(
    server, tmp_path, *messages, owner=SUPPORT, crm_url=None, folder="Maildir", **url_params
):
    maildir = tmp_path / folder
    drop(maildir, *messages)
    params = {"owner": owner, **url_params} if owner else url_params
    return route(
        crm_url or server.crm_url(),
        maildir_url(maildir, **params),
        ledger=str(tmp_path / "ledger.sqlite"),
        quarantine_dir=str(tmp_path / "quarantine"),
    )


def store(server) -> SqliteCrm:
    return SqliteCrm(server.store.path)


def test_note_to_support_queue_is_created_with_parties(fake_dataverse, tmp_path):
    msg = message("Need help", cc=f"{demo.UNKNOWN_ADDRESS}, {demo.ALICE.address}")
    msg.add_attachment(b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="a.pdf")
    result = routed(fake_dataverse, tmp_path, msg)
    assert result.counts == {"created": 1}, result.rows
    row = result.rows[0]
    db = store(fake_dataverse)
    email = db.email(row.activityid)
    assert email["messageid"] == msg["Message-ID"]
    assert email["statuscode"] == 4 and email["statecode"] == 1 and email["directioncode"] == 0
    if fake_dataverse.flavour == "online":  # lookups CRM 2016 and on-premises do not have
        assert email["acceptingentityid"] == demo.SUPPORT.id
        assert email["receivingmailboxid"] is not None
    parties = {
        (p["participationtypemask"], p["addressused"], p["partyid"])
        for p in db.email_parties(row.activityid)
    }
    assert (1, "carol@fabrikam.example", demo.CAROL.id) in parties
    assert (2, "support@contoso.example", demo.SUPPORT.id) in parties
    assert (3, demo.UNKNOWN_ADDRESS, None) in parties
    assert (3, demo.ALICE.address, demo.ALICE.id) in parties
    assert [a["filename"] for a in db.email_attachments(row.activityid)] == ["a.pdf"]


def test_in_reply_to_and_tracking_token_correlate(fake_dataverse, tmp_path):
    reply = message(f"RE: something {demo.TOKEN_QUOTE}", in_reply_to=demo.SENT_PRINTER.messageid)
    token = message(f"RE: Quote Q-1042 for 20 licences {demo.TOKEN_QUOTE}")
    result = routed(fake_dataverse, tmp_path, reply, token)
    db = store(fake_dataverse)
    first, second = (db.email(r.activityid) for r in result.rows)
    # email.correlationmethod is read-only (not valid for create): the result row says how.
    assert [r.correlation for r in result.rows] == [
        METHOD_NAMES[CORRELATION_INREPLYTO],
        METHOD_NAMES[CORRELATION_TRACKINGTOKEN],
    ]
    assert first["regardingobjectid"] == demo.SENT_PRINTER.regarding.id
    assert first["parentactivityid"] == demo.SENT_PRINTER.activityid
    assert second["regardingobjectid"] == demo.SENT_QUOTE.regarding.id


def test_conversation_index_correlates(fake_dataverse, tmp_path):
    reply_index = base64.b64decode(demo.SENT_PILOT.conversationindex) + b"\x01\x02\x03\x04\x05"
    msg = message("RE: pilot", thread_index=base64.b64encode(reply_index).decode())
    result = routed(fake_dataverse, tmp_path, msg)
    assert result.rows[0].correlation == "conversation-index"


@pytest.mark.parametrize(
    ("owner", "sender", "subject", "outcome"),
    [
        (f"user:{demo.ALICE.address}", demo.UNKNOWN_ADDRESS, "hi", "created"),
        (f"user:{demo.BOB.address}", demo.CAROL.address, "hi", "filtered:not-a-response"),
        (f"queue:{demo.SALES.address}", demo.GRACE.address, "hi", "created"),
        (
            f"queue:{demo.SALES.address}",
            demo.UNKNOWN_ADDRESS,
            "hi",
            "filtered:sender-not-lead-contact-account",
        ),
        (f"user:{demo.DANA.address}", demo.CAROL.address, "hi", "filtered:recipient-disabled"),
        ("user:nobody@contoso.example", demo.CAROL.address, "hi", "filtered:no-crm-recipient"),
    ],
)
def test_filtering_methods_of_the_owner(fake_dataverse, tmp_path, owner, sender, subject, outcome):
    result = routed(fake_dataverse, tmp_path, message(subject, sender=sender), owner=owner)
    assert [r.outcome for r in result.rows] == [outcome]


def test_multiple_matches_link_every_record(fake_dataverse, tmp_path):
    result = routed(fake_dataverse, tmp_path, message("hi", sender=demo.SHARED_ADDRESS))
    parties = store(fake_dataverse).email_parties(result.rows[0].activityid)
    senders = {
        (p["partyobjecttypecode"], p["partyid"]) for p in parties if p["participationtypemask"] == 1
    }
    assert senders == set(demo.SHARED_ADDRESS_MATCHES)


def test_without_owner_the_crm_recipients_among_to_and_cc_decide(fake_dataverse, tmp_path):
    to_bob = message("hi", to=demo.BOB.address)
    to_both = message("hi", to=f"{demo.BOB.address}, {demo.ALICE.address}")
    result = routed(fake_dataverse, tmp_path, to_bob, to_both, owner=None)
    assert [r.outcome for r in result.rows] == ["filtered:not-a-response", "created"]


def test_duplicates_and_reruns_create_nothing_twice(fake_dataverse, tmp_path):
    msg = message("twice")
    first = routed(fake_dataverse, tmp_path, msg, msg)
    assert [r.outcome for r in first.rows] == ["created", "duplicate"]
    again = routed(fake_dataverse, tmp_path, msg, folder="Other")  # another mailbox
    assert [r.outcome for r in again.rows] == ["duplicate"]
    assert len(store(fake_dataverse).emails_with_message_id(msg["Message-ID"])) == 1
    rerun = route(
        fake_dataverse.crm_url(),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert rerun.rows == [] and rerun.mailboxes[0].already_done == 2


def test_unknown_sender_becomes_a_contact_when_the_user_asks(fake_dataverse, tmp_path):
    with store(fake_dataverse).transaction() as conn:
        conn.execute(
            "UPDATE systemuser SET autocreatecontactonpromote = 1 WHERE systemuserid = ?",
            (demo.ALICE.id,),
        )
    msg = message("hi", sender=f"New Person <{demo.UNKNOWN_ADDRESS}>")
    result = routed(fake_dataverse, tmp_path, msg, owner=f"user:{demo.ALICE.address}")
    assert result.counts == {"created": 1}
    (contact,) = store(fake_dataverse).rows("contact", emailaddress1=demo.UNKNOWN_ADDRESS)
    assert contact["fullname"] == "New Person"


def test_routing_through_ntlm(ntlm_dataverse, tmp_path):
    result = routed(
        ntlm_dataverse, tmp_path, message("over NTLM"), crm_url=ntlm_url(ntlm_dataverse)
    )
    assert result.counts == {"created": 1}
    assert any(e.status == 401 for e in ntlm_dataverse.log)  # the handshake really happened


def test_an_unreachable_crm_is_an_error_and_nothing_is_lost(fake_dataverse, tmp_path):
    drop(tmp_path / "Maildir", message("kept"))
    fake_dataverse.stop()
    url = fake_dataverse.crm_url(retries="1", timeout="2")
    with pytest.raises(CrmError, match=r"lost the connection|timed out"):
        route(
            url,
            maildir_url(tmp_path / "Maildir", owner=SUPPORT),
            ledger=str(tmp_path / "ledger.sqlite"),
        )
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == 1


# -- what the Web API costs -------------------------------------------------------------------


def _many(count: int, tag: str) -> list:
    senders = [demo.CAROL.address, demo.GRACE.address, demo.SHARED_ADDRESS, demo.UNKNOWN_ADDRESS]
    return [
        message(f"{tag} {n}", sender=senders[n % len(senders)], cc=demo.ALICE.address)
        for n in range(count)
    ]


def test_routing_1000_messages_costs_a_few_requests(fake_dataverse, tmp_path):
    """Writes: one $batch per routing batch of 200 (5 for 1,000); lookups: batched per batch."""
    before = len(fake_dataverse.log)
    result = routed(fake_dataverse, tmp_path, *_many(1000, "bulk"), after="delete")
    assert result.counts == {"created": 1000}
    log = fake_dataverse.log[before:]
    writes = [e for e in log if e.is_write]
    reads = [e for e in log if not e.is_write]
    assert len(writes) <= 10, [(e.method, e.path, len(e.parts)) for e in writes]
    assert len(reads) <= 4 * 5 + 4, [(e.method, e.path, e.parts[:2]) for e in reads]
    assert sum(len(e.parts) for e in writes) >= 2000  # every email, state and party was written
    assert store(fake_dataverse).count("email") == demo_emails(fake_dataverse) + 1000
    assert not list((tmp_path / "Maildir" / "new").iterdir())


def demo_emails(server) -> int:
    return sum(
        1
        for r in store(server).rows("email")
        if not (r["subject"] or "").startswith(("bulk", "storm"))
    )


def test_a_429_storm_slows_the_batch_but_loses_and_duplicates_nothing(fake_dataverse, tmp_path):
    fake_dataverse.faults.throttle_every = 3
    fake_dataverse.faults.throttle_retry_after = 1
    messages = _many(12, "storm")
    ledger = str(tmp_path / "ledger.sqlite")
    maildir = tmp_path / "Maildir"
    drop(maildir, *messages)
    result = route(
        fake_dataverse.crm_url(),
        maildir_url(maildir, owner=SUPPORT, after="delete"),
        ledger=ledger,
        batch_size=5,
    )
    assert result.counts == {"created": 12}, [r.reason for r in result.rows]
    throttled = fake_dataverse.log.throttled()
    assert len(throttled) >= 3
    db = store(fake_dataverse)
    for msg in messages:
        assert len(db.emails_with_message_id(msg["Message-ID"])) == 1
    assert sum(1 for r in db.rows("email") if (r["subject"] or "").startswith("storm")) == 12
    assert not list((maildir / "new").iterdir())  # every item deleted after its commit
    assert result.mailboxes[0].seconds >= len(throttled) * 1.0  # it waited as asked


def test_a_timeout_after_the_commit_is_retried_without_a_second_copy(fake_dataverse, tmp_path):
    """The write $batch commits but its answer comes after the client's timeout: the client
    sends it again, gets "a record with matching key values already exists", checks that every
    email of the change set is there, and counts it as committed."""
    messages = _many(3, "late")
    drop(tmp_path / "Maildir", *messages)
    fake_dataverse.faults.late_writes = 1
    fake_dataverse.faults.late_delay = 1.0
    result = route(
        fake_dataverse.crm_url(timeout="0.5"),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert result.counts == {"created": 3}, [r.reason for r in result.rows]
    writes = [e for e in fake_dataverse.log if e.is_batch and e.changesets]
    assert [e.fault for e in writes] == ["late-write", None]
    assert writes[1].parts[0][2] == 412  # the repeat was refused, not applied twice
    db = store(fake_dataverse)
    for msg in messages:
        assert len(db.emails_with_message_id(msg["Message-ID"])) == 1


def test_routing_notebook_runs_against_the_fake_dataverse(ntlm_dataverse, tmp_path):
    from emailrouter_lib.runner import run_notebook

    drop(tmp_path / "Maildir", message("from the notebook"), message("and another"))
    run = run_notebook(
        ROOT / "notebooks" / "04_run_routing_batch.ipynb",
        {
            "mailboxes": [maildir_url(tmp_path / "Maildir", owner=SUPPORT)],
            "crm": ntlm_url(ntlm_dataverse),
            "ledger": str(tmp_path / "ledger.sqlite"),
        },
        run_root=tmp_path / "runs",
        run_id="dataverse",
    )
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"] == {"created": 2}
    assert NTLM_ENV in run.executed_notebook.read_text(encoding="utf-8")  # the reference...
    assert "Fake-Passw0rd" not in run.executed_notebook.read_text(encoding="utf-8")  # ...not it
    assert any(e.is_batch and e.is_write for e in ntlm_dataverse.log)
