"""The migration plan: what a person reviews before anything in the CRM changes.

Field names are Dataverse column names wherever a field becomes a column, so the JSON plan reads
like the rows it will write. The plan holds no secret: profile passwords appear only as a secret
*reference* (``env:…``) for the backend to resolve when it writes the profile.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import pandas as pd

from emailrouter_lib.findings import Finding

SCHEMA = "emailrouter.migration-plan/1"

# The emailserverprofile columns the plan writes, in the order a reviewer reads them.
PROFILE_COLUMNS: tuple[str, ...] = (
    "name",
    "servertype",
    "incomingserverlocation",
    "outgoingserverlocation",
    "incomingportnumber",
    "outgoingportnumber",
    "incomingusessl",
    "outgoingusessl",
    "incomingcredentialretrieval",
    "outgoingcredentialretrieval",
    "incomingauthenticationprotocol",
    "outgoingauthenticationprotocol",
    "incomingusername",
    "outgoingusername",
    "useautodiscover",
    "usesamesettingsforoutgoingconnections",
    "exchangeversion",
    "moveundeliveredemails",
    "description",
)

Action = Literal["create", "update", "unchanged", "skip", "planned"]


@dataclass
class ProfilePlan:
    """One email server profile to create or update, merged from the router profiles that the
    same users and queues used together."""

    name: str
    servertype: int
    incomingcredentialretrieval: int
    outgoingcredentialretrieval: int
    incomingserverlocation: str | None = None
    outgoingserverlocation: str | None = None
    incomingportnumber: int | None = None
    outgoingportnumber: int | None = None
    incomingusessl: bool = True
    outgoingusessl: bool = True
    incomingauthenticationprotocol: int = 0
    outgoingauthenticationprotocol: int = 0
    incomingusername: str | None = None
    outgoingusername: str | None = None
    useautodiscover: bool = False
    usesamesettingsforoutgoingconnections: bool = True
    exchangeversion: int | None = None
    moveundeliveredemails: bool = False
    description: str = ""
    incoming_profile: str | None = None  # the router's incoming profile name
    outgoing_profile: str | None = None  # the router's outgoing profile name
    source_providers: list[str] = field(default_factory=list)
    routers: list[str] = field(default_factory=list)
    password_reference: str | None = None  # for credentialretrieval 1: a secret reference
    mailbox_count: int = 0
    action: Action = "planned"
    changes: list[str] = field(default_factory=list)
    emailserverprofileid: str | None = None

    def columns(self) -> dict[str, Any]:
        """The Dataverse columns to write (no password: the backend resolves the reference)."""
        return {column: getattr(self, column) for column in PROFILE_COLUMNS}


@dataclass
class MailboxPlan:
    """The settings one user, queue or forward mailbox gets.

    ``owner`` is ``user:<guid>``, ``queue:<guid>`` or ``forward:<address>``. A None delivery
    method means "leave it as it is" (the router did not handle that direction for this owner).
    """

    owner: str
    emailserverprofile: str | None
    incomingemaildeliverymethod: int | None
    outgoingemaildeliverymethod: int | None
    isforwardmailbox: bool = False
    name: str | None = None
    emailaddress: str | None = None
    processanddeleteemails: bool | None = None
    routers: list[str] = field(default_factory=list)
    action: Action = "planned"
    reason: str | None = None
    changes: list[str] = field(default_factory=list)
    mailboxid: str | None = None

    @property
    def kind(self) -> str:
        return self.owner.split(":", 1)[0]

    @property
    def owner_id(self) -> str:
        return self.owner.split(":", 1)[1]

    @property
    def regardingobjecttypecode(self) -> str | None:
        return {"user": "systemuser", "queue": "queue"}.get(self.kind)

    def settings(self, profile_id: str | None) -> dict[str, Any]:
        """The mailbox columns the migration sets (None values are left alone)."""
        values: dict[str, Any] = {
            "emailserverprofile": profile_id,
            "incomingemaildeliverymethod": self.incomingemaildeliverymethod,
            "outgoingemaildeliverymethod": self.outgoingemaildeliverymethod,
        }
        if self.processanddeleteemails is not None:
            values["processanddeleteemails"] = self.processanddeleteemails
        return {column: value for column, value in values.items() if value is not None}


@dataclass
class NotMigrated:
    """A router profile (pair) that server-side synchronization cannot take over, and why."""

    profile: str
    reason: str
    incoming_profile: str | None = None
    outgoing_profile: str | None = None
    routers: list[str] = field(default_factory=list)
    mailbox_count: int = 0


@dataclass(frozen=True)
class PlanWarning(Finding):
    """Something a person should look at before applying; never a reason to stop. The one
    Finding shape; ``where`` is said from the router, profile and owner it is about."""

    profile: str | None = None
    owner: str | None = None
    router: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.where is None:
            place = "; ".join(p for p in (self.router, self.profile, self.owner) if p)
            object.__setattr__(self, "where", place or None)


@dataclass
class OrganizationChange:
    """The organisation's "Process Email Using" switch (``emailconnectionchannel``)."""

    emailconnectionchannel: int = 0
    current: int | None = None
    action: Action = "planned"


@dataclass
class RouterSource:
    """One router's input files, as the plan names them."""

    router: str
    config: str
    providers: int
    state: str | None = None
    state_records: int | None = None


@dataclass
class MigrationPlan:
    """Everything the migration would do, reviewable as JSON, CSV or Excel."""

    profiles: list[ProfilePlan] = field(default_factory=list)
    mailboxes: list[MailboxPlan] = field(default_factory=list)
    not_migrated: list[NotMigrated] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    organization: OrganizationChange = field(default_factory=OrganizationChange)
    sources: list[RouterSource] = field(default_factory=list)
    crm: str | None = None
    created: str | None = None
    schema: str = SCHEMA

    # -- counts ------------------------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        return {
            "profiles": len(self.profiles),
            "mailboxes": sum(1 for m in self.mailboxes if m.action != "skip"),
            "skipped mailboxes": sum(1 for m in self.mailboxes if m.action == "skip"),
            "not migrated": len(self.not_migrated),
            "warnings": len(self.warnings),
        }

    def actions(self) -> dict[str, int]:
        """How many profile and mailbox rows each action touches."""
        tally: dict[str, int] = {}
        for item in [*self.profiles, *self.mailboxes]:
            tally[item.action] = tally.get(item.action, 0) + 1
        return dict(sorted(tally.items()))

    def profile(self, name: str) -> ProfilePlan | None:
        return next((p for p in self.profiles if p.name == name), None)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "created": self.created,
            "crm": self.crm,
            "summary": self.counts,
            "sources": [asdict(s) for s in self.sources],
            "profiles": [asdict(p) for p in self.profiles],
            "mailboxes": [asdict(m) for m in self.mailboxes],
            "not_migrated": [asdict(n) for n in self.not_migrated],
            "warnings": [
                {k: v for k, v in asdict(w).items() if k != "where"} for w in self.warnings
            ],
            "organization": asdict(self.organization),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationPlan:
        """Read a plan written by :meth:`to_json` (unknown keys are ignored)."""
        return cls(
            profiles=[_build(ProfilePlan, p) for p in data.get("profiles", [])],
            mailboxes=[_build(MailboxPlan, m) for m in data.get("mailboxes", [])],
            not_migrated=[_build(NotMigrated, n) for n in data.get("not_migrated", [])],
            warnings=[_build(PlanWarning, w) for w in data.get("warnings", [])],
            organization=_build(OrganizationChange, data.get("organization") or {}),
            sources=[_build(RouterSource, s) for s in data.get("sources", [])],
            crm=data.get("crm"),
            created=data.get("created"),
            schema=data.get("schema", SCHEMA),
        )

    # -- tables ------------------------------------------------------------------------------

    def tables(self) -> dict[str, pd.DataFrame]:
        """One table per part of the plan, for reports, CSV and Excel."""
        return {
            "profiles": _frame(
                [
                    {
                        "action": p.action,
                        **{c: v for c, v in p.columns().items() if c != "description"},
                        "mailboxes": p.mailbox_count,
                        "incoming_profile": p.incoming_profile,
                        "outgoing_profile": p.outgoing_profile,
                        "routers": ", ".join(p.routers),
                        "password_reference": p.password_reference,
                        "changes": ", ".join(p.changes),
                    }
                    for p in self.profiles
                ],
                ["action", *PROFILE_COLUMNS[:-1], "mailboxes"],
            ),
            "mailboxes": _frame(
                [
                    {
                        "action": m.action,
                        "owner": m.owner,
                        "name": m.name,
                        "emailaddress": m.emailaddress,
                        "emailserverprofile": m.emailserverprofile,
                        "incomingemaildeliverymethod": m.incomingemaildeliverymethod,
                        "outgoingemaildeliverymethod": m.outgoingemaildeliverymethod,
                        "isforwardmailbox": m.isforwardmailbox,
                        "reason": m.reason,
                        "changes": ", ".join(m.changes),
                        "routers": ", ".join(m.routers),
                    }
                    for m in self.mailboxes
                ],
                ["action", "owner", "emailserverprofile", "reason"],
            ),
            "not_migrated": _frame(
                [asdict(n) | {"routers": ", ".join(n.routers)} for n in self.not_migrated],
                ["profile", "reason", "mailbox_count"],
            ),
            # ``where`` only joins profile, owner and router, which have columns of their own
            "warnings": _frame(
                [{k: v for k, v in asdict(w).items() if k != "where"} for w in self.warnings],
                ["severity", "code", "profile", "owner", "router", "message"],
            ),
        }


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A table that keeps its columns even with no rows (an empty sheet still has headings)."""
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    front = [c for c in columns if c in frame.columns]
    return frame[front + [c for c in frame.columns if c not in columns]]
