"""The post-migration checklist as a schedule: Test & Enable in batches, queues first.

Microsoft's advice for the switch (``migrate-settings-email-router-server-side-synchronization``):
Test & Enable at most 200 mailboxes every 5 hours, migrate queues first, and set "Process Email
From" to about 24 hours back so that mail received during the switch is still picked up. Forward
mailboxes come right after the queues, before the users whose mail they carry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from emailrouter_lib.errors import ConfigError
from emailrouter_lib.migration.model import MailboxPlan, MigrationPlan

BATCH_SIZE = 200
BATCH_HOURS = 5
LOOKBACK_HOURS = 24

_ORDER = {"queue": 0, "forward": 1, "user": 2}


@dataclass(frozen=True)
class ScheduleRow:
    batch: int
    starts_after_hours: int
    start: str | None  # ISO 8601 UTC when a start time was given
    process_email_from: str | None  # "Process Email From" for this batch
    kind: str
    owner: str
    name: str | None
    emailaddress: str | None
    emailserverprofile: str | None


def build_schedule(
    plan: MigrationPlan,
    *,
    start: datetime | str | None = None,
    batch_size: int = BATCH_SIZE,
    batch_hours: float = BATCH_HOURS,
    lookback_hours: float = LOOKBACK_HOURS,
) -> list[ScheduleRow]:
    """One row per mailbox the plan migrates, in Test & Enable order and batches."""
    if batch_size < 1 or batch_hours < 0:
        raise ConfigError("batch_size must be at least 1 and batch_hours not negative")
    begin = _as_datetime(start)
    chosen = [m for m in plan.mailboxes if m.action != "skip"]
    chosen.sort(key=lambda m: _ORDER.get(m.kind, 3))  # stable: plan order inside a kind
    rows = []
    for position, mailbox in enumerate(chosen):
        batch = position // batch_size
        offset = timedelta(hours=batch * batch_hours)
        when = begin + offset if begin else None
        rows.append(_row(mailbox, batch, batch * batch_hours, when, lookback_hours))
    return rows


def schedule_table(rows: list[ScheduleRow]) -> pd.DataFrame:
    columns = list(ScheduleRow.__dataclass_fields__)
    return pd.DataFrame([asdict(r) for r in rows], columns=columns)


def batches_table(rows: list[ScheduleRow]) -> pd.DataFrame:
    """One line per batch: when, how many mailboxes of each kind."""
    summary: dict[int, dict[str, object]] = {}
    for row in rows:
        entry = summary.setdefault(
            row.batch,
            {
                "batch": row.batch,
                "starts_after_hours": row.starts_after_hours,
                "start": row.start,
                "process_email_from": row.process_email_from,
                "queues": 0,
                "forward mailboxes": 0,
                "users": 0,
            },
        )
        label = {"queue": "queues", "forward": "forward mailboxes"}.get(row.kind, "users")
        entry[label] = int(entry[label]) + 1  # type: ignore[call-overload]
    columns = [
        "batch",
        "starts_after_hours",
        "start",
        "process_email_from",
        "queues",
        "forward mailboxes",
        "users",
    ]
    return pd.DataFrame(list(summary.values()), columns=columns)


def _row(
    mailbox: MailboxPlan, batch: int, hours: float, when: datetime | None, lookback: float
) -> ScheduleRow:
    return ScheduleRow(
        batch=batch + 1,
        starts_after_hours=int(hours) if float(hours).is_integer() else hours,  # type: ignore[arg-type]
        start=_iso(when),
        process_email_from=_iso(when - timedelta(hours=lookback)) if when else None,
        kind=mailbox.kind,
        owner=mailbox.owner,
        name=mailbox.name,
        emailaddress=mailbox.emailaddress,
        emailserverprofile=mailbox.emailserverprofile,
    )


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    text = value.strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"schedule start {value!r} is not an ISO 8601 time such as 2024-06-01T18:00:00Z"
        ) from None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset() is None:  # a naive time is shown as given
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
