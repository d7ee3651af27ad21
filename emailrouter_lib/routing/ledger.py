"""The exactly-once ledger: what has been done with each mailbox item.

A write-ahead record per item, keyed by (mailbox id, item key), moves through three states:

    pending    the outcome is decided and, for ``created``, the activity id chosen; the CRM
               write may or may not have committed (a crash here is repaired by asking the
               CRM for that id)
    committed  the CRM write is durable; the source item may still need deleting or moving
    done       the source item has been handled; the item is never looked at again

Kept in its own SQLite file beside the CRM, so the same ledger works whatever the CRM backend is.
The file also holds the mailbox leases (``routing.lease``): a run routes a mailbox only under its
lease, and each of its writes for that mailbox checks, in the same transaction, that the lease is
still its own (the fencing token), so two runs never interleave on one mailbox, not just within
one write transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.errors import RoutingError
from emailrouter_lib.files import open_sqlite, use_wal
from emailrouter_lib.routing.lease import Lease, LeaseOwner, SqliteLeases

PENDING, COMMITTED, DONE = "pending", "committed", "done"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_item (
    mailbox_id  TEXT NOT NULL,
    item_key    TEXT NOT NULL,
    state       TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    message_id  TEXT,
    activityid  TEXT,
    source_action TEXT,
    run_id      TEXT,
    updated_at  REAL NOT NULL,
    fencing_token INTEGER,
    PRIMARY KEY (mailbox_id, item_key)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class LedgerEntry:
    mailbox_id: str
    item_key: str
    state: str
    outcome: str
    reason: str | None
    message_id: str | None
    activityid: str | None
    source_action: str | None  # what to do with the source item once committed


class Ledger:
    """One SQLite file; every write is one short transaction over a whole batch, fenced by the
    mailbox's lease when this connection holds one (:meth:`acquire`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = open_sqlite(self.path)
            use_wal(self._db)
            self._db.executescript(_SCHEMA)
            self._add_fencing_column()
            self.leases = SqliteLeases(self._db, self._transaction)
        except sqlite3.Error as exc:
            raise RoutingError(
                f"ledger {self.path}: {exc}; check the path is writable, or pass another --ledger"
            ) from None
        self._held: dict[str, tuple[Lease, float]] = {}  # mailbox id -> (lease, its duration)

    @classmethod
    @contextmanager
    def lease_store(cls, path: str | Path) -> Iterator[SqliteLeases]:
        """The leases of the ledger at *path* on a connection of their own (for a renewing
        thread: a SQLite connection belongs to the thread that opened it)."""
        ledger = cls(path)
        try:
            yield ledger.leases
        finally:
            ledger.close()

    def acquire(self, mailbox_id: str, owner: LeaseOwner, seconds: float) -> Lease:
        """Take the mailbox's lease (``LeaseHeldError`` while another run's is live); from now
        on every write of this connection for the mailbox is fenced by it and renews it."""
        try:
            lease = self.leases.acquire(mailbox_id, owner, seconds)
        except sqlite3.Error as exc:
            raise RoutingError(
                f"ledger {self.path}: cannot take the lease of mailbox {mailbox_id} ({exc});"
                " check the file is writable and not on a network share, then run again"
            ) from None
        self._held[mailbox_id] = (lease, seconds)
        return lease

    def release(self, lease: Lease) -> None:
        """Give the lease up; if the file cannot be written now, the lease simply expires."""
        self._held.pop(lease.mailbox_id, None)
        with suppress(sqlite3.Error):
            self.leases.release(lease)

    def _fence(self, mailbox_ids: Iterable[str]) -> int | None:
        """Inside a write transaction: refuse (``LeaseLostError``) unless this connection still
        holds the lease of each mailbox it holds one for, renewing it; its fencing token."""
        token = None
        for mailbox_id in set(mailbox_ids):
            held = self._held.get(mailbox_id)
            if held is not None:
                lease, seconds = held
                token = self.leases.check(lease, extend=seconds).token
        return token

    def _add_fencing_column(self) -> None:
        """Ledgers written before leases lack the column: add it (NULL for their entries)."""
        with self._transaction():  # two runs starting at once: the second sees the column
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(ledger_item)")}
            if "fencing_token" not in columns:
                self._db.execute("ALTER TABLE ledger_item ADD COLUMN fencing_token INTEGER")

    def entries(self, mailbox_id: str) -> dict[str, LedgerEntry]:
        rows = self._db.execute(
            "SELECT mailbox_id, item_key, state, outcome, reason, message_id, activityid,"
            " source_action FROM ledger_item WHERE mailbox_id = ?",
            (mailbox_id,),
        )
        return {row[1]: LedgerEntry(*row) for row in rows}

    def write(self, entries: Sequence[LedgerEntry], run_id: str) -> None:
        """Insert or replace the entries in one transaction."""
        if not entries:
            return
        now = time.time()
        with self._transaction():
            token = self._fence(e.mailbox_id for e in entries)
            self._db.executemany(
                "INSERT OR REPLACE INTO ledger_item (mailbox_id, item_key, state, outcome, reason,"
                " message_id, activityid, source_action, run_id, updated_at, fencing_token)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        e.mailbox_id,
                        e.item_key,
                        e.state,
                        e.outcome,
                        e.reason,
                        e.message_id,
                        e.activityid,
                        e.source_action,
                        run_id,
                        now,
                        token,
                    )
                    for e in entries
                ],
            )

    def advance(self, mailbox_id: str, keys: Iterable[str], state: str) -> None:
        keys = list(keys)
        if not keys:
            return
        now = time.time()
        with self._transaction():
            self._fence([mailbox_id])
            self._db.executemany(
                "UPDATE ledger_item SET state = ?, updated_at = ?"
                " WHERE mailbox_id = ? AND item_key = ?",
                [(state, now, mailbox_id, key) for key in keys],
            )

    def forget(self, mailbox_id: str, keys: Iterable[str]) -> None:
        """Drop entries whose CRM write never committed, so the items are processed afresh."""
        with self._transaction():
            self._fence([mailbox_id])
            self._db.executemany(
                "DELETE FROM ledger_item WHERE mailbox_id = ? AND item_key = ?",
                [(mailbox_id, key) for key in keys],
            )

    def _transaction(self) -> immediate_transaction:  # also the leases' transaction
        return immediate_transaction(self._db)

    def close(self) -> None:
        self._db.close()


class immediate_transaction:
    """One write transaction on a ledger file, taken at once: writers queue, one at a time."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
