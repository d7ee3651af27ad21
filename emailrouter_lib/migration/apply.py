"""Write a reviewed plan into the CRM, keeping a record that undoes it.

Every write is a create-or-update by natural key (profile by name, mailbox by owner, user or
queue by id), so a second apply of the same plan changes nothing. The delivery methods are
written on the mailbox *and* on its user or queue: which side the platform reads is not
documented (dataverse-research.md §1.5), so both say the same.

The record lists, in order, each row created or updated with the previous values of the columns
that changed; :func:`rollback` walks it backwards: updated columns get their old values back,
created rows are deleted. Where the store can (``store.atomic()`` yields True, as SQLite does)
the whole apply is one transaction: a failure leaves nothing written and the record says so.
Where it cannot, the record is written every :data:`CHECKPOINT` changes and when the apply ends,
failed or not, so a partial apply can be rolled back.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emailrouter_lib.crm.base import MailboxSettingsStore, RowChange
from emailrouter_lib.errors import ConfigError, CrmError
from emailrouter_lib.files import write_atomically
from emailrouter_lib.migration.model import MailboxPlan, MigrationPlan

RECORD_SCHEMA = "emailrouter.migration-apply/1"
CHECKPOINT = 100  # without a transaction, the record is rewritten after this many changes


@dataclass
class AppliedChange:
    """One row the apply touched (``unchanged`` rows are kept too: they show what was checked)."""

    table: str  # emailserverprofile | mailbox | systemuser | queue | organization
    key: str  # profile name, mailbox owner (also for systemuser/queue), "emailconnectionchannel"
    id: str
    action: str  # created | updated | unchanged
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    lookup: dict[str, Any] = field(default_factory=dict)  # what save_* finds the row by


@dataclass
class ApplyRecord:
    """What an apply did, enough to undo it."""

    crm: str
    plan_sha256: str
    started: str
    finished: str | None = None
    status: str = "running"  # running | applied | failed | rolled back
    error: str | None = None
    changes: list[AppliedChange] = field(default_factory=list)
    kind: str = "migration"  # migration | test-and-enable
    transaction: bool = False  # True: the writes were one all-or-nothing transaction
    discarded: int = 0  # changes a failed transaction rolled back (so not in ``changes``)
    schema: str = RECORD_SCHEMA

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(c.action for c in self.changes))

    @property
    def changed(self) -> int:
        return sum(1 for c in self.changes if c.action != "unchanged")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, default=str) + "\n"

    def write(self, path: str | Path) -> Path:
        return write_atomically(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> ApplyRecord:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the apply record ({exc}); give the apply-record.json an apply wrote",
                file=str(path),
            ) from None
        if data.get("schema") != RECORD_SCHEMA:
            raise ConfigError(
                f"not an apply record (schema {data.get('schema')!r}, expected {RECORD_SCHEMA})",
                file=str(path),
            )
        changes = [AppliedChange(**c) for c in data.pop("changes", [])]
        data.pop("schema", None)
        return cls(**data, changes=changes)


def plan_digest(plan: MigrationPlan) -> str:
    """SHA-256 of what the plan would write (not of when it was made)."""
    content = plan.to_dict()
    content.pop("created", None)
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def apply_plan(
    plan: MigrationPlan,
    store: MailboxSettingsStore,
    *,
    switch_channel: bool = True,
    record_path: str | Path | None = None,
) -> ApplyRecord:
    """Create or update the plan's profiles, then each mailbox with its user's or queue's
    delivery methods, then (when *switch_channel*) set "Process Email Using" to server-side
    synchronization. Skipped rows are left alone."""
    record = ApplyRecord(crm=store.url, plan_sha256=plan_digest(plan), started=_now())

    def write(add: Callable[[AppliedChange], None]) -> None:
        profile_ids: dict[str, str] = {}
        for profile in plan.profiles:
            values = profile.columns()
            change = store.save_email_server_profile(values)
            profile_ids[profile.name] = change.id
            add(_change("emailserverprofile", profile.name, change, values, {"name": profile.name}))
        existing = _existing_mailboxes(store)
        for mailbox in plan.mailboxes:
            if mailbox.action == "skip":
                continue
            profile_id = profile_ids.get(mailbox.emailserverprofile or "")
            values, lookup = _mailbox_values(mailbox, profile_id, existing)
            change = store.save_mailbox(values)
            add(_change("mailbox", mailbox.owner, change, values, lookup))
            owner_values = _recipient_values(mailbox)
            if owner_values:
                entity = mailbox.regardingobjecttypecode or ""
                change = store.update_recipient(entity, mailbox.owner_id, owner_values)
                add(_change(entity, mailbox.owner, change, owner_values, {}))
        if switch_channel:
            target = plan.organization.emailconnectionchannel
            change = store.set_email_connection_channel(target)
            values = {"emailconnectionchannel": target}
            add(_change("organization", "emailconnectionchannel", change, values, {}))

    return run_recorded(record, store, write, record_path)


def run_recorded(
    record: ApplyRecord,
    store: MailboxSettingsStore,
    write: Callable[[Callable[[AppliedChange], None]], None],
    record_path: str | Path | None,
) -> ApplyRecord:
    """Run *write* (which reports each change through the callable it is given) as one unit
    of the store where it can be, keeping *record* up to date and written to *record_path*."""
    try:
        with _unit(store) as all_or_nothing:
            record.transaction = all_or_nothing

            def add(change: AppliedChange) -> None:
                record.changes.append(change)
                due = len(record.changes) % CHECKPOINT == 0
                if due and record_path is not None and not all_or_nothing:
                    record.write(record_path)

            write(add)
        record.status = "applied"
    except Exception as exc:
        record.status, record.error = "failed", str(exc)
        if record.transaction:  # the store rolled every change back
            record.discarded, record.changes = len(record.changes), []
            record.error += "; the transaction was rolled back: nothing was written"
        raise
    finally:
        record.finished = _now()
        if record_path is not None:
            record.write(record_path)
    return record


@contextmanager
def _unit(store: MailboxSettingsStore) -> Iterator[bool]:
    """``store.atomic()``, or a no-op for a store without one (each write stands alone)."""
    atomic = getattr(store, "atomic", None)
    with atomic() if atomic is not None else nullcontext(False) as all_or_nothing:
        yield bool(all_or_nothing)


def rollback(
    record: ApplyRecord, store: MailboxSettingsStore, *, record_path: str | Path | None = None
) -> ApplyRecord:
    """Undo an apply: newest change first; returns what the rollback itself changed.

    Rolling back twice is harmless: restoring a value that is already there changes nothing,
    and deleting a row that is gone is a no-op.
    """
    if record.crm != store.url:
        raise CrmError(
            f"this apply record is for {record.crm}, not {store.url}; roll back against the CRM "
            "the plan was applied to"
        )
    undo = ApplyRecord(
        crm=store.url, plan_sha256=record.plan_sha256, started=_now(), kind=record.kind
    )
    with _unit(store) as all_or_nothing:
        undo.transaction = all_or_nothing
        for change in reversed(record.changes):
            if change.action == "created":
                deleted = False
                if change.table == "emailserverprofile":
                    deleted = store.delete_email_server_profile(change.id)
                elif change.table == "mailbox":
                    deleted = store.delete_mailbox(change.id)
                # A second rollback finds the row gone: say so, never "deleted" twice.
                action = "deleted" if deleted else "unchanged"
                undo.changes.append(
                    AppliedChange(change.table, change.key, change.id, action, after={})
                )
            elif change.action == "updated":
                restored = _restore(store, change)
                undo.changes.append(
                    _change(change.table, change.key, restored, change.before, change.lookup)
                )
    undo.status, undo.finished = "rolled back", _now()
    record.status = "rolled back"
    if record_path is not None:
        record.write(record_path)
    return undo


def _restore(store: MailboxSettingsStore, change: AppliedChange) -> RowChange:
    values = {**change.lookup, **change.before}
    if change.table == "emailserverprofile":
        return store.save_email_server_profile(values)
    if change.table == "mailbox":
        return store.save_mailbox(values)
    if change.table in ("systemuser", "queue"):
        return store.update_recipient(change.table, change.id, change.before)
    if change.table == "organization":
        return store.set_email_connection_channel(int(change.before["emailconnectionchannel"]))
    raise CrmError(f"the apply record names an unknown table {change.table!r}")


def _existing_mailboxes(store: MailboxSettingsStore) -> set[str]:
    """Owner keys of the mailboxes that exist (``user``/``queue`` id, forward address)."""
    keys: set[str] = set()
    for row in store.mailboxes():
        if row.get("regardingobjectid"):
            keys.add(str(row["regardingobjectid"]).lower())
        elif row.get("isforwardmailbox") and row.get("emailaddress"):
            keys.add("forward:" + str(row["emailaddress"]).lower())
    return keys


def _recipient_values(mailbox: MailboxPlan) -> dict[str, Any]:
    """The delivery methods to write on the mailbox's user or queue (none for a forward
    mailbox, and none the plan leaves alone)."""
    if mailbox.kind not in ("user", "queue"):
        return {}
    values = {
        "incomingemaildeliverymethod": mailbox.incomingemaildeliverymethod,
        "outgoingemaildeliverymethod": mailbox.outgoingemaildeliverymethod,
    }
    return {column: value for column, value in values.items() if value is not None}


def _mailbox_values(
    mailbox: MailboxPlan, profile_id: str | None, existing: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(columns to write, the key columns that find the row)."""
    settings = mailbox.settings(profile_id)
    if mailbox.kind == "forward":
        address = mailbox.emailaddress or mailbox.owner_id
        lookup: dict[str, Any] = {"emailaddress": address}
        if "forward:" + address.lower() not in existing:
            settings = {
                "name": mailbox.name or address,
                "isforwardmailbox": True,
                "regardingobjectid": None,
                **settings,
            }
        return {**lookup, **settings}, lookup
    lookup = {"regardingobjectid": mailbox.owner_id}
    if mailbox.owner_id.lower() not in existing:
        settings = {
            "name": mailbox.name or mailbox.emailaddress or mailbox.owner_id,
            "emailaddress": mailbox.emailaddress,
            "regardingobjecttypecode": mailbox.regardingobjecttypecode,
            **settings,
        }
    return {**lookup, **settings}, lookup


def _change(
    table: str, key: str, change: RowChange, values: dict[str, Any], lookup: dict[str, Any]
) -> AppliedChange:
    after = {c: values[c] for c in change.before} if change.action == "updated" else {}
    if change.action == "created":
        after = dict(values)
    return AppliedChange(table, key, change.id, change.action, dict(change.before), after, lookup)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
