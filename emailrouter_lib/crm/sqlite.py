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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from emailrouter_lib.crm.base import (
    CORRELATION_CONVERSATIONINDEX,
    CORRELATION_INREPLYTO,
    FILTER_ALL,
    PARTY_ENTITIES,
    EmailRef,
    NewEmail,
    Organization,
    Party,
    Recipient,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.errors import CrmError

SCHEMA_VERSION = 1

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
            raise CrmError(
                f"{self.path}: no CRM database here; create one with "
                f"`emailrouter crm init {self.url} --demo`"
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
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except CrmError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise CrmError(
                f"{self.path}: cannot open the CRM database ({exc}); if it is not an emailrouter "
                f"CRM, create one with `emailrouter crm init {self.url} --demo`"
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
                f"create one with `emailrouter crm init {self.url} --demo`"
            )
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise CrmError(
                f"{self.path}: CRM schema version {version}, this emailrouter needs "
                f"{SCHEMA_VERSION}; recreate it with `emailrouter crm init {self.url} --force`"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back."""
        with self._lock:
            conn = self._connection()
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
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT 'systemuser' AS entity, systemuserid AS id, fullname AS name, "
                f"internalemailaddress AS address, incomingemailfilteringmethod, "
                f"emailrouteraccessapproval, incomingemaildeliverymethod, "
                f"outgoingemaildeliverymethod, isdisabled, autocreatecontactonpromote "
                f"FROM systemuser WHERE internalemailaddress IN ({marks}) "
                f"UNION ALL "
                f"SELECT 'queue', queueid, name, emailaddress, incomingemailfilteringmethod, "
                f"emailrouteraccessapproval, incomingemaildeliverymethod, "
                f"outgoingemaildeliverymethod, statecode <> 0, 0 "
                f"FROM queue WHERE emailaddress IN ({marks})",
                [*chunk, *chunk],
            )
            for row in rows:
                key = folded.get(_ascii_lower(row["address"]))
                if key is not None:
                    found.setdefault(key, []).append(_recipient(row))
        return found

    def recipients_by_id(self, ids: Iterable[str]) -> dict[str, Recipient]:
        wanted = list(dict.fromkeys(i.strip().strip("{}").lower() for i in ids if i))
        found: dict[str, Recipient] = {}
        for chunk in _chunks(wanted, self._chunk_size(2)):
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT 'systemuser' AS entity, systemuserid AS id, fullname AS name, "
                f"internalemailaddress AS address, incomingemailfilteringmethod, "
                f"emailrouteraccessapproval, incomingemaildeliverymethod, "
                f"outgoingemaildeliverymethod, isdisabled, autocreatecontactonpromote "
                f"FROM systemuser WHERE lower(systemuserid) IN ({marks}) "
                f"UNION ALL "
                f"SELECT 'queue', queueid, name, emailaddress, incomingemailfilteringmethod, "
                f"emailrouteraccessapproval, incomingemaildeliverymethod, "
                f"outgoingemaildeliverymethod, statecode <> 0, 0 "
                f"FROM queue WHERE lower(queueid) IN ({marks})",
                [*chunk, *chunk],
            )
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

    def create_emails(self, emails: Sequence[NewEmail]) -> None:
        if not emails:
            return
        now = utcnow()
        email_rows = []
        party_rows = []
        attachment_rows = []
        for email in emails:
            email_rows.append(_email_row(email, now))
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
                conn.executemany(f"INSERT INTO email ({columns}) VALUES ({marks})", email_rows)
                # The receiving mailbox is the accepting user's or queue's own mailbox.
                conn.executemany(
                    "UPDATE email SET receivingmailboxid = (SELECT mailboxid FROM mailbox "
                    "WHERE regardingobjectid = email.acceptingentityid LIMIT 1) "
                    "WHERE activityid = ? AND acceptingentityid IS NOT NULL",
                    [(e.activityid,) for e in emails if e.acceptingentityid],
                )
                conn.executemany(
                    "INSERT INTO activityparty (activitypartyid, activityid, "
                    "participationtypemask, partyid, partyobjecttypecode, addressused, "
                    "unresolvedpartyname) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    party_rows,
                )
                conn.executemany(
                    "INSERT INTO activitymimeattachment (activitymimeattachmentid, objectid, "
                    "filename, mimetype, body, filesize, attachmentcontentid, attachmentnumber) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    attachment_rows,
                )
        except sqlite3.Error as exc:
            first = emails[0].messageid
            raise CrmError(
                f"{self.url}: could not create {len(emails)} email(s) (first Message-ID "
                f"{first}): {exc}; nothing was written, the batch can be retried"
            ) from exc

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


def _email_row(email: NewEmail, now: str) -> tuple[Any, ...]:
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
        "receivingmailboxid": None,
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
