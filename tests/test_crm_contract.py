"""One contract for every CrmBackend: the embedded SQLite store and the Dataverse Web API backend
(against the fake server, as v9.2, and as v8.2 with pages of 2 rows and batches of 7 requests).

Data is seeded and inspected through the SQLite file both backends stand on; everything under
test goes through the CrmBackend protocol.
"""

from __future__ import annotations

import uuid

import pytest
from fixtures_dataverse import CrmPair

from emailrouter_lib.crm import CrmBackend, NewAttachment, NewEmail, NewParty, Organization
from emailrouter_lib.crm.base import (
    CORRELATION_INREPLYTO,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    STATUS_RECEIVED,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash, make_conversation_index
from emailrouter_lib.crm.sqlite import PARTY_COLUMNS, insert_rows
from emailrouter_lib.errors import CrmError

NOW = "2024-01-01T00:00:00Z"


def gid() -> str:
    return str(uuid.uuid4())


def _email(**overrides) -> NewEmail:
    values = {
        "activityid": gid(),
        "subject": "Hello",
        "description": "Body",
        "messageid": f"<{uuid.uuid4()}@test.example>",
        "parties": [NewParty(PARTICIPATION_SENDER, "someone@test.example")],
    }
    values.update(overrides)
    return NewEmail(**values)


def _flavour(pair: CrmPair) -> str | None:
    """The strict fake's flavour (online, onprem, crm2016), None for the SQLite store."""
    return getattr(pair.server, "flavour", None) if pair.server is not None else None


def _insert(pair: CrmPair, table: str, **row) -> str:
    row.setdefault("createdon", NOW)
    if row["createdon"] is None:  # tables without the column
        del row["createdon"]
    with pair.store.transaction() as conn:
        insert_rows(conn, table, [row])
    return next(v for k, v in row.items() if k.endswith("id"))


def test_implements_the_protocol_with_default_organization(crm_pair: CrmPair) -> None:
    crm = crm_pair.crm
    assert isinstance(crm, CrmBackend)
    assert "password" not in crm.url or "password=env:" in crm.url
    org = crm.organization()
    assert org == Organization(organizationid=org.organizationid, name=org.name)


@pytest.mark.parametrize(("entity", "idcol", "namecol", "column"), PARTY_COLUMNS)
def test_every_email_column_is_case_insensitive(
    crm_pair: CrmPair,
    entity: str,
    idcol: str,
    namecol: str,
    column: str,
) -> None:
    stored = f"Mixed.Case+{entity}.{column}@Example.COM"
    record_id = _insert(
        crm_pair, entity, **{idcol: gid(), namecol: f"{entity} {column}", column: stored}
    )
    found = crm_pair.crm.parties_by_address([stored.swapcase(), "nobody@example.com"])
    assert list(found) == [stored.lower()]
    (party,) = found[stored.lower()]
    assert (party.entity, party.id, party.emailaddress) == (entity, record_id, stored)
    assert party.name == f"{entity} {column}"


def test_multiple_matches_come_in_resolution_order(crm_pair: CrmPair) -> None:
    shared = "shared@example.org"
    ids = {}
    for entity, idcol, namecol, column in reversed(PARTY_COLUMNS):
        if column in ("emailaddress1", "emailaddress", "internalemailaddress"):
            ids[entity] = _insert(
                crm_pair, entity, **{idcol: gid(), namecol: entity, column: shared.upper()}
            )
    parties = crm_pair.crm.parties_by_address([shared])[shared]
    assert [p.entity for p in parties] == ["systemuser", "contact", "account", "lead", "queue"]
    assert [p.id for p in parties] == [ids[p.entity] for p in parties]


def test_one_record_two_columns_is_listed_once_and_inactive_ones_not(crm_pair: CrmPair) -> None:
    twice = _insert(
        crm_pair,
        "contact",
        contactid=gid(),
        fullname="Twice",
        emailaddress1="twice@example.org",
        emailaddress3="TWICE@example.org",
    )
    _insert(
        crm_pair,
        "contact",
        contactid=gid(),
        fullname="Gone",
        emailaddress1="gone@example.org",
        statecode=1,
        statuscode=2,
    )
    found = crm_pair.crm.parties_by_address(["twice@example.org", "gone@example.org"])
    assert list(found) == ["twice@example.org"]
    assert [p.id for p in found["twice@example.org"]] == [twice]


def test_recipients_are_users_by_primary_address_and_queues(crm_pair: CrmPair) -> None:
    user = _insert(
        crm_pair,
        "systemuser",
        systemuserid=gid(),
        fullname="User One",
        internalemailaddress="One@Corp.example",
        personalemailaddress="one@home.example",
        incomingemailfilteringmethod=1,
        autocreatecontactonpromote=1,
        isdisabled=1,
    )
    queue = _insert(
        crm_pair,
        "queue",
        queueid=gid(),
        name="Help",
        emailaddress="help@corp.example",
        incomingemailfilteringmethod=0,
        emailrouteraccessapproval=1,
    )
    found = crm_pair.crm.recipients_by_address(
        ["ONE@corp.example", "one@home.example", "Help@Corp.Example"]
    )
    assert set(found) == {"one@corp.example", "help@corp.example"}
    (u,) = found["one@corp.example"]
    assert (u.entity, u.id, u.incomingemailfilteringmethod) == ("systemuser", user, 1)
    assert u.isdisabled and u.autocreatecontact and u.name == "User One"
    (q,) = found["help@corp.example"]
    assert (q.entity, q.id, q.emailrouteraccessapproval, q.isdisabled) == ("queue", queue, 1, False)

    by_id = crm_pair.crm.recipients_by_id([user.upper(), "{" + queue + "}", gid()])
    assert set(by_id) == {user.lower(), queue.lower()}
    assert by_id[user.lower()].entity == "systemuser" and by_id[queue.lower()].name == "Help"


def test_batched_lookups_beyond_one_chunk_and_one_batch(crm_pair: CrmPair) -> None:
    from emailrouter_lib.crm.demo import add_bulk_contacts

    count = 450  # more than one In(...) list of 200 values
    add_bulk_contacts(crm_pair.store, count, domain="many.example")
    asked = [f"BULK-{k}@many.example" for k in range(count)] + ["absent@many.example"]
    found = crm_pair.crm.parties_by_address(asked)
    assert len(found) == count
    assert all(len(parties) == 1 for parties in found.values())
    assert crm_pair.crm.recipients_by_address(asked) == {}

    emails = [_email() for _ in range(520)]  # 1,040 requests: more than one $batch
    crm_pair.crm.create_emails(emails)
    by_id = crm_pair.crm.emails_by_message_id([e.messageid for e in emails] + ["<absent@x>"])
    assert len(by_id) == 520
    assert by_id[emails[300].messageid].activityid == emails[300].activityid
    assert crm_pair.store.count("email") == 520 and crm_pair.store.count("activityparty") == 520


def test_message_id_token_and_conversation_lookups(crm_pair: CrmPair) -> None:
    crm = crm_pair.crm
    contact = _insert(crm_pair, "contact", contactid=gid(), fullname="C", emailaddress1="c@x.org")
    index = make_conversation_index(133_500_000_000_000_000, b"0123456789abcdef")
    common = {"trackingtoken": "CRM:0001001", "conversationindex": index}
    older = _email(messageid="<A@x>", directioncode=True, **common)
    newer = _email(
        messageid="<B@x>", regardingobjectid=contact, regardingobjecttypecode="contact", **common
    )
    crm.create_emails([older])
    crm.create_emails([newer])

    refs = crm.emails_by_message_id(["<A@x>", "<a@x>", "<C@x>"])
    assert set(refs) == {"<A@x>"}  # exact, as given
    assert refs["<A@x>"].regardingobjectid is None and refs["<A@x>"].directioncode is True
    ref = crm.emails_by_message_id(["<B@x>"])["<B@x>"]
    assert (ref.regardingobjectid, ref.regardingobjecttypecode) == (contact, "contact")
    assert ref.directioncode is False and ref.subject == "Hello"

    ref = crm.email_by_tracking_token("crm:0001001")  # case-insensitive, newest first
    assert ref is not None and ref.activityid == newer.activityid
    assert crm.email_by_tracking_token("CRM:0009999") is None
    assert crm.email_by_tracking_token("") is None

    hashed = base_conversation_index_hash(index)
    ref = crm.email_by_conversation(hashed)
    assert ref is not None and ref.activityid == newer.activityid
    assert ref.conversationindex == index
    assert crm.email_by_conversation(hashed + 1) is None

    by_activity = crm.emails_by_activity_id([older.activityid, gid()])
    assert list(by_activity) == [older.activityid]


def test_create_emails_writes_parties_attachments_and_links(crm_pair: CrmPair) -> None:
    crm, store = crm_pair.crm, crm_pair.store
    queue = _insert(crm_pair, "queue", queueid=gid(), name="Help", emailaddress="help@corp.example")
    contact = _insert(
        crm_pair, "contact", contactid=gid(), fullname="X", emailaddress1="x@y.example"
    )
    mailbox = _insert(
        crm_pair,
        "mailbox",
        mailboxid=gid(),
        name="Help",
        emailaddress="help@corp.example",
        regardingobjectid=queue,
        regardingobjecttypecode="queue",
    )
    original = _email(
        messageid="<orig@x>", regardingobjectid=contact, regardingobjecttypecode="contact"
    )
    crm.create_emails([original])
    email = _email(
        subject="RE: hello",
        inreplyto="<orig@x>",
        correlationmethod=CORRELATION_INREPLYTO,
        correlatedactivityid=original.activityid,
        regardingobjectid=contact,
        regardingobjecttypecode="contact",
        acceptingentityid=queue,
        acceptingentitytypecode="queue",
        statuscode=STATUS_RECEIVED,
        notifications=1,
        parties=[
            NewParty(PARTICIPATION_SENDER, "x@y.example", contact, "contact"),
            NewParty(PARTICIPATION_TO, "help@corp.example", queue, "queue"),
            NewParty(PARTICIPATION_TO, "stranger@z.example", unresolvedpartyname="Stranger"),
        ],
        attachments=[
            NewAttachment("a.txt", "text/plain", b"hello"),
            NewAttachment("logo.png", "image/png", b"\x89PNG\x00\xff", attachmentcontentid="logo1"),
        ],
    )
    crm.create_emails([email])
    row = store.email(email.activityid)
    assert row is not None
    assert row["directioncode"] == 0 and row["statuscode"] == STATUS_RECEIVED
    assert row["statecode"] == 1 and row["notifications"] == 1
    assert row["parentactivityid"] == original.activityid  # set for In-Reply-To correlation
    assert (row["regardingobjectid"], row["regardingobjecttypecode"]) == (contact, "contact")
    flavour = _flavour(crm_pair)
    if flavour in (None, "online"):  # CRM 2016 / on-premises have none of these three
        assert row["correlatedactivityid"] == original.activityid
        assert (row["acceptingentityid"], row["acceptingentitytypecode"]) == (queue, "queue")
        assert row["receivingmailboxid"] == mailbox
    else:
        assert not row.get("correlatedactivityid") and not row.get("receivingmailboxid")
    if flavour is None:  # Dataverse: read-only (not valid for create, email.md), not stored
        assert row["inreplyto"] == "<orig@x>" and row["correlationmethod"] == CORRELATION_INREPLYTO
    else:
        assert not row.get("inreplyto") and not row.get("correlationmethod")
    parties = store.email_parties(email.activityid)
    assert [(p["participationtypemask"], p["partyid"], p["addressused"]) for p in parties] == [
        (1, contact, "x@y.example"),
        (2, queue, "help@corp.example"),
        (2, None, "stranger@z.example"),
    ]
    assert [p["partyobjecttypecode"] for p in parties] == ["contact", "queue", None]
    files = store.email_attachments(email.activityid)
    assert [(f["filename"], f["body"], f["filesize"], f["attachmentnumber"]) for f in files] == [
        ("a.txt", b"hello", 5, 0),
        ("logo.png", b"\x89PNG\x00\xff", 6, 1),
    ]
    assert files[1]["attachmentcontentid"] == "logo1" and files[1]["objecttypecode"] == "email"
    read_back = crm.attachments_by_activity([email.activityid, original.activityid])
    assert [a.body for a in read_back[email.activityid]] == [b"hello", b"\x89PNG\x00\xff"]
    assert original.activityid not in read_back


def test_create_emails_is_all_or_nothing(crm_pair: CrmPair) -> None:
    crm, store = crm_pair.crm, crm_pair.store
    existing = _email()
    crm.create_emails([existing])
    tables = ("email", "activityparty", "activitymimeattachment")
    before = {table: store.count(table) for table in tables}

    good = _email(attachments=[NewAttachment("a.txt", "text/plain", b"x")])
    clash = _email(activityid=existing.activityid)  # fails in the email insert
    with pytest.raises(CrmError, match=r"nothing .*was written"):
        crm.create_emails([good, clash])

    broken_party = _email(parties=[NewParty(None, "x@y.example")])  # type: ignore[arg-type]
    with pytest.raises(CrmError):  # fails after the first email was inserted
        crm.create_emails([_email(), broken_party])

    assert {table: store.count(table) for table in tables} == before
    assert store.email(good.activityid) is None
    crm.create_emails([good])  # the same batch minus the bad one goes through afterwards
    assert store.email(good.activityid) is not None


def test_create_contact_for_an_unknown_sender(crm_pair: CrmPair) -> None:
    crm = crm_pair.crm
    party = crm.create_contact("New.Person@Else.example", "New Person")
    assert (party.entity, party.name, party.emailaddress) == (
        "contact",
        "New Person",
        "New.Person@Else.example",
    )
    assert crm.parties_by_address(["new.person@else.example"])["new.person@else.example"] == [party]
    assert crm.create_contact("jo@else.example", None).name == "jo"
    (row,) = crm_pair.store.rows("contact", contactid=party.id)
    assert (row["firstname"], row["lastname"]) == ("New", "Person")


def test_empty_calls_cost_nothing(crm_pair: CrmPair) -> None:
    crm = crm_pair.crm
    assert crm.parties_by_address([]) == {} and crm.recipients_by_address([" "]) == {}
    assert crm.emails_by_message_id([]) == {} and crm.recipients_by_id([]) == {}
    crm.create_emails([])
    if crm_pair.server is not None:
        assert len(crm_pair.server.log) == 0


# -- outgoing, tracking numbers, smart matching (reference/email-router.md §4, §6) -------------


def _outgoing_world(pair: CrmPair) -> dict[str, str]:
    """A router user with a pending email to a contact (To) and an unresolved Cc, a queue's
    pending email (owner fallback: no Sender party), and a received email that must not show."""
    from emailrouter_lib.crm.base import PARTICIPATION_CC, STATUS_PENDING_SEND

    ids = {name: gid() for name in ("user", "queue", "contact", "mine", "queued", "received")}
    _insert(
        pair,
        "systemuser",
        systemuserid=ids["user"],
        fullname="Ann Sender",
        internalemailaddress="ann@contoso.example",
        outgoingemaildeliverymethod=2,
        emailrouteraccessapproval=1,
        trackingusernumber=1,
    )
    _insert(
        pair,
        "queue",
        queueid=ids["queue"],
        name="Support",
        emailaddress="support@contoso.example",
        outgoingemaildeliverymethod=2,
        emailrouteraccessapproval=1,
        ownerid=ids["user"],
    )
    _insert(
        pair,
        "contact",
        contactid=ids["contact"],
        fullname="Carl Contact",
        emailaddress1="carl@fabrikam.example",
    )
    rows = [
        (ids["mine"], "systemuser", ids["user"], STATUS_PENDING_SEND, 1, "2024-01-02T00:00:00Z"),
        (ids["queued"], "systemuser", ids["user"], STATUS_PENDING_SEND, 1, "2024-01-01T00:00:00Z"),
        (ids["received"], "systemuser", ids["user"], STATUS_RECEIVED, 0, "2024-01-01T00:00:00Z"),
    ]
    for activityid, owner_type, owner, status, direction, modified in rows:
        _insert(
            pair,
            "email",
            activityid=activityid,
            subject=f"S {activityid[:4]}",
            description="<p>Hi</p>",
            directioncode=direction,
            statecode=1,
            statuscode=status,
            ownerid=owner,
            owneridtype=owner_type,
            deliveryattempts=2,
            modifiedon=modified,
            trackingtoken=None,
        )
    parties = [
        (ids["mine"], PARTICIPATION_SENDER, ids["user"], "systemuser", "ann@contoso.example", None),
        (ids["mine"], PARTICIPATION_TO, ids["contact"], "contact", "carl@fabrikam.example", None),
        (ids["mine"], PARTICIPATION_CC, None, None, "x@else.example", "X Person"),
        (
            ids["queued"],
            PARTICIPATION_SENDER,
            ids["queue"],
            "queue",
            "support@contoso.example",
            None,
        ),
        (ids["queued"], PARTICIPATION_TO, ids["contact"], "contact", "carl@fabrikam.example", None),
    ]
    for activityid, mask, party, kind, address, name in parties:
        _insert(
            pair,
            "activityparty",
            activitypartyid=gid(),
            activityid=activityid,
            participationtypemask=mask,
            partyid=party,
            partyobjecttypecode=kind,
            addressused=address,
            unresolvedpartyname=name,
            createdon=None,
        )
    return ids


def _last_error(pair: CrmPair, activityid: str) -> str | None:
    if pair.server is None:
        return pair.store.email(activityid)["emailrouter_lasterror"]
    return pair.crm.last_delivery_error(activityid)


def test_outgoing_emails_come_oldest_first_with_sender_and_parties(crm_pair: CrmPair) -> None:
    from emailrouter_lib.crm.base import STATUS_PENDING_SEND

    ids = _outgoing_world(crm_pair)
    found = crm_pair.crm.outgoing_emails([STATUS_PENDING_SEND], limit=10)
    assert [e.activityid for e in found] == [ids["queued"], ids["mine"]]
    queued, mine = found
    assert (queued.sender.entity, queued.sender.id, queued.sender.name) == (
        "queue",
        ids["queue"],
        "Support",
    )
    assert queued.sender.emailaddress == "support@contoso.example"
    assert queued.sender.trackingusernumber is None and not queued.sender.isdisabled
    assert (mine.sender.entity, mine.sender.id, mine.sender.trackingusernumber) == (
        "systemuser",
        ids["user"],
        1,
    )
    assert mine.sender.outgoingemaildeliverymethod == 2 and mine.deliveryattempts == 2
    assert (mine.subject, mine.description, mine.statuscode, mine.ownerid) == (
        f"S {ids['mine'][:4]}",
        "<p>Hi</p>",
        STATUS_PENDING_SEND,
        ids["user"],
    )
    assert [(p.participationtypemask, p.addressused, p.name, p.partyid) for p in mine.parties] == [
        (PARTICIPATION_TO, "carl@fabrikam.example", "Carl Contact", ids["contact"]),
        # activityparty.unresolvedpartyname is an online addition: on-premises has no name
        (3, "x@else.example", "X Person" if _flavour(crm_pair) in (None, "online") else None, None),
    ]
    assert mine.attemptid is None
    assert [e.activityid for e in crm_pair.crm.outgoing_emails([6], limit=1)] == [ids["queued"]]
    assert crm_pair.crm.outgoing_emails([], limit=5) == []


def test_status_changes_are_compare_and_set(crm_pair: CrmPair) -> None:
    from emailrouter_lib.crm.base import (
        STATE_COMPLETED,
        STATE_OPEN,
        STATUS_FAILED,
        STATUS_PENDING_SEND,
        STATUS_SENDING,
        STATUS_SENT,
        EmailStatusChange,
    )

    crm, ids = crm_pair.crm, _outgoing_world(crm_pair)
    mine, queued = ids["mine"], ids["queued"]

    def claim(activityid: str, attempt: str) -> EmailStatusChange:
        return EmailStatusChange(
            activityid,
            STATUS_PENDING_SEND,
            STATUS_SENDING,
            STATE_COMPLETED,
            attemptid=attempt,
            subject="Tagged [CRM:0001001]",
            trackingtoken="CRM:0001001",
        )

    assert crm.update_email_status([claim(mine, "A"), claim(queued, "B")]) == {mine, queued}
    assert crm.update_email_status([claim(mine, "C")]) == set()  # no longer Pending Send
    sending = {e.activityid: e for e in crm.outgoing_emails([STATUS_SENDING], limit=10)}
    assert (sending[mine].attemptid, sending[queued].attemptid) == ("A", "B")
    assert sending[mine].subject == "Tagged [CRM:0001001]"
    assert sending[mine].trackingtoken == "CRM:0001001"

    def sent(activityid: str, attempt: str) -> EmailStatusChange:
        return EmailStatusChange(
            activityid,
            STATUS_SENDING,
            STATUS_SENT,
            STATE_COMPLETED,
            expected_attemptid=attempt,
            messageid=f"<{attempt}@x>",
            senton="2024-01-03T00:00:00Z",
            error="",
        )

    assert crm.update_email_status([sent(mine, "wrong")]) == set()  # another attempt holds it
    # A user cancels the queue's email meanwhile: the router's change is skipped, not forced.
    with crm_pair.store.transaction() as conn:
        conn.execute("UPDATE email SET statuscode = 5 WHERE activityid = ?", (queued,))
    assert crm.update_email_status([sent(mine, "A"), sent(queued, "B")]) == {mine}
    row = crm_pair.store.email(mine)
    assert (row["statuscode"], row["statecode"], row["messageid"]) == (3, 1, "<A@x>")
    assert crm_pair.store.email(queued)["statuscode"] == 5
    assert crm.outgoing_emails([STATUS_SENDING], limit=10) == []

    # A failure keeps its error text; the next success clears it.
    with crm_pair.store.transaction() as conn:
        conn.execute("UPDATE email SET statuscode = 6 WHERE activityid = ?", (queued,))
    assert crm.update_email_status([claim(queued, "D")]) == {queued}
    failed = EmailStatusChange(
        queued,
        STATUS_SENDING,
        STATUS_FAILED,
        STATE_OPEN,
        expected_attemptid="D",
        deliveryattempts=3,
        error="554 rejected",
    )
    assert crm.update_email_status([failed]) == {queued}
    row = crm_pair.store.email(queued)
    assert (row["statuscode"], row["statecode"], row["deliveryattempts"]) == (8, 0, 3)
    assert _last_error(crm_pair, queued) == "554 rejected"
    # Without an expected attempt (an email stuck in Sending elsewhere) only the status counts.
    assert crm.update_email_status([]) == set()


def test_tracking_numbers_continue_after_stored_tokens_and_wrap(crm_pair: CrmPair) -> None:
    crm, ids = crm_pair.crm, _outgoing_world(crm_pair)
    with crm_pair.store.transaction() as conn:
        conn.execute("UPDATE organization SET maximumtrackingnumber = 9")
        conn.execute(
            "UPDATE email SET trackingtoken = 'CRM:0017' WHERE activityid = ?", (ids["mine"],)
        )
    other = gid()
    _insert(crm_pair, "systemuser", systemuserid=other, fullname="New User", trackingusernumber=2)
    numbers = crm.allocate_tracking_numbers({ids["user"]: 4, other: 2, gid(): 0})
    assert numbers == {ids["user"]: [8, 9, 0, 1], other: [1, 2]}
    assert crm.allocate_tracking_numbers({ids["user"]: 1}) == {ids["user"]: [2]}
    assert crm.allocate_tracking_numbers({}) == {}


def test_smart_matching_hashes_newest_first(crm_pair: CrmPair) -> None:
    from emailrouter_lib.crm.base import EmailHashes

    crm = crm_pair.crm
    emails = [_email(subject=f"Quote {n}") for n in range(3)]
    crm.create_emails(emails)
    first, second, third = (e.activityid for e in emails)
    crm.store_email_hashes({first: EmailHashes((1, 2), (10, 11))})
    crm.store_email_hashes({second: EmailHashes((3,), (11, 12)), third: EmailHashes((4,), (99,))})
    found = crm.email_hash_candidates([11, 12, 13])
    assert list(found) == [second, first]
    assert found[first] == EmailHashes((1, 2), (10, 11))
    assert list(crm.email_hash_candidates([11], limit=1)) == [second]
    crm.store_email_hashes({first: EmailHashes((5,), (50,))})  # replaced, not added
    assert crm.email_hash_candidates([10, 11]) == {second: EmailHashes((3,), (11, 12))}
    assert crm.email_hash_candidates([]) == {}
    assert crm.emails_by_activity_id([second])[second].subject == "Quote 1"


# -- mailbox settings (MailboxSettingsStore: migration to server-side synchronization) ---------


def test_profiles_are_created_updated_and_unchanged_by_name(crm_pair: CrmPair) -> None:
    store = crm_pair.crm
    values = {
        "name": "Exchange Online",
        "servertype": 0,
        "incomingusessl": True,
        "incomingserverlocation": "https://outlook.office365.com/EWS/Exchange.asmx",
    }
    created = store.save_email_server_profile(values)
    assert created.action == "created" and created.changed
    assert store.save_email_server_profile(values).action == "unchanged"
    updated = store.save_email_server_profile(
        {**values, "incomingusessl": False, "outgoingportnumber": 587}
    )
    assert (updated.id, updated.action) == (created.id, "updated")
    assert updated.before.keys() == {"incomingusessl", "outgoingportnumber"}
    assert bool(updated.before["incomingusessl"]) and updated.before["outgoingportnumber"] is None
    (row,) = [p for p in store.email_server_profiles() if p["emailserverprofileid"] == created.id]
    assert (bool(row["incomingusessl"]), row["outgoingportnumber"]) == (False, 587)
    renamed = store.save_email_server_profile({"name": "exchange ONLINE"})  # found in any case
    assert (renamed.id, renamed.before) == (created.id, {"name": "Exchange Online"})
    store.delete_email_server_profile(created.id)
    store.delete_email_server_profile(created.id)  # gone already: no error
    assert store.email_server_profiles() == []


def test_mailboxes_by_owner_and_forward_address_and_the_channel(crm_pair: CrmPair) -> None:
    store = crm_pair.crm
    user = _insert(
        crm_pair,
        "systemuser",
        systemuserid=gid(),
        fullname="Mia",
        internalemailaddress="mia@contoso.example",
    )
    profile = store.save_email_server_profile({"name": "SSS"}).id
    owned = {
        "regardingobjectid": user,
        "regardingobjecttypecode": "systemuser",
        "name": "Mia",
        "emailaddress": "mia@contoso.example",
        "incomingemaildeliverymethod": 2,
        "emailserverprofile": profile,
        "enabledforincomingemail": True,
    }
    if crm_pair.server is not None:
        # Dataverse creates every user's and queue's mailbox itself and links it through
        # systemuser.defaultmailbox; mailbox.regardingobjectid is read-only (mailbox.md), so the
        # Web API backend finds that mailbox and updates it, never creates one.
        platform = _insert(
            crm_pair,
            "mailbox",
            mailboxid=gid(),
            name="Mia",
            regardingobjectid=user,
            regardingobjecttypecode="systemuser",
        )
        with crm_pair.store.transaction() as conn:
            conn.execute(
                "UPDATE systemuser SET defaultmailbox = ? WHERE systemuserid = ?", (platform, user)
            )
    made = store.save_mailbox(owned)
    assert made.action == ("created" if crm_pair.server is None else "updated")
    assert store.save_mailbox(owned).action == "unchanged"
    moved = store.save_mailbox(
        {"regardingobjectid": user, "emailserverprofile": None, "incomingemaildeliverymethod": 3}
    )
    assert (moved.id, moved.action) == (made.id, "updated")
    assert moved.before == {"emailserverprofile": profile, "incomingemaildeliverymethod": 2}
    back = store.save_mailbox({"regardingobjectid": user, **moved.before})  # a rollback
    assert back.action == "updated"
    (row,) = [m for m in store.mailboxes() if m["mailboxid"] == made.id]
    assert (row["regardingobjectid"], row["regardingobjecttypecode"]) == (user, "systemuser")
    assert (row["emailserverprofile"], row["incomingemaildeliverymethod"]) == (profile, 2)
    forward = {
        "emailaddress": "fwd@contoso.example",
        "name": "Forward",
        "isforwardmailbox": True,
        "regardingobjectid": None,
    }
    fwd = store.save_mailbox(forward)
    assert fwd.action == "created" and store.save_mailbox(forward).action == "unchanged"
    store.delete_mailbox(fwd.id)
    store.delete_mailbox(fwd.id)
    assert [m["mailboxid"] for m in store.mailboxes()] == [made.id]

    switched = store.set_email_connection_channel(0)
    assert (switched.action, switched.before) == ("updated", {"emailconnectionchannel": 1})
    assert store.set_email_connection_channel(0).action == "unchanged"
    assert crm_pair.crm.organization().emailconnectionchannel == 0
    assert store.set_email_connection_channel(1).before == {"emailconnectionchannel": 0}


def test_update_recipient_writes_only_delivery_methods_that_differ(crm_pair: CrmPair) -> None:
    store = crm_pair.crm
    queue = _insert(crm_pair, "queue", queueid=gid(), name="Q", incomingemaildeliverymethod=0)
    methods = {"incomingemaildeliverymethod": 2, "outgoingemaildeliverymethod": 2}
    changed = store.update_recipient("queue", queue, methods)
    assert (changed.id, changed.action, changed.before) == (
        queue,
        "updated",
        {"incomingemaildeliverymethod": 0},
    )
    assert store.update_recipient("queue", queue, methods).action == "unchanged"
    assert crm_pair.store.rows("queue", queueid=queue)[0]["incomingemaildeliverymethod"] == 2
    with pytest.raises(CrmError, match="writes only"):
        store.update_recipient("queue", queue, {"name": "other"})
    with pytest.raises(CrmError, match="no systemuser"):
        store.update_recipient("systemuser", gid(), methods)
    with store.atomic() as all_or_nothing:
        assert all_or_nothing is (crm_pair.server is None)  # the Web API has no transaction
