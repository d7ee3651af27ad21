"""What the CRM says about each mailbox, read once per audit.

Users, queues and forward mailboxes with their delivery methods, approval and the mailbox
record's incoming/outgoing status. The embedded store answers all of it; a backend that cannot
list its mailbox records (``rows``) still gives users and queues, and the audit says what it
could not check instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emailrouter_lib.crm.base import CrmBackend, Organization, require

DELIVERY = {0: "none", 1: "Outlook", 2: "Email Router", 3: "forward mailbox"}
APPROVAL = {0: "empty", 1: "approved", 2: "pending approval", 3: "rejected"}
EMAIL_STATUS = {0: "not run", 1: "success", 2: "failure"}
ROUTER_DELIVERY = 2
FORWARD_DELIVERY = 3


def label(table: dict[int, str], value: Any) -> str | None:
    """An option-set value as admins read it; unknown values keep their number."""
    if value is None:
        return None
    return table.get(int(value), f"unknown ({value})")


@dataclass(frozen=True)
class CrmMailbox:
    """A user, queue or forward mailbox as the CRM has it (ids and addresses lower-cased)."""

    kind: str  # user | queue | forward
    id: str
    name: str
    address: str
    incoming: int | None = None
    outgoing: int | None = None
    approval: int | None = None
    disabled: bool = False
    incoming_status: int | None = None
    outgoing_status: int | None = None
    mailbox_address: str | None = None  # the mailbox record's own address, when it has one

    @property
    def uses_router(self) -> bool:
        if self.kind == "forward":
            return True
        return (
            self.incoming in (ROUTER_DELIVERY, FORWARD_DELIVERY) or self.outgoing == ROUTER_DELIVERY
        )


@dataclass
class CrmView:
    """Every CRM mailbox, by address and by id, plus the organisation's approval rules."""

    by_address: dict[str, CrmMailbox] = field(default_factory=dict)
    by_id: dict[str, CrmMailbox] = field(default_factory=dict)
    organization: Organization | None = None
    url: str | None = None
    limits: list[str] = field(default_factory=list)  # what this backend could not tell

    @property
    def mailboxes(self) -> list[CrmMailbox]:
        return list(self.by_address.values())

    def find(self, address: str | None) -> CrmMailbox | None:
        return self.by_address.get(address.lower()) if address else None

    def approval_required(self, kind: str) -> bool:
        org = self.organization
        if org is None:
            return False
        return (
            org.requireapprovalforqueueemail
            if kind == "queue"
            else (org.requireapprovalforuseremail if kind == "user" else False)
        )


def read_crm(crm: CrmBackend | None) -> CrmView:
    view = CrmView()
    if crm is None:
        return view
    view.url = crm.url
    view.organization = crm.organization()
    # Both declared roles, checked up front: the users and queues (RecipientDirectory) and their
    # mailbox records, each regarding its user or queue (MailboxSettingsStore).
    records = require(crm, "list its users and queues").recipients()
    mailboxes = require(crm, "read and write mailbox settings").mailboxes()
    by_owner = {
        str(row["regardingobjectid"]).strip("{}").lower(): row
        for row in mailboxes
        if row.get("regardingobjectid") and not row.get("isforwardmailbox")
    }
    for record in records:
        kind = "user" if record.entity == "systemuser" else "queue"
        box = by_owner.get(record.id.strip("{}").lower(), {})
        found = CrmMailbox(
            kind=kind,
            id=record.id.lower(),
            name=record.name,
            address=record.emailaddress.lower(),
            incoming=record.incomingemaildeliverymethod,
            outgoing=record.outgoingemaildeliverymethod,
            approval=record.emailrouteraccessapproval,
            disabled=record.isdisabled,
            incoming_status=box.get("incomingemailstatus"),
            outgoing_status=box.get("outgoingemailstatus"),
            mailbox_address=(box.get("emailaddress") or "").lower() or None,
        )
        _add(view, found)
    for row in mailboxes:
        if row.get("isforwardmailbox") and row.get("emailaddress"):
            found = CrmMailbox(
                kind="forward",
                id=str(row["mailboxid"]).lower(),
                name=row.get("name") or "",
                address=str(row["emailaddress"]).lower(),
                incoming=row.get("incomingemaildeliverymethod"),
                outgoing=row.get("outgoingemaildeliverymethod"),
                approval=row.get("emailrouteraccessapproval"),
                disabled=not row.get("enabledforincomingemail", 1),
                incoming_status=row.get("incomingemailstatus"),
                outgoing_status=row.get("outgoingemailstatus"),
                mailbox_address=str(row["emailaddress"]).lower(),
            )
            _add(view, found)
    return view


def _add(view: CrmView, mailbox: CrmMailbox) -> None:
    view.by_id[mailbox.id] = mailbox
    view.by_address.setdefault(mailbox.address, mailbox)
