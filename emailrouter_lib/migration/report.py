"""The migration audit report: the plan, its warnings and the schedule, for people.

``report.html`` (self-contained, with a chart of profiles × mailboxes × warnings), one Excel
workbook with a sheet per table, the plan as JSON, and the run's ``summary.json`` and CSVs. The
rendering lives in the reports layer; this module hands it plain tables and one figure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emailrouter_lib.files import write_atomically
from emailrouter_lib.known_secrets import mask_known_secrets
from emailrouter_lib.migration import mapping as m
from emailrouter_lib.migration.warnings import explain

if TYPE_CHECKING:
    import pandas as pd
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

    run_dir.mkdir(parents=True, exist_ok=True)
    tables = result.tables()
    subtitle = (
        "Plan only (dry run): nothing in the CRM was changed."
        if result.record is None
        else "Applied to the CRM; apply-record.json undoes it (emailrouter migrate rollback)."
    )
    alerts = _alerts(result)
    written = write_run_artifacts(
        run_dir,
        summary=result.summary,
        report_summary=report_summary(result),
        tables=tables,
        report_tables=report_tables(result),
        title=TITLE,
        subtitle=subtitle,
        notes=_notes(result),
        figures={"Mailboxes and warnings per email server profile": chart_html(result.plan)},
        alerts=alerts,
        alert_title=f"{len(alerts)} problem(s) to look at first" if alerts else None,
        main_columns=REPORT_COLUMNS,
        workbook=WORKBOOK,
    )
    written[PLAN_JSON] = _atomic(run_dir / PLAN_JSON, result.plan.to_json())
    if result.record is not None:
        record = run_dir / "apply-record.json"
        if not record.exists():
            result.record.write(record)
        written["apply-record.json"] = record
    return written


# The columns a row of each table shows (report and notebook); the others are in its details.
REPORT_COLUMNS: dict[str, list[str]] = {
    "profiles": [
        "action",
        "name",
        "server type",
        "incoming server",
        "outgoing server",
        "mailboxes",
    ],
    "mailboxes": ["action", "name", "email address", "email server profile", "reason"],
    "warnings": ["severity", "message", "profile"],
    "schedule": ["batch", "start", "kind", "name", "email address"],
    "applied": ["table", "key", "action", "columns"],
    "test_and_enable": ["action", "kind", "name", "emailaddress", "processemailreceivedafter"],
}


def review_table(result: MigrationResult, name: str):
    """Table *name* in words with the columns a reviewer reads first, for the notebook (the
    report and the workbook hold every column)."""
    from emailrouter_lib.reports.display import table

    frame = report_tables(result)[name]
    wanted = [c for c in REPORT_COLUMNS.get(name, []) if c in frame.columns]
    return table(frame[wanted] if wanted else frame)


# What the plan calls a row, what the apply record calls it, and what a person calls it.
_TABLES = (
    ("emailserverprofile", "email server profiles"),
    ("mailbox", "mailboxes"),
    ("systemuser", "users' delivery methods"),
    ("queue", "queues' delivery methods"),
    ("organization", "organisation: Process Email Using"),
)
RECONCILE_COLUMNS = (
    "rows",
    "planned: create",
    "planned: update",
    "planned: unchanged",
    "applied: created",
    "applied: updated",
    "applied: unchanged",
    "note",
)


def reconcile_table(result: MigrationResult) -> pd.DataFrame:
    """Planned create/update/unchanged beside applied created/updated/unchanged, per CRM table.

    The plan counts profiles and mailboxes; the apply also writes each user's and queue's own
    delivery methods and the organisation's switch, which the plan carries with the mailboxes.
    Side by side the numbers add up (the bare totals "4 create, 5 update" and "4 created,
    6 updated, 5 unchanged" did not).
    """
    import pandas as pd

    planned = {
        "emailserverprofile": Counter(p.action for p in result.plan.profiles),
        "mailbox": Counter(m.action for m in result.plan.mailboxes if m.action != "skip"),
    }
    applied: dict[str, Counter] = {}
    for change in result.record.changes if result.record else []:
        applied.setdefault(change.table, Counter())[change.action] += 1
    rows = []
    for table, label in _TABLES:
        plan, done = planned.get(table), applied.get(table, Counter())
        if plan is None and not done:
            continue
        note = None
        if plan is None:
            note = "written with each mailbox (not counted in the plan)"
        elif result.record is None:
            note = "not applied yet (dry run)"
        elif (plan["create"], plan["update"]) != (done["created"], done["updated"]):
            note = "differs from the plan: the CRM changed between plan and apply"
        rows.append(
            {
                "rows": label,
                "planned: create": plan["create"] if plan is not None else None,
                "planned: update": plan["update"] if plan is not None else None,
                "planned: unchanged": plan["unchanged"] if plan is not None else None,
                "applied: created": done["created"] if result.record else None,
                "applied: updated": done["updated"] if result.record else None,
                "applied: unchanged": done["unchanged"] if result.record else None,
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=list(RECONCILE_COLUMNS)).astype(
        {c: "Int64" for c in RECONCILE_COLUMNS[1:-1]}
    )


def report_tables(result: MigrationResult) -> dict[str, pd.DataFrame]:
    """The tables in words: option values as their names, whole numbers without ``.0``."""
    tables = result.tables()
    shown = {"planned_and_applied": reconcile_table(result)}
    profiles = tables["profiles"].copy()
    for column, labels in _PROFILE_LABELS.items():
        if column in profiles:
            profiles[column] = profiles[column].map(lambda v, labels=labels: _word(v, labels))
    for column in ("incomingportnumber", "outgoingportnumber", "mailboxes"):
        if column in profiles:
            profiles[column] = pd_integers(profiles[column])
    shown["profiles"] = profiles.rename(columns=_HEADINGS)
    mailboxes = tables["mailboxes"].copy()
    for column in ("incomingemaildeliverymethod", "outgoingemaildeliverymethod"):
        mailboxes[column] = mailboxes[column].map(lambda v: _word(v, m.DELIVERY_LABELS))
    shown["mailboxes"] = mailboxes.rename(columns=_HEADINGS)
    for name in ("not_migrated", "warnings", "schedule", "batches", "applied", "test_and_enable"):
        if name in tables:
            shown[name] = tables[name].rename(columns=_HEADINGS)
    return shown


def report_summary(result: MigrationResult) -> dict[str, Any]:
    """What a reviewer reads first: problems, what the plan covers, then what was written."""
    counts = result.plan.counts
    summary: dict[str, Any] = {
        "not_migrated": counts["not migrated"],
        "warnings": counts["warnings"],
        "profiles": counts["profiles"],
        "mailboxes": counts["mailboxes"],
        "skipped_mailboxes": counts["skipped mailboxes"],
    }
    if result.record is not None:
        summary["CRM rows changed"] = result.record.changed
    if result.enable_record is not None:
        summary["Test & Enable scheduled"] = result.enable_record.changed
    summary["status"] = (
        "plan only: nothing was written to the CRM"
        if result.record is None
        else f"{result.record.status}: see 'planned and applied' below"
    )
    summary["routers"] = ", ".join(s.config for s in result.plan.sources)
    summary["crm"] = result.plan.crm or "(none)"
    summary["Test & Enable batches"] = len({r.batch for r in result.schedule})
    return summary


def _alerts(result: MigrationResult) -> list[str]:
    lines = []
    if result.record is not None and result.record.status not in ("applied", "rolled back"):
        lines.append(f"the apply ended {result.record.status}: nothing or only part was written")
    lines += [
        f"profile {n.profile!r} ({n.mailbox_count} mailbox(es)) is not migrated: {n.reason}"
        for n in result.plan.not_migrated
    ]
    return lines


def _word(value: Any, labels: Mapping[int, str]) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return value
    try:
        return labels.get(int(value), value)
    except (TypeError, ValueError):
        return value


def pd_integers(column):
    """Ports and counts as whole numbers; a column with a gap would otherwise read ``995.0``."""
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").astype("Int64")


_PROFILE_LABELS: dict[str, Mapping[int, str]] = {
    "servertype": m.SERVERTYPE_LABELS,
    "incomingcredentialretrieval": m.CREDENTIALS_LABELS,
    "outgoingcredentialretrieval": m.CREDENTIALS_LABELS,
    "incomingauthenticationprotocol": m.AUTH_LABELS,
    "outgoingauthenticationprotocol": m.AUTH_LABELS,
    "exchangeversion": m.EXCHANGE_VERSION_LABELS,
}
_HEADINGS = {
    "servertype": "server type",
    "incomingserverlocation": "incoming server",
    "outgoingserverlocation": "outgoing server",
    "incomingportnumber": "incoming port",
    "outgoingportnumber": "outgoing port",
    "incomingusessl": "incoming uses SSL",
    "outgoingusessl": "outgoing uses SSL",
    "incomingcredentialretrieval": "incoming credentials",
    "outgoingcredentialretrieval": "outgoing credentials",
    "incomingauthenticationprotocol": "incoming authentication",
    "outgoingauthenticationprotocol": "outgoing authentication",
    "incomingusername": "incoming user name",
    "outgoingusername": "outgoing user name",
    "useautodiscover": "uses Autodiscover",
    "usesamesettingsforoutgoingconnections": "same settings for outgoing",
    "exchangeversion": "Exchange version",
    "moveundeliveredemails": "moves undelivered email",
    "emailserverprofile": "email server profile",
    "emailaddress": "email address",
    "incomingemaildeliverymethod": "incoming delivery",
    "outgoingemaildeliverymethod": "outgoing delivery",
    "isforwardmailbox": "forward mailbox",
    "process_email_from": "process email from",
    "starts_after_hours": "starts after (hours)",
    "mailbox_count": "mailboxes",
}


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
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6.4, max(2.4, 0.7 * len(shown) + 1.4)))
    if not shown:
        axes.text(0.5, 0.5, "no profiles", ha="center", va="center")
        axes.set_axis_off()
        return figure
    positions = list(range(len(shown)))
    labels = [name if migrated else f"{name} (not migrated)" for name, _, _, migrated in shown]
    colours = ["#2f6fb0" if r[3] else "#9aa4ae" for r in shown]
    axes.barh([y - 0.2 for y in positions], [r[1] for r in shown], height=0.4, color=colours)
    axes.barh([y + 0.2 for y in positions], [r[2] for r in shown], height=0.4, color="#d08a1c")
    axes.set_yticks(positions, labels=[_short(label) for label in labels], fontsize=11)
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no half a mailbox
    axes.tick_params(axis="x", labelsize=11)
    axes.set_xlabel("mailboxes / warnings", fontsize=11)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(["mailboxes", "warnings"], loc="lower right", fontsize=10)
    more = f"; {len(rows) - len(shown)} more in the tables" if len(rows) > len(shown) else ""
    axes.set_title(
        f"{len(plan.profiles)} profiles, {len(plan.not_migrated)} not migrated{more}",
        loc="left",
        fontsize=13,
    )
    figure.tight_layout()
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
    return write_atomically(path, mask_known_secrets(text))
