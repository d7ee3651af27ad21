"""The embedded CRM: a SQLite database with Dataverse logical names (see ``schema.sql``).

It lets the whole router run with no Dynamics server: the demo, the tests and the benchmarks
route into it. Lookups are batched with ``IN (...)`` over indexed columns, so their cost grows
with the log of the number of records, not with it. One connection is shared by every thread
of a routing run behind a lock: SQLite serialises writers anyway, and WAL mode lets readers in
other processes (a notebook, a report) look while a batch is written.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from emailrouter_lib.crm.base import (
    CORRELATION_CONVERSATIONINDEX,
    CORRELATION_INREPLYTO,
    FILTER_ALL,
    HASH_ADDRESS,
    HASH_SUBJECT,
    PARTICIPATION_BCC,
    PARTICIPATION_CC,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    PARTY_ENTITIES,
    EmailHashes,
    EmailRef,
    EmailStatusChange,
    NewAttachment,
    NewEmail,
    Organization,
    OutgoingEmail,
    OutgoingParty,
    Party,
    Recipient,
    RowChange,
    SendingMailbox,
    check_recipient_update,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.errors import CrmError, CrmPathError, CrmRecordError
from emailrouter_lib.files import use_wal

SCHEMA_VERSION = 1
# What one row's values cause (a trigger's RAISE is a constraint), as opposed to the file's state.
_RECORD_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    ValueError,  # UnicodeEncodeError: a lone surrogate
    OverflowError,
)

# Values per IN (...) list: a batch of a few thousand addresses costs a handful of statements.
# A statement that repeats the list (one SELECT per email column) gets a smaller chunk, so that
# it stays under the connection's host-parameter limit (999 in SQLite before 3.32).
CHUNK = 500

BUSY_TIMEOUT_MS = 30_000

# Every email column of every party entity, in resolution order (reference/email-router.md §3.7).
PARTY_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    # (entity, id column, name column, email column)
    ("systemuser", "systemuserid", "fullname", "internalemailaddress"),
    ("systemuser", "systemuserid", "fullname", "personalemailaddress"),
    ("contact", "contactid", "fullname", "emailaddress1"),
    ("contact", "contactid", "fullname", "emailaddress2"),
    ("contact", "contactid", "fullname", "emailaddress3"),
    ("account", "accountid", "name", "emailaddress1"),
    ("account", "accountid", "name", "emailaddress2"),
    ("account", "accountid", "name", "emailaddress3"),
    ("lead", "leadid", "fullname", "emailaddress1"),
    ("lead", "leadid", "fullname", "emailaddress2"),
    ("lead", "leadid", "fullname", "emailaddress3"),
    ("queue", "queueid", "name", "emailaddress"),
)

TABLES: tuple[str, ...] = (
    "organization",
    "emailserverprofile",
    "mailbox",
    "systemuser",
    "queue",
    "account",
    "contact",
    "lead",
    "email",
    "activityparty",
    "activitymimeattachment",
)

_EMAIL_REF_COLUMNS = (
    "activityid, messageid, subject, trackingtoken, conversationindex, "
    "regardingobjectid, regardingobjecttypecode, directioncode"
)

_EMAIL_INSERT_COLUMNS = (
    "activityid",
    "subject",
    "description",
    "sender",
    "torecipients",
    "messageid",
    "inreplyto",
    "conversationindex",
    "baseconversationindexhash",
    "trackingtoken",
    "directioncode",
    "statecode",
    "statuscode",
    "correlationmethod",
    "correlatedactivityid",
    "parentactivityid",
    "regardingobjectid",
    "regardingobjecttypecode",
    "acceptingentityid",
    "acceptingentitytypecode",
    "receivingmailboxid",
    "ownerid",
    "owneridtype",
    "mimetype",
    "notifications",
    "senton",
    "createdon",
    "modifiedon",
)


def utcnow() -> str:
    """The timestamp format of every date column: ISO 8601, UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


def schema_sql() -> str:
    return resources.files("emailrouter_lib.crm").joinpath("schema.sql").read_text("utf-8")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _normalise(addresses: Iterable[str]) -> list[str]:
    """Distinct, stripped, lower-cased addresses, in first-seen order."""
    seen: dict[str, None] = {}
    for address in addresses:
        if address and (key := address.strip().lower()):
            seen.setdefault(key, None)
    return list(seen)


def _ascii_lower(text: str) -> str:
    """SQLite's NOCASE folding (ASCII only), to map a matched row back to the asked address."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _recipients_query(
    user_column: str, queue_column: str, values: Sequence[str]
) -> tuple[str, list[str]]:
    """Users and queues whose *user_column* / *queue_column* is one of *values* (one query)."""
    marks = ",".join("?" * len(values))
    sql = (
        "SELECT 'systemuser' AS entity, systemuserid AS id, fullname AS name, "
        "internalemailaddress AS address, incomingemailfilteringmethod, "
        "emailrouteraccessapproval, incomingemaildeliverymethod, "
        "outgoingemaildeliverymethod, isdisabled, autocreatecontactonpromote "
        f"FROM systemuser WHERE {user_column} IN ({marks}) "
        "UNION ALL "
        "SELECT 'queue', queueid, name, emailaddress, incomingemailfilteringmethod, "
        "emailrouteraccessapproval, incomingemaildeliverymethod, "
        "outgoingemaildeliverymethod, statecode <> 0, 0 "
        f"FROM queue WHERE {queue_column} IN ({marks})"
    )
    return sql, [*values, *values]


def _email_ref(row: sqlite3.Row) -> EmailRef:
    return EmailRef(
        activityid=row["activityid"],
        messageid=row["messageid"],
        subject=row["subject"],
        trackingtoken=row["trackingtoken"],
        conversationindex=row["conversationindex"],
        regardingobjectid=row["regardingobjectid"],
        regardingobjecttypecode=row["regardingobjecttypecode"],
        directioncode=bool(row["directioncode"]),
    )


class SqliteCrm:
    """A :class:`~emailrouter_lib.crm.base.CrmBackend` over one SQLite file.

    Open an existing database (created by :func:`emailrouter_lib.crm.url.init_crm`); pass
    ``create=True`` only to lay down an empty schema in a new file.
    """

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path.as_posix()}"
        if not create and not self.path.is_file():
            raise CrmPathError(
                f"no CRM database at {self.path}; check the path, or create one with "
                f"`emailrouter crm init {self.url}`"
            )
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # explicit BEGIN/COMMIT: one transaction per batch
                check_same_thread=False,
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if create:
                self._create_schema()
            self._check_schema()  # before WAL, so a stranger's database is left as it was
            use_wal(self._conn, timeout=BUSY_TIMEOUT_MS / 1000)
            self._conn.execute(_RECEIVED_MESSAGEID_INDEX)  # databases made before the index
        except CrmError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise CrmError(
                f"{self.path}: cannot open the CRM database ({exc}); check the path, or if it is "
                f"not an emailrouter CRM, create one elsewhere with `emailrouter crm init URL`"
            ) from exc

    # -- plumbing ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"SqliteCrm({self.url!r})"

    def __enter__(self) -> SqliteCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _create_schema(self) -> None:
        with self.transaction() as conn:
            for statement in _split_sql(schema_sql()):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, appliedon) VALUES (?, ?)",
                (SCHEMA_VERSION, utcnow()),
            )

    def _check_schema(self) -> None:
        conn = self._connection()
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if found is None:
            raise CrmError(
                f"{self.path}: not an emailrouter CRM database (no schema_version table); "
                "check the path, or create one elsewhere with `emailrouter crm init URL`"
            )
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise CrmError(
                f"{self.path}: CRM schema version {version}, this emailrouter needs "
                f"{SCHEMA_VERSION}; recreate it with `emailrouter crm init {self.url} --force`"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back.

        Inside another transaction of this thread it is a savepoint, so a write that fails undoes
        only itself and the outer transaction (see :meth:`atomic`) decides what is committed."""
        with self._lock:
            conn = self._connection()
            if conn.in_transaction:
                yield from _savepoint(conn)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already
                    conn.execute("ROLLBACK")
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise CrmError(f"{self.url}: the CRM connection is closed")
        return self._conn

    def _chunk_size(self, repeats: int) -> int:
        """How many values an IN list may hold when the statement repeats it *repeats* times."""
        limit = self._connection().getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1, min(CHUNK, limit // repeats))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise CrmError(f"{self.url}: query failed ({exc})") from exc

    # -- CrmBackend -------------------------------------------------------------------------

    def organization(self) -> Organization:
        rows = self._read("SELECT * FROM organization ORDER BY createdon LIMIT 1")
        if not rows:
            raise CrmError(
                f"{self.url}: the CRM has no organization row; recreate it with "
                f"`emailrouter crm init {self.url} --demo --force`"
            )
        row = rows[0]
        return Organization(
            organizationid=row["organizationid"],
            name=row["name"],
            trackingprefix=row["trackingprefix"],
            trackingtokenidbase=row["trackingtokenidbase"],
            trackingtokeniddigits=row["trackingtokeniddigits"],
            maximumtrackingnumber=row["maximumtrackingnumber"],
            emailcorrelationenabled=bool(row["emailcorrelationenabled"]),
            enablesmartmatching=bool(row["enablesmartmatching"]),
            hashfilterkeywords=row["hashfilterkeywords"],
            hashmaxcount=row["hashmaxcount"],
            hashdeltasubjectcount=row["hashdeltasubjectcount"],
            hashminaddresscount=row["hashminaddresscount"],
            ignoreinternalemail=bool(row["ignoreinternalemail"]),
            unresolveemailaddressifmultiplematch=bool(row["unresolveemailaddressifmultiplematch"]),
            requireapprovalforuseremail=bool(row["requireapprovalforuseremail"]),
            requireapprovalforqueueemail=bool(row["requireapprovalforqueueemail"]),
            maxuploadfilesize=row["maxuploadfilesize"],
            emailconnectionchannel=row["emailconnectionchannel"],
        )

    def recipients_by_address(self, addresses: Iterable[str]) -> dict[str, list[Recipient]]:
        wanted = _normalise(addresses)
        folded = {_ascii_lower(a): a for a in wanted}
        found: dict[str, list[Recipient]] = {}
        for chunk in _chunks(wanted, self._chunk_size(2)):
            rows = self._read(*_recipients_query("internalemailaddress", "emailaddress", chunk))
            for row in rows:
                key = folded.get(_ascii_lower(row["address"]))
                if key is not None:
                    found.setdefault(key, []).append(_recipient(row))
        return found

    def recipients_by_id(self, ids: Iterable[str]) -> dict[str, Recipient]:
        wanted = list(dict.fromkeys(i.strip().strip("{}").lower() for i in ids if i))
        found: dict[str, Recipient] = {}
        for chunk in _chunks(wanted, self._chunk_size(2)):
            rows = self._read(*_recipients_query("systemuserid", "queueid", chunk))
            for row in rows:
                found[str(row["id"]).lower()] = _recipient(row)
        return found

    def parties_by_address(self, addresses: Iterable[str]) -> dict[str, list[Party]]:
        wanted = _normalise(addresses)
        folded = {_ascii_lower(a): a for a in wanted}
        # Collect per address and per column position, then emit in resolution order.
        hits: dict[str, list[tuple[int, int, Party]]] = {}
        for chunk in _chunks(wanted, self._chunk_size(len(PARTY_COLUMNS))):
            marks = ",".join("?" * len(chunk))
            selects = []
            for position, (entity, idcol, namecol, emailcol) in enumerate(PARTY_COLUMNS):
                active = "" if entity == "systemuser" else " AND statecode = 0"
                selects.append(
                    f"SELECT {position} AS position, rowid AS rid, {idcol} AS id, "
                    f"{namecol} AS name, {emailcol} AS address FROM {entity} "
                    f"WHERE {emailcol} IN ({marks}){active}"
                )
            rows = self._read(" UNION ALL ".join(selects), list(chunk) * len(PARTY_COLUMNS))
            for row in rows:
                key = folded.get(_ascii_lower(row["address"]))
                if key is None:
                    continue
                entity = PARTY_COLUMNS[row["position"]][0]
                party = Party(entity, row["id"], row["name"] or "", row["address"])
                hits.setdefault(key, []).append((row["position"], row["rid"], party))
        order = {entity: i for i, entity in enumerate(PARTY_ENTITIES)}
        result: dict[str, list[Party]] = {}
        for key, found in hits.items():
            found.sort(key=lambda hit: (order[hit[2].entity], hit[1], hit[0]))
            seen: set[tuple[str, str]] = set()
            parties = []
            for _, _, party in found:
                if (party.entity, party.id) not in seen:  # one record, two columns: once
                    seen.add((party.entity, party.id))
                    parties.append(party)
            result[key] = parties
        return result

    def emails_by_message_id(self, message_ids: Iterable[str]) -> dict[str, EmailRef]:
        wanted = list(dict.fromkeys(m for m in message_ids if m))
        found: dict[str, EmailRef] = {}
        for chunk in _chunks(wanted, self._chunk_size(1)):
            marks = ",".join("?" * len(chunk))
            # Newest first, so the oldest row is kept last: the original, not a later copy.
            rows = self._read(
                f"SELECT {_EMAIL_REF_COLUMNS} FROM email WHERE messageid IN ({marks}) "
                f"ORDER BY createdon DESC, rowid DESC",
                chunk,
            )
            for row in rows:
                found[row["messageid"]] = _email_ref(row)
        return found

    def email_by_tracking_token(self, token: str) -> EmailRef | None:
        if not token:
            return None
        rows = self._read(
            f"SELECT {_EMAIL_REF_COLUMNS} FROM email WHERE trackingtoken = ? "
            f"ORDER BY createdon DESC, rowid DESC LIMIT 1",
            (token.strip(),),
        )
        return _email_ref(rows[0]) if rows else None

    def email_by_conversation(self, baseconversationindexhash: int) -> EmailRef | None:
        rows = self._read(
            f"SELECT {_EMAIL_REF_COLUMNS} FROM email WHERE baseconversationindexhash = ? "
            f"ORDER BY createdon DESC, rowid DESC LIMIT 1",
            (int(baseconversationindexhash),),
        )
        return _email_ref(rows[0]) if rows else None

    def create_emails(self, emails: Sequence[NewEmail]) -> set[str]:
        """All or none, in one transaction; a received email whose Message-ID a received email
        has already (case-insensitively; stored, or earlier in *emails*) is not created: its
        activity id is returned, so routing reports it as a duplicate. The check runs inside
        the write transaction, so two runs that overlap never both create one message."""
        if not emails:
            return set()
        now = utcnow()
        party_rows = []
        attachment_rows = []
        for email in emails:
            for party in email.parties:
                party_rows.append(
                    (
                        new_id(),
                        email.activityid,
                        party.participationtypemask,
                        party.partyid,
                        party.partyobjecttypecode,
                        party.addressused,
                        party.unresolvedpartyname,
                    )
                )
            for number, attachment in enumerate(email.attachments):
                attachment_rows.append(
                    (
                        new_id(),
                        email.activityid,
                        attachment.filename,
                        attachment.mimetype,
                        attachment.body,
                        len(attachment.body),
                        attachment.attachmentcontentid,
                        number,
                    )
                )
        columns = ", ".join(_EMAIL_INSERT_COLUMNS)
        marks = ", ".join("?" * len(_EMAIL_INSERT_COLUMNS))
        try:
            with self.transaction() as conn:
                # The receiving mailbox is the accepting user's or queue's own mailbox: looked up
                # once per accepting entity, not once per email.
                mailboxes = _receiving_mailboxes(conn, {e.acceptingentityid for e in emails})
                refused = self._received_already(conn, emails)
                conn.executemany(
                    f"INSERT INTO email ({columns}) VALUES ({marks})",
                    [
                        _email_row(e, now, mailboxes.get(e.acceptingentityid))
                        for e in emails
                        if e.activityid not in refused
                    ],
                )
                conn.executemany(
                    "INSERT INTO activityparty (activitypartyid, activityid, "
                    "participationtypemask, partyid, partyobjecttypecode, addressused, "
                    "unresolvedpartyname) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [row for row in party_rows if row[1] not in refused],
                )
                conn.executemany(
                    "INSERT INTO activitymimeattachment (activitymimeattachmentid, objectid, "
                    "filename, mimetype, body, filesize, attachmentcontentid, attachmentnumber) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [row for row in attachment_rows if row[1] not in refused],
                )
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            # A constraint or a value SQLite cannot bind (a lone surrogate, an integer too large)
            # belongs to a record; a locked or broken file to the whole CRM.
            record = isinstance(exc, _RECORD_ERRORS)
            first = emails[0].messageid
            raise (CrmRecordError if record else CrmError)(
                f"{self.url}: could not create {len(emails)} email(s) (first Message-ID "
                f"{first!r}): {exc}; nothing was written, the batch can be retried"
            ) from exc
        return refused

    def _received_already(self, conn: sqlite3.Connection, emails: Sequence[NewEmail]) -> set[str]:
        """Activity ids of the received *emails* whose Message-ID (folded as SQLite's NOCASE
        does) a stored received email, or an earlier one of *emails*, has already."""
        received = [e for e in emails if not e.directioncode and e.messageid]
        stored: set[str] = set()
        wanted = list(dict.fromkeys(_ascii_lower(e.messageid or "") for e in received))
        for chunk in _chunks(wanted, self._chunk_size(1)):
            rows = conn.execute(
                "SELECT messageid FROM email WHERE directioncode = 0 AND messageid COLLATE NOCASE"
                f" IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            stored.update(_ascii_lower(row[0]) for row in rows)
        refused: set[str] = set()
        for email in received:
            folded = _ascii_lower(email.messageid or "")
            if folded in stored:
                refused.add(email.activityid)
            stored.add(folded)
        return refused

    def write_notes(self, activityids: Iterable[str]) -> dict[str, str]:
        """Nothing to say: SQLite stores every value as given (no column lengths)."""
        return {}

    def issue_tracking_tokens(self, subjects: Mapping[str, str]) -> dict[str, str] | None:
        """None: the embedded store's tokens are numbered by :meth:`allocate_tracking_numbers`."""
        return None

    def create_contact(self, emailaddress: str, fullname: str | None) -> Party:
        address = emailaddress.strip()
        name = (fullname or "").strip() or address.split("@", 1)[0]
        first, _, last = name.rpartition(" ") if " " in name else ("", "", name)
        contactid = new_id()
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO contact (contactid, fullname, firstname, lastname, "
                    "emailaddress1, createdon) VALUES (?, ?, ?, ?, ?, ?)",
                    (contactid, name, first or None, last, address, utcnow()),
                )
        except sqlite3.Error as exc:
            raise CrmError(f"{self.url}: could not create a contact for {address}: {exc}") from exc
        return Party("contact", contactid, name, address)

    # -- CrmBackend: outgoing -----------------------------------------------------------------

    def outgoing_emails(self, statuscodes: Iterable[int], *, limit: int) -> list[OutgoingEmail]:
        codes = sorted({int(c) for c in statuscodes})
        if not codes or limit <= 0:
            return []
        rows = self._read(
            f"SELECT * FROM email WHERE directioncode = 1 AND statuscode IN "
            f"({','.join('?' * len(codes))}) ORDER BY modifiedon, rowid LIMIT ?",
            [*codes, int(limit)],
        )
        ids = [row["activityid"] for row in rows]
        parties: dict[str, list[sqlite3.Row]] = {}
        for chunk in _chunks(ids, self._chunk_size(1)):
            for party in self._read(
                f"SELECT * FROM activityparty WHERE activityid IN ({','.join('?' * len(chunk))}) "
                f"ORDER BY rowid",
                chunk,
            ):
                parties.setdefault(party["activityid"], []).append(party)
        senders: dict[str, tuple[str, str]] = {}  # activityid -> (entity, id)
        for row in rows:
            mine = parties.get(row["activityid"], [])
            sender = next(
                (
                    (p["partyobjecttypecode"], p["partyid"])
                    for p in mine
                    if p["participationtypemask"] == PARTICIPATION_SENDER
                    and p["partyobjecttypecode"] in ("systemuser", "queue")
                    and p["partyid"]
                ),
                None,
            )
            if sender is None and row["owneridtype"] in ("systemuser", "queue") and row["ownerid"]:
                sender = (row["owneridtype"], row["ownerid"])
            if sender is not None:
                senders[row["activityid"]] = sender
        mailboxes = self._sending_mailboxes(set(senders.values()))
        names = self._party_names(
            {
                (p["partyobjecttypecode"], p["partyid"])
                for found in parties.values()
                for p in found
                if p["partyid"] and p["partyobjecttypecode"]
            }
        )
        result = []
        for row in rows:
            mine = parties.get(row["activityid"], [])
            result.append(
                OutgoingEmail(
                    activityid=row["activityid"],
                    subject=row["subject"] or "",
                    description=row["description"] or "",
                    mimetype=row["mimetype"],
                    statuscode=row["statuscode"],
                    deliveryattempts=row["deliveryattempts"] or 0,
                    modifiedon=row["modifiedon"],
                    trackingtoken=row["trackingtoken"],
                    inreplyto=row["inreplyto"],
                    parentactivityid=row["parentactivityid"],
                    regardingobjectid=row["regardingobjectid"],
                    regardingobjecttypecode=row["regardingobjecttypecode"],
                    ownerid=row["ownerid"],
                    attemptid=row["emailrouter_attemptid"],
                    sender=mailboxes.get(senders.get(row["activityid"], ("", ""))),
                    parties=tuple(
                        OutgoingParty(
                            participationtypemask=p["participationtypemask"],
                            addressused=p["addressused"],
                            name=p["unresolvedpartyname"]
                            or names.get((p["partyobjecttypecode"], p["partyid"])),
                            partyid=p["partyid"],
                            partyobjecttypecode=p["partyobjecttypecode"],
                        )
                        for p in mine
                        if p["participationtypemask"]
                        in (PARTICIPATION_TO, PARTICIPATION_CC, PARTICIPATION_BCC)
                    ),
                )
            )
        return result

    def _sending_mailboxes(
        self, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], SendingMailbox]:
        found: dict[tuple[str, str], SendingMailbox] = {}
        for entity in ("systemuser", "queue"):
            ids = sorted(i for e, i in keys if e == entity)
            for chunk in _chunks(ids, self._chunk_size(1)):
                marks = ",".join("?" * len(chunk))
                if entity == "systemuser":
                    sql = (
                        "SELECT systemuserid AS id, fullname AS name, internalemailaddress AS "
                        "address, outgoingemaildeliverymethod, emailrouteraccessapproval, "
                        f"isdisabled, trackingusernumber FROM systemuser "
                        f"WHERE systemuserid IN ({marks})"
                    )
                else:
                    sql = (
                        "SELECT queueid AS id, name, emailaddress AS address, "
                        "outgoingemaildeliverymethod, emailrouteraccessapproval, "
                        f"statecode <> 0 AS isdisabled, NULL AS trackingusernumber FROM queue "
                        f"WHERE queueid IN ({marks})"
                    )
                for row in self._read(sql, chunk):
                    found[(entity, row["id"])] = SendingMailbox(
                        entity=entity,  # type: ignore[arg-type]
                        id=row["id"],
                        name=row["name"] or "",
                        emailaddress=row["address"],
                        outgoingemaildeliverymethod=row["outgoingemaildeliverymethod"],
                        emailrouteraccessapproval=row["emailrouteraccessapproval"],
                        isdisabled=bool(row["isdisabled"]),
                        trackingusernumber=row["trackingusernumber"],
                    )
        return found

    def _party_names(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        columns = {entity: (idcol, namecol) for entity, idcol, namecol, _ in PARTY_COLUMNS}
        names: dict[tuple[str, str], str] = {}
        for entity, (idcol, namecol) in columns.items():
            ids = sorted(i for e, i in keys if e == entity)
            for chunk in _chunks(ids, self._chunk_size(1)):
                rows = self._read(
                    f"SELECT {idcol} AS id, {namecol} AS name FROM {entity} "
                    f"WHERE {idcol} IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                names.update({(entity, row["id"]): row["name"] for row in rows if row["name"]})
        return names

    def attachments_by_activity(self, activityids: Iterable[str]) -> dict[str, list[NewAttachment]]:
        ids = list(dict.fromkeys(i for i in activityids if i))
        found: dict[str, list[NewAttachment]] = {}
        for chunk in _chunks(ids, self._chunk_size(1)):
            rows = self._read(
                f"SELECT objectid, filename, mimetype, body, attachmentcontentid "
                f"FROM activitymimeattachment WHERE objectid IN ({','.join('?' * len(chunk))}) "
                f"ORDER BY objectid, attachmentnumber, rowid",
                chunk,
            )
            for row in rows:
                found.setdefault(row["objectid"], []).append(
                    NewAttachment(
                        row["filename"] or "attachment",
                        row["mimetype"] or "application/octet-stream",
                        bytes(row["body"] or b""),
                        row["attachmentcontentid"],
                    )
                )
        return found

    def update_email_status(self, changes: Sequence[EmailStatusChange]) -> set[str]:
        if not changes:
            return set()
        now = utcnow()
        changed: set[str] = set()
        try:
            with self.transaction() as conn:
                for c in changes:
                    sets = {
                        "statuscode": c.statuscode,
                        "statecode": c.statecode,
                        "emailrouter_attemptid": c.attemptid,
                        "modifiedon": now,
                    }
                    optional = {
                        "messageid": c.messageid,
                        "senton": c.senton,
                        "deliveryattempts": c.deliveryattempts,
                        "subject": c.subject,
                        "trackingtoken": c.trackingtoken,
                        "emailrouter_lasterror": c.error,
                    }
                    sets.update({k: v for k, v in optional.items() if v is not None})
                    if c.error == "":
                        sets["emailrouter_lasterror"] = None
                    where = "activityid = ? AND statuscode = ?"
                    params: list[Any] = [c.activityid, c.expected_statuscode]
                    if c.expected_attemptid is not None:
                        where += " AND emailrouter_attemptid IS ?"
                        params.append(c.expected_attemptid)
                    cursor = conn.execute(
                        f"UPDATE email SET {', '.join(f'{k} = ?' for k in sets)} WHERE {where}",
                        [*sets.values(), *params],
                    )
                    if cursor.rowcount:
                        changed.add(c.activityid)
        except sqlite3.Error as exc:
            raise CrmError(
                f"{self.url}: could not update the status of {len(changes)} email(s) "
                f"(first {changes[0].activityid}): {exc}; nothing was written"
            ) from exc
        return changed

    def allocate_tracking_numbers(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        wanted = {uid: int(n) for uid, n in counts.items() if uid and int(n) > 0}
        if not wanted:
            return {}
        result: dict[str, list[int]] = {}
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT maximumtrackingnumber FROM organization ORDER BY createdon LIMIT 1"
            ).fetchone()
            modulo = max(int(row[0]) if row else 999, 1) + 1
            for uid, n in wanted.items():
                found = conn.execute(
                    "SELECT lastnumber FROM emailrouter_trackingcounter WHERE systemuserid = ?",
                    (uid,),
                ).fetchone()
                if found is None:  # continue after the tokens the CRM already holds for the user
                    found = (self._highest_counter(conn, uid, modulo),)
                last = int(found[0])
                numbers = [(last + k) % modulo for k in range(1, n + 1)]
                conn.execute(
                    "INSERT OR REPLACE INTO emailrouter_trackingcounter (systemuserid, lastnumber)"
                    " VALUES (?, ?)",
                    (uid, numbers[-1]),
                )
                result[uid] = numbers
        return result

    @staticmethod
    def _highest_counter(conn: sqlite3.Connection, uid: str, modulo: int) -> int:
        """The highest counter in this user's stored tokens (0 when none): the counter goes on."""
        digits = len(str(modulo - 1))
        highest = 0
        for (token,) in conn.execute(
            "SELECT trackingtoken FROM email e JOIN activityparty p ON p.activityid = e.activityid"
            " WHERE p.participationtypemask = ? AND p.partyid = ? AND e.trackingtoken IS NOT NULL",
            (PARTICIPATION_SENDER, uid),
        ):
            number = token.rsplit(":", 1)[-1]
            if number[-digits:].isdigit():
                highest = max(highest, int(number[-digits:]))
        return highest

    def emails_by_activity_id(self, activityids: Iterable[str]) -> dict[str, EmailRef]:
        ids = list(dict.fromkeys(i for i in activityids if i))
        found: dict[str, EmailRef] = {}
        for chunk in _chunks(ids, self._chunk_size(1)):
            rows = self._read(
                f"SELECT {_EMAIL_REF_COLUMNS} FROM email "
                f"WHERE activityid IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update({row["activityid"]: _email_ref(row) for row in rows})
        return found

    # -- CrmBackend: smart matching -----------------------------------------------------------

    def store_email_hashes(self, hashes: Mapping[str, EmailHashes]) -> None:
        if not hashes:
            return
        rows = [
            (activityid, kind, value)
            for activityid, h in hashes.items()
            for kind, values in ((HASH_SUBJECT, h.subject), (HASH_ADDRESS, h.addresses))
            for value in values
        ]
        try:
            with self.transaction() as conn:
                conn.executemany(
                    "DELETE FROM emailhash WHERE activityid = ?", [(a,) for a in hashes]
                )
                conn.executemany(
                    "INSERT INTO emailhash (activityid, hashtype, hash) VALUES (?, ?, ?)", rows
                )
        except sqlite3.Error as exc:
            raise CrmError(f"{self.url}: could not store smart-matching hashes: {exc}") from exc

    def email_hash_candidates(
        self, address_hashes: Iterable[int], *, limit: int = 200
    ) -> dict[str, EmailHashes]:
        wanted = sorted({int(h) for h in address_hashes})
        if not wanted:
            return {}
        ids: list[str] = []
        for chunk in _chunks(wanted, self._chunk_size(1)):  # type: ignore[arg-type]
            rows = self._read(
                f"SELECT DISTINCT h.activityid FROM emailhash h JOIN email e "
                f"ON e.activityid = h.activityid WHERE h.hashtype = {HASH_ADDRESS} AND h.hash IN "
                f"({','.join('?' * len(chunk))}) ORDER BY e.createdon DESC, e.rowid DESC LIMIT ?",
                [*chunk, int(limit)],
            )
            ids += [row[0] for row in rows if row[0] not in ids]
        found: dict[str, tuple[list[int], list[int]]] = {i: ([], []) for i in ids[:limit]}
        for chunk in _chunks(list(found), self._chunk_size(1)):
            for row in self._read(
                f"SELECT activityid, hashtype, hash FROM emailhash "
                f"WHERE activityid IN ({','.join('?' * len(chunk))}) ORDER BY rowid",
                chunk,
            ):
                found[row[0]][0 if row[1] == HASH_SUBJECT else 1].append(row[2])
        return {a: EmailHashes(tuple(s), tuple(h)) for a, (s, h) in found.items()}

    # -- helpers for audit, reports and tests (not part of CrmBackend) ------------------------

    def email_counts_by_status(self) -> dict[int, int]:
        """Number of emails per ``statuscode`` (e.g. {3: 5, 4: 120, 6: 2})."""
        rows = self._read("SELECT statuscode, count(*) FROM email GROUP BY statuscode")
        return {row[0]: row[1] for row in rows}

    def emails_with_message_id(self, message_id: str) -> list[dict[str, Any]]:
        """Every stored email row with exactly this Message-ID, oldest first."""
        rows = self._read(
            "SELECT * FROM email WHERE messageid = ? ORDER BY createdon, rowid", (message_id,)
        )
        return [dict(row) for row in rows]

    def emails(
        self,
        *,
        statuscode: int | None = None,
        directioncode: bool | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Email rows, newest first, optionally by status and direction."""
        where, params = [], []
        if statuscode is not None:
            where.append("statuscode = ?")
            params.append(statuscode)
        if directioncode is not None:
            where.append("directioncode = ?")
            params.append(int(directioncode))
        sql = "SELECT * FROM email"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY createdon DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [dict(row) for row in self._read(sql, params)]

    def email(self, activityid: str) -> dict[str, Any] | None:
        """One email row by id."""
        rows = self._read("SELECT * FROM email WHERE activityid = ?", (activityid,))
        return dict(rows[0]) if rows else None

    def email_parties(self, activityid: str) -> list[dict[str, Any]]:
        """The activity parties of one email, in the order they were written."""
        rows = self._read(
            "SELECT * FROM activityparty WHERE activityid = ? ORDER BY rowid", (activityid,)
        )
        return [dict(row) for row in rows]

    def email_attachments(self, activityid: str) -> list[dict[str, Any]]:
        """The attachments of one email (``body`` as bytes), by ``attachmentnumber``."""
        rows = self._read(
            "SELECT * FROM activitymimeattachment WHERE objectid = ? ORDER BY attachmentnumber",
            (activityid,),
        )
        return [dict(row) for row in rows]

    def recipients(self) -> list[Recipient]:
        """Every user and queue with an email address (what Load Data starts from)."""
        rows = self._read(
            "SELECT 'systemuser' AS entity, systemuserid AS id, fullname AS name, "
            "internalemailaddress AS address, incomingemailfilteringmethod, "
            "emailrouteraccessapproval, incomingemaildeliverymethod, outgoingemaildeliverymethod, "
            "isdisabled, autocreatecontactonpromote FROM systemuser "
            "WHERE internalemailaddress IS NOT NULL "
            "UNION ALL SELECT 'queue', queueid, name, emailaddress, incomingemailfilteringmethod, "
            "emailrouteraccessapproval, incomingemaildeliverymethod, outgoingemaildeliverymethod, "
            "statecode <> 0, 0 FROM queue WHERE emailaddress IS NOT NULL "
            "ORDER BY entity, address"
        )
        return [_recipient(row) for row in rows]

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """All rows of one of :data:`TABLES`, optionally filtered by column equality."""
        if table not in TABLES:
            raise CrmError(f"{self.url}: unknown table {table!r}; known: {', '.join(TABLES)}")
        sql = f"SELECT * FROM {table}"
        for column in where:
            if not column.isidentifier():
                raise CrmError(f"{self.url}: bad column name {column!r}")
        if where:
            sql += " WHERE " + " AND ".join(f"{column} = ?" for column in where)
        return [dict(row) for row in self._read(sql + " ORDER BY rowid", list(where.values()))]

    def count(self, table: str) -> int:
        """Number of rows in one of :data:`TABLES`."""
        if table not in TABLES:
            raise CrmError(f"{self.url}: unknown table {table!r}; known: {', '.join(TABLES)}")
        return self._read(f"SELECT count(*) FROM {table}")[0][0]

    # -- mailbox settings (MailboxSettingsStore: migration to server-side sync) ---------------

    def email_server_profiles(self) -> list[dict[str, Any]]:
        return self.rows("emailserverprofile")

    def mailboxes(self) -> list[dict[str, Any]]:
        return self.rows("mailbox")

    def save_email_server_profile(self, values: Mapping[str, Any]) -> RowChange:
        name = str(values.get("name") or "").strip()
        if not name:
            raise CrmError(f"{self.url}: an email server profile needs a name")
        return self._save(
            "emailserverprofile",
            "emailserverprofileid",
            "SELECT * FROM emailserverprofile WHERE lower(name) = lower(?) ORDER BY rowid LIMIT 1",
            (name,),
            values,
            f"email server profile {name!r}",
        )

    def save_mailbox(self, values: Mapping[str, Any]) -> RowChange:
        owner = values.get("regardingobjectid")
        if owner:
            # as given, lower or upper case (ids are GUIDs): the index is used, unlike lower()
            sql = (
                "SELECT * FROM mailbox WHERE regardingobjectid IN (?, ?, ?) ORDER BY rowid LIMIT 1"
            )
            key, what = _id_spellings(str(owner)), f"the mailbox of {owner}"
        else:
            address = str(values.get("emailaddress") or "").strip()
            if not address:
                raise CrmError(
                    f"{self.url}: a mailbox needs a regardingobjectid (user or queue) or, for a "
                    "forward mailbox, an emailaddress"
                )
            sql = (
                "SELECT * FROM mailbox WHERE emailaddress = ? AND isforwardmailbox = 1 "
                "ORDER BY rowid LIMIT 1"
            )
            key, what = (address,), f"forward mailbox {address}"
        return self._save("mailbox", "mailboxid", sql, key, values, what)

    def delete_email_server_profile(self, emailserverprofileid: str) -> bool:
        return self._delete("emailserverprofile", "emailserverprofileid", emailserverprofileid)

    def delete_mailbox(self, mailboxid: str) -> bool:
        return self._delete("mailbox", "mailboxid", mailboxid)

    def set_email_connection_channel(self, value: int) -> RowChange:
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT organizationid, emailconnectionchannel FROM organization "
                "ORDER BY createdon LIMIT 1"
            ).fetchone()
            if row is None:
                raise CrmError(f"{self.url}: the CRM has no organization row")
            if row["emailconnectionchannel"] == int(value):
                return RowChange(row["organizationid"], "unchanged")
            conn.execute(
                "UPDATE organization SET emailconnectionchannel = ? WHERE organizationid = ?",
                (int(value), row["organizationid"]),
            )
        return RowChange(
            row["organizationid"],
            "updated",
            {"emailconnectionchannel": row["emailconnectionchannel"]},
        )

    @contextmanager
    def atomic(self) -> Iterator[bool]:
        """All the mailbox-settings writes inside are one SQLite transaction (yields True:
        they really are all-or-nothing)."""
        with self.transaction():
            yield True

    def update_recipient(
        self, entity: str, recipientid: str, values: Mapping[str, Any]
    ) -> RowChange:
        check_recipient_update(self.url, entity, values)
        wanted = {column: _storable(value) for column, value in values.items()}
        id_column = f"{entity}id"
        try:
            with self.transaction() as conn:
                row = conn.execute(
                    f"SELECT * FROM {entity} WHERE {id_column} IN (?, ?, ?)",
                    _id_spellings(recipientid),
                ).fetchone()
                if row is None:
                    raise CrmError(
                        f"{self.url}: no {entity} {recipientid}; re-plan against this CRM"
                    )
                before = {c: row[c] for c, v in wanted.items() if row[c] != v}
                if not before:
                    return RowChange(str(row[id_column]), "unchanged")
                assignments = ", ".join(f"{column} = ?" for column in before)
                conn.execute(
                    f"UPDATE {entity} SET {assignments} WHERE {id_column} = ?",
                    [*(wanted[column] for column in before), row[id_column]],
                )
                return RowChange(str(row[id_column]), "updated", before)
        except sqlite3.Error as exc:
            raise CrmError(f"{self.url}: could not update {entity} {recipientid}: {exc}") from exc

    def _columns(self, table: str) -> set[str]:
        rows = self._read(f"PRAGMA table_info({table})")
        return {row["name"] for row in rows}

    def _save(
        self,
        table: str,
        id_column: str,
        find_sql: str,
        key: Sequence[Any],
        values: Mapping[str, Any],
        what: str,
    ) -> RowChange:
        """Create-or-update one row: compare column by column, write only what differs."""
        known = self._columns(table)
        unknown = sorted(set(values) - known)
        if unknown:
            raise CrmError(f"{self.url}: {what}: {table} has no column(s) {', '.join(unknown)}")
        wanted = {column: _storable(value) for column, value in values.items()}
        try:
            with self.transaction() as conn:
                row = conn.execute(find_sql, tuple(key)).fetchone()
                if row is None:
                    new = {id_column: wanted.get(id_column) or new_id(), "createdon": utcnow()}
                    new.update({c: v for c, v in wanted.items() if c != id_column})
                    insert_rows(conn, table, [new])
                    return RowChange(str(new[id_column]), "created")
                before = {
                    column: row[column]
                    for column, value in wanted.items()
                    if column != id_column and row[column] != value
                }
                if before:
                    assignments = ", ".join(f"{column} = ?" for column in before)
                    conn.execute(
                        f"UPDATE {table} SET {assignments} WHERE {id_column} = ?",
                        [*(wanted[column] for column in before), row[id_column]],
                    )
                    return RowChange(str(row[id_column]), "updated", before)
                return RowChange(str(row[id_column]), "unchanged")
        except sqlite3.Error as exc:
            raise CrmError(
                f"{self.url}: could not save {what}: {exc}; nothing was written"
            ) from exc

    def _delete(self, table: str, id_column: str, row_id: str) -> bool:
        try:
            with self.transaction() as conn:
                cursor = conn.execute(f"DELETE FROM {table} WHERE {id_column} = ?", (row_id,))
                return cursor.rowcount > 0
        except sqlite3.Error as exc:
            raise CrmError(f"{self.url}: could not delete {table} {row_id}: {exc}") from exc


def _id_spellings(record_id: str) -> tuple[str, str, str]:
    """A GUID as given, in lower and in upper case: an ``IN`` over these finds it by index."""
    return record_id, record_id.lower(), record_id.upper()


def _savepoint(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A nested write: released on success, rolled back to on failure."""
    name = f"sp_{uuid.uuid4().hex}"
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def _storable(value: Any) -> Any:
    """SQLite's spelling of a Dataverse value: Booleans are 0/1."""
    return int(value) if isinstance(value, bool) else value


def _recipient(row: sqlite3.Row) -> Recipient:
    filtering = row["incomingemailfilteringmethod"]
    return Recipient(
        entity=row["entity"],
        id=row["id"],
        name=row["name"] or "",
        emailaddress=row["address"],
        incomingemailfilteringmethod=FILTER_ALL if filtering is None else filtering,
        emailrouteraccessapproval=row["emailrouteraccessapproval"],
        incomingemaildeliverymethod=row["incomingemaildeliverymethod"],
        outgoingemaildeliverymethod=row["outgoingemaildeliverymethod"],
        isdisabled=bool(row["isdisabled"]),
        autocreatecontact=bool(row["autocreatecontactonpromote"]),
    )


_RECEIVED_MESSAGEID_INDEX = (
    "CREATE INDEX IF NOT EXISTS email_received_messageid"
    " ON email (messageid COLLATE NOCASE) WHERE directioncode = 0"
)


def _receiving_mailboxes(
    conn: sqlite3.Connection, accepting_ids: Iterable[str | None]
) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for owner in accepting_ids:
        if owner:
            row = conn.execute(
                "SELECT mailboxid FROM mailbox WHERE regardingobjectid = ? LIMIT 1", (owner,)
            ).fetchone()
            found[owner] = row[0] if row else None
    return found


def _email_row(email: NewEmail, now: str, receivingmailboxid: str | None = None) -> tuple[Any, ...]:
    hashed = email.baseconversationindexhash
    if hashed is None:
        hashed = base_conversation_index_hash(email.conversationindex)
    parent = (
        email.correlatedactivityid
        if email.correlationmethod in (CORRELATION_INREPLYTO, CORRELATION_CONVERSATIONINDEX)
        else None
    )
    owner = email.acceptingentityid
    ownertype = email.acceptingentitytypecode if owner else None
    values = {
        "activityid": email.activityid,
        "subject": email.subject,
        "description": email.description,
        "sender": email.sender,
        "torecipients": email.torecipients,
        "messageid": email.messageid,
        "inreplyto": email.inreplyto,
        "conversationindex": email.conversationindex,
        "baseconversationindexhash": hashed,
        "trackingtoken": email.trackingtoken,
        "directioncode": int(email.directioncode),
        "statecode": email.statecode,
        "statuscode": email.statuscode,
        "correlationmethod": email.correlationmethod,
        "correlatedactivityid": email.correlatedactivityid,
        "parentactivityid": parent,
        "regardingobjectid": email.regardingobjectid,
        "regardingobjecttypecode": email.regardingobjecttypecode,
        "acceptingentityid": email.acceptingentityid,
        "acceptingentitytypecode": email.acceptingentitytypecode,
        "receivingmailboxid": receivingmailboxid,
        "ownerid": owner,
        "owneridtype": ownertype,
        "mimetype": email.mimetype,
        "notifications": email.notifications,
        "senton": email.senton,
        "createdon": now,
        "modifiedon": now,
    }
    return tuple(values[column] for column in _EMAIL_INSERT_COLUMNS)


def insert_rows(conn: sqlite3.Connection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows given as {column: value} (all with the same columns) with one executemany."""
    if not rows:
        return
    if table not in TABLES:
        raise CrmError(f"unknown CRM table {table!r}; known: {', '.join(TABLES)}")
    columns = list(rows[0])
    if not all(column.isidentifier() for column in columns):
        raise CrmError(f"bad column name among {columns!r} for table {table!r}")
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [tuple(row[column] for column in columns) for row in rows],
    )


def _split_sql(script: str) -> list[str]:
    """Statements of a DDL script (no semicolons inside literals in ours), comments dropped."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


__all__ = [
    "CHUNK",
    "PARTY_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "SqliteCrm",
    "insert_rows",
    "new_id",
    "utcnow",
]
