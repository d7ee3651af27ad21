"""Which mailboxes should carry the rule: users and queues whose incoming method is Forward Mailbox.

Two sources, either or both:

* the CRM's ``mailbox`` records (``incomingemaildeliverymethod`` 3 = Forward Mailbox), their
  server from the record's email server profile, the forward mailbox from the ``isforwardmailbox``
  record (the one on the same profile, else the only one);
* the router configuration: each forward-mailbox provider lists the users and queues whose mail
  it receives (``<UserId>`` / ``<QueueId>``, looked up in the CRM for their addresses); their
  mailboxes are taken to be on the provider's server, as the old wizard assumed.

Each mailbox appears once (the configuration wins, it is what the router runs on); what cannot
get a rule carries its reason (``skip``), and ``manual`` says whether an admin can still create
it by hand (Exchange Management Shell, Outlook on the web, the mail system's own forwarding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from emailrouter_lib.config import RouterConfig
from emailrouter_lib.config.vocabulary import ONLINE_HOST_SUFFIXES, squash
from emailrouter_lib.crm.base import require

DELIVERY_FORWARD_MAILBOX = 3
SERVERTYPE_POP3 = 1

SKIP_POP3 = "POP3 mailbox: EWS rules do not exist there; set up forwarding as attachment by hand"
SKIP_2007 = "Exchange 2007 has no inbox-rule API in EWS; create the rule in Outlook by hand"
SKIP_2003 = "Exchange 2003 has no EWS; create the rule in Outlook by hand"
SKIP_ONLINE = (
    "Exchange Online: the old wizard never deployed there and EWS is being retired; run the "
    "generated script in Exchange Online PowerShell"
)
SKIP_FORWARD = "this is the forward mailbox itself; it gets no rule"
SKIP_DISABLED = "disabled for incoming email in the CRM"


@dataclass(frozen=True)
class Target:
    """One mailbox the plan has a row for."""

    address: str
    owner: str  # "user Frank Field", "queue Sales", "forward mailbox CRM sink"
    source: str  # "crm" | "config"
    forward_to: str | None = None
    server: str = "exchange"  # exchange | exchange-online | exchange-2007 | exchange-2003 | pop3
    wanted: bool = True  # False: the forward mailbox itself, or a stale rule to take away
    skip: str | None = None
    manual: bool = False
    note: str = ""


def server_skip(server: str) -> tuple[str | None, bool]:
    """(reason, manual) for servers where this tool cannot deploy over EWS."""
    return {
        "pop3": (SKIP_POP3, True),
        "exchange-2007": (SKIP_2007, True),
        "exchange-2003": (SKIP_2003, True),
        "exchange-online": (SKIP_ONLINE, True),
    }.get(server, (None, False))


def _target(address: str, owner: str, source: str, forward_to: str | None, server: str) -> Target:
    skip, manual = server_skip(server)
    if forward_to is None and skip is None:
        skip = "no forward mailbox found for it; pass forward_mailbox=ADDRESS"
    return Target(
        address.lower(),
        owner,
        source,
        forward_to and forward_to.lower(),
        server,
        True,
        skip,
        manual,
    )


# -- the CRM -------------------------------------------------------------------------------------
def _profile_server(profile: dict[str, Any] | None) -> str:
    if profile is None:
        return "exchange"
    if profile.get("servertype") == SERVERTYPE_POP3:
        return "pop3"
    location = str(profile.get("incomingserverlocation") or "").lower()
    host = location.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if any(host == s or host.endswith("." + s) for s in ONLINE_HOST_SUFFIXES):
        return "exchange-online"
    if profile.get("exchangeversion") in (0, 1):
        return "exchange-2007"
    return "exchange"


def targets_from_crm(crm: Any) -> list[Target]:
    """Rows of the CRM's ``mailbox`` table (the declared MailboxSettingsStore role)."""
    rows = require(crm, "read and write mailbox settings").mailboxes()
    profiles = {p["emailserverprofileid"]: p for p in crm.email_server_profiles()}
    forwards = [r for r in rows if r.get("isforwardmailbox") and r.get("emailaddress")]
    found = []
    for row in rows:
        address = (row.get("emailaddress") or "").strip()
        if not address:
            continue
        server = _profile_server(profiles.get(row.get("emailserverprofile")))
        if row.get("isforwardmailbox"):
            found.append(
                Target(
                    address.lower(),
                    f"forward mailbox {row['name']}",
                    "crm",
                    None,
                    server,
                    False,
                    SKIP_FORWARD,
                )
            )
            continue
        if row.get("incomingemaildeliverymethod") != DELIVERY_FORWARD_MAILBOX:
            continue
        same = [f for f in forwards if f.get("emailserverprofile") == row.get("emailserverprofile")]
        chosen = same or forwards
        forward = chosen[0]["emailaddress"] if len(chosen) == 1 or same else None
        kind = {"systemuser": "user", "queue": "queue"}.get(row.get("regardingobjecttypecode"), "")
        target = _target(address, f"{kind} {row['name']}".strip(), "crm", forward, server)
        if not row.get("enabledforincomingemail", 1) and target.skip is None:
            target = replace(target, skip=SKIP_DISABLED)
        found.append(target)
    return found


# -- the router configuration --------------------------------------------------------------------
def _provider_server(provider: Any) -> str:
    if provider.kind == "pop3":
        return "pop3"
    server_type = squash(provider.email_server_type or "")
    if server_type.startswith("exchange2003"):
        return "exchange-2003"
    if server_type.startswith("exchange2007"):
        return "exchange-2007"
    if provider.is_exchange_online:
        return "exchange-online"
    return "exchange" if provider.kind == "exchange" else "other"


def targets_from_config(config: RouterConfig, crm: Any | None) -> list[Target]:
    """The users and queues each forward-mailbox provider lists, by address from the CRM."""
    providers = config.forward_mailboxes
    wanted = [i for p in providers for i in (*p.user_ids, *p.queue_ids)]
    recipients = crm.recipients_by_id(wanted) if (crm is not None and wanted) else {}
    found = []
    for provider in providers:
        server = _provider_server(provider)
        forward = (provider.email_address or "").strip().lower() or None
        name = provider.forward_mailbox_name or forward or provider.label
        if forward:
            found.append(
                Target(
                    forward, f"forward mailbox {name}", "config", None, server, False, SKIP_FORWARD
                )
            )
        for record_id in (*provider.user_ids, *provider.queue_ids):
            recipient = recipients.get(record_id.lower())
            if recipient is None:
                why = (
                    "not in the CRM; run Load Data again or remove it from the configuration"
                    if crm is not None
                    else "no CRM given to look up its address (crm=)"
                )
                found.append(
                    Target(
                        f"({record_id})", f"id {record_id}", "config", forward, server, True, why
                    )
                )
                continue
            kind = "user" if recipient.entity == "systemuser" else "queue"
            found.append(
                _target(
                    recipient.emailaddress, f"{kind} {recipient.name}", "config", forward, server
                )
            )
    return found


# -- merging and filtering -----------------------------------------------------------------------
def merge(*sources: Iterable[Target]) -> list[Target]:
    """One target per address, the first source winning; a disagreement is noted on the row."""
    merged: dict[str, Target] = {}
    for source in sources:
        for target in source:
            first = merged.get(target.address)
            if first is None:
                merged[target.address] = target
            elif first.forward_to != target.forward_to and target.forward_to:
                note = f"the {target.source} names forward mailbox {target.forward_to}"
                merged[target.address] = replace(first, note=note)
    return sorted(merged.values(), key=lambda t: (not t.wanted, t.address))


def select(targets: Sequence[Target], patterns: Sequence[str] | None) -> list[Target]:
    """Targets whose address matches one of *patterns* (exact or shell-style ``*@sales.*``)."""
    if not patterns:
        return list(targets)
    lowered = [p.strip().lower() for p in patterns if p and p.strip()]
    return [t for t in targets if any(fnmatchcase(t.address, p) for p in lowered)]


def with_forward_mailbox(targets: Sequence[Target], address: str | None) -> list[Target]:
    """Every wanted target forwarding to *address* (an explicit parameter beats both sources)."""
    if not address:
        return list(targets)
    address = address.strip().lower()
    out = []
    for t in targets:
        if t.address == address:
            out.append(replace(t, wanted=False, skip=SKIP_FORWARD, manual=False))
        elif t.wanted:
            skip = t.skip if t.skip and "no forward mailbox" not in t.skip else None
            out.append(replace(t, forward_to=address, skip=skip))
        else:
            out.append(t)
    return out


__all__ = [
    "Target",
    "merge",
    "select",
    "server_skip",
    "targets_from_config",
    "targets_from_crm",
    "with_forward_mailbox",
]
