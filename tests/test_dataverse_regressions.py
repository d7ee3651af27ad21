"""One regression test per defect of issue 13 (dataverse-audit.md), against the strict fake.

Each docstring says what the client did before the fix; each test fails on that client. The
fake answers from Microsoft's published entity metadata per flavour (``online`` v9.2,
``onprem`` v9.x, ``crm2016`` v8.2; tests/dataverse_server/README.md), so a request the client
sends is valid only if Microsoft's schema says so.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fixtures_dataverse import (
    start_fake,
    state_url,
)
from fixtures_smtp import send_pending
from routing_helpers import drop, maildir_url, message, route

from emailrouter_lib.crm import SqliteCrm, demo, open_crm
from emailrouter_lib.crm.dataverse.batch import BatchRequest
from emailrouter_lib.errors import CrmHTTPError

SUPPORT = f"queue:{demo.SUPPORT.address}"


def routed(server, tmp_path: Path, *messages, owner: str | None = SUPPORT, **url_params):
    maildir = tmp_path / "Maildir"
    drop(maildir, *messages)
    params = {"owner": owner, **url_params} if owner else url_params
    return route(
        state_url(server, tmp_path),
        maildir_url(maildir, **params),
        ledger=str(tmp_path / "ledger.sqlite"),
        quarantine_dir=str(tmp_path / "quarantine"),
    )


def store(server) -> SqliteCrm:
    return SqliteCrm(server.store.path)


# -- every incoming email online: the documented navigation names -----------------------------


def test_incoming_email_online_binds_the_documented_navigation_names(tmp_path):
    """Before: ``receivingmailboxid@odata.bind`` and ``correlatedactivityid@odata.bind`` (not
    navigation properties; Dataverse answers 400 and the change set rolls back). Now the names
    come from the org's metadata: ``ReceivingMailboxId_Email``, ``CorrelatedActivityId_Email``."""
    server = start_fake(tmp_path, flavour="online")
    try:
        reply = message("RE: printer", in_reply_to=demo.SENT_PRINTER.messageid)
        result = routed(server, tmp_path, reply)
        assert result.counts == {"created": 1}, [r.reason for r in result.rows]
        email = store(server).email(result.rows[0].activityid)
        assert email["receivingmailboxid"] is not None
        assert email["correlatedactivityid"] == demo.SENT_PRINTER.activityid
    finally:
        server.stop()


# -- every incoming email on-premises: attributes that do not exist there ---------------------


@pytest.mark.parametrize("flavour", ["onprem", "crm2016"])
def test_incoming_email_on_premises_sends_only_what_exists(tmp_path, flavour):
    """Before: ``acceptingentityid``, ``receivingmailboxid``, ``correlatedactivityid`` and
    ``activityparty.unresolvedpartyname`` were sent to CRM 2016 / on-premises, where they do not
    exist: 400, no incoming email could be created. Now only the attributes the org has."""
    server = start_fake(tmp_path, flavour=flavour)
    try:
        msg = message("Need help", cc=f"Nobody Known <{demo.UNKNOWN_ADDRESS}>")
        reply = message("RE: printer", in_reply_to=demo.SENT_PRINTER.messageid)
        result = routed(server, tmp_path, msg, reply)
        assert result.counts == {"created": 2}, [r.reason for r in result.rows]
        parties = store(server).email_parties(result.rows[0].activityid)
        assert (3, demo.UNKNOWN_ADDRESS) in {
            (p["participationtypemask"], p["addressused"]) for p in parties
        }
    finally:
        server.stop()


@pytest.mark.parametrize("flavour", ["onprem", "crm2016"])
def test_outgoing_party_query_on_premises_selects_only_what_exists(tmp_path, flavour):
    """Before: the outgoing party query selected ``unresolvedpartyname``, which on-premises
    lacks: 400 "Could not find a property", every outgoing batch failed."""
    server = start_fake(tmp_path, flavour=flavour)
    try:
        result = send_pending(
            state_url(server, tmp_path),
            f"pickup://{tmp_path / 'outbox'}",
            ledger=str(tmp_path / "ledger.sqlite"),
        )
        assert result.outgoing_counts == {"sent": 3}, result.outgoing
    finally:
        server.stop()


def test_a_321_character_addressused_is_cut_with_a_finding(flavoured_dataverse, tmp_path):
    """Before: no length guard; a party address longer than the org's MaxLength (320 online,
    200 on-premises) failed the whole change set with 0x80044331. Now it is cut to the org's
    length and the result row says so."""
    local = "x" * (321 - len("@fabrikam.example"))
    long_address = f"{local}@fabrikam.example"
    assert len(long_address) == 321
    result = routed(flavoured_dataverse, tmp_path, message("long cc", cc=long_address))
    assert result.counts == {"created": 1}, [r.reason for r in result.rows]
    row = result.rows[0]
    assert "activityparty.addressused cut from 321" in row.reason
    addresses = [p["addressused"] for p in store(flavoured_dataverse).email_parties(row.activityid)]
    assert any(a and a.startswith(local[:50]) and len(a) < 321 for a in addresses)


# -- apostrophes in In() ----------------------------------------------------------------------


def test_an_apostrophe_in_an_address_and_a_message_id_routes(flavoured_dataverse, tmp_path):
    """Before: ``In(... PropertyValues=['o''brien@...'])``: the documented form is a JSON array
    of double-quoted strings, the single-quoted one fails the lookup on every retry."""
    msg = message(
        "from o'brien",
        sender="o'brien@fabrikam.example",
        message_id="<o'brien.1+x@test.example>",
    )
    result = routed(flavoured_dataverse, tmp_path, msg)
    assert result.counts == {"created": 1}, [r.reason for r in result.rows]
    again = routed(flavoured_dataverse, tmp_path, msg)  # and the Message-ID lookup finds it
    assert [r.outcome for r in again.rows] == ["duplicate"]


# -- failed $batch ----------------------------------------------------------------------------


def test_a_lost_etag_check_on_v8_skips_one_email_not_the_whole_status_write(tmp_path):
    """Before: v8.2 stops a ``$batch`` at the first failure and answers with its status (412)
    at the top level; the client treated that as "no answer" and aborted the whole outgoing
    status write. Now the multipart body is read: the 412 email is skipped, the rest written."""
    server = start_fake(tmp_path, flavour="crm2016")
    crm = open_crm(state_url(server, tmp_path))
    try:
        first, second = (e.activityid for e in demo.PENDING_EMAILS[:2])
        versions = crm._versions([first, second])
        items = [
            BatchRequest(
                "PATCH",
                crm.session.url(f"emails({first})"),
                {"statecode": 1, "statuscode": 7},
                headers={"If-Match": 'W/"1"'},  # stale: someone else changed it
            ),
            BatchRequest(
                "PATCH",
                crm.session.url(f"emails({second})"),
                {"statecode": 1, "statuscode": 7},
                headers={"If-Match": versions[second.lower()].etag},
            ),
        ]
        answers, _ = crm._write_each(items, what="test")
        assert answers[0].status == 412
        assert answers[1].ok
        assert store(server).email(second)["statuscode"] == 7
    finally:
        crm.close()
        server.stop()


def test_a_failed_batch_keeps_dataverses_error_text(tmp_path):
    """Before: a stopped ``$batch`` (top-level 400, multipart body) gave "no error body". Now the
    failing part's code and message reach the error."""
    server = start_fake(tmp_path, flavour="crm2016")
    crm = open_crm(state_url(server, tmp_path))
    try:
        with pytest.raises(CrmHTTPError, match="Could not find a property") as caught:
            crm._read_many(["emails?$select=activityid,nosuchcolumn"])
        assert caught.value.status == 400 and caught.value.code
        assert "nosuchcolumn" in str(caught.value) and "no error body" not in str(caught.value)
    finally:
        crm.close()
        server.stop()


def test_a_change_set_resent_after_a_timeout_counts_as_committed(flavoured_dataverse, tmp_path):
    """Before: the repeat's "already exists" came as a top-level 412/400 and the recovery
    (every record there → committed) never ran: "failed with HTTP 412 after 2 attempts"."""
    messages = [message(f"late {n}") for n in range(3)]
    drop(tmp_path / "Maildir", *messages)
    flavoured_dataverse.faults.late_writes = 1
    flavoured_dataverse.faults.late_delay = 1.0
    result = route(
        state_url(flavoured_dataverse, tmp_path, timeout="0.5"),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert result.counts == {"created": 3}, [r.reason for r in result.rows]
    for msg in messages:
        assert len(store(flavoured_dataverse).emails_with_message_id(msg["Message-ID"])) == 1


# -- wrong data -------------------------------------------------------------------------------


def test_thread_index_correlation_finds_an_email_this_router_created(flavoured_dataverse, tmp_path):
    """Before: ``conversationindex`` (read-only) was sent and ignored, so a reply's Thread-Index
    never matched an email the router had created. Now the router keeps it in its state file."""
    index = base64.b64encode(b"\x01" + bytes(range(21))).decode()
    first = routed(flavoured_dataverse, tmp_path, message("pilot", thread_index=index))
    assert first.counts == {"created": 1}
    reply_index = base64.b64encode(base64.b64decode(index) + b"\x01\x02\x03\x04\x05").decode()
    drop(tmp_path / "Maildir", message("RE: pilot", thread_index=reply_index))
    second = route(
        state_url(flavoured_dataverse, tmp_path),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    (row,) = second.rows
    assert row.correlation == "conversation-index", row.reason
    email = store(flavoured_dataverse).email(row.activityid)
    assert email["correlatedactivityid"] in (None, first.rows[0].activityid)


def test_outgoing_reads_no_more_than_its_limit(flavoured_dataverse, tmp_path):
    """Before: ``$top`` beside ``Prefer: odata.maxpagesize`` (ignored, as documented): every
    outgoing batch paged through the whole Pending Send backlog. Now the page size is the limit
    and paging stops there."""
    crm = open_crm(state_url(flavoured_dataverse, tmp_path, pagesize="1"))
    try:
        before = len(flavoured_dataverse.log)
        emails = crm.outgoing_emails([6], limit=1)
        assert len(emails) == 1
        email_gets = [
            e
            for e in flavoured_dataverse.log[before:]
            if e.method == "GET" and e.path.endswith("/emails")
        ]
        assert len(email_gets) == 1, [(e.path, e.query) for e in email_gets]
        assert "$top" not in email_gets[0].query
    finally:
        crm.close()


def test_a_user_mailbox_is_found_not_created_as_a_forward_mailbox(flavoured_dataverse, tmp_path):
    """Before: a user mailbox the migration did not find was POSTed with ``isforwardmailbox``
    and ``regardingobjectid`` (read-only): an unlinked forward mailbox. Now the platform's own
    mailbox of the user (``systemuser.defaultmailbox``) is updated."""
    db = store(flavoured_dataverse)
    with db.transaction() as conn:  # the mailbox no longer says whose it is
        conn.execute(
            "UPDATE mailbox SET regardingobjectid = NULL WHERE regardingobjectid = ?",
            (demo.ALICE.id,),
        )
    mailboxes = db.count("mailbox")
    crm = open_crm(state_url(flavoured_dataverse, tmp_path))
    try:
        change = crm.save_mailbox(
            {
                "regardingobjectid": demo.ALICE.id,
                "regardingobjecttypecode": "systemuser",
                "processanddeleteemails": True,
            }
        )
        assert change.action in ("updated", "unchanged")
        assert store(flavoured_dataverse).count("mailbox") == mailboxes
    finally:
        crm.close()


def test_tracking_tokens_come_from_the_crm(flavoured_dataverse, tmp_path):
    """Before: tokens were minted from local user numbers 1, 2, 3..., which can collide with the
    CRM's own. Now ``GetTrackingTokenEmail`` issues them."""
    with store(flavoured_dataverse).transaction() as conn:
        conn.execute("UPDATE email SET trackingtoken = NULL WHERE statuscode = 6")
    result = send_pending(
        state_url(flavoured_dataverse, tmp_path),
        f"pickup://{tmp_path / 'outbox'}",
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert result.outgoing_counts == {"sent": 3}, result.outgoing
    asked = [
        part
        for e in flavoured_dataverse.log
        for part in e.parts or [(e.method, e.path.rsplit("/", 1)[-1], e.status)]
        if part[1] == "GetTrackingTokenEmail"
    ]
    assert len(asked) == 3


# -- risky: closed activities, change set sizes -----------------------------------------------


def test_outgoing_never_updates_columns_of_a_closed_email(flavoured_dataverse, tmp_path):
    """Before: the claim PATCH (Pending Send 6 → Sending 7, both statecode 1 Completed) carried
    subject and tracking token, the Sent PATCH the Message-ID: refused by the platform for a
    closed activity. Now columns are written only while the email is open."""
    result = send_pending(
        state_url(flavoured_dataverse, tmp_path),
        f"pickup://{tmp_path / 'outbox'}",
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert result.outgoing_counts == {"sent": 3}, result.outgoing
    db = store(flavoured_dataverse)
    for pending in demo.PENDING_EMAILS:
        email = db.email(pending.activityid)
        assert email["statuscode"] == 3 and email["messageid"] and email["trackingtoken"]


def test_an_email_with_an_attachment_is_created_closed_after_its_attachment(
    flavoured_dataverse, tmp_path
):
    """Before: the state PATCH (Received, statecode 1) came before the attachment POST, which
    then added to a closed activity."""
    msg = message("with a file")
    msg.add_attachment(b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="a.pdf")
    result = routed(flavoured_dataverse, tmp_path, msg)
    assert result.counts == {"created": 1}, [r.reason for r in result.rows]
    db = store(flavoured_dataverse)
    assert [a["filename"] for a in db.email_attachments(result.rows[0].activityid)] == ["a.pdf"]


def test_change_sets_stay_under_100_requests(flavoured_dataverse, tmp_path):
    """Before: up to 1,000 requests per change set (all attachments in one transaction)."""
    messages = [message(f"many {n}") for n in range(60)]  # 2 requests each: 120
    result = routed(flavoured_dataverse, tmp_path, *messages)
    assert result.counts == {"created": 60}
    writes = [e for e in flavoured_dataverse.log if e.is_batch and e.changesets]
    assert sum(e.changesets for e in writes) >= 2  # 180 requests: two change sets
    assert len(writes) == 1  # in one $batch
    references = [int(t[1:]) for e in writes for _, t, _ in e.parts if t.startswith("$")]
    assert references and max(references) <= 100  # Content-IDs count within a change set


# -- queues -----------------------------------------------------------------------------------


def test_an_email_routed_to_the_support_queue_is_in_that_queue(flavoured_dataverse, tmp_path):
    """Before: a plain ``POST emails`` created no ``queueitem``: mail routed to support@ never
    showed up in the Support queue. Now ``AddToQueue`` runs in the same change set."""
    result = routed(flavoured_dataverse, tmp_path, message("Need help"))
    assert result.counts == {"created": 1}
    row = result.rows[0]
    assert row.reason  # the row still says why (filtering, correlation)
    crm = open_crm(state_url(flavoured_dataverse, tmp_path))
    try:
        items = crm._get(
            f"queueitems?$select=_queueid_value,_objectid_value"
            f"&$filter=_objectid_value eq {row.activityid}"
        )
    finally:
        crm.close()
    assert [i["_queueid_value"].lower() for i in items] == [demo.SUPPORT.id.lower()]


# -- what reading the org costs ---------------------------------------------------------------


def _metadata_reads(server) -> int:
    return sum(
        1
        for e in server.log
        if any(t.startswith("EntityDefinitions") for _, t, _ in e.parts)
        or "EntityDefinitions" in e.path
    )


def test_the_metadata_is_read_once_per_connection_and_then_from_the_state_file(
    flavoured_dataverse, tmp_path
):
    """The metadata read is one ``$batch`` per connection, not per routing batch; a later
    connection with the same state file reads none (the copy is a day old at most)."""
    first = routed(flavoured_dataverse, tmp_path, *[message(f"m {n}") for n in range(5)])
    assert first.counts == {"created": 5}
    assert _metadata_reads(flavoured_dataverse) == 1
    crm = open_crm(state_url(flavoured_dataverse, tmp_path))
    try:
        assert crm.rules.schema.get("email") is not None
        assert "email.inreplyto: read-only" not in crm.schema_findings  # nothing built yet
    finally:
        crm.close()
    drop(tmp_path / "Maildir", message("later"))
    again = route(
        state_url(flavoured_dataverse, tmp_path),
        maildir_url(tmp_path / "Maildir", owner=SUPPORT),
        ledger=str(tmp_path / "ledger.sqlite"),
    )
    assert again.counts == {"created": 1}
    assert _metadata_reads(flavoured_dataverse) == 1
