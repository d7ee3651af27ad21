"""From router configurations (and the CRM as it is) to a :class:`MigrationPlan`.

The planner changes nothing. It works in passes that are each linear in the number of users and
queues: collect who each provider serves, merge each incoming/outgoing pair actually used together
into one profile, then (with a CRM) compare every planned row with the row that exists, so the
plan says create / update / unchanged / skip per row before anyone applies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from emailrouter_lib.config import ProviderConfig, RouterConfig, SystemState
from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    DELIVERY_FORWARD_MAILBOX,
    DELIVERY_NONE,
    DELIVERY_ROUTER,
    EMAILCONNECTIONCHANNEL_SSS,
)
from emailrouter_lib.migration import mapping as m
from emailrouter_lib.migration.model import (
    PROFILE_COLUMNS,
    MailboxPlan,
    MigrationPlan,
    NotMigrated,
    OrganizationChange,
    PlanWarning,
    ProfilePlan,
    RouterSource,
)
from emailrouter_lib.migration.profiles import (
    DEFAULT_PASSWORD_REFERENCE,
    build_profile,
    profile_name,
    source_name,
)
from emailrouter_lib.migration.warnings import warning

# Host names of Dynamics 365 online organisations; any other CRM URL is taken as on-premises.
ONLINE_CRM_SUFFIXES = ("dynamics.com", "crm.dynamics.com", "microsoftdynamics.de")


@dataclass
class RouterInput:
    """One router's files: its configuration and, when there is one, its state file."""

    config: RouterConfig
    state: SystemState | None = None


@dataclass
class PlanOptions:
    """Choices the documents leave to the admin.

    ``crm_on_premises``: None infers it from the providers' ``CrmServerUrl`` (Exchange Online
    profiles become *Exchange Online (Hybrid)*, servertype 3, for an on-premises CRM; our
    reading). ``password_reference``: the secret reference template for profiles that carry
    credentials (``{slug}`` is the profile name in capitals).
    """

    crm_on_premises: bool | None = None
    password_reference: str = DEFAULT_PASSWORD_REFERENCE
    created: str | None = None


@dataclass
class _Owner:
    kind: str  # user | queue | forward
    key: str  # guid, or the forward mailbox's lower-cased address
    incoming: list[tuple[int, ProviderConfig]] = field(default_factory=list)
    outgoing: list[tuple[int, ProviderConfig]] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return f"{self.kind}:{self.key}"


def build_plan(
    routers: Sequence[RouterInput | RouterConfig],
    crm: Any | None = None,
    options: PlanOptions | None = None,
) -> MigrationPlan:
    """Plan the migration of *routers* (in order: the first listing a user decides its profile).

    *crm* is a CRM backend that also implements
    :class:`~emailrouter_lib.crm.base.MailboxSettingsStore` (the SQLite CRM does); without one
    the plan is built from the files alone and every action is ``planned``.
    """
    options = options or PlanOptions()
    inputs = [r if isinstance(r, RouterInput) else RouterInput(r) for r in routers]
    return _Planner(inputs, crm, options).plan()


class _Planner:
    def __init__(self, inputs: list[RouterInput], crm: Any | None, options: PlanOptions):
        self.inputs = inputs
        self.crm = crm
        self.options = options
        self.labels = [f"router {i + 1}" for i in range(len(inputs))]
        self.warnings: list[PlanWarning] = []
        self.profiles: dict[str, ProfilePlan] = {}
        self.pairs: dict[tuple[int, int], tuple[ProfilePlan | None, str | None]] = {}
        self.not_migrated: dict[str, NotMigrated] = {}
        self.on_premises = options.crm_on_premises
        if self.on_premises is None:
            self.on_premises = _crm_on_premises(inputs)

    def warn(self, code: str, message: str, **where: str | None) -> None:
        self.warnings.append(warning(code, message, **where))

    # -- passes ------------------------------------------------------------------------------

    def plan(self) -> MigrationPlan:
        sources = [self.source(i, r) for i, r in enumerate(self.inputs)]
        for index, router in enumerate(self.inputs):
            self.check_router(index, router.config)
        self.check_mixed_routers()
        owners = self.collect_owners()
        mailboxes = [self.plan_mailbox(owner) for owner in owners.values()]
        organization = OrganizationChange(emailconnectionchannel=EMAILCONNECTIONCHANNEL_SSS)
        plan = MigrationPlan(
            profiles=list(self.profiles.values()),
            mailboxes=mailboxes,
            not_migrated=list(self.not_migrated.values()),
            warnings=self.warnings,
            organization=organization,
            sources=sources,
            crm=getattr(self.crm, "url", None),
            created=self.options.created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if self.crm is None:
            self.warn("no-crm", "no CRM given: users, queues and mailboxes were not checked")
        else:
            _CrmComparison(self.crm, plan, self.warn).run()
        return plan

    def source(self, index: int, router: RouterInput) -> RouterSource:
        config = router.config
        return RouterSource(
            router=self.labels[index],
            config=str(config.path) if config.path else "(in memory)",
            providers=len(config.providers),
            state=str(router.state.path) if router.state else None,
            state_records=len(router.state.records) if router.state else None,
        )

    def check_router(self, index: int, config: RouterConfig) -> None:
        label = self.labels[index]
        for finding in config.findings:
            if finding.severity in ("error", "warning") and finding.code != "unknown-element":
                self.warn("config-finding", f"{finding.where}: {finding.message}", router=label)
        exchange = [p for p in config.providers if p.kind == "exchange"]
        online = {m.family(p) == "exchange-online" for p in exchange}
        if online == {True, False}:
            self.warn(
                "mixed-online-onpremises",
                f"{label} ({config.path}) has both Exchange Online and on-premises Exchange "
                "providers",
                router=label,
            )

    def check_mixed_routers(self) -> None:
        kinds: dict[bool, list[str]] = {True: [], False: []}
        for index, router in enumerate(self.inputs):
            for provider in router.config.providers:
                if provider.kind == "exchange":
                    kinds[m.family(provider) == "exchange-online"].append(self.labels[index])
        online, onprem = set(kinds[True]), set(kinds[False])
        if online and onprem and (online != onprem or len(online) > 1):
            self.warn(
                "mixed-online-onpremises",
                f"Exchange Online in {', '.join(sorted(online))}; on-premises Exchange in "
                f"{', '.join(sorted(onprem))}",
            )

    def collect_owners(self) -> dict[str, _Owner]:
        owners: dict[str, _Owner] = {}
        for index, router in enumerate(self.inputs):
            label = self.labels[index]
            for provider in router.config.providers:
                if provider.direction is None:
                    self.add_not_migrated(
                        source_name(provider),
                        "the provider's direction (incoming or outgoing) is unknown",
                        index,
                        provider,
                        None,
                        0,
                    )
                    continue
                slot = "incoming" if provider.direction == "incoming" else "outgoing"
                served = 0
                if provider.is_forward_mailbox and provider.direction == "incoming":
                    address = (provider.email_address or "").strip().lower()
                    if not address:
                        self.warn(
                            "forward-without-address",
                            f"forward mailbox {provider.label} has no <EmailAddress>",
                            profile=source_name(provider),
                            router=label,
                        )
                    else:
                        owner = owners.setdefault(f"forward:{address}", _Owner("forward", address))
                        owner.incoming.append((index, provider))
                        served += 1
                for kind, ids in (("user", provider.user_ids), ("queue", provider.queue_ids)):
                    for record_id in ids:
                        key = f"{kind}:{record_id}"
                        owner = owners.get(key)
                        if owner is None:
                            owner = owners[key] = _Owner(kind, record_id)
                        getattr(owner, slot).append((index, provider))
                    served += len(ids)
                if not served:
                    self.warn(
                        "unused-provider",
                        f"{provider.label} lists no user, queue or forward mailbox",
                        profile=source_name(provider),
                        router=label,
                    )
        return owners

    # -- one owner ---------------------------------------------------------------------------

    def plan_mailbox(self, owner: _Owner) -> MailboxPlan:
        routers = sorted({i for i, _ in (*owner.incoming, *owner.outgoing)})
        labels = [self.labels[i] for i in routers]
        if len(routers) > 1:
            self.warn(
                "in-several-routers",
                f"{owner.owner} is listed by {', '.join(labels)}; {labels[0]} decides",
                owner=owner.owner,
            )
        for direction, uses in (("incoming", owner.incoming), ("outgoing", owner.outgoing)):
            names = list(dict.fromkeys(source_name(p) for _, p in uses))
            if len(names) > 1:
                self.warn(
                    "several-profiles",
                    f"{owner.owner} has {len(names)} {direction} profiles "
                    f"({', '.join(names)}); using {names[0]}",
                    owner=owner.owner,
                )
        first_in = owner.incoming[0] if owner.incoming else None
        first_out = owner.outgoing[0] if owner.outgoing else None
        incoming = first_in[1] if first_in else None
        outgoing = first_out[1] if first_out else None
        router_index = (first_in or first_out)[0]  # type: ignore[index]
        profile, reason = self.pair_profile(router_index, incoming, outgoing)

        forward = owner.kind == "forward"
        if forward:
            assert incoming is not None
            plan = MailboxPlan(
                owner=owner.owner,
                emailserverprofile=profile.name if profile else None,
                incomingemaildeliverymethod=DELIVERY_ROUTER,
                outgoingemaildeliverymethod=DELIVERY_NONE,
                isforwardmailbox=True,
                name=(incoming.forward_mailbox_name or incoming.email_address or owner.key),
                emailaddress=incoming.email_address,
                processanddeleteemails=incoming.delete_emails,
                routers=labels,
            )
            if profile is not None and m.family(incoming) == "exchange-online":
                self.warn(
                    "exchange-online-forward-mailbox",
                    f"forward mailbox {incoming.email_address} is on Exchange Online",
                    profile=profile.name,
                    owner=owner.owner,
                )
        else:
            via_forward = incoming is not None and incoming.is_forward_mailbox
            plan = MailboxPlan(
                owner=owner.owner,
                emailserverprofile=profile.name if profile else None,
                incomingemaildeliverymethod=(
                    None
                    if incoming is None
                    else DELIVERY_FORWARD_MAILBOX
                    if via_forward
                    else DELIVERY_ROUTER
                ),
                outgoingemaildeliverymethod=DELIVERY_ROUTER if outgoing is not None else None,
                routers=labels,
            )
        if profile is None:
            plan.action, plan.reason = "skip", f"its profile is not migrated: {reason}"
        else:
            profile.mailbox_count += 1
        return plan

    def pair_profile(
        self, index: int, incoming: ProviderConfig | None, outgoing: ProviderConfig | None
    ) -> tuple[ProfilePlan | None, str | None]:
        """The merged profile of a pair (built once per pair of provider objects)."""
        key = (id(incoming), id(outgoing))
        cached = self.pairs.get(key)
        if cached is not None:
            if cached[0] is None:
                self.not_migrated[profile_name(incoming, outgoing)].mailbox_count += 1
            return cached
        fam_in = m.family(incoming) if incoming else None
        fam_out = m.family(outgoing) if outgoing else None
        rule, reason = m.merge_rule(fam_in, fam_out)
        if rule.outcome == "not-migrated":
            self.add_not_migrated(
                profile_name(incoming, outgoing), reason or "", index, incoming, outgoing, 1
            )
            self.pairs[key] = (None, reason)
            return None, reason
        built = build_profile(
            incoming,
            outgoing,
            rule.outcome,
            crm_on_premises=bool(self.on_premises),
            reference_template=self.options.password_reference,
        )
        profile = self.register(built, index)
        self.pairs[key] = (profile, None)
        self.pair_warnings(profile, rule, incoming, outgoing, index)
        return profile, None

    def register(self, built: ProfilePlan, index: int) -> ProfilePlan:
        """One profile per name: the same settings from several routers merge; different
        settings under one name get a suffix (and a warning)."""
        label = self.labels[index]
        name, number = built.name, 1
        while (existing := self.profiles.get(name.lower())) is not None:
            if _same_settings(existing, built):
                if label not in existing.routers:
                    existing.routers.append(label)
                return existing
            number += 1
            name = f"{built.name[: _name_room(number)]} ({number})"
        if number > 1:
            self.warn(
                "profile-name-clash",
                f"profile {built.name!r} of {label} differs from an earlier one with that name; "
                f"it is planned as {name!r}",
                profile=name,
                router=label,
            )
            built.name = name
        built.routers.append(label)
        self.profiles[name.lower()] = built
        return built

    def pair_warnings(
        self,
        profile: ProfilePlan,
        rule: m.MergeRule,
        incoming: ProviderConfig | None,
        outgoing: ProviderConfig | None,
        index: int,
    ) -> None:
        label = self.labels[index]
        if rule.warning == "exchange-smtp" and outgoing is not None:
            self.warn(
                "exchange-smtp",
                f"{profile.name}: SMTP server {outgoing.email_server_url or '(none)'} is no longer "
                "used; email is sent through Exchange",
                profile=profile.name,
                router=label,
            )
        elif rule.warning == "pop3-exchange" and incoming is not None:
            self.warn(
                "pop3-exchange",
                f"{profile.name}: POP3 server {incoming.email_server_url or '(none)'} is replaced "
                "by Exchange",
                profile=profile.name,
                router=label,
            )
        elif rule.warning == "mixed-online-onpremises":
            self.warn(
                "mixed-online-onpremises",
                f"{profile.name} pairs Exchange Online with on-premises Exchange",
                profile=profile.name,
                router=label,
            )
        plain = [
            side
            for side, location, ssl in (
                ("incoming", profile.incomingserverlocation, profile.incomingusessl),
                ("outgoing", profile.outgoingserverlocation, profile.outgoingusessl),
            )
            if location and not ssl
        ]
        if plain:
            self.warn(
                "non-ssl",
                f"{profile.name}: {' and '.join(plain)} connection without SSL/TLS",
                profile=profile.name,
                router=label,
            )
        for provider in (incoming, outgoing):
            if provider is None:
                continue
            if (
                profile.incomingcredentialretrieval == m.CREDENTIALS_SERVER_TO_SERVER
                and provider.credentials_kind in ("user_specified", "other_specified")
            ):
                self.warn(
                    "credentials-dropped",
                    f"{profile.name}: {source_name(provider)} used "
                    f"{provider.email_access_credentials} credentials; Exchange Online uses "
                    "server-to-server authentication",
                    profile=profile.name,
                    router=label,
                )
            if m.credential_retrieval(provider) is None:
                self.warn(
                    "unknown-credentials",
                    f"{provider.label}: <EmailAccessCredentials> is "
                    f"{provider.email_access_credentials or 'missing'}",
                    profile=profile.name,
                    router=label,
                )

    def add_not_migrated(
        self,
        name: str,
        reason: str,
        index: int,
        incoming: ProviderConfig | None,
        outgoing: ProviderConfig | None,
        mailboxes: int,
    ) -> str:
        entry = self.not_migrated.get(name)
        if entry is None:
            entry = self.not_migrated[name] = NotMigrated(
                profile=name,
                reason=reason,
                incoming_profile=source_name(incoming) if incoming else None,
                outgoing_profile=source_name(outgoing) if outgoing else None,
            )
        entry.mailbox_count += mailboxes
        if self.labels[index] not in entry.routers:
            entry.routers.append(self.labels[index])
        return name


def _name_room(number: int) -> int:
    return 100 - len(f" ({number})")


def _same_settings(a: ProfilePlan, b: ProfilePlan) -> bool:
    return all(
        getattr(a, c) == getattr(b, c) for c in PROFILE_COLUMNS if c not in ("name", "description")
    )


def _crm_on_premises(inputs: list[RouterInput]) -> bool:
    """True unless every provider's CrmServerUrl is a Dynamics 365 online host."""
    hosts = []
    for router in inputs:
        for provider in router.config.providers:
            if provider.crm_server_url:
                try:
                    hosts.append((urlsplit(provider.crm_server_url.strip()).hostname or "").lower())
                except ValueError:
                    continue
    if not hosts:
        return False
    return not all(any(h == s or h.endswith("." + s) for s in ONLINE_CRM_SUFFIXES) for h in hosts)


class _CrmComparison:
    """Compare the plan with the CRM's rows and fill in actions, names, ids and warnings."""

    def __init__(self, crm: Any, plan: MigrationPlan, warn: Any):
        self.crm = crm
        self.plan = plan
        self.warn = warn

    def run(self) -> None:
        existing = {
            str(row["name"]).lower(): row for row in self.crm.email_server_profiles() if row["name"]
        }
        profile_ids: dict[str, str | None] = {}
        for profile in self.plan.profiles:
            row = existing.get(profile.name.lower())
            if row is None:
                profile.action, profile.changes = "create", []
                profile_ids[profile.name] = None
                continue
            profile.emailserverprofileid = row["emailserverprofileid"]
            profile.changes = _differences(row, profile.columns())
            profile.action = "update" if profile.changes else "unchanged"
            profile_ids[profile.name] = row["emailserverprofileid"]

        ids = [m.owner_id for m in self.plan.mailboxes if m.kind in ("user", "queue")]
        recipients = self.crm.recipients_by_id(ids) if ids else {}
        rows = self.crm.mailboxes()
        by_owner = {
            str(r["regardingobjectid"]).lower(): r for r in rows if r.get("regardingobjectid")
        }
        forwards = {
            str(r["emailaddress"]).lower(): r
            for r in rows
            if r.get("isforwardmailbox") and r.get("emailaddress")
        }
        listed: set[str] = set()
        for mailbox in self.plan.mailboxes:
            if mailbox.kind == "forward":
                row = forwards.get(mailbox.owner_id)
            else:
                listed.add(mailbox.owner_id)
                recipient = recipients.get(mailbox.owner_id)
                if recipient is None:
                    self.warn(
                        "not-in-crm",
                        f"{mailbox.owner} ({', '.join(mailbox.routers)}) is not in the CRM",
                        owner=mailbox.owner,
                    )
                    mailbox.action, mailbox.reason = "skip", "not in the CRM"
                    continue
                mailbox.name, mailbox.emailaddress = recipient.name, recipient.emailaddress
                self.check_recipient(mailbox, recipient)
                row = by_owner.get(mailbox.owner_id)
            if row is not None:
                self.check_row(mailbox, row)
            if mailbox.action == "skip":
                continue
            if row is None:
                mailbox.action, mailbox.changes = "create", []
                continue
            mailbox.mailboxid = row["mailboxid"]
            wanted = mailbox.settings(profile_ids.get(mailbox.emailserverprofile or ""))
            if mailbox.emailserverprofile and profile_ids.get(mailbox.emailserverprofile) is None:
                wanted["emailserverprofile"] = "(new profile)"
            mailbox.changes = _differences(row, wanted)
            if mailbox.kind != "forward":
                mailbox.changes += _recipient_differences(mailbox, recipients[mailbox.owner_id])
            mailbox.action = "update" if mailbox.changes else "unchanged"

        for row in rows:
            owner = str(row.get("regardingobjectid") or "").lower()
            if not owner or owner in listed:
                continue
            routed = row.get("incomingemaildeliverymethod") in (
                DELIVERY_ROUTER,
                DELIVERY_FORWARD_MAILBOX,
            ) or (row.get("outgoingemaildeliverymethod") == DELIVERY_ROUTER)
            if routed:
                kind = "queue" if row.get("regardingobjecttypecode") == "queue" else "user"
                self.warn(
                    "not-in-config",
                    f"{kind}:{owner} ({row.get('name')}, {row.get('emailaddress')}) uses the "
                    "Email Router in the CRM but no configuration lists it",
                    owner=f"{kind}:{owner}",
                )

        current = self.crm.organization().emailconnectionchannel
        self.plan.organization.current = current
        self.plan.organization.action = (
            "unchanged" if current == self.plan.organization.emailconnectionchannel else "update"
        )

    def check_recipient(self, mailbox: MailboxPlan, recipient: Any) -> None:
        if recipient.isdisabled:
            self.warn(
                "mailbox-disabled",
                f"{mailbox.owner} ({recipient.name}) is disabled in the CRM",
                owner=mailbox.owner,
                profile=mailbox.emailserverprofile,
            )
        if recipient.emailrouteraccessapproval != APPROVAL_APPROVED:
            self.warn(
                "not-approved",
                f"{mailbox.owner} ({recipient.name}, {recipient.emailaddress}): email address "
                f"approval is {_approval(recipient.emailrouteraccessapproval)}, not approved",
                owner=mailbox.owner,
                profile=mailbox.emailserverprofile,
            )

    def check_row(self, mailbox: MailboxPlan, row: dict[str, Any]) -> None:
        if row.get("statecode") not in (0, None) or row.get("enabledforincomingemail") == 0:
            self.warn(
                "mailbox-disabled",
                f"the mailbox of {mailbox.owner} ({row.get('name')}) is inactive or disabled for "
                "incoming email",
                owner=mailbox.owner,
                profile=mailbox.emailserverprofile,
            )
        if mailbox.kind == "forward" and row.get("emailrouteraccessapproval") not in (
            APPROVAL_APPROVED,
            None,
        ):
            self.warn(
                "not-approved",
                f"forward mailbox {mailbox.emailaddress}: email address approval is "
                f"{_approval(row.get('emailrouteraccessapproval'))}, not approved",
                owner=mailbox.owner,
                profile=mailbox.emailserverprofile,
            )


def _differences(row: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Columns whose stored value differs from the wanted one (Booleans compared as 0/1)."""
    return [
        column
        for column, value in wanted.items()
        if _norm(row.get(column)) != _norm(value) and column != "emailserverprofileid"
    ]


def _recipient_differences(mailbox: MailboxPlan, recipient: Any) -> list[str]:
    """The user's or queue's own delivery-method columns that apply would change, named
    ``systemuser.<column>`` / ``queue.<column>``."""
    wanted = {
        "incomingemaildeliverymethod": mailbox.incomingemaildeliverymethod,
        "outgoingemaildeliverymethod": mailbox.outgoingemaildeliverymethod,
    }
    return [
        f"{recipient.entity}.{column}"
        for column, value in wanted.items()
        if value is not None and getattr(recipient, column) != value
    ]


def _norm(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _approval(value: Any) -> str:
    """An approval option value in words (``2`` → ``pending approval``)."""
    return m.APPROVAL_LABELS.get(value, f"unknown ({value})")
