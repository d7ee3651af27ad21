"""The router configuration as typed objects, bound to the XML tree they were read from.

Each object remembers the element it came from and the values it had when read, so that
:func:`~emailrouter_lib.config.writer.write_config` changes only what a caller edited and
leaves every other byte of meaning (unknown elements, comments, bad values) as the admin had it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.findings import Finding
from emailrouter_lib.config.xmlfile import XmlFile


@dataclass(frozen=True)
class UnknownElement:
    """An element the vocabulary does not know. It stays in the tree; only its name is kept here
    (its text might be a secret under a name we have not seen)."""

    name: str
    path: str
    line: int | None = None


@dataclass
class _Bound:
    """Binding to the source element and the values as read (the writer's baseline)."""

    element: etree._Element | None = field(default=None, repr=False, compare=False, kw_only=True)
    lines: dict[str, int] = field(default_factory=dict, repr=False, compare=False, kw_only=True)
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, init=False)

    def _snapshot(self) -> None:
        self._loaded = {
            f.name: _copy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("element", "lines", "_loaded")
        }

    def changed(self) -> list[str]:
        """Attributes edited since the file was read (everything, for an object not from a file)."""
        return [
            name
            for name, value in self._current().items()
            if name not in self._loaded or self._loaded[name] != value
        ]

    def _current(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("element", "lines", "_loaded")
        }


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


@dataclass
class ProviderOverrides(_Bound):
    """``<ProviderOverrides>``: global provider knobs. Times in milliseconds."""

    cache_capacity: int = 1024
    pending_status_delay: int = 300_000
    sending_status_delay: int = 1_800_000
    maximum_delivery_attempts: int = 10
    ews_retrieve_message_count: int = 10
    batch_size: int = 5
    request_batch_size: int = 5


@dataclass
class SystemConfiguration(_Bound):
    """``<SystemConfiguration>``: the service's scheduler and logging. Times in milliseconds;
    ``config_update_period`` 0 means users and queues are never reloaded from the CRM."""

    max_threads: int = 50
    max_thread_execution: int = 600_000
    scheduling_period: int = 1000
    config_refresh_period: int = 5000
    config_update_period: int = 3_600_000
    log_level: int = 1
    log_file: str | None = None
    overrides: ProviderOverrides = field(default_factory=ProviderOverrides)

    def _current(self) -> dict[str, Any]:
        current = super()._current()
        current.pop("overrides")
        return current


@dataclass
class ProviderConfig(_Bound):
    """One ``<ProviderConfiguration>``: a provider polling (incoming) or sending (outgoing) for
    the users, queues or forward mailbox it lists.

    ``kind`` and ``direction`` are derived from the provider class (or the server type) when read;
    the password itself is never read, only whether there is one (``has_password``).
    """

    profile_name: str | None = None
    provider_class: str | None = None
    provider_assembly: str | None = None
    kind: vocab.Kind = "custom"
    direction: vocab.Direction | None = None
    email_server_type: str | None = None
    crm_server_url: str | None = None
    crm_auth_mode: str | None = None
    crm_user: str | None = None
    has_crm_password: bool = False
    email_server_url: str | None = None
    email_auth_mode: str | None = None
    email_access_credentials: str | None = None
    email_user: str | None = None
    has_password: bool = False
    use_ssl: bool | None = None
    access_type: str | None = None
    user_type: str | None = None
    is_forward_mailbox: bool = False
    forward_mailbox_name: str | None = None
    email_address: str | None = None
    delete_emails: bool = False
    move_emails: bool = False
    max_message_count: int | None = None
    threshold_datetime: str | None = None
    cache_capacity: int | None = None
    batch_size: int | None = None
    user_ids: list[str] = field(default_factory=list)
    queue_ids: list[str] = field(default_factory=list)
    unknown_elements: list[UnknownElement] = field(default_factory=list)
    line: int | None = None

    def _current(self) -> dict[str, Any]:
        current = super()._current()
        for derived in ("kind", "unknown_elements", "line"):
            current.pop(derived)
        return current

    @property
    def label(self) -> str:
        """How messages name this provider: profile, direction and mailbox, never a secret."""
        parts = [self.profile_name or "(no profile name)"]
        if self.direction:
            parts.append(self.direction)
        if self.email_address:
            parts.append(self.email_address)
        return " / ".join(parts)

    @property
    def credentials_kind(self) -> str | None:
        """``local_system`` | ``user_specified`` | ``other_specified`` | ``unknown`` | None."""
        return _lookup(self.email_access_credentials, vocab.CREDENTIALS)

    @property
    def auth_mode_kind(self) -> str | None:
        """``windows`` | ``clear_text`` | ``anonymous`` | ``unknown`` | None."""
        return _lookup(self.email_auth_mode, vocab.AUTH_MODES)

    @property
    def access_type_kind(self) -> str | None:
        """``delegate`` | ``send_as`` | ``unknown`` | None (outgoing providers)."""
        return _lookup(self.access_type, vocab.ACCESS_TYPES)

    @property
    def is_exchange_online(self) -> bool:
        """By server type, or by an EWS URL on Microsoft's hosts."""
        if self.email_server_type and (
            vocab.squash(self.email_server_type) in vocab.ONLINE_SERVER_TYPES
        ):
            return True
        host = _host(self.email_server_url)
        return self.kind == "exchange" and any(
            host == suffix or host.endswith("." + suffix) for suffix in vocab.ONLINE_HOST_SUFFIXES
        )

    @property
    def ssl_off(self) -> bool:
        """True when the connection is known to be unencrypted (``UseSsl`` false or ``http://``)."""
        if self.use_ssl is False:
            return True
        url = (self.email_server_url or "").strip().lower()
        return self.use_ssl is None and url.startswith("http://")


@dataclass
class RouterConfig:
    """A whole ``Microsoft.Crm.Tools.EmailAgent.xml``: system settings, providers, findings.

    ``findings`` are what the reader noticed (unknown elements, bad values); they never include
    a secret. The parsed tree is kept (``xml``) so a write-back preserves what was not understood.
    """

    system: SystemConfiguration = field(default_factory=SystemConfiguration)
    providers: list[ProviderConfig] = field(default_factory=list)
    path: Path | None = None
    findings: list[Finding] = field(default_factory=list)
    unknown_elements: list[UnknownElement] = field(default_factory=list)
    xml: XmlFile | None = field(default=None, repr=False, compare=False)

    @property
    def tree(self) -> etree._ElementTree | None:
        return self.xml.tree if self.xml else None

    @property
    def incoming(self) -> list[ProviderConfig]:
        return [p for p in self.providers if p.direction == "incoming"]

    @property
    def outgoing(self) -> list[ProviderConfig]:
        return [p for p in self.providers if p.direction == "outgoing"]

    @property
    def forward_mailboxes(self) -> list[ProviderConfig]:
        return [p for p in self.incoming if p.is_forward_mailbox]

    def providers_for(self, record_id: str) -> list[ProviderConfig]:
        """Providers that list this user or queue GUID (any spelling or case)."""
        wanted = record_id.strip().strip("{}").lower()
        return [p for p in self.providers if wanted in p.user_ids or wanted in p.queue_ids]


def _lookup(value: str | None, table: dict[str, str]) -> str | None:
    if value is None or not value.strip():
        return None
    return table.get(vocab.squash(value), "unknown")


def _host(url: str | None) -> str:
    if not url:
        return ""
    text = url.strip()
    if "://" not in text:
        text = "//" + text
    try:
        return (urlsplit(text).hostname or "").lower()
    except ValueError:
        return ""
