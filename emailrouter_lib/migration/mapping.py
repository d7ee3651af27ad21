"""The Microsoft mapping from Email Router profiles to server-side synchronization, as tables.

Sources: "Merge email server profiles for migration" (TechNet dn531068) for which pairs of
incoming and outgoing profiles migrate and into what; the ``emailserverprofile`` option sets
(``servertype``, ``*credentialretrieval``, ``*authenticationprotocol``, ``exchangeversion``) from
the Dataverse entity reference. See ``reference/email-router.md`` §8 and
``email-router-research.md`` §7. Where the documents are silent the choice is marked "our
reading", so that one table edit, not a planner change, corrects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from emailrouter_lib.config import ProviderConfig
from emailrouter_lib.config.vocabulary import squash

# -- emailserverprofile option sets ------------------------------------------------------------

SERVERTYPE_EXCHANGE = 0
SERVERTYPE_OTHER = 1  # POP3/SMTP
SERVERTYPE_EXCHANGE_HYBRID = 2
SERVERTYPE_EXCHANGE_ONLINE_HYBRID = 3

CREDENTIALS_USER_OR_QUEUE = 0
CREDENTIALS_PROFILE = 1
CREDENTIALS_SERVER_TO_SERVER = 2
CREDENTIALS_WINDOWS_INTEGRATED = 3
CREDENTIALS_ANONYMOUS = 4

AUTH_AUTO_DETECT, AUTH_NEGOTIATE, AUTH_NTLM, AUTH_BASIC = 0, 1, 2, 3

SERVERTYPE_LABELS = {
    SERVERTYPE_EXCHANGE: "Exchange Server",
    SERVERTYPE_OTHER: "Other (POP3/SMTP)",
    SERVERTYPE_EXCHANGE_HYBRID: "Exchange Server (Hybrid)",
    SERVERTYPE_EXCHANGE_ONLINE_HYBRID: "Exchange Online (Hybrid)",
}

CREDENTIALS_LABELS = {
    CREDENTIALS_USER_OR_QUEUE: "credentials of the user or queue",
    CREDENTIALS_PROFILE: "credentials in the profile",
    CREDENTIALS_SERVER_TO_SERVER: "server-to-server",
    CREDENTIALS_WINDOWS_INTEGRATED: "Windows integrated",
    CREDENTIALS_ANONYMOUS: "anonymous",
}
AUTH_LABELS = {AUTH_AUTO_DETECT: "auto-detect", AUTH_NEGOTIATE: "Negotiate", AUTH_NTLM: "NTLM"}
AUTH_LABELS[AUTH_BASIC] = "Basic"
# mailbox.incoming/outgoingemaildeliverymethod and emailrouteraccessapproval (crm/base.py's values)
DELIVERY_LABELS = {
    0: "none",
    1: "Outlook",
    2: "server-side sync or Email Router",
    3: "forward mailbox",
}
APPROVAL_LABELS = {0: "empty", 1: "approved", 2: "pending approval", 3: "rejected"}
EXCHANGE_VERSION_LABELS = {
    0: "Exchange 2007",
    1: "Exchange 2007 SP1",
    2: "Exchange 2010",
    3: "Exchange 2010 SP1",
    4: "Exchange 2010 SP2",
    5: "Exchange 2013 or later",
}

EXCHANGE_ONLINE_EWS = "https://outlook.office365.com/EWS/Exchange.asmx"

# -- router provider families ------------------------------------------------------------------

Family = Literal[
    "exchange",  # Exchange 2007 (EWS), 2010, 2013, 2016 on premises
    "exchange-online",
    "exchange-2003",
    "exchange-webdav",
    "pop3",
    "smtp",
    "custom",
]

# <EmailServerType>, squashed -> exchangeversion (0 2007 … 5 2013; 2016 speaks the 2013 schema).
EXCHANGE_VERSIONS: dict[str, int] = {
    "exchange2007": 0,
    "exchange2007ews": 0,
    "exchange2007sp1": 1,
    "exchange2010": 2,
    "exchange2010sp1": 3,
    "exchange2010sp2": 4,
    "exchange2010or2013": 5,
    "exchange2013": 5,
    "exchange2016": 5,
}

NOT_MIGRATED_REASONS: dict[str, str] = {
    "exchange-2003": (
        "Exchange 2003 profiles are not migrated (Microsoft's mapping: not applicable); "
        "server-side synchronization needs Exchange 2007 or later over EWS"
    ),
    "exchange-webdav": (
        "Exchange 2007 over WebDAV is not migrated (Microsoft's mapping: not applicable); "
        "re-create the profile over EWS"
    ),
    "custom": (
        "custom email providers are not migrated (Microsoft's mapping: not applicable; custom "
        "protocols are not detected); configure this mailbox by hand"
    ),
}


def family(provider: ProviderConfig) -> Family:
    """Which row of Microsoft's table a router provider falls under."""
    if provider.kind == "custom":
        return "custom"
    if provider.kind in ("pop3", "smtp"):
        return provider.kind
    server_type = squash(provider.email_server_type or "")
    provider_class = (provider.provider_class or "").lower()
    if server_type.startswith("exchange2003"):
        return "exchange-2003"
    if "webdav" in server_type or "webdav" in provider_class:
        return "exchange-webdav"
    if provider.is_exchange_online:
        return "exchange-online"
    return "exchange"


def exchange_version(provider: ProviderConfig) -> int | None:
    return EXCHANGE_VERSIONS.get(squash(provider.email_server_type or ""))


# -- credentials and authentication ------------------------------------------------------------

CREDENTIALS_BY_KIND: dict[str, int] = {
    "local_system": CREDENTIALS_WINDOWS_INTEGRATED,
    "user_specified": CREDENTIALS_USER_OR_QUEUE,
    "other_specified": CREDENTIALS_PROFILE,
}

AUTH_PROTOCOLS: dict[str, int] = {
    "windows": AUTH_NTLM,
    "clear_text": AUTH_BASIC,
    "anonymous": AUTH_AUTO_DETECT,
}


def credential_retrieval(provider: ProviderConfig) -> int | None:
    """Local System → 3, User specified → 0, Other specified → 1, anonymous SMTP → 4;
    None when the file does not say (the planner warns and uses 0)."""
    if provider.auth_mode_kind == "anonymous":
        return CREDENTIALS_ANONYMOUS
    return CREDENTIALS_BY_KIND.get(provider.credentials_kind or "")


def authentication_protocol(provider: ProviderConfig) -> int:
    return AUTH_PROTOCOLS.get(provider.auth_mode_kind or "", AUTH_AUTO_DETECT)


# -- merging an incoming and an outgoing profile -----------------------------------------------

Outcome = Literal["exchange", "exchange-online", "pop3-smtp", "not-migrated"]


@dataclass(frozen=True)
class MergeRule:
    """One row of Microsoft's table: what a pair becomes, and the warning it deserves."""

    outcome: Outcome
    warning: str | None = None  # a warning code (see warnings.py)
    ours: bool = False  # True where the table is silent and this is our reading


# (incoming family, outgoing family) -> rule; None stands for "no provider in that direction".
# Families not listed (2003, WebDAV, custom on either side) are not migrated.
MERGE_RULES: dict[tuple[str | None, str | None], MergeRule] = {
    ("exchange", "smtp"): MergeRule("exchange", "exchange-smtp"),
    ("exchange", "exchange-online"): MergeRule("exchange", "mixed-online-onpremises"),
    ("exchange", "exchange"): MergeRule("exchange", ours=True),
    ("exchange", None): MergeRule("exchange", ours=True),
    ("exchange-online", "smtp"): MergeRule("exchange-online", "exchange-smtp"),
    ("exchange-online", "exchange-online"): MergeRule("exchange-online"),
    ("exchange-online", "exchange"): MergeRule("exchange-online", "mixed-online-onpremises", True),
    ("exchange-online", None): MergeRule("exchange-online", ours=True),
    ("pop3", "smtp"): MergeRule("pop3-smtp"),
    ("pop3", "exchange-online"): MergeRule("exchange-online", "pop3-exchange"),
    ("pop3", "exchange"): MergeRule("exchange", "pop3-exchange", True),
    ("pop3", None): MergeRule("pop3-smtp", ours=True),
    (None, "smtp"): MergeRule("pop3-smtp", ours=True),
    (None, "exchange"): MergeRule("exchange", ours=True),
    (None, "exchange-online"): MergeRule("exchange-online", ours=True),
}


def merge_rule(incoming: Family | None, outgoing: Family | None) -> tuple[MergeRule, str | None]:
    """The rule for a pair, and (for pairs that do not migrate) the reason."""
    for side in (incoming, outgoing):
        if side in NOT_MIGRATED_REASONS:
            return MergeRule("not-migrated"), NOT_MIGRATED_REASONS[side]
    rule = MERGE_RULES.get((incoming, outgoing))
    if rule is None:
        return MergeRule("not-migrated"), (
            f"no server-side synchronization profile combines {incoming or 'no incoming'} with "
            f"{outgoing or 'no outgoing'}"
        )
    return rule, None
