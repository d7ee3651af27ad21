"""Schedule one Test & Enable batch in the CRM: plan it, review it, apply it.

After the migration the mailboxes still have to be tested and enabled. Microsoft's advice is at
most 200 mailboxes every 5 hours, queues first, with "Process Email From" about 24 hours back
(email-router-research.md §7.1). This step takes one batch of :func:`build_schedule` and sets, on
each of its mailboxes, ``processemailreceivedafter`` ("Process Email From") and
``testemailconfigurationscheduled`` (what the *Test & Enable Mailbox* button sets).

It is a separate, explicit step: nothing is scheduled unless asked for, and only one batch at a
time, so the next batch waits until someone has seen the last one succeed. A mailbox that is
already scheduled is left exactly as it is, so applying the same batch twice changes nothing.
The step writes an :class:`~emailrouter_lib.migration.apply.ApplyRecord` (kind
``test-and-enable``) that :func:`~emailrouter_lib.migration.apply.rollback` undoes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from emailrouter_lib.crm.base import MailboxSettingsStore
from emailrouter_lib.errors import ConfigError
from emailrouter_lib.migration.apply import (
    AppliedChange,
    ApplyRecord,
    _change,
    _now,
    run_recorded,
)
from emailrouter_lib.migration.model import MigrationPlan
from emailrouter_lib.migration.schedule import (
    BATCH_HOURS,
    BATCH_SIZE,
    LOOKBACK_HOURS,
    ScheduleRow,
    build_schedule,
)

SCHEMA = "emailrouter.test-and-enable/1"
KIND = "test-and-enable"


@dataclass
class EnableRow:
    """One mailbox of the batch and what the step does to it."""

    owner: str
    kind: str
    name: str | None
    emailaddress: str | None
    processemailreceivedafter: str
    action: str = "schedule"  # schedule | unchanged (already scheduled) | skip (no mailbox)
    reason: str | None = None
    mailboxid: str | None = None

    def lookup(self) -> dict[str, Any]:
        """What ``save_mailbox`` finds the mailbox by."""
        if self.kind == "forward":
            return {"emailaddress": self.emailaddress or self.owner.split(":", 1)[1]}
        return {"regardingobjectid": self.owner.split(":", 1)[1]}


@dataclass
class EnablePlan:
    """One Test & Enable batch, reviewable before it is applied."""

    batch: int
    crm: str | None
    created: str
    rows: list[EnableRow] = field(default_factory=list)
    schema: str = SCHEMA

    @property
    def counts(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for row in self.rows:
            tally[row.action] = tally.get(row.action, 0) + 1
        return dict(sorted(tally.items()))

    def table(self) -> pd.DataFrame:
        columns = [f.name for f in fields(EnableRow)]
        return pd.DataFrame([asdict(r) for r in self.rows], columns=columns)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> EnablePlan:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the Test & Enable plan ({exc}); give the file "
                "`emailrouter migrate schedule` wrote",
                file=str(path),
            ) from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ConfigError(f"not a Test & Enable plan (expected {SCHEMA})", file=str(path))
        rows = [EnableRow(**r) for r in data.pop("rows", [])]
        return cls(**{k: v for k, v in data.items() if k != "schema"}, rows=rows)


def plan_test_and_enable(
    plan: MigrationPlan,
    store: MailboxSettingsStore,
    *,
    batch: int = 1,
    start: datetime | str | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    batch_hours: float = BATCH_HOURS,
    lookback_hours: float = LOOKBACK_HOURS,
) -> EnablePlan:
    """Batch *batch* (1 = the first: queues first) of the migration's schedule, compared with
    the CRM's mailboxes. "Process Email From" is the schedule's (``start`` − lookback) when a
    start is given, else *now* − lookback. Changes nothing."""
    if not 1 <= batch_size <= BATCH_SIZE:
        raise ConfigError(
            f"batch_size {batch_size}: Test & Enable takes 1 to {BATCH_SIZE} mailboxes per batch"
        )
    if batch < 1:
        raise ConfigError(f"batch {batch}: batches are numbered from 1")
    schedule = build_schedule(
        plan,
        start=start,
        batch_size=batch_size,
        batch_hours=batch_hours,
        lookback_hours=lookback_hours,
    )
    chosen = [r for r in schedule if r.batch == batch]
    if schedule and not chosen:
        last = schedule[-1].batch
        raise ConfigError(f"batch {batch}: the schedule has {last} batch(es)")
    fallback = _iso((now or datetime.now(UTC)) - timedelta(hours=lookback_hours))
    existing = _mailboxes_by_owner(store)
    result = EnablePlan(batch=batch, crm=store.url, created=_now())
    for item in chosen:
        result.rows.append(_row(item, existing, item.process_email_from or fallback))
    return result


def apply_test_and_enable(
    enable: EnablePlan, store: MailboxSettingsStore, *, record_path: str | Path | None = None
) -> ApplyRecord:
    """Set ``processemailreceivedafter`` and ``testemailconfigurationscheduled`` on the batch's
    mailboxes that are not scheduled yet (checked again now, not only when planned)."""
    digest = hashlib.sha256(
        json.dumps([asdict(r) for r in enable.rows], sort_keys=True).encode("utf-8")
    ).hexdigest()
    record = ApplyRecord(crm=store.url, plan_sha256=digest, started=_now(), kind=KIND)

    def write(add: Callable[[AppliedChange], None]) -> None:
        existing = _mailboxes_by_owner(store)
        for row in enable.rows:
            current = existing.get(_owner_key(row.owner))
            if row.action == "skip" or current is None or _scheduled(current):
                continue
            values = {
                **row.lookup(),
                "processemailreceivedafter": row.processemailreceivedafter,
                "testemailconfigurationscheduled": True,
            }
            change = store.save_mailbox(values)
            add(_change("mailbox", row.owner, change, values, row.lookup()))

    return run_recorded(record, store, write, record_path)


def _row(item: ScheduleRow, existing: dict[str, dict[str, Any]], when: str) -> EnableRow:
    row = EnableRow(item.owner, item.kind, item.name, item.emailaddress, when)
    current = existing.get(_owner_key(item.owner))
    if current is None:
        row.action, row.reason = "skip", "no mailbox in the CRM yet: apply the migration first"
    else:
        row.mailboxid = current.get("mailboxid")
        if _scheduled(current):
            row.action, row.reason = "unchanged", "already scheduled for Test & Enable"
            row.processemailreceivedafter = current.get("processemailreceivedafter") or when
    return row


def _scheduled(row: dict[str, Any]) -> bool:
    return bool(row.get("testemailconfigurationscheduled"))


def _owner_key(owner: str) -> str:
    kind, _, key = owner.partition(":")
    return f"forward:{key.lower()}" if kind == "forward" else key.lower()


def _mailboxes_by_owner(store: MailboxSettingsStore) -> dict[str, dict[str, Any]]:
    """Mailbox rows by owner key: the user/queue id, or ``forward:<address>``."""
    found: dict[str, dict[str, Any]] = {}
    for row in store.mailboxes():
        if row.get("regardingobjectid"):
            found.setdefault(str(row["regardingobjectid"]).lower(), row)
        elif row.get("isforwardmailbox") and row.get("emailaddress"):
            found.setdefault("forward:" + str(row["emailaddress"]).lower(), row)
    return found


def _iso(value: datetime) -> str:
    if value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
