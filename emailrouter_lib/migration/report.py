"""The migration audit report: the plan, its warnings and the schedule, for people.

``report.html`` (self-contained, with a chart of profiles × mailboxes × warnings), one Excel
workbook with a sheet per table, the plan as JSON, and the run's ``summary.json`` and CSVs. The
rendering lives in the reports layer; this module hands it plain tables and one figure.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from emailrouter_lib.known_secrets import mask_known_secrets
from emailrouter_lib.migration.warnings import explain

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emailrouter_lib.migration.flow import MigrationResult
    from emailrouter_lib.migration.model import MigrationPlan

TITLE = "Migration to server-side synchronization"
WORKBOOK = "migration.xlsx"
PLAN_JSON = "plan.json"
CHART_LIMIT = 25  # profiles shown in the chart (the tables hold all of them)

CHECKLIST = (
    "Review the profiles and warnings; profiles with credentials specified in the profile need "
    "their password entered (the plan names a secret reference, never a value).",
    "Test & Enable mailboxes in the batches of the schedule table: at most 200 every 5 hours, "
    "queues first, then forward mailboxes, then users.",
    "Set 'Process Email From' on each batch about 24 hours back (the schedule's "
    "process_email_from), so mail received during the switch is not missed.",
    "Stop the Email Router service once its mailboxes have switched, so no message is "
    "processed twice.",
)


def write_audit_report(result: MigrationResult, run_dir: Path) -> dict[str, Path]:
    from emailrouter_lib.reports.artifacts import write_run_artifacts
    from emailrouter_lib.reports.excel import write_workbook
    from emailrouter_lib.reports.html import render_html_report

    run_dir.mkdir(parents=True, exist_ok=True)
    tables = result.tables()
    summary = result.summary
    notes = _notes(result)
    subtitle = (
        "Plan only (dry run): nothing in the CRM was changed."
        if result.dry_run
        else "Applied to the CRM; apply-record.json undoes it (emailrouter migrate rollback)."
    )
    written = write_run_artifacts(
        run_dir, summary=summary, tables=tables, title=TITLE, subtitle=subtitle, notes=notes
    )
    page = render_html_report(
        TITLE,
        summary,
        tables,
        subtitle=subtitle,
        notes=notes,
        figures={"Mailboxes and warnings per email server profile": chart_html(result.plan)},
    )
    written["report.html"] = _atomic(run_dir / "report.html", page)
    written[WORKBOOK] = write_workbook(run_dir / WORKBOOK, tables)
    written[PLAN_JSON] = _atomic(run_dir / PLAN_JSON, result.plan.to_json())
    if result.record is not None:
        record = run_dir / "apply-record.json"
        if not record.exists():
            result.record.write(record)
        written["apply-record.json"] = record
    return written


def _notes(result: MigrationResult) -> list[str]:
    codes = Counter(w.code for w in result.plan.warnings)
    notes = [f"{code} ({n}): {explain(code)}" for code, n in sorted(codes.items())]
    return [*notes, *CHECKLIST]


def plan_chart(plan: MigrationPlan) -> Figure:
    """A bar chart: for each profile (migrated or not), its mailboxes and its warnings."""
    import matplotlib.pyplot as plt

    warnings = Counter(w.profile for w in plan.warnings if w.profile)
    rows = [(p.name, p.mailbox_count, warnings.get(p.name, 0), True) for p in plan.profiles]
    rows += [
        (n.profile, n.mailbox_count, warnings.get(n.profile, 0), False) for n in plan.not_migrated
    ]
    rows.sort(key=lambda r: (-r[1], r[0]))
    shown = rows[:CHART_LIMIT]
    figure, axes = plt.subplots(figsize=(8, max(2.0, 0.55 * len(shown) + 1.2)))
    if not shown:
        axes.text(0.5, 0.5, "no profiles", ha="center", va="center")
        axes.set_axis_off()
        return figure
    positions = list(range(len(shown)))
    labels = [name if migrated else f"{name} (not migrated)" for name, _, _, migrated in shown]
    colours = ["#2f6fb0" if r[3] else "#9aa4ae" for r in shown]
    axes.barh([y - 0.2 for y in positions], [r[1] for r in shown], height=0.4, color=colours)
    axes.barh([y + 0.2 for y in positions], [r[2] for r in shown], height=0.4, color="#d08a1c")
    axes.set_yticks(positions, labels=[_short(label) for label in labels])
    axes.invert_yaxis()
    axes.set_xlabel("count")
    axes.legend(["mailboxes", "warnings"], loc="lower right")
    more = f"; {len(rows) - len(shown)} more in the tables" if len(rows) > len(shown) else ""
    axes.set_title(f"{len(plan.profiles)} profiles, {len(plan.not_migrated)} not migrated{more}")
    return figure


def chart_html(plan: MigrationPlan) -> str:
    """:func:`plan_chart` as an inline PNG ``<img>`` (for the report and for notebooks)."""
    from emailrouter_lib.reports.figures import figure_html

    shown = min(CHART_LIMIT, len(plan.profiles) + len(plan.not_migrated))
    return figure_html(
        plan_chart(plan), alt=f"Bar chart: mailboxes and warnings for each of {shown} profiles"
    )


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _atomic(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(mask_known_secrets(text), encoding="utf-8", newline="")
    os.replace(temporary, path)
    return path
