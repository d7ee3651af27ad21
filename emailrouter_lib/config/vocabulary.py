"""The router's configuration vocabulary: the ONE table to edit when a real file differs.

No complete ``Microsoft.Crm.Tools.EmailAgent.xml`` is public. ``SystemConfiguration`` and
``ProviderOverrides`` follow Microsoft's published sample; the ``ProviderConfiguration`` names
are this project's reconstruction (see ``reference/email-router.md`` §1). When a real file uses
another element name or value, add it here as an alias: the reader, writer and checks all look
names and values up in these tables and nowhere else.

Element names are compared lower-cased, as Microsoft's own reader does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["str", "int", "bool", "guids", "secret"]


@dataclass(frozen=True)
class FieldSpec:
    """One known child element: the model attribute it fills and how its text is read.

    ``canonical`` is the spelling written for an element the file did not have; ``aliases``
    are other spellings accepted on reading. A ``secret`` element's text is never read into the
    model: only its presence is (``has_password``), because router passwords are encrypted with
    a key we cannot and must not use.
    """

    attr: str
    kind: FieldKind
    canonical: str
    aliases: tuple[str, ...] = ()
    default: object = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.canonical.lower(), *(a.lower() for a in self.aliases))


# --- containers -----------------------------------------------------------------------------

ROOT = "Configuration"
SYSTEM = "SystemConfiguration"
OVERRIDES = "ProviderOverrides"
PROVIDER = "ProviderConfiguration"

# --- <SystemConfiguration> (Microsoft's sample; all times in milliseconds) ---------------------

SYSTEM_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("max_threads", "int", "MaxThreads", default=50),
    FieldSpec("max_thread_execution", "int", "MaxThreadExecution", default=600_000),
    FieldSpec("scheduling_period", "int", "SchedulingPeriod", default=1000),
    FieldSpec("config_refresh_period", "int", "ConfigRefreshPeriod", default=5000),
    FieldSpec("config_update_period", "int", "ConfigUpdatePeriod", default=3_600_000),
    FieldSpec("log_level", "int", "LogLevel", default=1),
    FieldSpec("log_file", "str", "LogFile"),
)

# --- <ProviderOverrides> (Microsoft's sample; all times in milliseconds) ----------------------

OVERRIDE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("cache_capacity", "int", "CacheCapacity", default=1024),
    FieldSpec("pending_status_delay", "int", "PendingStatusDelay", default=300_000),
    FieldSpec("sending_status_delay", "int", "SendingStatusDelay", default=1_800_000),
    FieldSpec("maximum_delivery_attempts", "int", "MaximumDeliveryAttempts", default=10),
    FieldSpec("ews_retrieve_message_count", "int", "EWSRetrieveMessageCount", default=10),
    FieldSpec("batch_size", "int", "BatchSize", default=5),
    FieldSpec("request_batch_size", "int", "RequestBatchSize", default=5),
)

# Allowed ranges, checked as warnings (the router's own limits are not documented).
RANGES: dict[str, tuple[int, int | None]] = {
    "max_threads": (1, None),
    "max_thread_execution": (1, None),
    "scheduling_period": (1, None),
    "config_refresh_period": (1, None),
    "config_update_period": (0, None),  # 0 = never reload users and queues from the CRM
    "log_level": (0, 3),
    "cache_capacity": (0, None),
    "pending_status_delay": (0, None),
    "sending_status_delay": (0, None),
    "maximum_delivery_attempts": (1, None),
    "ews_retrieve_message_count": (1, None),
    "batch_size": (1, None),
    "request_batch_size": (1, None),
    "max_message_count": (1, None),
}

# --- <ProviderConfiguration> (reconstructed; aliases are guesses at other spellings) ------------

PROVIDER_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("provider_assembly", "str", "ProviderAssembly"),
    FieldSpec("provider_class", "str", "ProviderClass", ("ProviderType", "ProviderClassName")),
    FieldSpec("profile_name", "str", "ProfileName", ("Profile", "ConfigurationProfile")),
    FieldSpec("direction", "str", "Direction"),
    FieldSpec("email_server_type", "str", "EmailServerType", ("ServerType",)),
    FieldSpec("crm_server_url", "str", "CrmServerUrl", ("CrmServer", "CrmUrl")),
    FieldSpec("crm_auth_mode", "str", "CrmAuthMode"),
    FieldSpec("crm_user", "str", "CrmUser", ("CrmUserName",)),
    FieldSpec("has_crm_password", "secret", "CrmPassword"),
    FieldSpec("email_server_url", "str", "EmailServerUrl", ("EmailServerLocation", "EwsUrl")),
    FieldSpec("email_auth_mode", "str", "EmailAuthMode", ("EmailAuthenticationMode",)),
    FieldSpec("email_access_credentials", "str", "EmailAccessCredentials", ("AccessCredentials",)),
    FieldSpec("email_user", "str", "EmailUser", ("EmailUserName",)),
    FieldSpec("has_password", "secret", "EmailPassword", ("Password",)),
    FieldSpec("use_ssl", "bool", "UseSsl", ("EnableSsl", "Ssl")),
    FieldSpec("access_type", "str", "AccessType"),
    FieldSpec("user_type", "str", "UserType"),
    FieldSpec("is_forward_mailbox", "bool", "IsForwardMailbox", default=False),
    FieldSpec("forward_mailbox_name", "str", "ForwardMailboxName"),
    FieldSpec("email_address", "str", "EmailAddress"),
    FieldSpec("delete_emails", "bool", "DeleteEmails", default=False),
    FieldSpec("move_emails", "bool", "MoveEmails", default=False),
    FieldSpec("max_message_count", "int", "MaxMessageCount"),
    FieldSpec("threshold_datetime", "str", "ThresholdDateTime"),
    FieldSpec("cache_capacity", "int", "CacheCapacity"),
    FieldSpec("batch_size", "int", "BatchSize"),
    FieldSpec("user_ids", "guids", "UserId", ("SystemUserId",)),
    FieldSpec("queue_ids", "guids", "QueueId"),
)

# Unknown elements whose lower-cased name contains one of these are treated as secrets too:
# their text is never read, shown or reported.
SECRET_NAME_HINTS: tuple[str, ...] = ("password", "passwd", "pwd", "secret", "key", "hash")

# --- values ---------------------------------------------------------------------------------

Kind = Literal["exchange", "pop3", "smtp", "custom"]
Direction = Literal["incoming", "outgoing"]

# The router's own provider classes (last dotted segment of <ProviderClass>, matched
# case-insensitively) -> (kind, direction). A class outside their namespace is a custom provider.
BUILTIN_PROVIDER_NAMESPACE = "Microsoft.Crm.Tools.Email.Providers"
PROVIDER_CLASSES: dict[str, tuple[Kind, Direction]] = {
    "ExchangePollingMailboxProvider": ("exchange", "incoming"),
    "Pop3PollingMailboxProvider": ("pop3", "incoming"),
    "SmtpPollingSendEmailProvider": ("smtp", "outgoing"),
}

# <EmailServerType>, lower-cased with everything but letters and digits removed -> kind.
# Anything else starting with "exchange" is Exchange too (the UI label varied by version).
SERVER_TYPES: dict[str, Kind] = {
    "exchange": "exchange",
    "exchange2003": "exchange",
    "exchange2007": "exchange",
    "exchange2010": "exchange",
    "exchange2010or2013": "exchange",
    "exchange2013": "exchange",
    "exchange2016": "exchange",
    "exchangeonline": "exchange",
    "pop3": "pop3",
    "smtp": "smtp",
}
ONLINE_SERVER_TYPES: frozenset[str] = frozenset({"exchangeonline"})
# Exchange 2003 (and Exchange 2007 over WebDAV) providers cannot be migrated or run over EWS.
LEGACY_SERVER_TYPES: frozenset[str] = frozenset({"exchange2003"})
# Host names of Exchange Online's EWS endpoint.
ONLINE_HOST_SUFFIXES: tuple[str, ...] = ("office365.com", "outlook.com", "office.com")

DIRECTIONS: dict[str, Direction] = {
    "inbound": "incoming",
    "incoming": "incoming",
    "in": "incoming",
    "receive": "incoming",
    "outbound": "outgoing",
    "outgoing": "outgoing",
    "out": "outgoing",
    "send": "outgoing",
}

# What the writer puts in <Direction> (the sample's spelling).
DIRECTION_TEXT: dict[Direction, str] = {"incoming": "Inbound", "outgoing": "Outbound"}

CREDENTIALS: dict[str, str] = {
    "localsystem": "local_system",
    "localsystemaccount": "local_system",
    "userspecified": "user_specified",
    "otherspecified": "other_specified",
}

AUTH_MODES: dict[str, str] = {
    "windowsauthentication": "windows",
    "windows": "windows",
    "ntlm": "windows",
    "negotiate": "windows",
    "kerberos": "windows",
    "cleartext": "clear_text",
    "basic": "clear_text",
    "anonymous": "anonymous",
    "none": "anonymous",
}

ACCESS_TYPES: dict[str, str] = {
    "delegate": "delegate",
    "delegateaccess": "delegate",
    "sendas": "send_as",
    "sendaspermission": "send_as",
}

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

# Default ports that speak TLS from the first byte (POP3S, SMTPS); used to guess use_ssl.
TLS_PORTS = frozenset({995, 465, 993})

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def squash(value: str) -> str:
    """Lower-case and drop spaces and punctuation, so ``"Exchange 2010 or 2013"`` matches."""
    return _NON_ALNUM.sub("", value.lower())


def field_index(fields: tuple[FieldSpec, ...]) -> dict[str, FieldSpec]:
    """Lower-cased element name (canonical and aliases) -> spec."""
    index: dict[str, FieldSpec] = {}
    for spec in fields:
        for name in spec.names:
            index.setdefault(name, spec)
    return index


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in SECRET_NAME_HINTS)


def provider_class_kind(short_name: str) -> tuple[Kind, Direction] | None:
    """(kind, direction) of one of the router's own provider classes, by its short name."""
    lowered = short_name.lower()
    for name, value in PROVIDER_CLASSES.items():
        if name.lower() == lowered:
            return value
    return None


def builtin_provider_class(kind: str, direction: str | None) -> str | None:
    """The full class name to write for a new provider of this kind and direction."""
    for name, value in PROVIDER_CLASSES.items():
        if value == (kind, direction):
            return f"{BUILTIN_PROVIDER_NAMESPACE}.{name}"
    return None
