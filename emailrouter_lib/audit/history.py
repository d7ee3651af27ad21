"""Past routing runs, as the exactly-once ledger remembers them, read without changing it.

The ledger (:mod:`emailrouter_lib.routing.ledger`) records every item a routing run handled, with
its outcome and run id. The audit opens it read-only (a missing ledger is not created) and asks
two things per mailbox: which item keys are already known, so the rest count as unprocessed, and
how the newest run's items ended.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class LastRun:
    run_id: str
    finished: datetime
    outcomes: dict[str, int] = field(default_factory=dict)  # outcome kind → items

    @property
    def text(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self.outcomes.items())


class LedgerView:
    """Read-only access to a routing ledger, shared by the audit's worker threads."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            try:
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
                self._db.execute("SELECT 1 FROM ledger_item LIMIT 1")
            except sqlite3.Error:
                self.close()

    @property
    def available(self) -> bool:
        return self._db is not None

    def known_keys(self, mailbox_id: str) -> set[str]:
        if self._db is None:
            return set()
        with self._lock:
            rows = self._db.execute(
                "SELECT item_key FROM ledger_item WHERE mailbox_id = ?", (mailbox_id,)
            ).fetchall()
        return {row[0] for row in rows}

    def last_run(self, mailbox_id: str) -> LastRun | None:
        if self._db is None:
            return None
        with self._lock:
            newest = self._db.execute(
                "SELECT run_id, max(updated_at) FROM ledger_item WHERE mailbox_id = ?"
                " GROUP BY run_id ORDER BY 2 DESC LIMIT 1",
                (mailbox_id,),
            ).fetchone()
            if newest is None or newest[0] is None:
                return None
            rows = self._db.execute(
                "SELECT outcome, count(*) FROM ledger_item WHERE mailbox_id = ? AND run_id = ?"
                " GROUP BY outcome",
                (mailbox_id, newest[0]),
            ).fetchall()
        kinds: Counter[str] = Counter()
        for outcome, count in rows:
            kinds[outcome.split(":", 1)[0]] += count
        finished = datetime.fromtimestamp(newest[1], UTC)
        return LastRun(newest[0], finished, dict(kinds.most_common()))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
