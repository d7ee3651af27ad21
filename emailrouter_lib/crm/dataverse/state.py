"""The router's own state beside a Dataverse organisation: what the Web API has no column for.

Dataverse stores an email's status, ``deliveryattempts``, Message-ID and tracking token, and the
backend writes those there. Four things the Email Router protocol needs have no stock column, and
asking every administrator to import a solution with custom columns would make the switch from the
Microsoft Email Router harder, so they live in one small SQLite file that the router owns:

``attempt``         the send attempt holding an email in *Sending*: its id, and the row's ETag
                    before the claim and after it. The claim itself is a real compare-and-set in
                    Dataverse (``PATCH`` with ``If-Match``), so two routers never both claim an
                    email; the file only lets *this* router recognise its own claims after a
                    crash. The last delivery error of an email is kept here too.
``trackingcounter`` the local fallback for tracking tokens: the router asks the CRM for them
                    (``GetTrackingTokenEmail``, which the Web API of CRM 2016 and Dataverse
                    both have, mt593007(v=crm.8)); only when the org refuses it to the router's
                    user does it count here, per user, continuing after the highest counter
                    in that user's stored tokens.
``trackinguser``    the user number of that fallback (``CRM:0<user><counter>``), assigned
                    1, 2, 3 ... in the order users first send through this router: such tokens
                    can collide with ones the CRM issues, which is why it is only a fallback.
``emailhash``       smart-matching hashes (Dataverse's ``EmailHash`` table is internal, not in the
                    Web API): only emails this router created or sent are candidates.
``threadindex``     the Thread-Index of emails this router created (``conversationindex`` is
                    read-only: not valid for create in any flavour).
``orgschema``       the org's entity metadata per Web API root (see ``metadata.py``), re-read
                    after a day or when the org refuses a name.

Consequences (documented in the README): keep the file (back it up with the ledgers); run one
router per organisation for outgoing mail if tracking tokens must stay unique across routers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from emailrouter_lib.crm.base import HASH_ADDRESS, HASH_SUBJECT, EmailHashes
from emailrouter_lib.errors import CrmError
from emailrouter_lib.files import open_sqlite, use_wal

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempt (
    activityid  TEXT PRIMARY KEY,  -- lower-cased
    attemptid   TEXT,
    etag_before TEXT,
    etag_after  TEXT,
    lasterror   TEXT
);
CREATE TABLE IF NOT EXISTS trackingcounter (
    systemuserid TEXT PRIMARY KEY,  -- lower-cased
    lastnumber   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trackinguser (
    systemuserid TEXT PRIMARY KEY,  -- lower-cased
    number       INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS emailhash (
    activityid TEXT NOT NULL,  -- as given
    hashtype   INTEGER NOT NULL,
    hash       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS emailhash_hash ON emailhash (hashtype, hash);
CREATE INDEX IF NOT EXISTS emailhash_activityid ON emailhash (activityid);
CREATE TABLE IF NOT EXISTS orgschema (
    baseurl    TEXT NOT NULL,  -- lower-cased Web API root: one org and API version
    entity     TEXT NOT NULL,
    readat     REAL NOT NULL,  -- seconds since the epoch
    definition TEXT NOT NULL,  -- JSON, metadata.trimmed()
    PRIMARY KEY (baseurl, entity)
);
CREATE TABLE IF NOT EXISTS threadindex (
    activityid        TEXT PRIMARY KEY,  -- lower-cased
    conversationindex TEXT NOT NULL
);
"""


def default_state_path(base_url: str) -> Path:
    """One file per organisation and API root, under ``$XDG_STATE_HOME/emailrouter``."""
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(base_url.lower().encode()).hexdigest()[:16]
    return Path(root) / "emailrouter" / f"dataverse-{digest}.sqlite"


@dataclass(frozen=True)
class AttemptRecord:
    attemptid: str | None
    etag_before: str | None
    etag_after: str | None
    lasterror: str | None

    def holds(self, etag: str | None) -> str | None:
        """This router's attempt id when the row (now at *etag*) is still as our claim left it.

        Claimed and answered: the row's ETag is the one the claim returned. Claimed but killed
        before the answer was recorded: the row changed since the read the claim was based on
        (its If-Match only succeeds when nobody else changed it first).
        """
        if not self.attemptid or etag is None:
            return None
        if self.etag_after is not None:
            return self.attemptid if etag == self.etag_after else None
        return self.attemptid if etag != self.etag_before else None


def _serialised(method: Callable[..., T]) -> Callable[..., T]:
    """Run *method* holding the state's lock: one thread at a time on the shared connection."""

    @functools.wraps(method)
    def locked(self: RouterState, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class RouterState:
    """The state file; every call is its own short transaction (safe across processes).

    One connection serves every thread of a routing run (mailboxes routed in parallel store
    smart-matching hashes here): calls take turns behind a lock, as SQLite's writers do anyway.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._lock = threading.RLock()
            self.conn = open_sqlite(self.path, check_same_thread=False)
            use_wal(self.conn)
            self.conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CrmError(
                f"cannot open the Dataverse router state file {self.path} ({exc}); give a "
                f"writable path with state=/path/file.sqlite in the CRM URL"
            ) from None

    @_serialised
    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- attempts ---------------------------------------------------------------------------

    @_serialised
    def attempts(self, activityids: Iterable[str]) -> dict[str, AttemptRecord]:
        """Records by lower-cased activity id."""
        ids = sorted({a.lower() for a in activityids if a})
        found: dict[str, AttemptRecord] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self.conn.execute(
                "SELECT activityid, attemptid, etag_before, etag_after, lasterror FROM attempt "
                f"WHERE activityid IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update({row[0]: AttemptRecord(*row[1:]) for row in rows})
        return found

    @_serialised
    def begin_claims(self, claims: Mapping[str, tuple[str, str]]) -> None:
        """Before the claim PATCHes: activityid -> (attemptid, the ETag the claim expects)."""
        with self.transaction() as conn:
            for activityid, (attemptid, etag) in claims.items():
                conn.execute(
                    "INSERT INTO attempt (activityid, attemptid, etag_before, etag_after) "
                    "VALUES (?, ?, ?, NULL) ON CONFLICT (activityid) DO UPDATE SET "
                    "attemptid = excluded.attemptid, etag_before = excluded.etag_before, "
                    "etag_after = NULL",
                    (activityid.lower(), attemptid, etag),
                )

    @_serialised
    def record_writes(
        self,
        written: Mapping[str, str | None],
        attempts: Mapping[str, str | None],
        errors: Mapping[str, str | None],
    ) -> None:
        """After PATCHes that succeeded: the new ETags, the attempt ids (None clears), and the
        last errors (absent: unchanged, "" or None in the mapping: cleared / set)."""
        with self.transaction() as conn:
            for activityid, etag in written.items():
                key = activityid.lower()
                conn.execute(
                    "INSERT INTO attempt (activityid) VALUES (?) ON CONFLICT DO NOTHING", (key,)
                )
                conn.execute(
                    "UPDATE attempt SET attemptid = ?, etag_after = ?, "
                    "etag_before = CASE WHEN ? IS NULL THEN NULL ELSE etag_before END "
                    "WHERE activityid = ?",
                    (attempts.get(activityid), etag, attempts.get(activityid), key),
                )
                if activityid in errors:
                    conn.execute(
                        "UPDATE attempt SET lasterror = ? WHERE activityid = ?",
                        (errors[activityid] or None, key),
                    )

    @_serialised
    def last_error(self, activityid: str) -> str | None:
        row = self.conn.execute(
            "SELECT lasterror FROM attempt WHERE activityid = ?", (activityid.lower(),)
        ).fetchone()
        return row[0] if row else None

    # -- tracking tokens ----------------------------------------------------------------------

    @_serialised
    def user_numbers(self, systemuserids: Iterable[str]) -> dict[str, int]:
        """The user number of each user (lower-cased keys), assigning new ones in order."""
        ids = list(dict.fromkeys(u.lower() for u in systemuserids if u))
        if not ids:
            return {}
        with self.transaction() as conn:
            found = dict(conn.execute("SELECT systemuserid, number FROM trackinguser").fetchall())
            highest = max(found.values(), default=0)
            for uid in ids:
                if uid not in found:
                    highest += 1
                    found[uid] = highest
                    conn.execute(
                        "INSERT INTO trackinguser (systemuserid, number) VALUES (?, ?)",
                        (uid, highest),
                    )
        return {uid: found[uid] for uid in ids}

    @_serialised
    def counters(self, systemuserids: Iterable[str]) -> dict[str, int]:
        ids = sorted({u.lower() for u in systemuserids})
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT systemuserid, lastnumber FROM trackingcounter "
            f"WHERE systemuserid IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
        return dict(rows)

    @_serialised
    def allocate(
        self, counts: Mapping[str, int], modulo: int, start: Mapping[str, int]
    ) -> dict[str, list[int]]:
        """Reserve *n* numbers per user; *start* is the last number for users never seen."""
        result: dict[str, list[int]] = {}
        with self.transaction() as conn:
            for uid, n in counts.items():
                key = uid.lower()
                row = conn.execute(
                    "SELECT lastnumber FROM trackingcounter WHERE systemuserid = ?", (key,)
                ).fetchone()
                last = int(row[0]) if row else int(start.get(key, 0))
                numbers = [(last + k) % modulo for k in range(1, n + 1)]
                conn.execute(
                    "INSERT OR REPLACE INTO trackingcounter (systemuserid, lastnumber) "
                    "VALUES (?, ?)",
                    (key, numbers[-1]),
                )
                result[uid] = numbers
        return result

    # -- smart matching -----------------------------------------------------------------------

    @_serialised
    def store_hashes(self, hashes: Mapping[str, EmailHashes]) -> None:
        rows = [
            (activityid, kind, int(value))
            for activityid, h in hashes.items()
            for kind, values in ((HASH_SUBJECT, h.subject), (HASH_ADDRESS, h.addresses))
            for value in values
        ]
        with self.transaction() as conn:
            conn.executemany("DELETE FROM emailhash WHERE activityid = ?", [(a,) for a in hashes])
            conn.executemany(
                "INSERT INTO emailhash (activityid, hashtype, hash) VALUES (?, ?, ?)", rows
            )

    @_serialised
    def hash_candidates(self, address_hashes: Iterable[int], limit: int) -> dict[str, EmailHashes]:
        """Emails sharing an address hash, the most recently stored first."""
        wanted = sorted({int(h) for h in address_hashes})
        if not wanted or limit <= 0:
            return {}
        ids = [
            row[0]
            for row in self.conn.execute(
                "SELECT activityid FROM emailhash WHERE hashtype = ? AND hash IN "
                f"({','.join('?' * len(wanted))}) GROUP BY activityid "
                "ORDER BY max(rowid) DESC LIMIT ?",
                [HASH_ADDRESS, *wanted, int(limit)],
            )
        ]
        found: dict[str, tuple[list[int], list[int]]] = {i: ([], []) for i in ids}
        if ids:
            for activityid, kind, value in self.conn.execute(
                "SELECT activityid, hashtype, hash FROM emailhash "
                f"WHERE activityid IN ({','.join('?' * len(ids))}) ORDER BY rowid",
                ids,
            ):
                found[activityid][0 if kind == HASH_SUBJECT else 1].append(value)
        return {a: EmailHashes(tuple(s), tuple(h)) for a, (s, h) in found.items()}

    # -- the org's metadata (crm/dataverse/metadata.py) ---------------------------------------

    @_serialised
    def schema_definitions(
        self, base_url: str, entities: Iterable[str], max_age: float
    ) -> dict[str, dict[str, Any]]:
        """The definitions read from this org and API version less than *max_age* s ago."""
        wanted = list(entities)
        if not wanted:
            return {}
        rows = self.conn.execute(
            "SELECT entity, definition FROM orgschema WHERE baseurl = ? AND readat >= ? AND "
            f"entity IN ({','.join('?' * len(wanted))})",
            [base_url.lower(), time.time() - max_age, *wanted],
        ).fetchall()
        return {entity: json.loads(definition) for entity, definition in rows}

    @_serialised
    def store_schema_definitions(
        self, base_url: str, definitions: Mapping[str, Mapping[str, Any]]
    ) -> None:
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO orgschema (baseurl, entity, readat, definition) "
                "VALUES (?, ?, ?, ?)",
                [
                    (base_url.lower(), entity, now, json.dumps(definition))
                    for entity, definition in definitions.items()
                ],
            )

    @_serialised
    def forget_schema(self, base_url: str) -> None:
        """Drop the cached metadata (the org refused a name it should have: it changed)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM orgschema WHERE baseurl = ?", (base_url.lower(),))

    # -- Thread-Index of the emails this router created ---------------------------------------

    @_serialised
    def store_thread_indexes(self, indexes: Mapping[str, str]) -> None:
        """``email.conversationindex`` is read-only (not valid for create, email.md): the
        Thread-Index of each email the router creates is kept here, so Thread-Index correlation
        can still compare conversations with those emails."""
        rows = [(a.lower(), v) for a, v in indexes.items() if a and v]
        if rows:
            with self.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO threadindex (activityid, conversationindex) "
                    "VALUES (?, ?)",
                    rows,
                )

    @_serialised
    def thread_indexes(self, activityids: Iterable[str]) -> dict[str, str]:
        ids = sorted({a.lower() for a in activityids if a})
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found.update(
                self.conn.execute(
                    "SELECT activityid, conversationindex FROM threadindex "
                    f"WHERE activityid IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
        return found


__all__ = ["AttemptRecord", "RouterState", "default_state_path"]
