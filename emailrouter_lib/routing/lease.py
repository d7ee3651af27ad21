"""One worker per mailbox at a time: a lease per mailbox, with an owner, an expiry and a fencing
token (reference/scale-research.md §3: the design the PostgreSQL ledger will use too).

A run *acquires* a mailbox's lease before it reads the mailbox's ledger entries and gives it up
when the mailbox is done. While another run's lease is live (not expired, not released), the
mailbox is skipped: two cron runs that overlap, or the notebook during cron, never route the same
mailbox at once. A run that dies keeps its lease until it expires; the next run after that takes
the mailbox over, and its crash recovery finishes what was left pending.

A lease can expire under a run that is still alive (the process was stopped, swapped out, or
hung on a server for longer than the lease). Each grant therefore increments the mailbox's
*fencing token*, and every ledger write of a run names the token it holds: a write with a token
that is no longer the mailbox's, or under a lease that has expired, is refused
(:class:`~emailrouter_lib.errors.LeaseLostError`), so a run that lost its lease stops before it
acts on stale decisions. The CRM, which cannot check tokens, has its own second line of defence:
one received email per Message-ID (``crm.sqlite.SqliteCrm.create_emails``).

:class:`LeaseStore` is the interface; :class:`SqliteLeases` keeps the leases in the ledger's own
SQLite file, so a fenced ledger write checks the token in the same transaction as it writes. A
PostgreSQL store follows the same protocol with ``UPDATE … RETURNING fencing_token`` to grant and
``EXISTS (… FOR SHARE)`` to guard a write. Expiry uses this machine's wall clock, which is the one
clock every run sharing a SQLite ledger file reads (the PostgreSQL store uses the server's
``now()`` instead).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from emailrouter_lib.errors import EmailRouterError, LeaseHeldError, LeaseLostError

DEFAULT_LEASE_SECONDS = 300.0  # five minutes: server-side sync's own cadence

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS mailbox_lease (
    mailbox_id    TEXT PRIMARY KEY,
    run_id        TEXT,
    host          TEXT,
    pid           INTEGER,
    fencing_token INTEGER NOT NULL DEFAULT 0,
    acquired_at   REAL,
    expires_at    REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: the run, and the process on which host, so an admin can find it."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls, run_id: str) -> LeaseOwner:
        return cls(run_id, socket.gethostname(), os.getpid())

    def __str__(self) -> str:
        return f"run {self.run_id} on {self.host} pid {self.pid}"


@dataclass(frozen=True)
class Lease:
    """A granted lease: valid while ``token`` is the mailbox's token and ``expires_at`` is ahead."""

    mailbox_id: str
    owner: LeaseOwner
    token: int
    expires_at: float  # seconds since the epoch

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds")
        return f"held by {self.owner} until {until} (fencing token {self.token})"


class LeaseStore(Protocol):
    """Where the mailbox leases live; the ledger guards its writes with :meth:`check`."""

    def acquire(self, mailbox_id: str, owner: LeaseOwner, seconds: float) -> Lease:
        """Grant the lease with the next fencing token, or raise :class:`LeaseHeldError` while
        another lease on the mailbox is live."""
        ...

    def renew(self, lease: Lease, seconds: float) -> Lease:
        """Extend a lease still held; :class:`LeaseLostError` when it expired or was taken over."""
        ...

    def release(self, lease: Lease) -> None:
        """Give the lease up (expire it now) if it is still held; the token stays, so the next
        grant's token is higher."""
        ...


class SqliteLeases:
    """Leases in a SQLite file (the ledger's); every call is one ``BEGIN IMMEDIATE`` transaction.

    *transaction* opens the write transaction of the connection; a ledger write calls
    :meth:`check` inside its own transaction instead, so the token check and the write commit
    together (SQLite has one writer at a time, so no grant can slip between them).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        transaction: Callable[[], AbstractContextManager[object]],
        clock: Callable[[], float] = time.time,
    ):
        self._db = db
        self._transaction = transaction
        self._clock = clock
        db.executescript(LEASE_SCHEMA)

    def acquire(self, mailbox_id: str, owner: LeaseOwner, seconds: float) -> Lease:
        with self._transaction():
            now = self._clock()
            current = self._current(mailbox_id)
            if current is not None and current.expires_at > now:
                raise LeaseHeldError(  # the mailbox's report row names the mailbox
                    f"{current.describe()}; that run routes this mailbox, or the next run once"
                    " the lease expired",
                    holder=current,
                )
            token = (current.token if current else 0) + 1
            lease = Lease(mailbox_id, owner, token, now + seconds)
            self._db.execute(
                "INSERT OR REPLACE INTO mailbox_lease (mailbox_id, run_id, host, pid,"
                " fencing_token, acquired_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                (mailbox_id, owner.run_id, owner.host, owner.pid, token, now, lease.expires_at),
            )
        return lease

    def renew(self, lease: Lease, seconds: float) -> Lease:
        with self._transaction():
            return self.check(lease, extend=seconds)

    def release(self, lease: Lease) -> None:
        with self._transaction():
            self._set_expiry(lease, self._clock())

    def check(self, lease: Lease, *, extend: float | None = None) -> Lease:
        """Inside the caller's write transaction: refuse unless *lease* is still the mailbox's
        live lease; with *extend*, renew it in the same transaction."""
        now = self._clock()
        current = self._current(lease.mailbox_id)
        if current is None or current.token != lease.token or current.expires_at <= now:
            raise LeaseLostError(_lost(lease, current, now))
        if extend is None:
            return current
        renewed = replace(current, expires_at=now + extend)
        self._set_expiry(lease, renewed.expires_at)
        return renewed

    def _set_expiry(self, lease: Lease, expires_at: float) -> None:
        self._db.execute(
            "UPDATE mailbox_lease SET expires_at = ? WHERE mailbox_id = ? AND fencing_token = ?",
            (expires_at, lease.mailbox_id, lease.token),
        )

    def holder(self, mailbox_id: str) -> Lease | None:
        """The mailbox's last lease (live or not), for reports and tests."""
        return self._current(mailbox_id)

    def _current(self, mailbox_id: str) -> Lease | None:
        row = self._db.execute(
            "SELECT run_id, host, pid, fencing_token, expires_at FROM mailbox_lease"
            " WHERE mailbox_id = ?",
            (mailbox_id,),
        ).fetchone()
        if row is None:
            return None
        run_id, host, pid, token, expires_at = row
        return Lease(mailbox_id, LeaseOwner(run_id or "", host or "", pid or 0), token, expires_at)


def _lost(lease: Lease, current: Lease | None, now: float) -> str:
    mine = f"{lease.owner} lost its lease on mailbox {lease.mailbox_id} (token {lease.token})"
    if current is not None and current.token != lease.token:
        why = f"it expired and was taken over: {current.describe()}"
    elif current is not None and current.expires_at <= now:
        why = (
            "it expired before this write (the run was paused, or could not renew it, for"
            " longer than the lease lasts)"
        )
    else:
        why = "no lease is recorded for the mailbox"
    return (
        f"{mine}: {why}; the ledger write was refused and this run stopped routing the mailbox;"
        " nothing is lost: the lease holder or the next run finishes it"
    )


class LeaseKeeper:
    """Renews a lease in the background every third of its duration while a mailbox is routed,
    so one slow step (a throttled CRM write, a large fetch) does not let the lease expire under a
    live run. Each renewal opens its own connection: the run's connection belongs to its thread.

    It stops once the lease is lost (the run's next fenced ledger write refuses then); a renewal
    that fails otherwise (the file busy past its timeout) is tried again at the next beat.
    """

    def __init__(self, open_store: Callable[[], AbstractContextManager[LeaseStore]]):
        self._open_store = open_store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def keep(self, lease: Lease, seconds: float) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(lease, seconds), name=f"lease {lease.mailbox_id}", daemon=True
        )
        self._thread.start()

    def _loop(self, lease: Lease, seconds: float) -> None:
        while not self._stop.wait(seconds / 3):
            try:
                with self._open_store() as store:
                    lease = store.renew(lease, seconds)
            except LeaseLostError:
                return
            except (EmailRouterError, sqlite3.Error):
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
