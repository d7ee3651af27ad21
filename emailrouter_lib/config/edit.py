"""The Configuration Manager's view of a router file: profiles, deployments, users, queues and
forward mailboxes, edited on the :class:`RouterConfig` so that the writer persists them.

``EmailAgent.xml`` has no profile or deployment elements: the Configuration Manager expanded
them into one ``<ProviderConfiguration>`` per profile, deployment and direction (listing the
users and queues it serves) plus one per forward mailbox. This module folds the providers back
into those concepts and expands edits into provider changes again, touching only the providers
an edit concerns, so an unedited part of the file is written back byte for byte.

    editor = ConfigEditor(load_config(path))
    editor.set_profile(Profile("POP3 incoming", "incoming", "pop3", email_server_url="pop:995"))
    editor.add_forward_mailbox("CRM sink", "crm-sink@contoso.com", profile="POP3 incoming")
    editor.set_entry("queue", QUEUE_ID, incoming="POP3 incoming")
    write_config(editor.config, path)       # or plan_publish / apply_publish
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.model import ProviderConfig, RouterConfig
from emailrouter_lib.config.reader import parse_guid
from emailrouter_lib.errors import ConfigError

EntryKind = Literal["user", "queue", "forward"]
PROVIDER_ASSEMBLY = "Microsoft.Crm.Tools.EmailProviders.dll"
# This project's reconstructed sample file (reference/email-router.md §1), for the demo.
SAMPLE_CONFIG = (
    Path(__file__).resolve().parents[1] / "demo/data/config/Microsoft.Crm.Tools.EmailAgent.xml"
)

# Provider attributes that belong to the profile (shared by every provider of the profile).
PROFILE_FIELDS: tuple[str, ...] = (
    "email_server_type",
    "email_server_url",
    "email_auth_mode",
    "email_access_credentials",
    "email_user",
    "use_ssl",
    "access_type",
    "user_type",
)
_KINDS = ("exchange", "pop3", "smtp")
_KEEP: Any = object()  # "leave this setting as it is" in set_entry


@dataclass
class Profile:
    """An incoming or outgoing configuration profile: how to reach and log in to a server."""

    name: str
    direction: vocab.Direction
    kind: vocab.Kind = "exchange"
    email_server_type: str | None = None
    email_server_url: str | None = None
    email_auth_mode: str | None = None
    email_access_credentials: str | None = None
    email_user: str | None = None
    use_ssl: bool | None = None
    access_type: str | None = None
    user_type: str | None = None

    def __post_init__(self) -> None:
        direction = vocab.DIRECTIONS.get(vocab.squash(str(self.direction)))
        if direction is None:
            raise ConfigError(
                f"profile {self.name!r}: direction {self.direction!r} is not incoming or outgoing"
            )
        self.direction = direction
        if self.kind not in _KINDS and self.kind != "custom":
            raise ConfigError(
                f"profile {self.name!r}: kind {self.kind!r} is not one of {', '.join(_KINDS)}"
            )
        if (self.kind, self.direction) in (("pop3", "outgoing"), ("smtp", "incoming")):
            raise ConfigError(
                f"profile {self.name!r}: a {self.kind} profile cannot be {self.direction}"
            )

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> Profile:
        """From a notebook or CLI parameter mapping: the field names above, with ``logon_as``
        for ``email_access_credentials`` (the runner refuses parameter names that contain
        "credential" unless their value is a secret reference)."""
        values = dict(values)
        if "logon_as" in values:
            values["email_access_credentials"] = values.pop("logon_as")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"profile {values.get('name')!r}: unknown setting {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.direction)


@dataclass
class Deployment:
    """A CRM organisation the router serves, with the profiles its users and queues default to."""

    crm_server_url: str
    crm_auth_mode: str | None = None
    crm_user: str | None = None
    default_incoming: str | None = None
    default_outgoing: str | None = None

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> Deployment:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"deployment {values.get('crm_server_url')!r}: unknown setting "
                f"{', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


@dataclass(frozen=True)
class Entry:
    """A user, queue or forward mailbox as the Configuration Manager's third tab lists it.

    ``forward_mailbox`` is the address of the forward mailbox a user's or queue's mail arrives
    through (instead of an incoming profile of its own).
    """

    kind: EntryKind
    id: str | None
    name: str | None = None
    email_address: str | None = None
    incoming: str | None = None
    outgoing: str | None = None
    forward_mailbox: str | None = None
    deployment: str | None = None
    enabled: bool = True
    delete_emails: bool = False

    @property
    def label(self) -> str:
        return self.email_address or self.name or self.id or "?"


class ConfigEditor:
    """Profiles, deployments and entries of one :class:`RouterConfig`, and the edits on them.

    Profiles and deployments are read from the providers once; edits made here are applied to
    the providers immediately. Disabled entries are not written (the service file has no flag
    for them); they are remembered here so that Test Access can skip them and enabling one
    restores it.
    """

    def __init__(self, config: RouterConfig):
        self.config = config
        self.profiles: dict[tuple[str, str], Profile] = {}
        self.deployments: dict[str, Deployment] = {}
        self.names: dict[str, str] = {}  # record id -> CRM name (Load Data fills it)
        self.addresses: dict[str, str] = {}  # record id -> mailbox address (Load Data fills it)
        self.disabled: dict[str, Entry] = {}
        for provider in config.providers:
            profile = _profile_of(provider)
            self.profiles.setdefault(profile.key, profile)
        self._derive_deployments()

    # --- profiles ---------------------------------------------------------------------------

    def profile(self, name: str, direction: str) -> Profile:
        wanted = vocab.DIRECTIONS.get(vocab.squash(direction), direction)
        try:
            return self.profiles[(name, wanted)]
        except KeyError:
            known = ", ".join(f"{n} ({d})" for n, d in self.profiles) or "none"
            raise ConfigError(
                f"no {wanted} profile named {name!r}; known profiles: {known}. Add it first"
            ) from None

    def set_profile(self, profile: Profile) -> Profile:
        """Add a profile, or change one: its settings go to every provider of the profile."""
        self.profiles[profile.key] = profile
        for provider in self._providers_of(profile):
            _apply_profile(provider, profile)
        return profile

    def remove_profile(self, name: str, direction: str) -> None:
        profile = self.profile(name, direction)
        users = self._providers_of(profile)
        if users:
            raise ConfigError(
                f"profile {name!r} ({profile.direction}) is still used by {len(users)} "
                "provider(s); move its users, queues and forward mailboxes to another profile first"
            )
        del self.profiles[profile.key]

    # --- deployments ------------------------------------------------------------------------

    def set_deployment(self, deployment: Deployment) -> Deployment:
        """Add or change a deployment; CRM settings go to every provider of the deployment."""
        for attr, direction in (("default_incoming", "incoming"), ("default_outgoing", "outgoing")):
            name = getattr(deployment, attr)
            if name is not None:
                self.profile(name, direction)
        url = deployment.crm_server_url
        for provider in self.config.providers:
            if _same_url(provider.crm_server_url, url):
                provider.crm_auth_mode = deployment.crm_auth_mode or provider.crm_auth_mode
                provider.crm_user = deployment.crm_user or provider.crm_user
        self.deployments[_url_key(url)] = deployment
        return deployment

    def deployment(self, url: str | None = None) -> Deployment:
        """The deployment at *url*, or the only one when *url* is None."""
        if url is None:
            if len(self.deployments) != 1:
                known = ", ".join(d.crm_server_url for d in self.deployments.values()) or "none"
                raise ConfigError(
                    f"name the deployment (CRM server URL); this configuration has: {known}"
                )
            return next(iter(self.deployments.values()))
        try:
            return self.deployments[_url_key(url)]
        except KeyError:
            known = ", ".join(d.crm_server_url for d in self.deployments.values()) or "none"
            raise ConfigError(f"no deployment for {url}; known: {known}. Add it first") from None

    # --- entries ----------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Users and queues (enabled ones from the providers, then disabled ones), then the
        forward mailboxes, in file order."""
        found: dict[str, dict[str, Any]] = {}
        forwards: list[Entry] = []
        for p in self.config.providers:
            if p.is_forward_mailbox and p.direction == "incoming":
                forwards.append(
                    Entry(
                        "forward",
                        None,
                        name=p.forward_mailbox_name,
                        email_address=p.email_address,
                        incoming=p.profile_name,
                        deployment=p.crm_server_url,
                        delete_emails=p.delete_emails,
                    )
                )
            for kind, ids in (("user", p.user_ids), ("queue", p.queue_ids)):
                for record_id in ids:
                    row = found.setdefault(
                        record_id, {"kind": kind, "deployment": p.crm_server_url}
                    )
                    if p.direction == "outgoing":
                        row.setdefault("outgoing", p.profile_name)
                    elif p.is_forward_mailbox:
                        row.setdefault("forward_mailbox", p.email_address)
                    elif p.direction == "incoming":
                        row.setdefault("incoming", p.profile_name)
                        if p.email_address:
                            row.setdefault("email_address", p.email_address)
        entries = []
        for record_id, row in found.items():
            row.setdefault("email_address", self.addresses.get(record_id))
            entries.append(Entry(id=record_id, name=self.names.get(record_id), **row))
        entries += [e for i, e in self.disabled.items() if i not in found]
        return entries + forwards

    def entry(self, record_id: str) -> Entry | None:
        wanted = _guid(record_id)
        return next((e for e in self.entries() if e.id == wanted), None)

    def set_entry(
        self,
        kind: Literal["user", "queue"],
        record_id: str,
        *,
        incoming: str | None = _KEEP,
        outgoing: str | None = _KEEP,
        forward_mailbox: str | None = _KEEP,
        deployment: str | None = None,
        enabled: bool = True,
    ) -> Entry | None:
        """Route a user or queue: ``incoming`` / ``outgoing`` name a profile (None: not routed
        that way), ``forward_mailbox`` the address its mail is forwarded to. A new entry gets the
        deployment's default profiles for what is not given."""
        if kind not in ("user", "queue"):
            raise ConfigError(f"kind must be user or queue, not {kind!r}")
        record_id = _guid(record_id)
        current = self.entry(record_id)
        if current is not None and current.kind != kind:
            raise ConfigError(
                f"{record_id} is a {current.kind} in this configuration, not a {kind}"
            )
        url = deployment or (current.deployment if current else None)
        target = self.deployment(url)
        if current is None:
            incoming = target.default_incoming if incoming is _KEEP else incoming
            outgoing = target.default_outgoing if outgoing is _KEEP else outgoing
            forward_mailbox = None if forward_mailbox is _KEEP else forward_mailbox
        else:
            incoming = current.incoming if incoming is _KEEP else incoming
            outgoing = current.outgoing if outgoing is _KEEP else outgoing
            forward_mailbox = (
                current.forward_mailbox if forward_mailbox is _KEEP else forward_mailbox
            )
        if forward_mailbox:
            incoming = None
        wanted = Entry(
            kind,
            record_id,
            name=self.names.get(record_id),
            email_address=self.addresses.get(record_id),
            incoming=incoming,
            outgoing=outgoing,
            forward_mailbox=forward_mailbox,
            deployment=target.crm_server_url,
            enabled=enabled,
        )
        self._check_route(wanted)
        self._unlist(record_id)
        if not enabled:
            self.disabled[record_id] = wanted
            return wanted
        self.disabled.pop(record_id, None)
        attr = "user_ids" if kind == "user" else "queue_ids"
        if forward_mailbox:
            _append(getattr(self._forward_provider(forward_mailbox), attr), record_id)
        if incoming:
            provider = self._pooled(self.profile(incoming, "incoming"), target)
            _append(getattr(provider, attr), record_id)
        if outgoing:
            provider = self._pooled(self.profile(outgoing, "outgoing"), target)
            _append(getattr(provider, attr), record_id)
        return self.entry(record_id)

    def remove_entry(self, record_id: str) -> None:
        record_id = _guid(record_id)
        self.disabled.pop(record_id, None)
        self._unlist(record_id)

    def add_forward_mailbox(
        self,
        name: str,
        email_address: str,
        *,
        profile: str,
        deployment: str | None = None,
        delete_emails: bool = True,
        email_user: str | None = None,
    ) -> Entry:
        """A forward (sink) mailbox polled with an incoming profile; ``email_user`` overrides the
        profile's login for this mailbox."""
        address = email_address.strip()
        if "@" not in address:
            raise ConfigError(f"forward mailbox {name!r}: {email_address!r} is not an address")
        if self._find_forward(address) is not None:
            raise ConfigError(
                f"forward mailbox {address} is already in this configuration; each message "
                "would be processed twice. Change the existing one instead"
            )
        source = self.profile(profile, "incoming")
        target = self.deployment(deployment)
        provider = _new_provider(source, target)
        provider.is_forward_mailbox = True
        provider.forward_mailbox_name = name
        provider.email_address = address
        provider.delete_emails = delete_emails
        if email_user:
            provider.email_user = email_user
        self.config.providers.append(provider)
        return next(e for e in self.entries() if e.kind == "forward" and e.email_address == address)

    def remove_forward_mailbox(self, email_address: str) -> None:
        provider = self._find_forward(email_address)
        if provider is None:
            raise ConfigError(f"no forward mailbox {email_address} in this configuration")
        if provider.user_ids or provider.queue_ids:
            raise ConfigError(
                f"forward mailbox {email_address} still receives mail for "
                f"{len(provider.user_ids) + len(provider.queue_ids)} user(s) or queue(s); route "
                "them elsewhere first"
            )
        self.config.providers.remove(provider)

    def forward_mailboxes(self, deployment: str | None = None) -> list[str]:
        return [
            p.email_address
            for p in self.config.forward_mailboxes
            if p.email_address and (deployment is None or _same_url(p.crm_server_url, deployment))
        ]

    # --- tables -----------------------------------------------------------------------------

    def profile_records(self) -> list[dict[str, Any]]:
        return [
            {**asdict(p), "providers": len(self._providers_of(p))} for p in self.profiles.values()
        ]

    def deployment_records(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.deployments.values()]

    def entry_records(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries()]

    def _repr_html_(self) -> str:
        parts = []
        for title, rows in (
            ("Profiles", self.profile_records()),
            ("Deployments", self.deployment_records()),
            ("Users, queues and forward mailboxes", self.entry_records()),
        ):
            parts.append(f"<h4>{title} ({len(rows)})</h4>{_table(rows)}")
        return "".join(parts)

    # --- internals --------------------------------------------------------------------------

    def _derive_deployments(self) -> None:
        by_url: dict[str, list[ProviderConfig]] = {}
        for p in self.config.providers:
            if p.crm_server_url:
                by_url.setdefault(_url_key(p.crm_server_url), []).append(p)
        for providers in by_url.values():
            first = providers[0]
            self.deployments[_url_key(first.crm_server_url)] = Deployment(
                crm_server_url=first.crm_server_url or "",
                crm_auth_mode=next((p.crm_auth_mode for p in providers if p.crm_auth_mode), None),
                crm_user=next((p.crm_user for p in providers if p.crm_user), None),
                default_incoming=_most_used(providers, "incoming"),
                default_outgoing=_most_used(providers, "outgoing"),
            )

    def _providers_of(self, profile: Profile) -> list[ProviderConfig]:
        return [p for p in self.config.providers if _profile_key(p) == profile.key]

    def _pooled(self, profile: Profile, deployment: Deployment) -> ProviderConfig:
        """The provider serving the users and queues of this profile and deployment."""
        for p in self._providers_of(profile):
            if (
                not p.is_forward_mailbox
                and not p.email_address
                and _same_url(p.crm_server_url, deployment.crm_server_url)
            ):
                return p
        provider = _new_provider(profile, deployment)
        self.config.providers.append(provider)
        return provider

    def _find_forward(self, address: str) -> ProviderConfig | None:
        wanted = address.strip().lower()
        return next(
            (
                p
                for p in self.config.forward_mailboxes
                if (p.email_address or "").strip().lower() == wanted
            ),
            None,
        )

    def _forward_provider(self, address: str) -> ProviderConfig:
        provider = self._find_forward(address)
        if provider is None:
            known = ", ".join(self.forward_mailboxes()) or "none"
            raise ConfigError(f"no forward mailbox {address}; known: {known}. Add it first")
        return provider

    def _check_route(self, entry: Entry) -> None:
        if entry.incoming:
            self.profile(entry.incoming, "incoming")
        if entry.outgoing:
            self.profile(entry.outgoing, "outgoing")
        if entry.forward_mailbox:
            self._forward_provider(entry.forward_mailbox)

    def _unlist(self, record_id: str) -> None:
        """Take the id out of every provider; drop providers this leaves serving nobody."""
        emptied = []
        for p in self.config.providers:
            listed = record_id in p.user_ids or record_id in p.queue_ids
            p.user_ids[:] = [i for i in p.user_ids if i != record_id]
            p.queue_ids[:] = [i for i in p.queue_ids if i != record_id]
            if listed and not (p.user_ids or p.queue_ids or p.email_address):
                emptied.append(p)
        for p in emptied:
            self.config.providers.remove(p)


def apply_params(
    editor: ConfigEditor,
    *,
    profiles: Iterable[Mapping[str, Any]] = (),
    deployments: Iterable[Mapping[str, Any]] = (),
    forward_mailboxes: Iterable[Mapping[str, Any]] = (),
    entries: Iterable[Mapping[str, Any]] = (),
) -> ConfigEditor:
    """Apply notebook or CLI parameters (lists of plain mappings), in the order a person would:
    profiles, deployments, forward mailboxes, then users and queues."""
    for values in profiles:
        editor.set_profile(Profile.from_params(dict(values)))
    for values in deployments:
        editor.set_deployment(Deployment.from_params(dict(values)))
    for values in forward_mailboxes:
        values = dict(values)
        try:
            name, address = values.pop("name"), values.pop("email_address")
        except KeyError as exc:
            raise ConfigError(f"a forward mailbox needs {exc.args[0]!r}: {values}") from None
        editor.add_forward_mailbox(name, address, **values)
    for values in entries:
        values = dict(values)
        try:
            kind, record_id = values.pop("kind"), values.pop("id")
        except KeyError as exc:
            raise ConfigError(
                f"an entry needs {exc.args[0]!r} (user or queue, and its id)"
            ) from None
        editor.set_entry(kind, record_id, **values)
    return editor


def _profile_key(p: ProviderConfig) -> tuple[str, str]:
    name = p.profile_name or f"({p.kind} {p.direction or 'unknown direction'})"
    return (name, p.direction or "incoming")


def _profile_of(p: ProviderConfig) -> Profile:
    name, direction = _profile_key(p)
    profile = Profile.__new__(Profile)  # as read: no checks, a file may hold odd combinations
    profile.name, profile.direction, profile.kind = name, direction, p.kind  # type: ignore[assignment]
    for attr in PROFILE_FIELDS:
        setattr(profile, attr, getattr(p, attr))
    return profile


def _apply_profile(provider: ProviderConfig, profile: Profile) -> None:
    for attr in PROFILE_FIELDS:
        if attr == "email_user" and provider.is_forward_mailbox and provider.email_user:
            continue  # a forward mailbox may log in as its own account
        if getattr(provider, attr) != getattr(profile, attr):
            setattr(provider, attr, getattr(profile, attr))
    if provider.kind != profile.kind:
        provider.kind = profile.kind
        provider.provider_class = vocab.builtin_provider_class(profile.kind, profile.direction)


def _new_provider(profile: Profile, deployment: Deployment) -> ProviderConfig:
    provider = ProviderConfig(
        profile_name=profile.name,
        provider_assembly=PROVIDER_ASSEMBLY,
        provider_class=vocab.builtin_provider_class(profile.kind, profile.direction),
        kind=profile.kind,
        direction=profile.direction,
        crm_server_url=deployment.crm_server_url,
        crm_auth_mode=deployment.crm_auth_mode,
        crm_user=deployment.crm_user,
    )
    for attr in PROFILE_FIELDS:
        setattr(provider, attr, getattr(profile, attr))
    return provider


def _most_used(providers: list[ProviderConfig], direction: str) -> str | None:
    counts = Counter(
        _profile_key(p)[0]
        for p in providers
        if p.direction == direction and not p.is_forward_mailbox
        for _ in range(max(1, len(p.user_ids) + len(p.queue_ids)))
    )
    return counts.most_common(1)[0][0] if counts else None


def _append(ids: list[str], record_id: str) -> None:
    if record_id not in ids:
        ids.append(record_id)


def _guid(text: str) -> str:
    guid = parse_guid(str(text))
    if guid is None:
        raise ConfigError(
            f"{text!r} is not a GUID; give the CRM record id, e.g. "
            "0a1b2c3d-13d8-e011-9077-00155d012a01"
        )
    return guid


def _url_key(url: str | None) -> str:
    return (url or "").strip().rstrip("/").lower()


def _same_url(a: str | None, b: str | None) -> bool:
    return _url_key(a) == _url_key(b)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r.values())
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


__all__ = [
    "PROFILE_FIELDS",
    "SAMPLE_CONFIG",
    "ConfigEditor",
    "Deployment",
    "Entry",
    "Profile",
    "apply_params",
]
