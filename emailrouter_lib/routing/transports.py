"""Which transport sends a user's or queue's email, and which setting said so.

The old router sent each user's and queue's email through the outgoing profile the Configuration
Manager gave it; server-side sync uses the email server profile of the user's ``mailbox``. Both
can be read here, so a sender's transport is the first of (reference/email-router.md §2, §4):

1. ``transports[ADDRESS]``: an explicit URL for the sender's address (parameter / ``--transport``);
2. ``transports["*"]``: the explicit default;
3. ``config``: the router configuration's outgoing ``<ProviderConfiguration>`` listing the user's
   or queue's GUID (``EmailServerUrl`` host:port, ``UseSsl``, ``EmailAuthMode``,
   ``EmailAccessCredentials``, ``AccessType``);
4. ``crm-profile``: the CRM ``mailbox`` of the user or queue and its ``emailserverprofile``
   (outgoing location, port, SSL, credential retrieval), when the CRM keeps mailbox settings and
   the mailbox's outgoing configuration was tested and enabled (``enabledforoutgoingemail`` and
   ``outgoingemailstatus`` 1 Success, what server-side sync's *Test & Enable* sets; research §6.2).
   A mailbox never tested (0 Not Run, as in the demo CRM, whose servers do not exist) or disabled
   for outgoing email is passed over, and the row says so; one whose test failed (2) is a problem;
5. ``pickup``: the pickup folder beside the send ledger.

A rule that matches but cannot be turned into a working URL (Windows authentication over SMTP, no
password template, a password that would cross the network in clear text) does not fall through
to a later rule: the email must not silently leave by another road. It is a *problem*, and the
email stays in Pending Send with the reason.

Passwords in the configuration file are encrypted with a key we cannot use, and the CRM keeps none
here, so logins get their password from one reference *template* (``transport_password``, else
``config_password``), e.g. ``env:SMTP_PW_{local}``; fields ``{address}`` and ``{local}`` (the
sender's address and its local part), ``{id}`` (the user/queue GUID) and ``{login}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from emailrouter_lib.config import ProviderConfig, RouterConfig
from emailrouter_lib.crm.base import CrmBackend, MailboxSettingsStore, SendingMailbox
from emailrouter_lib.errors import MailboxError, RoutingError
from emailrouter_lib.mailboxes.ews_url import ews_url_for
from emailrouter_lib.mailboxes.schemes import open_sender
from emailrouter_lib.secrets import is_reference

RULES = ("address", "default", "config", "crm-profile", "pickup")

# emailserverprofile.servertype: 0 Exchange, 1 Other (POP3/SMTP), 2/3 Exchange hybrid, 4 IMAP/SMTP
_EXCHANGE_SERVER_TYPES = (0, 2, 3)
# mailbox.outgoingemailstatus: 0 Not Run, 1 Success, 2 Failure
_STATUS_SUCCESS, _STATUS_FAILURE = 1, 2
# emailserverprofile.*credentialretrieval
_BY_USER, _BY_PROFILE, _ANONYMOUS = 0, 1, 4
_UNSUPPORTED_CREDENTIALS = {
    2: "Server to Server Authentication",
    3: "Windows Integrated Authentication",
    5: "Gmail OAuth",
    6: "Exchange Hybrid Modern Auth",
    7: "OAuth",
}


@dataclass(frozen=True)
class TransportChoice:
    """The transport URL for one sender, or the problem that stops it, and the rule that chose.

    ``rule`` is one of :data:`RULES`; ``detail`` names the setting (never a secret).
    """

    rule: str
    detail: str
    url: str | None = None
    problem: str | None = None

    @property
    def explained(self) -> str:
        return f"{self.rule}: {self.detail}"


class TransportResolver:
    """Chooses each sender's transport once per run (see the module docstring for the order)."""

    def __init__(
        self,
        *,
        transports: dict[str, str],
        pickup_dir: str,
        crm: CrmBackend | None = None,
        config: RouterConfig | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ):
        if password is not None and not is_reference(password):
            raise RoutingError(
                "transport_password (or config_password) must be a secret reference template "
                "such as env:SMTP_PW_{local}, file:/etc/emailrouter/{local}.secret or "
                "keyring:emailrouter/{address}"
            )
        self._transports = {k.lower(): v for k, v in transports.items()}
        self._pickup = f"pickup://{pickup_dir}"
        self._crm = crm
        self._config = config
        self._password = password
        self._ca_file = ca_file
        self._chosen: dict[str, TransportChoice] = {}
        self._profiles: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = None

    def choose(self, sender: SendingMailbox) -> TransportChoice:
        if sender.id not in self._chosen:
            self._chosen[sender.id] = self._choose(sender)
        return self._chosen[sender.id]

    def _choose(self, sender: SendingMailbox) -> TransportChoice:
        address = (sender.emailaddress or "").lower()
        if address and address in self._transports:
            return TransportChoice("address", f"transports[{address!r}]", self._transports[address])
        if "*" in self._transports:
            return TransportChoice("default", "transports['*']", self._transports["*"])
        if self._config is not None:
            providers = [
                p for p in self._config.providers_for(sender.id) if p.direction == "outgoing"
            ]
            if providers:
                chosen = _from_provider(providers[0], sender, self._password, self._config.path)
                return self._checked(chosen)
        found = self._profile_of(sender)
        passed_over = ""
        if found is not None:
            mailbox, profile = found
            detail = (
                f"mailbox {mailbox.get('name')!r} -> email server profile {profile.get('name')!r}"
            )
            status = _int(mailbox.get("outgoingemailstatus"))
            if not _int(mailbox.get("enabledforoutgoingemail")):
                passed_over = f" ({detail} passed over: the mailbox is disabled for outgoing email)"
            elif status == _STATUS_FAILURE:
                return TransportChoice(
                    "crm-profile",
                    detail,
                    None,
                    f"{detail}: the mailbox's outgoing test failed (outgoingemailstatus 2); run "
                    "Test & Enable again, or give this sender a transport explicitly",
                )
            elif status != _STATUS_SUCCESS:
                passed_over = f" ({detail} passed over: its outgoing email was never tested)"
            else:
                return self._checked(_from_profile(mailbox, profile, sender, self._password))
        return TransportChoice(
            "pickup", "no transport configured for this sender" + passed_over, self._pickup
        )

    def _checked(self, choice: TransportChoice) -> TransportChoice:
        """The choice, with the URL parsed once (nothing connects), so a bad one is a problem
        now rather than a failed send per email."""
        if choice.url is None:
            return choice
        try:
            open_sender(choice.url, ca_file=self._ca_file)
        except MailboxError as exc:
            return TransportChoice(choice.rule, choice.detail, None, f"{choice.detail}: {exc}")
        return choice

    def _profile_of(self, sender: SendingMailbox) -> tuple[dict[str, Any], dict[str, Any]] | None:
        if not isinstance(self._crm, MailboxSettingsStore):
            return None  # this CRM backend keeps no mailbox settings (rule 4 does not apply)
        if self._profiles is None:
            profiles = {
                str(p["emailserverprofileid"]).lower(): p
                for p in self._crm.email_server_profiles()
                if not p.get("statecode")  # 0 Active
            }
            self._profiles = {}
            for mailbox in self._crm.mailboxes():
                owner = str(mailbox.get("regardingobjectid") or "").lower()
                profile = profiles.get(str(mailbox.get("emailserverprofile") or "").lower())
                if owner and profile and not mailbox.get("isforwardmailbox"):
                    self._profiles.setdefault(owner, (mailbox, profile))
        return self._profiles.get(sender.id.lower())


# -- rule 3: the router configuration's outgoing provider ----------------------------------------


def _from_provider(
    provider: ProviderConfig, sender: SendingMailbox, password: str | None, path: Path | None
) -> TransportChoice:
    where = (
        f"{path.name}:{provider.line}" if path and provider.line else (path.name if path else "")
    )
    name = provider.profile_name or "(no profile name)"
    detail = f"outgoing provider {name!r}" + (f" ({where})" if where else "")

    def problem(text: str) -> TransportChoice:
        return TransportChoice("config", detail, None, f"{detail}: {text}")

    address = sender.emailaddress or ""
    server = (provider.email_server_url or "").strip()
    auth = provider.auth_mode_kind
    credentials = provider.credentials_kind
    if provider.kind == "exchange":
        if auth == "anonymous":
            return problem("EWS needs a login; Anonymous is for SMTP relays")
        login = _login(credentials, provider.email_user, address)
        if isinstance(login, _Problem):
            return problem(login.text)
        url = _ews_url(
            server,
            login=login,
            mailbox=address,
            auth="basic" if auth == "clear_text" else "ntlm",
            access="delegate" if credentials == "other_specified" else None,
            use_ssl=provider.use_ssl,
            password=_password(password, sender, login),
        )
        return TransportChoice("config", detail, url) if url else problem(_NO_PASSWORD)
    if provider.kind != "smtp":
        return problem(
            f"provider class {provider.provider_class or '?'} is not SMTP or Exchange; "
            "give this sender a transport explicitly (transports / --transport)"
        )
    if not server:
        return problem("it names no SMTP server (EmailServerUrl host:port)")
    if auth == "windows":
        return problem(
            "Windows (NTLM) authentication over SMTP is not supported; use Clear Text or "
            "Anonymous in the profile, or give this sender a transport explicitly"
        )
    login = None
    if auth != "anonymous":
        found = _login(credentials, provider.email_user, address)
        if isinstance(found, _Problem):
            return problem(found.text)
        login = found
    delegate = None
    if provider.access_type_kind == "delegate":
        delegate = next(
            (a for a in (provider.email_user, provider.email_address) if a and "@" in a), None
        )
        if delegate is None:
            return problem(
                "AccessType Delegate needs the address that sends on behalf (an EmailUser or "
                "EmailAddress with an @)"
            )
    url = _smtp_url(
        server,
        use_ssl=provider.use_ssl,
        login=login,
        password=_password(password, sender, login) if login else None,
        delegate=delegate,
    )
    return TransportChoice("config", detail, url) if url else problem(_NO_PASSWORD)


_NO_PASSWORD = (
    "a login needs a password: pass transport_password (or config_password) as a reference "
    "template such as env:SMTP_PW_{local}"
)


@dataclass(frozen=True)
class _Problem:
    text: str


def _login(credentials: str | None, user: str | None, address: str) -> str | _Problem:
    if credentials == "local_system":
        return _Problem(
            "Local System Account credentials are the Windows machine account, which cannot "
            "be used from here; use Other specified, or give this sender a transport explicitly"
        )
    if credentials == "other_specified" or (credentials is None and user):
        if not user:
            return _Problem("Other specified credentials but no EmailUser")
        return user
    if not address:
        return _Problem("the user or queue has no email address to log in with")
    return address  # User specified: each user's or queue's own mailbox login


# -- rule 4: the CRM's mailbox and email server profile ------------------------------------------


def _from_profile(
    mailbox: dict[str, Any], profile: dict[str, Any], sender: SendingMailbox, password: str | None
) -> TransportChoice:
    detail = f"mailbox {mailbox.get('name')!r} -> email server profile {profile.get('name')!r}"

    def problem(text: str) -> TransportChoice:
        return TransportChoice("crm-profile", detail, None, f"{detail}: {text}")

    same = bool(profile.get("usesamesettingsforoutgoingconnections"))
    retrieval = _int(profile.get("outgoingcredentialretrieval"))
    if retrieval in _UNSUPPORTED_CREDENTIALS:
        return problem(
            f"outgoing credentials by {_UNSUPPORTED_CREDENTIALS[retrieval]} are not supported "
            "here; give this sender a transport explicitly"
        )
    address = sender.emailaddress or str(mailbox.get("emailaddress") or "")
    login: str | None
    if retrieval == _ANONYMOUS:
        login = None
    elif retrieval == _BY_PROFILE:
        login = profile.get("outgoingusername") or (
            profile.get("incomingusername") if same else None
        )
        if not login:
            return problem("credentials are in the profile, but it has no outgoing user name")
    else:
        login = str(mailbox.get("emailaddress") or address) or None
    location = str(profile.get("outgoingserverlocation") or "").strip()
    exchange = _int(profile.get("servertype")) in _EXCHANGE_SERVER_TYPES
    if exchange:
        location = location or str(profile.get("incomingserverlocation") or "").strip()
        if login is None:
            return problem("EWS needs a login; anonymous credentials are for SMTP relays")
        if _int(profile.get("outgoingauthenticationprotocol")) == 4:
            return problem("OAuth profiles are not supported here; give a transport explicitly")
        url = _ews_url(
            location,
            login=login,
            mailbox=address,
            auth="basic" if _int(profile.get("outgoingauthenticationprotocol")) == 3 else "ntlm",
            access="impersonation" if profile.get("outgoinguseimpersonation") else "delegate",
            use_ssl=bool(profile.get("outgoingusessl", 1)),
            password=_password(password, sender, login),
        )
        return TransportChoice("crm-profile", detail, url) if url else problem(_NO_PASSWORD)
    if not location:
        return problem("the profile has no outgoing server location")
    port = _int(profile.get("outgoingportnumber"))
    server = f"{location}:{port}" if port and ":" not in location.rpartition("]")[2] else location
    url = _smtp_url(
        server,
        use_ssl=bool(profile.get("outgoingusessl", 1)),
        login=login,
        password=_password(password, sender, login) if login else None,
        delegate=None,
    )
    return TransportChoice("crm-profile", detail, url) if url else problem(_NO_PASSWORD)


# -- URL building ---------------------------------------------------------------------------------


def _password(template: str | None, sender: SendingMailbox, login: str | None) -> str | None:
    if template is None:
        return None
    address = sender.emailaddress or login or ""
    try:
        return template.format(
            address=address, local=address.split("@", 1)[0], id=sender.id, login=login or ""
        )
    except (KeyError, IndexError, ValueError):
        raise RoutingError(
            f"password template {template!r}: use only the fields {{address}}, {{local}}, "
            "{id} and {login}"
        ) from None


def _smtp_url(
    server: str,
    *,
    use_ssl: bool | None,
    login: str | None,
    password: str | None,
    delegate: str | None,
) -> str | None:
    """``host[:port]`` (or an smtp(s):// URL) and the profile's SSL flag as a sender URL.

    SSL on: implicit TLS (smtps) on port 465 or when no port is given, else STARTTLS, which is
    what SSL meant for the router on the submission ports 25 and 587. SSL off: plain SMTP.
    """
    if login and not password:
        return None
    text = server if "://" in server else f"//{server}"
    parts = urlsplit(text)
    given = (parts.scheme or "").lower()
    host, port = parts.hostname or server, parts.port
    if given == "smtps" or (use_ssl and port in (None, 465)):
        scheme, starttls = "smtps", False
    elif use_ssl or (use_ssl is None and port == 587):
        scheme, starttls = "smtp", True
    else:
        scheme, starttls = "smtp", False
    query: dict[str, str] = {}
    if starttls:
        query["starttls"] = "1"
    if password:
        query["password"] = password
    if delegate:
        query.update(access="delegate", sender=delegate)
    who = f"{quote(login, safe='')}@" if login else ""
    netloc = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{who}{netloc}" + (f":{port}" if port else "")
    return url + (f"?{urlencode(query, safe=':/@{}')}" if query else "")


def _ews_url(server: str, *, password: str | None, **settings: Any) -> str | None:
    """An EWS endpoint (or empty for Autodiscover) as a sender URL; None without a password."""
    return ews_url_for(server, password=password, **settings) if password else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


__all__ = ["RULES", "TransportChoice", "TransportResolver"]
