"""The embedded SQLite CRM: schema, URLs, lookups and the all-or-nothing email writes."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from emailrouter_lib.crm import (
    CrmBackend,
    NewAttachment,
    NewEmail,
    NewParty,
    Organization,
    SqliteCrm,
    init_crm,
    open_crm,
)
from emailrouter_lib.crm.base import (
    CORRELATION_INREPLYTO,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    STATUS_RECEIVED,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash, make_conversation_index
from emailrouter_lib.crm.sqlite import CHUNK, PARTY_COLUMNS, TABLES, insert_rows
from emailrouter_lib.errors import CrmError, CrmURLError

NOW = "2024-01-01T00:00:00Z"


@pytest.fixture
def empty_crm(tmp_path: Path):
    """A new CRM with an organisation and nothing else."""
    url = init_crm(f"sqlite:///{tmp_path / 'empty.db'}")
    crm = open_crm(url)
    yield crm
    crm.close()


def _email(**overrides) -> NewEmail:
    values = {
        "activityid": str(uuid.uuid4()),
        "subject": "Hello",
        "description": "Body",
        "messageid": f"<{uuid.uuid4()}@test.example>",
        "parties": [NewParty(PARTICIPATION_SENDER, "someone@test.example")],
    }
    values.update(overrides)
    return NewEmail(**values)


# -- schema ---------------------------------------------------------------------------------------

EXPECTED_COLUMNS = {
    "organization": {
        "organizationid", "name", "trackingprefix", "trackingtokenidbase",
        "trackingtokeniddigits", "maximumtrackingnumber", "nexttrackingnumber",
        "emailcorrelationenabled", "enablesmartmatching", "hashfilterkeywords", "hashmaxcount",
        "hashdeltasubjectcount", "hashminaddresscount", "ignoreinternalemail",
        "unresolveemailaddressifmultiplematch", "requireapprovalforuseremail",
        "requireapprovalforqueueemail", "maxuploadfilesize", "emailconnectionchannel",
    },
    "systemuser": {
        "systemuserid", "fullname", "internalemailaddress", "personalemailaddress", "isdisabled",
        "emailrouteraccessapproval", "incomingemaildeliverymethod", "outgoingemaildeliverymethod",
        "defaultmailbox", "incomingemailfilteringmethod", "autocreatecontactonpromote",
        "trackingusernumber",
    },
    "queue": {
        "queueid", "name", "emailaddress", "emailrouteraccessapproval",
        "incomingemaildeliverymethod", "outgoingemaildeliverymethod",
        "incomingemailfilteringmethod", "defaultmailbox",
    },
    "contact": {"contactid", "fullname", "emailaddress1", "emailaddress2", "emailaddress3"},
    "account": {"accountid", "name", "emailaddress1", "emailaddress2", "emailaddress3"},
    "lead": {"leadid", "fullname", "emailaddress1", "emailaddress2", "emailaddress3"},
    "email": {
        "activityid", "subject", "description", "messageid", "inreplyto", "conversationindex",
        "baseconversationindexhash", "trackingtoken", "directioncode", "statecode", "statuscode",
        "correlationmethod", "correlatedactivityid", "parentactivityid", "regardingobjectid",
        "regardingobjecttypecode", "sender", "torecipients", "senton", "createdon",
        "deliveryattempts", "acceptingentityid", "acceptingentitytypecode", "receivingmailboxid",
        "mimetype", "notifications", "ownerid",
    },
    "activityparty": {
        "activitypartyid", "activityid", "participationtypemask", "partyid",
        "partyobjecttypecode", "addressused", "unresolvedpartyname",
    },
    "activitymimeattachment": {
        "activitymimeattachmentid", "objectid", "objecttypecode", "filename", "mimetype", "body",
        "filesize", "attachmentcontentid", "attachmentnumber",
    },
    "mailbox": {
        "mailboxid", "name", "emailaddress", "emailserverprofile", "incomingemaildeliverymethod",
        "outgoingemaildeliverymethod", "emailrouteraccessapproval", "incomingemailstatus",
        "outgoingemailstatus", "isforwardmailbox", "regardingobjectid", "regardingobjecttypecode",
        "enabledforincomingemail", "enabledforoutgoingemail",
    },
    "emailserverprofile": {
        "emailserverprofileid", "name", "servertype", "incomingserverlocation",
        "outgoingserverlocation", "incomingportnumber", "outgoingportnumber", "incomingusessl",
        "outgoingusessl", "incomingcredentialretrieval", "outgoingcredentialretrieval",
        "incomingauthenticationprotocol", "outgoingauthenticationprotocol", "useautodiscover",
    },
    "schema_version": {"version"},
}  # fmt: skip


def test_schema_uses_dataverse_logical_names(empty_crm: SqliteCrm) -> None:
    conn = sqlite3.connect(empty_crm.path)
    try:
        for table, expected in EXPECTED_COLUMNS.items():
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            assert expected <= columns, (table, expected - columns)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert set(TABLES) <= set(EXPECTED_COLUMNS)


def test_no_password_columns(empty_crm: SqliteCrm) -> None:
    conn = sqlite3.connect(empty_crm.path)
    try:
        for table in TABLES:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            assert not {c for c in columns if "password" in c}, table
    finally:
        conn.close()


def test_schema_defaults_agree_with_the_organization_dataclass(empty_crm: SqliteCrm) -> None:
    org = empty_crm.organization()
    defaults = Organization(organizationid=org.organizationid, name=org.name)
    assert org == defaults


def test_sqlite_crm_implements_the_protocol(empty_crm: SqliteCrm) -> None:
    assert isinstance(empty_crm, CrmBackend)
    assert empty_crm.url.startswith("sqlite:///")
    assert empty_crm.organization().trackingprefix == "CRM"


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT contactid FROM contact WHERE emailaddress2 IN (?, ?)", "contact_emailaddress2"),
        ("SELECT leadid FROM lead WHERE emailaddress3 IN (?, ?)", "lead_emailaddress3"),
        ("SELECT queueid FROM queue WHERE emailaddress IN (?, ?)", "queue_emailaddress"),
        ("SELECT activityid FROM email WHERE messageid IN (?, ?)", "email_messageid"),
        ("SELECT activityid FROM email WHERE trackingtoken = ?", "email_trackingtoken"),
        (
            "SELECT activityid FROM email WHERE baseconversationindexhash = ?",
            "email_baseconversationindexhash",
        ),
    ],
)
def test_lookups_use_indexes(empty_crm: SqliteCrm, sql: str, index: str) -> None:
    """Lookups stay logarithmic as the CRM grows: SQLite searches an index, never scans."""
    conn = sqlite3.connect(empty_crm.path)
    try:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (1, 2)[: sql.count("?")])
        )
    finally:
        conn.close()
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan


# -- URLs, init, open ---------------------------------------------------------------------------


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    init_crm(url, demo=True)
    with pytest.raises(CrmError, match="already holds a database") as caught:
        init_crm(url)
    assert str(tmp_path / "crm.db") in str(caught.value)
    assert "--force" in str(caught.value)
    with open_crm(url) as crm:  # untouched
        assert crm.organization().name == "Contoso"
    init_crm(url, force=True)
    with open_crm(url) as crm:
        assert crm.organization().name != "Contoso"
        assert crm.count("contact") == 0


def test_init_accepts_an_empty_file_and_makes_folders(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    init_crm(f"sqlite:///{tmp_path / 'empty.db'}")
    nested = tmp_path / "a" / "b" / "crm.db"
    printable = init_crm(f"sqlite:///{nested}")
    assert printable == f"sqlite:///{nested.as_posix()}"
    assert nested.is_file()
    assert not list(nested.parent.glob(".crm.db.init-*"))  # the build file was renamed away


def test_relative_url_is_relative_to_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    printable = init_crm("sqlite:///data/crm.db")
    assert (tmp_path / "data" / "crm.db").is_file()
    assert printable == f"sqlite:///{(tmp_path / 'data' / 'crm.db').as_posix()}"
    with open_crm("sqlite:///data/crm.db") as crm:
        assert crm.path == (tmp_path / "data" / "crm.db").resolve()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost/crm",
        "crm.db",
        "sqlite://host/crm.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///crm.db?mode=ro",
        "",
    ],
)
def test_open_crm_rejects_bad_urls_naming_them(url: str) -> None:
    with pytest.raises(CrmURLError) as caught:
        open_crm(url)
    message = str(caught.value)
    assert repr(url) in message
    assert "sqlite:///relative/path.db" in message and "sqlite:////absolute" in message


def test_open_missing_database_says_how_to_create_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    with pytest.raises(CrmError) as caught:
        open_crm(url)
    assert not isinstance(caught.value, CrmURLError)
    assert "emailrouter crm init sqlite:///" in str(caught.value)
    assert "check the path" in str(caught.value) and "--demo" not in str(caught.value)
    assert str(tmp_path / "nothing.db") in str(caught.value)


def test_open_rejects_files_that_are_not_our_crm(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CrmError, match=r"garbage\.db"):
        open_crm(f"sqlite:///{garbage}")
    stranger = tmp_path / "stranger.db"
    conn = sqlite3.connect(stranger)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(CrmError, match="not an emailrouter CRM"):
        open_crm(f"sqlite:///{stranger}")
    conn = sqlite3.connect(stranger)
    try:  # left as it was: not switched to WAL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()


def test_closed_crm_raises_crm_error(empty_crm: SqliteCrm) -> None:
    empty_crm.close()
    with pytest.raises(CrmError, match="closed"):
        empty_crm.organization()


# -- address lookups ------------------------------------------------------------------------------


def _insert_party(
    crm: SqliteCrm, entity: str, idcol: str, namecol: str, column: str, address: str
) -> str:
    record_id = str(uuid.uuid4())
    row = {idcol: record_id, namecol: f"{entity} {column}", column: address, "createdon": NOW}
    with crm.transaction() as conn:
        insert_rows(conn, entity, [row])
    return record_id


@pytest.mark.parametrize(("entity", "idcol", "namecol", "column"), PARTY_COLUMNS)
def test_every_email_column_is_case_insensitive(
    empty_crm: SqliteCrm, entity: str, idcol: str, namecol: str, column: str
) -> None:
    stored = f"Mixed.Case+{entity}.{column}@Example.COM"
    record_id = _insert_party(empty_crm, entity, idcol, namecol, column, stored)
    asked = stored.swapcase()
    found = empty_crm.parties_by_address([asked, "nobody@example.com"])
    assert list(found) == [stored.lower()]
    (party,) = found[stored.lower()]
    assert (party.entity, party.id, party.emailaddress) == (entity, record_id, stored)
    assert party.name == f"{entity} {column}"


def test_multiple_matches_come_in_resolution_order(empty_crm: SqliteCrm) -> None:
    shared = "shared@example.org"
    ids = {}
    # Insert in reverse order, so the answer's order cannot come from insertion order.
    for entity, idcol, namecol, column in reversed(PARTY_COLUMNS):
        if column in ("emailaddress1", "emailaddress", "internalemailaddress"):
            ids[entity] = _insert_party(empty_crm, entity, idcol, namecol, column, shared.upper())
    parties = empty_crm.parties_by_address([shared])[shared]
    assert [p.entity for p in parties] == ["systemuser", "contact", "account", "lead", "queue"]
    assert [p.id for p in parties] == [ids[p.entity] for p in parties]


def test_one_record_two_columns_is_listed_once(empty_crm: SqliteCrm) -> None:
    with empty_crm.transaction() as conn:
        insert_rows(
            conn,
            "contact",
            [
                {
                    "contactid": "c1",
                    "fullname": "Twice",
                    "emailaddress1": "twice@example.org",
                    "emailaddress3": "TWICE@example.org",
                    "createdon": NOW,
                }
            ],
        )
    assert [
        p.id for p in empty_crm.parties_by_address(["twice@example.org"])["twice@example.org"]
    ] == ["c1"]


def test_inactive_records_do_not_resolve(empty_crm: SqliteCrm) -> None:
    with empty_crm.transaction() as conn:
        insert_rows(
            conn,
            "contact",
            [
                {
                    "contactid": "gone",
                    "fullname": "Gone",
                    "emailaddress1": "gone@example.org",
                    "statecode": 1,
                    "statuscode": 2,
                    "createdon": NOW,
                }
            ],
        )
    assert empty_crm.parties_by_address(["gone@example.org"]) == {}


def test_recipients_are_users_by_primary_address_and_queues(empty_crm: SqliteCrm) -> None:
    with empty_crm.transaction() as conn:
        insert_rows(
            conn,
            "systemuser",
            [
                {
                    "systemuserid": "u1",
                    "fullname": "User One",
                    "internalemailaddress": "One@Corp.example",
                    "personalemailaddress": "one@home.example",
                    "incomingemailfilteringmethod": 1,
                    "autocreatecontactonpromote": 1,
                    "isdisabled": 1,
                    "createdon": NOW,
                }
            ],
        )
        insert_rows(
            conn,
            "queue",
            [
                {
                    "queueid": "q1",
                    "name": "Help",
                    "emailaddress": "help@corp.example",
                    "incomingemailfilteringmethod": 0,
                    "emailrouteraccessapproval": 1,
                    "createdon": NOW,
                }
            ],
        )
    found = empty_crm.recipients_by_address(
        ["ONE@corp.example", "one@home.example", "Help@Corp.Example"]
    )
    assert set(found) == {"one@corp.example", "help@corp.example"}
    (user,) = found["one@corp.example"]
    assert (user.entity, user.id, user.incomingemailfilteringmethod) == ("systemuser", "u1", 1)
    assert user.isdisabled and user.autocreatecontact
    (queue,) = found["help@corp.example"]
    assert (queue.entity, queue.id, queue.emailrouteraccessapproval) == ("queue", "q1", 1)
    assert [r.id for r in empty_crm.recipients()] == ["q1", "u1"]


def test_batched_lookups_beyond_the_variable_limit(empty_crm: SqliteCrm) -> None:
    from emailrouter_lib.crm.demo import add_bulk_contacts

    count = 2 * CHUNK + 1_500  # > 999 and not a multiple of the chunk
    add_bulk_contacts(empty_crm, count, domain="many.example")
    asked = [f"BULK-{k}@many.example" for k in range(count)] + ["absent@many.example"]
    found = empty_crm.parties_by_address(asked)
    assert len(found) == count
    assert all(len(parties) == 1 for parties in found.values())

    # An old SQLite allows 999 host parameters per statement: the chunks shrink to fit.
    with empty_crm.transaction() as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    assert len(empty_crm.parties_by_address(asked)) == count
    assert len(empty_crm.recipients_by_address(asked)) == 0

    emails = [_email() for _ in range(1_200)]
    empty_crm.create_emails(emails)
    by_id = empty_crm.emails_by_message_id([e.messageid for e in emails] + ["<absent@x>"])
    assert len(by_id) == 1_200
    assert by_id[emails[700].messageid].activityid == emails[700].activityid


# -- email lookups ------------------------------------------------------------------------------


def test_message_id_token_and_conversation_lookups(empty_crm: SqliteCrm) -> None:
    index = make_conversation_index(133_500_000_000_000_000, b"0123456789abcdef")
    common = {"trackingtoken": "CRM:0001001", "conversationindex": index}
    older = _email(messageid="<A@x>", regardingobjectid="r-old", directioncode=True, **common)
    newer = _email(messageid="<B@x>", regardingobjectid="r-new", **common)
    empty_crm.create_emails([older])
    empty_crm.create_emails([newer])

    refs = empty_crm.emails_by_message_id(["<A@x>", "<a@x>", "<C@x>"])
    assert set(refs) == {"<A@x>"}  # exact, as given
    assert refs["<A@x>"].regardingobjectid == "r-old" and refs["<A@x>"].directioncode is True

    ref = empty_crm.email_by_tracking_token("crm:0001001")  # case-insensitive, newest first
    assert ref is not None and ref.activityid == newer.activityid
    assert empty_crm.email_by_tracking_token("CRM:0009999") is None

    hashed = base_conversation_index_hash(index)
    assert hashed is not None
    ref = empty_crm.email_by_conversation(hashed)  # the column was filled from the index
    assert ref is not None and ref.activityid == newer.activityid
    assert ref.conversationindex == index
    assert empty_crm.email_by_conversation(hashed + 1) is None


def test_conversation_hash_matches_tracking() -> None:
    threadindex = pytest.importorskip("emailrouter_lib.tracking.threadindex")
    for replies in (0, 1, 3):
        value = make_conversation_index(133_400_000_000_000_000, bytes(range(16)), replies)
        assert base_conversation_index_hash(value) == threadindex.conversation_hash(value)
    assert base_conversation_index_hash("not base64!") is None
    assert base_conversation_index_hash("AAAA") is None  # too short


def test_create_emails_writes_parties_attachments_and_links(empty_crm: SqliteCrm) -> None:
    with empty_crm.transaction() as conn:
        insert_rows(
            conn,
            "mailbox",
            [
                {
                    "mailboxid": "mb1",
                    "name": "Help",
                    "emailaddress": "help@corp.example",
                    "regardingobjectid": "q1",
                    "regardingobjecttypecode": "queue",
                    "createdon": NOW,
                }
            ],
        )
    email = _email(
        subject="RE: hello",
        inreplyto="<orig@x>",
        correlationmethod=CORRELATION_INREPLYTO,
        correlatedactivityid="orig-id",
        acceptingentityid="q1",
        acceptingentitytypecode="queue",
        statuscode=STATUS_RECEIVED,
        notifications=1,
        parties=[
            NewParty(PARTICIPATION_SENDER, "x@y.example", "c1", "contact"),
            NewParty(PARTICIPATION_TO, "help@corp.example", "q1", "queue"),
            NewParty(PARTICIPATION_TO, "stranger@z.example", unresolvedpartyname="Stranger"),
        ],
        attachments=[
            NewAttachment("a.txt", "text/plain", b"hello"),
            NewAttachment("logo.png", "image/png", b"\x89PNG\x00\xff", attachmentcontentid="logo1"),
        ],
    )
    empty_crm.create_emails([email])
    row = empty_crm.email(email.activityid)
    assert row is not None
    assert row["directioncode"] == 0 and row["statuscode"] == STATUS_RECEIVED
    assert row["parentactivityid"] == "orig-id"  # set for In-Reply-To correlation
    assert row["receivingmailboxid"] == "mb1"
    assert row["ownerid"] == "q1" and row["notifications"] == 1
    parties = empty_crm.email_parties(email.activityid)
    assert [(p["participationtypemask"], p["partyid"], p["addressused"]) for p in parties] == [
        (1, "c1", "x@y.example"),
        (2, "q1", "help@corp.example"),
        (2, None, "stranger@z.example"),
    ]
    files = empty_crm.email_attachments(email.activityid)
    assert [(f["filename"], f["body"], f["filesize"], f["attachmentnumber"]) for f in files] == [
        ("a.txt", b"hello", 5, 0),
        ("logo.png", b"\x89PNG\x00\xff", 6, 1),
    ]
    assert files[1]["attachmentcontentid"] == "logo1" and files[1]["objecttypecode"] == "email"
    assert empty_crm.email_counts_by_status() == {STATUS_RECEIVED: 1}
    assert [r["activityid"] for r in empty_crm.emails_with_message_id(email.messageid)] == [
        email.activityid
    ]


def test_create_emails_is_all_or_nothing(empty_crm: SqliteCrm) -> None:
    existing = _email()
    empty_crm.create_emails([existing])
    before = {
        table: empty_crm.count(table)
        for table in ("email", "activityparty", "activitymimeattachment")
    }

    good = _email(attachments=[NewAttachment("a.txt", "text/plain", b"x")])
    clash = _email(activityid=existing.activityid)  # fails in the email insert
    with pytest.raises(CrmError, match="nothing was written"):
        empty_crm.create_emails([good, clash])

    broken_party = _email(parties=[NewParty(None, "x@y.example")])  # type: ignore[arg-type]
    with pytest.raises(CrmError):  # fails after the emails were inserted
        empty_crm.create_emails([_email(), broken_party])

    after = {table: empty_crm.count(table) for table in before}
    assert after == before
    assert empty_crm.email(good.activityid) is None
    empty_crm.create_emails([good])  # the same batch minus the bad one goes through afterwards
    assert empty_crm.email(good.activityid) is not None


def test_create_emails_from_many_threads(empty_crm: SqliteCrm) -> None:
    batches = [[_email() for _ in range(50)] for _ in range(8)]
    errors = []

    def write(batch):
        try:
            empty_crm.create_emails(batch)
            empty_crm.parties_by_address(["someone@test.example"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert empty_crm.count("email") == 400


def test_readers_in_another_connection_see_committed_batches(empty_crm: SqliteCrm) -> None:
    other = SqliteCrm(empty_crm.path)
    try:
        email = _email()
        empty_crm.create_emails([email])
        assert email.messageid in other.emails_by_message_id([email.messageid])
    finally:
        other.close()


def test_create_contact_for_an_unknown_sender(empty_crm: SqliteCrm) -> None:
    party = empty_crm.create_contact("New.Person@Else.example", "New Person")
    assert (party.entity, party.name, party.emailaddress) == (
        "contact",
        "New Person",
        "New.Person@Else.example",
    )
    assert empty_crm.parties_by_address(["new.person@else.example"])["new.person@else.example"] == [
        party
    ]
    nameless = empty_crm.create_contact("jo@else.example", None)
    assert nameless.name == "jo"
    (row,) = empty_crm.rows("contact", contactid=party.id)
    assert (row["firstname"], row["lastname"]) == ("New", "Person")


def test_rows_and_count_refuse_unknown_tables(empty_crm: SqliteCrm) -> None:
    with pytest.raises(CrmError, match="unknown table"):
        empty_crm.count("sqlite_master")
    with pytest.raises(CrmError, match="unknown table"):
        empty_crm.rows("email; DROP TABLE email")
