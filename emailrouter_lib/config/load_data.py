"""Load Data: which users and queues a deployment's router should serve, as a plan.

The Configuration Manager's Load Data took from the CRM every user and queue whose incoming
email delivery method is Email Router (2) or Forward Mailbox (3), or whose outgoing method is
Email Router (2), and whose address is approved. Here that becomes a plan against the current
configuration (new, changed, unchanged, gone, skipped with the reason) that a person reads
before :func:`apply_load_data` edits the configuration; applying a plan twice changes nothing.

The CRM is given as its records (any objects with the ``Recipient`` attributes of
:mod:`emailrouter_lib.crm.base`), so this module does not depend on a CRM backend.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from emailrouter_lib.config.edit import ConfigEditor, Entry

ROUTER, FORWARD_MAILBOX = 2, 3  # incoming/outgoing email delivery method option values
APPROVED = 1  # emailrouteraccessapproval

Action = Literal["new", "changed", "unchanged", "gone", "skipped"]
ACTIONS: tuple[Action, ...] = ("new", "changed", "unchanged", "gone", "skipped")


class CrmRecord(Protocol):
    """What Load Data reads of a CRM user or queue (``crm.base.Recipient`` fits)."""

    entity: str  # "systemuser" | "queue"
    id: str
    name: str
    emailaddress: str
    incomingemaildeliverymethod: int
    outgoingemaildeliverymethod: int
    emailrouteraccessapproval: int
    isdisabled: bool


@dataclass(frozen=True)
class LoadDataRow:
    """One user or queue: what the configuration says now, what it should say, and why."""

    action: Action
    kind: str
    id: str
    name: str | None
    email_address: str | None
    incoming: str | None = None
    outgoing: str | None = None
    forward_mailbox: str | None = None
    was_incoming: str | None = None
    was_outgoing: str | None = None
    was_forward_mailbox: str | None = None
    reason: str = ""
    # A "gone" entry that is the last user or queue of a provider: removing it removes that
    # provider, and with it a profile's server settings; done only when asked (remove_profiles).
    removes_profile: str | None = None


@dataclass
class LoadDataPlan:
    """The rows of a Load Data; nothing is changed until :func:`apply_load_data`."""

    deployment: str
    rows: list[LoadDataRow] = field(default_factory=list)
    remove_gone: bool = True
    remove_profiles: bool = False

    def applies(self, row: LoadDataRow) -> bool:
        """Whether :func:`apply_load_data` carries *row* out."""
        if row.action in ("new", "changed"):
            return True
        if row.action != "gone" or not self.remove_gone:
            return False
        return row.removes_profile is None or self.remove_profiles

    @property
    def kept_profiles(self) -> list[str]:
        """Profiles a "gone" entry would remove but that stay, since nobody asked for it."""
        return sorted(
            {r.removes_profile for r in self.rows if r.removes_profile and not self.applies(r)}
        )

    def counts(self) -> dict[str, int]:
        return {action: sum(r.action == action for r in self.rows) for action in ACTIONS}

    @property
    def changes(self) -> list[LoadDataRow]:
        return [r for r in self.rows if self.applies(r)]

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]

    def summary(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in self.counts().items() if n)
        text = f"Load Data for {self.deployment}: {counts or 'nothing in the CRM'}"
        kept = self.kept_profiles
        if kept:
            names = ", ".join(repr(k) for k in kept)
            text += (
                f"; kept {names}: removing its last user or queue would remove the profile"
                " (ask for it with remove_profiles / --remove-profiles)"
            )
        return text

    def __str__(self) -> str:
        lines = [self.summary()]
        for r in self.rows:
            route = f"in={(r.forward_mailbox and 'forward:' + r.forward_mailbox) or r.incoming}"
            lines.append(
                f"  {r.action:9} {r.kind:5} {r.email_address or r.id}  {route} out={r.outgoing}"
                + (f"  ({r.reason})" if r.reason else "")
                + (f"  [removes profile {r.removes_profile!r}]" if r.removes_profile else "")
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        shown = ("action", "kind", "name", "email_address", "incoming", "forward_mailbox")
        shown += ("outgoing", "reason", "removes_profile")
        head = "".join(f"<th>{c}</th>" for c in shown)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape('' if getattr(r, c) is None else str(getattr(r, c)))}</td>"
                for c in shown
            )
            + "</tr>"
            for r in self.rows
        )
        return (
            f"<p><b>{html.escape(self.summary())}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


def plan_load_data(
    editor: ConfigEditor,
    records: Iterable[CrmRecord],
    *,
    deployment: str | None = None,
    remove_gone: bool = True,
    remove_profiles: bool = False,
) -> LoadDataPlan:
    """Compare the CRM's users and queues with the configuration of one deployment.

    A "gone" entry that is the last one a provider lists would take that provider's profile
    (server, credentials) out of the file with it; the row says so, and it is removed only with
    *remove_profiles*, so Load Data never drops a profile silently.
    """
    target = editor.deployment(deployment)
    url = target.crm_server_url
    forwards = editor.forward_mailboxes(url)
    current = {
        e.id: e
        for e in editor.entries()
        if e.id and e.kind != "forward" and _same(e.deployment, url)
    }
    plan = LoadDataPlan(url, remove_gone=remove_gone, remove_profiles=remove_profiles)
    seen: set[str] = set()
    for record in records:
        record_id = record.id.strip().strip("{}").lower()
        kind = "user" if record.entity == "systemuser" else "queue"
        seen.add(record_id)
        now = current.get(record_id)
        wants_in = record.incomingemaildeliverymethod in (ROUTER, FORWARD_MAILBOX)
        wants_out = record.outgoingemaildeliverymethod == ROUTER
        base = {
            "kind": kind,
            "id": record_id,
            "name": record.name,
            "email_address": record.emailaddress,
            **_was(now),
        }
        problem = _problem(record, wants_in or wants_out)
        if problem:
            if now is not None and now.enabled:
                plan.rows.append(LoadDataRow("gone", reason=problem, **base))
            elif wants_in or wants_out:
                plan.rows.append(LoadDataRow("skipped", reason=problem, **base))
            continue
        notes: list[str] = []
        incoming = forward = None
        if record.incomingemaildeliverymethod == ROUTER:
            incoming = (now.incoming if now else None) or target.default_incoming
            if incoming is None:
                notes.append("no default incoming profile on the deployment; set one")
        elif record.incomingemaildeliverymethod == FORWARD_MAILBOX:
            forward = (now.forward_mailbox if now else None) or (forwards[0] if forwards else None)
            if forward is None:
                notes.append("its mail comes through a forward mailbox; add one")
        outgoing = None
        if wants_out:
            outgoing = (now.outgoing if now else None) or target.default_outgoing
            if outgoing is None:
                notes.append("no default outgoing profile on the deployment; set one")
        route = {"incoming": incoming, "outgoing": outgoing, "forward_mailbox": forward}
        if not any(route.values()):
            plan.rows.append(LoadDataRow("skipped", reason="; ".join(notes), **base))
            continue
        if now is None:
            action: Action = "new"
        elif not now.enabled:
            action, notes = "unchanged", [*notes, "disabled in this configuration"]
        elif (now.incoming, now.outgoing, now.forward_mailbox) == tuple(route.values()):
            action = "unchanged"
        else:
            action = "changed"
        plan.rows.append(LoadDataRow(action, **route, reason="; ".join(notes), **base))
    for record_id, entry in current.items():
        if record_id not in seen and entry.enabled:
            plan.rows.append(
                LoadDataRow(
                    "gone",
                    entry.kind,
                    record_id,
                    entry.name,
                    entry.email_address,
                    **_was(entry),
                    reason="not in the CRM (deleted, or another organisation's record)",
                )
            )
    return _mark_profile_removals(editor, plan)


def _mark_profile_removals(editor: ConfigEditor, plan: LoadDataPlan) -> LoadDataPlan:
    """Name, on each "gone" row, the profile its removal would leave serving nobody."""
    gone = {r.id for r in plan.rows if r.action == "gone"}
    emptied: dict[str, str] = {}
    for provider in editor.config.providers:
        listed = [i.lower() for i in (*provider.user_ids, *provider.queue_ids)]
        if listed and not provider.email_address and set(listed) <= gone:
            for record_id in listed:
                emptied.setdefault(record_id, provider.profile_name or provider.label)
    plan.rows = [
        replace(r, removes_profile=emptied[r.id]) if r.action == "gone" and r.id in emptied else r
        for r in plan.rows
    ]
    return plan


def apply_load_data(
    editor: ConfigEditor, plan: LoadDataPlan, records: Iterable[CrmRecord] = ()
) -> int:
    """Make the configuration match the plan; returns the number of entries changed.

    *records* (the same CRM records) also teach the editor names and addresses, which Test
    Access needs.
    """
    learn_records(editor, records)
    done = 0
    for row in plan.rows:
        editor.names.setdefault(row.id, row.name or "")
        if row.email_address:
            editor.addresses.setdefault(row.id, row.email_address)
        if row.action in ("new", "changed"):
            editor.set_entry(
                row.kind,  # type: ignore[arg-type]
                row.id,
                incoming=row.incoming,
                outgoing=row.outgoing,
                forward_mailbox=row.forward_mailbox,
                deployment=plan.deployment,
            )
            done += 1
        elif row.action == "gone" and plan.applies(row):
            editor.remove_entry(row.id)
            done += 1
    return done


def learn_records(editor: ConfigEditor, records: Iterable[CrmRecord]) -> None:
    """Teach the editor the CRM's names and addresses without changing any entry."""
    for record in records:
        record_id = record.id.strip().strip("{}").lower()
        editor.names[record_id] = record.name
        if record.emailaddress:
            editor.addresses[record_id] = record.emailaddress


def _problem(record: CrmRecord, qualifies: bool) -> str:
    if not qualifies:
        return "the CRM does not route its email through the Email Router"
    if not record.emailaddress:
        return "no email address in the CRM"
    if record.isdisabled:
        return "disabled in the CRM"
    if record.emailrouteraccessapproval != APPROVED:
        return "its email address is not approved in the CRM (approve it, then Load Data again)"
    return ""


def _was(entry: Entry | None) -> dict[str, str | None]:
    if entry is None:
        return {}
    return {
        "was_incoming": entry.incoming,
        "was_outgoing": entry.outgoing,
        "was_forward_mailbox": entry.forward_mailbox,
    }


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").strip().rstrip("/").lower() == (b or "").strip().rstrip("/").lower()


__all__ = [
    "ACTIONS",
    "CrmRecord",
    "LoadDataPlan",
    "LoadDataRow",
    "apply_load_data",
    "learn_records",
    "plan_load_data",
]
