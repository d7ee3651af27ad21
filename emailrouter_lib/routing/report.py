"""The routing report's page: what failed first, then counts in words, a chart, compact tables.

``summary.json`` and ``results.csv`` keep the machine words (``skipped:REPORT.IPM.Note.NDR``),
which scripts filter on; this module turns a :class:`~emailrouter_lib.routing.result.RoutingResult`
into what a manager reads: failed mailboxes and quarantined messages in a banner, the number of
messages and activities created (never the run's duration) as the first figures, outcomes in plain
language with the message class beside them, and one row per mailbox with its counts as text.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd

from emailrouter_lib.reports.labels import outcome_kind, outcome_label

if TYPE_CHECKING:
    from emailrouter_lib.routing.result import RoutingResult

__all__ = ["FAILED_STATES", "routing_html", "routing_page"]

FAILED_STATES = ("error", "interrupted")
ALERT_LINES = 12  # quarantined messages named in the banner; the table lists them all
_STATUS_ORDER = {"error": 0, "interrupted": 1, "skipped": 2, "ok": 3}

MESSAGE_COLUMNS = ["outcome", "subject", "sender", "reason", "mailbox"]
MAILBOX_COLUMNS = ["status", "mailbox", "seen", "created", "problem", "outcomes"]
OUTGOING_COLUMNS = ["outcome", "subject", "sender", "recipients", "reason"]


def routing_page(result: RoutingResult) -> dict[str, Any]:
    """Keyword arguments for :func:`~emailrouter_lib.reports.write_run_artifacts`: the page's
    summary, tables, chart and banner."""
    failed = [m for m in result.mailboxes if m.status in FAILED_STATES]
    quarantined = [r for r in result.rows if outcome_kind(r.outcome) == "quarantined"]
    alerts = [_failure(m.mailbox, m.status, m.error) for m in failed]
    alerts += [
        f"quarantined in {r.mailbox}: {r.subject or '(no subject)'} from {r.sender or '?'}: "
        f"{r.reason}"
        for r in quarantined[:ALERT_LINES]
    ]
    if len(quarantined) > ALERT_LINES:
        alerts.append(f"… and {len(quarantined) - ALERT_LINES} more quarantined messages")
    title = _alert_title(len(failed), len(quarantined))
    tables = {"mailboxes": mailbox_frame(result), "messages": message_frame(result)}
    if result.outgoing:
        tables["outgoing"] = result.outgoing_table.assign(
            outcome=lambda f: f["outcome"].map(str.capitalize)
        )
    return {
        "report_summary": _summary(result, len(failed), len(quarantined)),
        "report_tables": tables,
        "main_columns": {
            "mailboxes": MAILBOX_COLUMNS,
            "messages": MESSAGE_COLUMNS,
            "outgoing": OUTGOING_COLUMNS,
        },
        "figures": _figures(result),
        "alerts": alerts,
        "alert_title": title,
        "subtitle": _subtitle(result),
    }


def routing_html(result: RoutingResult) -> str:
    """The result in Jupyter: the failures, the counts in words and the first rows of the
    mailboxes and messages (the report and results.csv hold every row)."""
    import html

    from emailrouter_lib.reports.display import result_html

    page = routing_page(result)
    banner = ""
    if page["alerts"]:
        items = "".join(f"<li>{html.escape(a)}</li>" for a in page["alerts"])
        banner = (
            '<div style="border-left:6px solid #cf222e;background:#ffebe9;padding:6px 12px">'
            f"<strong>{html.escape(page['alert_title'] or '')}</strong><ul>{items}</ul></div>"
        )
    summary = dict(page["report_summary"])
    summary["messages_by_outcome"] = "; ".join(
        f"{outcome_label(k)}: {n}" for k, n in result.counts.items()
    )
    tables = {
        name: frame[[c for c in page["main_columns"][name] if c in frame.columns]]
        for name, frame in page["report_tables"].items()
    }
    return banner + result_html(f"Routing run {result.run_id}", summary, tables)


def _failure(mailbox: str, status: str, error: str | None) -> str:
    """``mailbox: status: error``, without the mailbox twice when the error starts with it."""
    error = error or "no reason given"
    if error.startswith(mailbox):
        error = error[len(mailbox) :].lstrip(": ")
    return f"{mailbox}: {status}: {error}"


def _alert_title(failed: int, quarantined: int) -> str | None:
    parts = []
    if failed:
        parts.append(f"{failed} mailbox{'es' if failed != 1 else ''} failed")
    if quarantined:
        parts.append(f"{quarantined} message{'s' if quarantined != 1 else ''} quarantined")
    return ", ".join(parts) if parts else None


def _summary(result: RoutingResult, failed: int, quarantined: int) -> dict[str, Any]:
    counts = Counter(outcome_kind(r.outcome) for r in result.rows)
    summary: dict[str, Any] = {
        "failed_mailboxes": failed,
        "messages": len(result.rows),
        **(
            {"activities_a_real_run_would_create": counts.get("would-create", 0)}
            if result.dry_run
            else {"activities_created": counts.get("created", 0)}
        ),
        "quarantined": quarantined,
        "skipped_or_filtered": counts.get("skipped", 0) + counts.get("filtered", 0),
        "mailboxes": len(result.mailboxes),
    }
    if result.outgoing or "outgoing" in getattr(result.params, "directions", ()):
        sent = Counter(r.outcome for r in result.outgoing)
        summary["emails_sent"] = sent.get("sent", 0)
        summary["emails_failed"] = sent.get("failed", 0)
    summary["crm"] = result.params.crm
    if result.finished:
        seconds = (result.finished - result.started).total_seconds()
        summary["duration"] = f"{seconds:.1f} s"
    return summary


def _subtitle(result: RoutingResult) -> str:
    started = f"started {result.started:%Y-%m-%d %H:%M:%S} UTC"
    word = "mailbox" if len(result.mailboxes) == 1 else "mailboxes"
    line = f"{len(result.rows)} messages from {len(result.mailboxes)} {word}; {started}"
    return f"Dry run, nothing was changed: {line}" if result.dry_run else line


def _figures(result: RoutingResult) -> dict[str, str]:
    from emailrouter_lib.reports.charts import BAD, GOOD, NEUTRAL, WARN, bar_chart

    colour = {
        "created": GOOD,
        "would-create": GOOD,
        "duplicate": NEUTRAL,
        "skipped": NEUTRAL,
        "filtered": WARN,
    }
    labelled: dict[str, int] = {}
    colours: dict[str, str] = {}
    for outcome, n in result.counts.items():
        label = outcome_label(outcome)
        labelled[label] = labelled.get(label, 0) + n
        colours[label] = colour.get(outcome_kind(outcome), BAD)
    figures = {
        "Messages by outcome": bar_chart(
            labelled,
            title="Messages by outcome",
            xlabel="messages",
            colors=[colours[k] for k in sorted(labelled, key=lambda k: -labelled[k])],
        )
    }
    if result.outgoing:
        sent = result.outgoing_counts
        figures["Outgoing emails by outcome"] = bar_chart(
            {k.capitalize(): v for k, v in sent.items()},
            title="Outgoing emails by outcome",
            xlabel="emails",
            colors=lambda k: GOOD if k == "Sent" else (BAD if k == "Failed" else WARN),
        )
    return figures


def mailbox_frame(result: RoutingResult) -> pd.DataFrame:
    """One row per mailbox, failed ones first, its outcomes as words (not a JSON object)."""
    rows = []
    for m in result.mailboxes:
        notes = [m.error] if m.error else []
        if m.recovered:
            notes.append(f"finished {m.recovered} item(s) an interrupted run left half done")
        if m.resumable:
            notes.append(f"{m.resumable} item(s) left for the next run")
        rows.append(
            {
                "status": m.status,
                "mailbox": m.mailbox,
                "seen": m.seen,
                "created": m.outcomes.get("created", 0),
                "problem": "; ".join(notes) or None,
                "outcomes": "; ".join(f"{outcome_label(k)}: {n}" for k, n in m.outcomes.items())
                or None,
                "already_done": m.already_done,
                "seconds": round(m.seconds, 2),
            }
        )
    frame = pd.DataFrame(rows, columns=[*MAILBOX_COLUMNS, "already_done", "seconds"])
    order = sorted(
        range(len(frame)),
        key=lambda i: (_STATUS_ORDER.get(frame.at[i, "status"], -1), frame.at[i, "mailbox"]),
    )
    return frame.iloc[order].reset_index(drop=True)


def message_frame(result: RoutingResult) -> pd.DataFrame:
    """The messages, problems first, each outcome in words with its class or rule."""
    frame = result.table.copy()
    rank = {"quarantined": 0, "invalid-forward": 1, "filtered": 2, "skipped": 3, "duplicate": 4}
    frame["_rank"] = frame["outcome"].map(lambda o: rank.get(outcome_kind(o), 5))
    frame = frame.sort_values("_rank", kind="stable").drop(columns="_rank")
    frame["outcome"] = frame["outcome"].map(outcome_label)
    return frame.reset_index(drop=True)
