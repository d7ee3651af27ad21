"""What an audit found: one row per mailbox, the findings, and an organisation summary.

The result renders itself in Jupyter (summary and first rows), prints a short text in a terminal,
and writes its artifacts: ``report.html`` (summary first, plots, sortable tables; problems at the
top so the cut-off for very large audits drops healthy rows), ``audit.xlsx`` and one CSV per table
with every row, and ``summary.json``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from emailrouter_lib.audit.crm_view import APPROVAL, DELIVERY, EMAIL_STATUS, CrmMailbox, label
from emailrouter_lib.audit.probe import Probe
from emailrouter_lib.audit.rule_check import RuleCheck, rule_counts
from emailrouter_lib.audit.targets import Target
from emailrouter_lib.findings import Finding
from emailrouter_lib.mail.classify import is_tracked
from emailrouter_lib.run_summary import RunRecord, run_summary

# Worst first: the report's tables are sorted by this, and cut after the first rows.
STATE_ORDER = (
    "error",
    "auth-failed",
    "unreachable",
    "throttled",
    "tls-failed",
    "skipped",
    "not-checked",
    "ok",
)
FINE_STATES = ("ok", "skipped", "not-checked")  # anything else failed, and heads the report
HTML_ROWS = 1000  # rows per table in report.html; the CSV and Excel files hold every row

# What a mailbox row shows; the other columns are in the row's details.
REPORT_COLUMNS = ["state", "mailbox", "name", "error", "items", "unprocessed", "oldest_unprocessed"]
COUNT_COLUMNS = ("items", "unprocessed", "in_window", "tracked", "untracked")
MAILBOX_COLUMNS = [
    "state",
    "mailbox",
    "kind",
    "name",
    "error",
    "items",
    "unprocessed",
    "oldest_unprocessed",
    "oldest_unprocessed_subject",
    "in_window",
    "tracked",
    "untracked",
    "sampled",
    "classes_from",
    "forward_rule",
    "forward_rule_detail",
    "last_run",
    "last_run_outcomes",
    "incoming_delivery",
    "outgoing_delivery",
    "approval",
    "incoming_status",
    "outgoing_status",
    "disabled",
    "named_by",
    "connection",
    "seconds",
]


@dataclass
class AuditRow:
    target: Target
    probe: Probe
    crm: CrmMailbox | None
    rule: RuleCheck | None = None  # forward-delivery mailboxes only: our inbox rule there

    def record(self) -> dict[str, Any]:
        t, p, c = self.target, self.probe, self.crm
        last = p.last_run
        return {
            "state": p.state,
            "mailbox": t.address or t.shown,
            "kind": t.kind,
            "name": c.name if c else None,
            "error": p.error,
            "items": p.items,
            "unprocessed": p.unprocessed,
            "oldest_unprocessed": _when(p.oldest_unprocessed),
            "oldest_unprocessed_subject": p.oldest_unprocessed_subject,
            "in_window": p.in_window,
            "tracked": p.tracked,
            "untracked": p.untracked,
            "sampled": p.sampled if p.items is not None else None,
            "classes_from": p.classes_from,
            "forward_rule": self.rule.state if self.rule else None,
            "forward_rule_detail": self.rule.detail if self.rule else None,
            "last_run": last.run_id if last else None,
            "last_run_outcomes": last.text if last else None,
            "incoming_delivery": label(DELIVERY, c.incoming) if c and c.kind != "forward" else None,
            "outgoing_delivery": label(DELIVERY, c.outgoing) if c and c.kind != "forward" else None,
            "approval": label(APPROVAL, c.approval) if c else None,
            "incoming_status": label(EMAIL_STATUS, c.incoming_status) if c else None,
            "outgoing_status": label(EMAIL_STATUS, c.outgoing_status) if c else None,
            "disabled": c.disabled if c else None,
            "named_by": "; ".join(t.origins),
            "connection": p.mailbox_id or t.shown,
            "seconds": p.seconds,
        }


@dataclass
class AuditResult:
    run_id: str
    started: datetime
    since: datetime | None
    tracked_classes: list[str]
    rows: list[AuditRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    finished: datetime | None = None
    crm: str | None = None
    ledger: str | None = None
    concurrency: int = 1
    migration_plan: str | None = None
    limits: list[str] = field(default_factory=list)
    rule_name: str | None = None  # the forward rule checked in forward-delivery mailboxes
    parameters_hash: str | None = None

    # -- tables ----------------------------------------------------------------------------

    @property
    def table(self) -> pd.DataFrame:
        """One row per mailbox, worst state first."""
        frame = pd.DataFrame([r.record() for r in self.rows], columns=MAILBOX_COLUMNS)
        for column in COUNT_COLUMNS:
            frame[column] = frame[column].astype("Int64")  # whole numbers, blank when unknown
        rank = {state: n for n, state in enumerate(STATE_ORDER)}
        order = sorted(
            range(len(frame)),
            key=lambda i: (rank.get(frame.at[i, "state"], -1), str(frame.at[i, "mailbox"])),
        )
        return frame.iloc[order].reset_index(drop=True)

    @property
    def findings_table(self) -> pd.DataFrame:
        rows = [
            {"severity": f.severity, "code": f.code, "mailbox": f.where, "message": f.message}
            for f in self.findings
        ]
        frame = pd.DataFrame(rows, columns=["severity", "code", "mailbox", "message"])
        return frame.sort_values(["severity", "code", "mailbox"], ascending=[False, True, True])

    @property
    def classes_table(self) -> pd.DataFrame:
        rows = [
            {
                "mailbox": r.target.address or r.target.shown,
                "message_class": name,
                "tracked": is_tracked(name, self.tracked_classes),
                "items": count,
            }
            for r in self.rows
            for name, count in sorted(r.probe.classes.items())
        ]
        return pd.DataFrame(rows, columns=["mailbox", "message_class", "tracked", "items"])

    @property
    def last_runs_table(self) -> pd.DataFrame:
        rows = [
            {
                "mailbox": r.target.address or r.target.shown,
                "run_id": r.probe.last_run.run_id,
                "finished": _when(r.probe.last_run.finished),
                "outcome": outcome,
                "items": count,
            }
            for r in self.rows
            if r.probe.last_run
            for outcome, count in r.probe.last_run.outcomes.items()
        ]
        return pd.DataFrame(rows, columns=["mailbox", "run_id", "finished", "outcome", "items"])

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the audit by name (as every flow's result has them)."""
        return {
            "mailboxes": self.table,
            "findings": self.findings_table,
            "message_classes": self.classes_table,
            "last_runs": self.last_runs_table,
        }

    # -- summary ---------------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """Mailboxes by state, worst first."""
        found = Counter(r.probe.state for r in self.rows)
        return {s: found[s] for s in (*STATE_ORDER, *sorted(found)) if found.get(s)}

    @property
    def rule_counts(self) -> dict[str, int]:
        """Forward rules of forward-delivery mailboxes by state: present, missing, altered..."""
        return rule_counts([r.rule for r in self.rows])

    @property
    def class_mix(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in self.rows:
            total.update(r.probe.classes)
        return dict(total.most_common())

    @property
    def ok(self) -> bool:
        """True when every mailbox that was tried answered."""
        return all(r.probe.state in FINE_STATES for r in self.rows)

    def _total(self, name: str) -> int:
        return sum(getattr(r.probe, name) or 0 for r in self.rows)

    @property
    def summary(self) -> dict[str, Any]:
        """The one summary schema (``run_summary``); the audit's own keys under ``details``."""
        run = RunRecord("audit", self.run_id, self.started, self.finished, self.parameters_hash)
        return run_summary(
            run,
            counts=self.counts,
            ok=self.ok,
            # which mailboxes did not answer, and why: what the runner prints (exit 1)
            failures=[
                f"mailbox {r.target.address or r.target.shown}: {r.probe.state}: {r.probe.error}"
                for r in self.rows
                if r.probe.state not in ("ok", "skipped", "not-checked")
            ],
            details={
                "since": self.since.isoformat() if self.since else None,
                "crm": self.crm,
                "ledger": self.ledger,
                "max_concurrency": self.concurrency,
                "mailboxes": len(self.rows),
                "items": self._total("items"),
                "unprocessed": self._total("unprocessed"),
                "in_window": self._total("in_window"),
                "tracked": self._total("tracked"),
                "untracked": self._total("untracked"),
                "message_classes": self.class_mix,
                "forward_rules": self.rule_counts,
                "rule_name": self.rule_name,
                "findings": dict(Counter(f.severity for f in self.findings).most_common()),
                "migration_plan": self.migration_plan,
                "limits": self.limits,
            },
        )

    def report_summary(self) -> dict[str, Any]:
        """What a person reads first, in that order (summary.json has the rest)."""
        from emailrouter_lib.reports.labels import message_class_label

        window = f"since {self.since:%Y-%m-%d %H:%M} UTC" if self.since else "all items"
        summary: dict[str, Any] = {
            "failed_mailboxes": len(self._failed()),
            "mailboxes": len(self.rows),
            "findings": len(self.findings),
            "unprocessed_items": self._total("unprocessed"),
            "items_in_the_window": self._total("in_window"),
            "tracked_items": self._total("tracked"),
            "mailboxes_by_state": self.counts,
            "message_class_mix": {message_class_label(c): n for c, n in self.class_mix.items()},
        }
        if self.rule_counts:
            summary["forward_rules_by_state"] = self.rule_counts
        severity = dict(Counter(f.severity for f in self.findings).most_common())
        if severity:
            summary["findings_by_severity"] = severity
        summary["window"] = window
        summary["crm"] = self.crm or "none given"
        summary["routing_ledger"] = self.ledger or "none (no past runs to compare)"
        if self.migration_plan:
            summary["migration_plan"] = self.migration_plan
        if self.limits:
            summary["not_checked"] = self.limits
        return summary

    # -- rendering ---------------------------------------------------------------------------

    def _failed(self) -> list[AuditRow]:
        return [r for r in self.rows if r.probe.state not in FINE_STATES]

    def alerts(self) -> list[str]:
        """One line per mailbox that could not be read: the report's red banner."""
        return [
            f"{r.target.address or r.target.shown}: {r.probe.state}: {r.probe.error or ''}".rstrip()
            for r in self._failed()
        ]

    def figures(self) -> dict[str, str]:
        from emailrouter_lib.reports.charts import BAD, GOOD, NEUTRAL, WARN, bar_chart
        from emailrouter_lib.reports.labels import message_class_label

        colours = {"ok": GOOD, "skipped": NEUTRAL, "not-checked": NEUTRAL, "throttled": WARN}
        states = self.counts
        figures = {
            "Mailboxes by state": bar_chart(
                states,
                title="Mailboxes by state",
                xlabel="mailboxes",
                colors=[
                    colours.get(s, BAD if s != "tls-failed" else WARN)
                    for s in sorted(states, key=lambda s: -states[s])
                ],
            )
        }
        mix = self.class_mix
        if mix:
            order = sorted(mix, key=lambda c: -mix[c])[:15]
            figures["Message classes in the window (green: tracked)"] = bar_chart(
                {message_class_label(c): mix[c] for c in mix},
                title="Message classes in the window",
                xlabel="items",
                colors=[GOOD if is_tracked(c, self.tracked_classes) else NEUTRAL for c in order],
            )
        rules = self.rule_counts
        if set(rules) - {"cannot-check"}:  # a chart of "could not read any" says nothing more
            figures["Forward rules in forward-delivery mailboxes"] = bar_chart(
                rules,
                title=f"Forward rule {self.rule_name!r}",
                xlabel="mailboxes",
                colors=[
                    GOOD if s == "present" else (WARN if s == "cannot-check" else BAD)
                    for s in sorted(rules, key=lambda s: -rules[s])
                ],
            )
        backlog = {
            str(r.target.address or r.target.shown): r.probe.unprocessed
            for r in self.rows
            if r.probe.unprocessed
        }
        if backlog:
            figures["Mailboxes with the most unprocessed items"] = bar_chart(
                backlog, title="Unprocessed items (not in the ledger)", xlabel="items", colors=WARN
            )
        return figures

    def write_artifacts(self, run_dir: str | Path) -> dict[str, Path]:
        """report.html, audit.xlsx, summary.json and one CSV per table in *run_dir*."""
        from emailrouter_lib.reports.artifacts import write_run_artifacts

        links = {"Migration plan": self.migration_plan} if self.migration_plan else {}
        notes = []
        if any(r.probe.sampled for r in self.rows):
            notes.append(
                "Counts marked 'sampled' stopped at max_items or the time budget per mailbox."
            )
        if len(self.rows) > HTML_ROWS:
            notes.append(
                f"The page lists the first {HTML_ROWS} mailboxes, problems first; "
                "mailboxes.csv and audit.xlsx hold every one."
            )
        return write_run_artifacts(
            Path(run_dir),
            summary=self.summary,
            report_summary=self.report_summary(),
            tables=self.tables(),
            title=f"Mailbox audit {self.run_id}",
            subtitle=self._subtitle(),
            notes=notes,
            figures=self.figures(),
            links=links,
            max_rows=HTML_ROWS,
            workbook="audit.xlsx",
            alerts=self.alerts(),
            alert_title=_failed_title(len(self._failed())),
            main_columns={"mailboxes": REPORT_COLUMNS},
        )

    def _subtitle(self) -> str:
        seconds = (self.finished - self.started).total_seconds() if self.finished else 0
        return (
            f"{len(self.rows)} mailboxes, {self.concurrency} at a time, {seconds:.1f} s; "
            f"started {self.started:%Y-%m-%d %H:%M:%S} UTC"
        )

    def __str__(self) -> str:
        lines = [f"mailbox audit {self.run_id}: {len(self.rows)} mailbox(es)"]
        lines += [f"  {state:<14} {n}" for state, n in self.counts.items()]
        if self.rule_counts:
            lines.append(
                "  forward rules: " + ", ".join(f"{n} {s}" for s, n in self.rule_counts.items())
            )
        for row in self.table.itertuples():
            if row.state != "ok" and row.error:
                lines.append(f"  {row.state}: {row.mailbox}: {row.error}")
        if self.findings:
            lines.append(f"  {len(self.findings)} finding(s):")
            lines += [f"    {f.severity} [{f.code}] {f.where}: {f.message}" for f in self.findings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from emailrouter_lib.reports.display import result_html

        return result_html(
            f"Mailbox audit {self.run_id}",
            self.report_summary(),
            {"mailboxes": self.table},  # the notebook shows the findings whole, below
        )


def _failed_title(failed: int) -> str | None:
    if not failed:
        return None
    return f"{failed} mailbox{'es' if failed != 1 else ''} could not be read"


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None
