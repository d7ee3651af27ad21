"""What a routing run produced: one row per message, one report per mailbox, and a summary.

The result renders itself in Jupyter (a summary and the first rows), prints a short summary in a
terminal, and writes the run's artifacts (summary.json, results.csv, report.html).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emailrouter_lib.routing.storable import storable_value
from emailrouter_lib.run_summary import RunRecord, run_summary

if TYPE_CHECKING:
    import pandas as pd

    from emailrouter_lib.routing.decide import Decision
    from emailrouter_lib.routing.outgoing import OutgoingRow
    from emailrouter_lib.routing.params import RoutingParams

# What a reader scans first comes first; identifiers for follow-up come last.
COLUMNS = [
    "outcome",
    "subject",
    "sender",
    "reason",
    "message_class",
    "correlation",
    "regarding",
    "mailbox",
    "item_key",
    "message_id",
    "activityid",
]


# Outgoing outcomes a person must look at: refused for good, or maybe delivered (never resent).
_FAILED_SENDS = ("failed", "uncertain")


def _own_words(report: MailboxReport) -> str:
    """The mailbox's error without the mailbox name it starts with (the line names it already)."""
    error = report.error or ""
    return error.removeprefix(f"{report.mailbox}: ")


@dataclass
class ResultRow:
    mailbox: str
    item_key: str
    message_id: str | None
    subject: str | None
    sender: str | None
    message_class: str | None
    outcome: str
    reason: str
    activityid: str | None
    correlation: str | None
    regarding: str | None

    @classmethod
    def from_decision(cls, mailbox: str, d: Decision) -> ResultRow:
        return cls(
            mailbox,
            d.key,
            d.message_id,
            d.subject,
            d.sender,
            d.message_class,
            d.outcome,
            d.reason,
            d.activityid,
            d.correlation,
            d.regarding,
        )


@dataclass
class MailboxReport:
    mailbox: str
    status: str = "ok"  # ok | error | interrupted | skipped
    error: str | None = None
    seen: int = 0
    already_done: int = 0
    recovered: int = 0  # half-done items finished after an earlier crash
    resumable: int = 0  # items left for the next run after an interruption
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            self.outcomes[d.outcome] = self.outcomes.get(d.outcome, 0) + 1


@dataclass
class RoutingResult:
    run_id: str
    params: RoutingParams
    started: datetime
    finished: datetime | None = None
    rows: list[ResultRow] = field(default_factory=list)
    mailboxes: list[MailboxReport] = field(default_factory=list)
    outgoing: list[OutgoingRow] = field(default_factory=list)  # one row per outgoing email
    warnings: list[str] = field(default_factory=list)  # not failures, but an admin must know

    @property
    def outgoing_table(self) -> pd.DataFrame:
        """The outgoing emails looked at: outcome (sent, retry, failed, ...), reason, ids."""
        import pandas as pd  # only when a table is asked for: start-up time

        from emailrouter_lib.routing.outgoing import OUTGOING_COLUMNS

        return pd.DataFrame([asdict(r) for r in self.outgoing], columns=OUTGOING_COLUMNS)

    @property
    def outgoing_counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.outgoing).most_common())

    @property
    def table(self) -> pd.DataFrame:
        import pandas as pd  # only when a table is asked for: start-up time

        return pd.DataFrame([asdict(r) for r in self.rows], columns=COLUMNS)[COLUMNS]

    @property
    def mailbox_table(self) -> pd.DataFrame:
        rows = [{**asdict(m), "outcomes": json.dumps(m.outcomes)} for m in self.mailboxes]
        import pandas as pd  # only when a table is asked for: start-up time

        return pd.DataFrame(rows)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the run by name (as every flow's result has them): the messages, the
        mailboxes and, when the run sent some, the outgoing emails."""
        return {
            "results": self.table,
            "mailboxes": self.mailbox_table,
            **({"outgoing": self.outgoing_table} if self.outgoing else {}),
        }

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.rows).most_common())

    @property
    def failed_mailboxes(self) -> list[MailboxReport]:
        """Mailboxes that could not be routed to the end (error or interrupted)."""
        return [m for m in self.mailboxes if m.status not in ("ok", "skipped")]

    @property
    def failures(self) -> list[str]:
        """What failed, one line each, naming the mailbox or the messages and why.

        A quarantined message and an email the server refused are failures too (each needs a
        person); a skipped class or a duplicate is not.
        """
        lines = [f"mailbox {m.mailbox}: {m.status}: {_own_words(m)}" for m in self.failed_mailboxes]
        quarantined = Counter(r.outcome for r in self.rows if r.outcome.startswith("quarantined"))
        lines += [f"{n} message(s) {outcome}" for outcome, n in quarantined.items()]
        refused = Counter(r.outcome for r in self.outgoing if r.outcome in _FAILED_SENDS)
        lines += [f"{n} outgoing email(s) {outcome}" for outcome, n in refused.items()]
        return lines

    @property
    def ok(self) -> bool:
        """True when no mailbox, message or outgoing email failed (the run exits 0)."""
        return not self.failures

    @property
    def totals(self) -> dict[str, int]:
        """The counts a person asks for first, in their words (the console's last line)."""
        outcomes = [r.outcome for r in self.rows]
        # (word, outcome): a dry run counts what a real run would have done, in the same order
        if self.dry_run:
            created = ("would create", "would-create")
            quarantined = ("would quarantine", "would-quarantine")
        else:
            created, quarantined = ("created", "created"), ("quarantined", "quarantined")
        totals = {
            created[0]: outcomes.count(created[1]),
            "duplicates": outcomes.count("duplicate"),
            "skipped": sum(1 for o in outcomes if o.startswith(("skipped", "filtered"))),
            quarantined[0]: sum(1 for o in outcomes if o.startswith(quarantined[1])),
            "invalid forwards": outcomes.count("invalid-forward"),
            "failed mailboxes": len(self.failed_mailboxes),
        }
        if self.outgoing:
            sent = [r.outcome for r in self.outgoing]
            totals["sent"] = sent.count("sent")
            totals["failed sends"] = sum(1 for o in sent if o in _FAILED_SENDS)
        return totals

    @property
    def dry_run(self) -> bool:
        """True for a dry run (``routing.dry_run``): the rows say what a real run would do."""
        return bool(getattr(self.params, "dry_run", False))

    @property
    def summary(self) -> dict[str, Any]:
        """The one summary schema (``run_summary``); routing's own keys under ``details``."""
        run = RunRecord(
            "routing", self.run_id, self.started, self.finished, self.params.fingerprint()
        )
        return run_summary(
            run,
            counts=self.counts,
            totals=self.totals,
            ok=self.ok,
            dry_run=self.dry_run,
            failures=self.failures,
            warnings=self.warnings,
            details={
                "crm": self.params.crm,
                "messages": len(self.rows),
                "outgoing_counts": self.outgoing_counts,
                "mailboxes": [
                    {k: v for k, v in asdict(m).items() if k != "outcomes"}
                    | {"outcomes": m.outcomes}
                    for m in self.mailboxes
                ],
            },
        )

    def write_artifacts(self, run_dir: str | Path) -> dict[str, Path]:
        """summary.json, results.csv, mailboxes.csv and report.html in *run_dir*."""
        # Here, not at the top: pandas and matplotlib load only when artifacts are written
        # (start-up time of a cron run, benchmarks/startup.py).
        from emailrouter_lib.reports.artifacts import write_run_artifacts
        from emailrouter_lib.routing.report import routing_page

        # Written after the CRM and the ledger committed: one message's text must never cost the
        # run its record, so every string is made storable here too (decide already did).
        summary = storable_value(self.summary)
        if not self.outgoing:  # a reused run folder must not keep an earlier run's emails
            (Path(run_dir) / "outgoing.csv").unlink(missing_ok=True)
        tables = self.tables()
        # The page (failures first, words for people) is built in the reports layer; its
        # messages' text is made storable like the files'.
        page = {
            key: (
                {name: frame.map(storable_value) for name, frame in value.items()}
                if key == "report_tables"
                else value
                if key == "figures"
                else storable_value(value)
            )
            for key, value in routing_page(self).items()
        }
        return write_run_artifacts(
            Path(run_dir),
            summary=summary,
            **page,
            tables={name: frame.map(storable_value) for name, frame in tables.items()},
            title=f"Routing batch {self.run_id}",
        )

    def __str__(self) -> str:
        lines = [f"routing run {self.run_id}: {len(self.rows)} message(s)"]
        lines += [f"  {outcome:<32} {n}" for outcome, n in self.counts.items()]
        if self.outgoing or "outgoing" in getattr(self.params, "directions", ()):
            lines.append(f"outgoing: {len(self.outgoing)} email(s)")
            lines += [f"  {outcome:<32} {n}" for outcome, n in self.outgoing_counts.items()]
        for m in self.mailboxes:
            state = m.status if m.status == "ok" else f"{m.status}: {_own_words(m)}"
            if m.recovered:
                state += f"; finished {m.recovered} item(s) an interrupted run left half done"
            if m.resumable:
                state += f"; {m.resumable} item(s) left for the next run"
            lines.append(f"  mailbox {m.mailbox}: {state}")
        shown = ", ".join(f"{n} {name}" for name, n in self.totals.items())
        verdict = "ok" if self.ok else "FAILED"
        if self.dry_run:
            verdict += " (dry run, nothing changed)"
        lines.append(f"{verdict}: {shown}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from emailrouter_lib.routing.report import routing_html

        return routing_html(self)
