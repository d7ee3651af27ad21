"""The send ledger: a write-ahead record of every send attempt, so no email is sent twice.

One row per attempt, keyed by its attempt id, moving through

    claimed   the attempt id and Message-ID are chosen; the CRM may or may not say Sending yet;
              nothing has been handed to a transport (safe to release back to Pending Send)
    sending   the message is being handed over; if the process dies here, nobody knows whether
              the server took it (the run after that says so instead of resending)
    sent      the transport accepted it (SMTP 250 after DATA, the .eml renamed into place)
    failed    the transport refused it; the CRM write of the outcome may still be due
    done      the CRM holds the outcome; the row is history

A run holds an exclusive lock on the ledger (``flock`` on ``<ledger>.lock``), so every attempt
that is not ``done`` when a run starts belongs to a run that died, and is reconciled at once.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.errors import RoutingError
from emailrouter_lib.files import open_sqlite, use_wal
from emailrouter_lib.routing.ledger import immediate_transaction

CLAIMED, SENDING, SENT, FAILED, DONE = "claimed", "sending", "sent", "failed", "done"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_attempt (
    attemptid  TEXT PRIMARY KEY,
    activityid TEXT NOT NULL,
    messageid  TEXT NOT NULL,
    transport  TEXT,
    state      TEXT NOT NULL,
    error      TEXT,
    run_id     TEXT,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS send_attempt_state ON send_attempt (state);
CREATE INDEX IF NOT EXISTS send_attempt_activityid ON send_attempt (activityid);
"""


@dataclass(frozen=True)
class Attempt:
    attemptid: str
    activityid: str
    messageid: str
    transport: str | None
    state: str
    error: str | None = None


class SendLedger:
    """One SQLite file beside the CRM (``<crm>.sendledger.sqlite``), locked while a run uses it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_file: int | None = None
        try:
            self._db = open_sqlite(self.path)
            use_wal(self._db)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise RoutingError(
                f"send ledger {self.path}: {exc}; check the path is writable, "
                "or pass another send_ledger"
            ) from None

    def lock(self) -> None:
        """Take the run lock, or fail at once naming the ledger (another run is sending)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RoutingError(
                f"another outgoing run holds {lock_path}; wait for it to finish (each email is "
                "sent by one run only)"
            ) from None
        self._lock_file = fd

    def open_attempts(self) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT attemptid, activityid, messageid, transport, state, error FROM send_attempt"
            " WHERE state <> ? ORDER BY updated_at",
            (DONE,),
        )
        return [Attempt(*row) for row in rows]

    def claim(self, attempts: Sequence[Attempt], run_id: str) -> None:
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO send_attempt (attemptid, activityid, messageid, transport, state,"
                " run_id, updated_at) VALUES (?,?,?,?,?,?,?)",
                [
                    (a.attemptid, a.activityid, a.messageid, a.transport, CLAIMED, run_id, now)
                    for a in attempts
                ],
            )

    def mark(self, attemptid: str, state: str, error: str | None = None) -> None:
        """One attempt's new state, committed before the caller goes on (one short write)."""
        with self._transaction():
            self._db.execute(
                "UPDATE send_attempt SET state = ?, error = coalesce(?, error), updated_at = ?"
                " WHERE attemptid = ?",
                (state, error, time.time(), attemptid),
            )

    def finish(self, attemptids: Iterable[str]) -> None:
        ids = list(attemptids)
        if not ids:
            return
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "UPDATE send_attempt SET state = ?, updated_at = ? WHERE attemptid = ?",
                [(DONE, now, i) for i in ids],
            )

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM send_attempt GROUP BY state"))

    def close(self) -> None:
        self._db.close()
        if self._lock_file is not None:
            os.close(self._lock_file)  # releases the flock
            self._lock_file = None

    def _transaction(self) -> immediate_transaction:
        return immediate_transaction(self._db)


__all__ = ["CLAIMED", "DONE", "FAILED", "SENDING", "SENT", "Attempt", "SendLedger"]
