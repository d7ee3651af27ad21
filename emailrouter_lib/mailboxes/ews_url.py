"""``ews://`` and ``ewss://`` mailbox URLs: one Exchange mailbox reached over EWS.

::

    ewss://USER@HOST[:PORT][/PATH]?mailbox=ADDRESS&password=env:NAME[&...]

``ewss://`` is HTTPS (port 443), ``ews://`` plain HTTP (port 80; test servers and TLS offloading
only). *PATH* defaults to ``/EWS/Exchange.asmx``. The host ``autodiscover`` (no dots) means: find
the endpoint by Autodiscover (``mailboxes/ews_autodiscover.py``), from the mailbox's domain or, with
``autodiscover=HOST[:PORT]``, from that server only. *USER* is the account that logs on:
``DOMAIN%5Cuser`` (a percent-encoded backslash) or ``user@domain`` for NTLM and Basic, the
application (client) id for OAuth.

Parameters, besides the common ``owner``, ``forward``, ``after``, ``password``, ``cafile``,
``timeout``:

    mailbox=ADDRESS         the mailbox to read (default: USER when it is an address)
    access=impersonation    ApplicationImpersonation (default when the mailbox is not USER's own)
          |delegate         FullAccess on the mailbox (default for USER's own mailbox)
    auth=ntlm|basic|oauth   default ntlm; oauth = client credentials (app-only, impersonation)
    tenant=ID               OAuth: the Entra ID tenant (required with auth=oauth)
    authority=URL           OAuth: token authority (default https://login.microsoftonline.com)
    folder=Inbox            the folder to read: a well-known name or a path (``Inbox/CRM``)
    version=2016            Exchange version hint (2007 … 2019, o365, or auto to probe)
    page=100                items per FindItem page (Exchange caps it at EWSFindCountLimit)
    chunk=10                messages per GetItem with MIME content (the router's
                            EWSRetrieveMessageCount)
    max_wait=60             seconds a throttled mailbox may wait in total per request before
                            it fails (exchangelib's default would be an hour)
    connections=1           concurrent connections per service account and endpoint
    autodiscover=HOST[:PORT] with the host autodiscover: ask this Autodiscover server
                            (``https://HOST/autodiscover/autodiscover.svc``) instead of trying the
                            mailbox domain's well-known names and DNS; cafile= applies to it

The password (or OAuth client secret) is only ever a reference, as for every mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlsplit

from emailrouter_lib.errors import MailboxURLError
from emailrouter_lib.mailboxes.base import Owner
from emailrouter_lib.mailboxes.url import (
    MailboxURL,
    _after,
    _flag,
    _timeout,
    checked_query,
)
from emailrouter_lib.secrets import is_reference
from emailrouter_lib.secrets import redact_url as redact_secrets_in_url

EWS_SCHEMES = ("ews", "ewss")
DEFAULT_PATH = "/EWS/Exchange.asmx"
AUTODISCOVER_HOST = "autodiscover"
AUTH_TYPES = ("ntlm", "basic", "oauth")
ACCESS_TYPES = ("impersonation", "delegate")
VERSIONS = ("2007", "2010", "2010_sp2", "2013", "2013_sp1", "2016", "2019", "o365", "auto")
EWS_QUERY_NAMES = (
    "owner",
    "forward",
    "after",
    "password",
    "cafile",
    "timeout",
    "mailbox",
    "access",
    "auth",
    "tenant",
    "authority",
    "folder",
    "version",
    "page",
    "chunk",
    "max_wait",
    "connections",
    "autodiscover",
)
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class EwsMailboxURL(MailboxURL):
    """A checked ``ews(s)://`` URL: the common settings plus what EWS needs."""

    endpoint_path: str = DEFAULT_PATH
    mailbox: str = ""
    access: str = "impersonation"
    auth: str = "ntlm"
    tenant: str | None = None
    authority: str = DEFAULT_AUTHORITY
    version: str = "2016"
    page_size: int = 100
    chunk_size: int = 10
    max_wait: float = 60.0
    connections: int = 1
    read_chunk: int = 64 * 1024  # bytes per read when parsing responses; 0 = exchangelib as shipped
    autodiscover_server: str | None = None  # HOST[:PORT] to ask, instead of the domain's names

    @property
    def autodiscover(self) -> bool:
        return self.host == AUTODISCOVER_HOST

    @property
    def service_endpoint(self) -> str | None:
        if self.autodiscover:
            return None
        http = "https" if self.scheme == "ewss" else "http"
        return f"{http}://{self.endpoint}{self.endpoint_path}"

    @property
    def mailbox_id(self) -> str:
        """``ews://ADDRESS/FOLDER``: stable when the endpoint or the service account changes."""
        return f"ews://{quote(self.mailbox, safe='@')}/{quote(self.folder, safe='/')}"

    @property
    def uses_tls(self) -> bool:
        return self.scheme == "ewss"


def redact_ews_url(url: str) -> str:
    """An ``ews://`` / ``ewss://`` *url* with any literal secret replaced by ``***`` (references
    kept; values of parameters EWS URLs do not take masked too)."""
    return redact_secrets_in_url(url, EWS_QUERY_NAMES, unreadable="<unreadable mailbox URL>")


def parse_ews_url(
    url: str, *, timeout: float | None = None, ca_file: str | None = None
) -> EwsMailboxURL:
    """Check an ``ews(s)://`` URL; *timeout* / *ca_file* apply when the URL sets none."""
    shown = redact_ews_url(url)

    def fail(message: str) -> MailboxURLError:
        return MailboxURLError(message, mailbox=shown)

    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise fail(
            "malformed URL or port; expected e.g. ewss://svc@mail.contoso.com/EWS/Exchange.asmx"
        ) from None
    scheme = parts.scheme.lower()
    query = checked_query(parts, EWS_QUERY_NAMES, fail)
    if not parts.hostname:
        raise fail(
            f"no server host; expected {scheme}://user@host/EWS/Exchange.asmx or host autodiscover"
        )
    if not parts.username:
        raise fail(f"no user name; expected {scheme}://USER@{parts.hostname}")
    user = unquote(parts.username)
    password_ref = query.get("password")
    if not password_ref:
        raise fail("no password reference; add ?password=env:NAME, file:PATH or keyring:S/U")
    if not is_reference(password_ref):
        raise fail(
            "password= must be a reference (env:NAME, file:PATH or keyring:SERVICE/USER), "
            "not the password itself"
        )
    auth = _choice(query.get("auth", "ntlm"), "auth", AUTH_TYPES, fail)
    mailbox = (
        (query.get("mailbox") or (user if "@" in user and auth != "oauth" else "")).strip().lower()
    )
    if "@" not in mailbox:
        raise fail("no mailbox to read; add ?mailbox=ADDRESS (the SMTP address of the mailbox)")
    own = mailbox == user.lower()
    access = _choice(
        query.get("access", "delegate" if own else "impersonation"), "access", ACCESS_TYPES, fail
    )
    tenant = query.get("tenant") or None
    if auth == "oauth":
        if not tenant:
            raise fail("auth=oauth needs tenant=ID (the Entra ID tenant of the application)")
        if access != "impersonation":
            raise fail("auth=oauth is app-only access; it works with access=impersonation only")
    elif tenant or query.get("authority"):
        raise fail("tenant= and authority= apply to auth=oauth only")
    if parts.hostname.lower() == AUTODISCOVER_HOST and (port or parts.path.strip("/")):
        raise fail("with the host autodiscover give neither a port nor a path")
    server = _autodiscover_server(query.get("autodiscover"), fail)
    if server and parts.hostname.lower() != AUTODISCOVER_HOST:
        raise fail(
            "autodiscover= applies to the host autodiscover only; "
            f"write {scheme}://USER@autodiscover?autodiscover={server}&..."
        )
    if (
        scheme == "ews"
        and auth == "basic"
        and parts.hostname not in ("127.0.0.1", "localhost", "::1")
    ):
        raise fail("auth=basic over plain ews:// would send the password in clear; use ewss://")
    folder = (query.get("folder") or "Inbox").strip("/") or "Inbox"
    after = _after(query.get("after", "leave"), fail)
    return EwsMailboxURL(
        scheme,
        user=user,
        host=parts.hostname.lower(),
        port=port or (443 if scheme == "ewss" else 80),
        folder=folder,
        owner=_owner(query.get("owner"), fail),
        forward=_flag(query.get("forward", ""), "forward", fail),
        after=after,
        password_ref=password_ref,
        ca_file=query.get("cafile") or ca_file,
        timeout=_timeout(query.get("timeout"), timeout, fail),
        endpoint_path=parts.path if parts.path.strip("/") else DEFAULT_PATH,
        mailbox=mailbox,
        access=access,
        auth=auth,
        tenant=tenant,
        authority=(query.get("authority") or DEFAULT_AUTHORITY).rstrip("/"),
        version=_choice(query.get("version", "2016"), "version", VERSIONS, fail),
        page_size=_whole(query.get("page"), "page", 100, 1, 1000, fail),
        chunk_size=_whole(query.get("chunk"), "chunk", 10, 1, 100, fail),
        max_wait=float(_whole(query.get("max_wait"), "max_wait", 60, 0, 3600, fail)),
        connections=_whole(query.get("connections"), "connections", 1, 1, 64, fail),
        autodiscover_server=server,
    )


def ews_url_for(
    server: str,
    *,
    login: str,
    mailbox: str,
    password: str | None,
    auth: str | None = None,
    access: str | None = None,
    use_ssl: bool | None = None,
    **options: str,
) -> str:
    """The ``ews(s)://`` URL for an endpoint as a router profile or a CRM email server profile
    writes it: ``https://host/EWS/Exchange.asmx``, a bare ``host[:port]``, or empty for
    Autodiscover. ``http://`` (or SSL off without an explicit https) gives plain ``ews://``.

    One builder for every place that turns a profile into a mailbox (routing and the audit from
    ``EmailAgent.xml``, Test Access, the outgoing transports), so they agree on the URL.
    *options* are further query parameters (``owner``, ``forward``, ``after``, …).
    """
    text = server.strip()
    text = text if "://" in text else (f"//{text}" if text else "")
    parts = urlsplit(text)
    given = parts.scheme.lower()
    plain = given == "http" or (use_ssl is False and given != "https")
    host = parts.hostname or AUTODISCOVER_HOST
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    path = parts.path if parts.hostname and parts.path.strip("/") else ""
    query = {"mailbox": mailbox}
    if auth:
        query["auth"] = auth
    if access:
        query["access"] = access
    query.update(options)
    if password:
        query["password"] = password
    scheme = "ews" if plain else "ewss"
    return f"{scheme}://{quote(login, safe='')}@{netloc}{path}?{urlencode(query, safe=':/@{}')}"


def _autodiscover_server(value: str | None, fail) -> str | None:
    """``HOST[:PORT]`` of an Autodiscover server, checked like the host part of a URL."""
    if not value:
        return None
    value = value.strip().lower()
    try:
        parts = urlsplit(f"//{value}")
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or parts.path or parts.username or "?" in value:
        raise fail(
            f"autodiscover= must be HOST or HOST:PORT of an Autodiscover server "
            f"(e.g. autodiscover.contoso.com), not {value!r}"
        )
    return value


def _choice(value: str, name: str, allowed: tuple[str, ...], fail) -> str:
    value = value.strip().lower()
    if value not in allowed:
        raise fail(f"{name}= must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _whole(value: str | None, name: str, default: int, low: int, high: int, fail) -> int:
    if value is None or value == "":
        return default
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise fail(f"{name}= must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


def _owner(value: str | None, fail) -> Owner | None:
    if not value:
        return None
    try:
        return Owner.parse(value)
    except MailboxURLError as exc:
        raise fail(str(exc)) from None


__all__ = [
    "EWS_QUERY_NAMES",
    "EWS_SCHEMES",
    "EwsMailboxURL",
    "ews_url_for",
    "parse_ews_url",
    "redact_ews_url",
]
