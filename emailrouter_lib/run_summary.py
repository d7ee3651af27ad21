"""One ``summary.json`` schema for every flow: the same top-level keys, the flow's own under
``details``.

A scheduler, a dashboard or the runner reads any run's summary the same way: which flow, which
run, when, with which parameters (a hash), what it counted, whether it is ok, what failed and
what an admin should know. What only one flow has (routing's per-mailbox table, the audit's
message classes, the migration's planned actions) sits under ``details``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emailrouter_lib.parameters import FlowParameters

SUMMARY_KEYS = (
    "flow",
    "run_id",
    "library_version",
    "started",
    "finished",
    "seconds",
    "parameters_hash",
    "dry_run",
    "counts",
    "totals",
    "ok",
    "failures",
    "warnings",
    "details",
)


def new_run_id() -> str:
    """``20261204T181500Z-1a2b3c``: sortable by time, unique across hosts."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


@dataclass
class RunRecord:
    """When a flow's run started and finished, its id and its parameters' hash."""

    flow: str
    run_id: str = field(default_factory=new_run_id)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None
    parameters_hash: str | None = None

    @classmethod
    def begin(cls, flow: str, params: FlowParameters, *, run_id: str | None = None) -> RunRecord:
        """Now, with the flow's declared parameters' own hash (``FlowParameters.fingerprint``)."""
        return cls(flow, run_id or new_run_id(), parameters_hash=params.fingerprint())

    def finish(self) -> RunRecord:
        self.finished = datetime.now(UTC)
        return self


def run_summary(
    run: RunRecord,
    *,
    counts: Mapping[str, Any],
    ok: bool,
    dry_run: bool = False,
    totals: Mapping[str, Any] | None = None,
    failures: Iterable[str] = (),
    warnings: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of one run, with exactly :data:`SUMMARY_KEYS` at the top."""
    import emailrouter_lib

    seconds = (run.finished - run.started).total_seconds() if run.finished else None
    summary = {
        "flow": run.flow,
        "run_id": run.run_id,
        "library_version": emailrouter_lib.__version__,
        "started": run.started.isoformat(),
        "finished": run.finished.isoformat() if run.finished else None,
        "seconds": round(seconds, 3) if seconds is not None else None,
        "parameters_hash": run.parameters_hash,
        "dry_run": bool(dry_run),
        "counts": dict(counts),
        "totals": dict(counts if totals is None else totals),
        "ok": bool(ok),
        "failures": list(failures),
        "warnings": list(warnings),
        "details": dict(details or {}),
    }
    return summary


def closing_line(summary: Mapping[str, Any], *, ok: bool) -> str:
    """The last console line, the one a cron mail shows first: the verdict and the counts.

    ``totals`` are the counts in a person's words (routing: created, duplicates, skipped,
    quarantined, failed mailboxes); a summary without them shows its flat ``counts``.
    """
    counts = summary.get("totals") or summary.get("counts") or {}
    shown = ", ".join(
        f"{value} {name}"
        for name, value in counts.items()
        if isinstance(value, int) and not isinstance(value, bool)
    )
    verdict = "ok" if ok else "FAILED (exit 1)"
    return f"{verdict}: {shown}" if shown else verdict


def verdict_lines(summary: Mapping[str, Any]) -> list[str]:
    """What a person checks first in any run, from its summary: the runner's closing line, then
    each failure and each warning (the notebooks' last cell prints these)."""
    verdict = closing_line(summary, ok=bool(summary.get("ok")))
    if summary.get("dry_run"):
        verdict += " (dry run, nothing changed)"
    lines = [verdict]
    lines += [f"failed: {line}" for line in summary.get("failures") or []]
    lines += [f"warning: {line}" for line in summary.get("warnings") or []]
    return lines


__all__ = [
    "SUMMARY_KEYS",
    "RunRecord",
    "closing_line",
    "new_run_id",
    "run_summary",
    "verdict_lines",
]
