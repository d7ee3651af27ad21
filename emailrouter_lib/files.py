"""The project's own files: written whole or not at all, and SQLite files opened one way.

**Atomic writes** (:func:`write_atomically`, :func:`replacing`).

A reader must never see half a file: the router service re-reads its configuration every few
seconds, an admin opens a report while the next run writes it, and a crash mid-write must not
leave a truncated quarantine copy under the message's name. So the bytes go to a new temporary
file in the same folder (same file system, so the rename is atomic), which then replaces the
target in one ``os.replace``. An existing file keeps its permission bits. This protects against
a crash of the process, not against a power cut (no fsync: the ledgers, not these files, are
what the exactly-once guarantee rests on).

**SQLite files** (:func:`open_sqlite`): the ledgers, the send ledger, the Dataverse state file
and the embedded CRM are opened the same way: autocommit (each module writes its own
``BEGIN IMMEDIATE`` transactions), a busy timeout, and write-ahead logging so that readers never
wait for a writer. Two processes opening a new file at the same moment (two cron runs started
together) race to switch it to WAL; SQLite answers that switch "database is locked" at once
instead of waiting out the busy timeout, so it is retried here until the timeout.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside *path* (same suffix, for writers that look at it, like
    openpyxl); when the block ends without an error it replaces *path*, else it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    # Created 0666 less the umask, as any new file (mkstemp's 0600 would need the umask read
    # back, and os.umask is process-wide: not safe beside the mailbox threads writing files).
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace *path* with *data* (text is written as UTF-8, newlines as given); return it."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with replacing(path) as temporary:
        temporary.write_bytes(payload)
    return Path(path)


def open_sqlite(
    path: str | os.PathLike[str], *, timeout: float = 30.0, check_same_thread: bool = True
) -> sqlite3.Connection:
    """An autocommit connection to *path* (its folder made), with a busy timeout of *timeout*
    seconds; call :func:`use_wal` once the file is known to be this project's."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread
    )


def use_wal(conn: sqlite3.Connection, *, timeout: float = 30.0) -> None:
    """Write-ahead logging and ``synchronous=NORMAL`` (durable at each checkpoint, never
    corrupt), retrying the switch while another connection holds the file (see above)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    conn.execute("PRAGMA synchronous = NORMAL")


__all__ = ["open_sqlite", "replacing", "use_wal", "write_atomically"]
