"""One contract for every CrmBackend: the embedded SQLite store and the Dataverse Web API backend
(against the fake server, as v9.2, and as v8.2 with pages of 2 rows and batches of 7 requests).

Data is seeded and inspected through the SQLite file both backends stand on; everything under
test goes through the CrmBackend protocol.
"""

from __future__ import annotations

import uuid

import pytest
from fixtures_dataverse import CrmPair, crm_pair  # noqa: F401

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


def _insert(pair: CrmPair, table: str, **row) -> str:
    row.setdefault("createdon", NOW)
    with pair.store.transaction() as conn:
        insert_rows(conn, table, [row])
    return next(v for k, v in row.items() if k.endswith("id"))


def test_implements_the_protocol_with_default_organization(crm_pair: CrmPair) -> None:  # noqa: F811
    crm = crm_pair.crm
    assert isinstance(crm, CrmBackend)
    assert "password" not in crm.url or "password=env:" in crm.url
    org = crm.organization()
    assert org == Organization(organizationid=org.organizationid, name=org.name)


@pytest.mark.parametrize(("entity", "idcol", "namecol", "column"), PARTY_COLUMNS)
def test_every_email_column_is_case_insensitive(
    crm_pair: CrmPair,  # noqa: F811
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


def test_multiple_matches_come_in_resolution_order(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_one_record_two_columns_is_listed_once_and_inactive_ones_not(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_recipients_are_users_by_primary_address_and_queues(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_batched_lookups_beyond_one_chunk_and_one_batch(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_message_id_token_and_conversation_lookups(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_create_emails_writes_parties_attachments_and_links(crm_pair: CrmPair) -> None:  # noqa: F811
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
    assert row["correlatedactivityid"] == original.activityid
    assert (row["regardingobjectid"], row["regardingobjecttypecode"]) == (contact, "contact")
    assert (row["acceptingentityid"], row["acceptingentitytypecode"]) == (queue, "queue")
    assert row["receivingmailboxid"] == mailbox
    assert row["inreplyto"] == "<orig@x>" and row["correlationmethod"] == CORRELATION_INREPLYTO
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


def test_create_emails_is_all_or_nothing(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_create_contact_for_an_unknown_sender(crm_pair: CrmPair) -> None:  # noqa: F811
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


def test_empty_calls_cost_nothing(crm_pair: CrmPair) -> None:  # noqa: F811
    crm = crm_pair.crm
    assert crm.parties_by_address([]) == {} and crm.recipients_by_address([" "]) == {}
    assert crm.emails_by_message_id([]) == {} and crm.recipients_by_id([]) == {}
    crm.create_emails([])
    if crm_pair.server is not None:
        assert len(crm_pair.server.log) == 0
