"""Mailbox URLs of the standard schemes (POP3, IMAP, Maildir, .eml directories): parse and check.

The URL is the whole description of a mailbox (see :mod:`emailrouter_lib.mailboxes.base`), so a
config row, a papermill parameter or a cron line can carry it. It may name a password only by
reference; a literal one is refused here, before it can be copied into a notebook or a log.
Parsing never connects and imports no protocol code. Which module handles which scheme, the
dispatch of ``parse_mailbox_url``, ``redact_url`` and the opening of sources and senders live in
:mod:`emailrouter_lib.mailboxes.schemes`, the registry; the Exchange parameters in
:mod:`emailrouter_lib.mailboxes.ews_url`.

Exchange mailboxes over EWS use ``ews://`` (plain HTTP) and ``ewss://`` (HTTPS)::

    ewss://CONTOSO%5Csvc@mail.contoso.com/EWS/Exchange.asmx?mailbox=support@contoso.com
        &access=impersonation&auth=ntlm&owner=queue:support@contoso.com&password=env:EWS_PASSWORD
    ewss://CONTOSO%5Csvc@autodiscover?mailbox=support@contoso.com&password=env:EWS_PASSWORD
    ewss://APP-ID@outlook.office365.com/EWS/Exchange.asmx?auth=oauth&tenant=TENANT-ID
        &mailbox=support@contoso.com&password=env:EWS_CLIENT_SECRET

The host ``autodiscover`` means "find the endpoint by Autodiscover". The full parameter list
(access, auth, folder, version, page, chunk, max_wait, connections, tenant, authority) is in
:mod:`emailrouter_lib.mailboxes.ews_url`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from emailrouter_lib.errors import MailboxURLError
from emailrouter_lib.mailboxes.base import Owner
from emailrouter_lib.secrets import is_reference, url_secret_problem
from emailrouter_lib.secrets import redact_url as redact_secrets_in_url

DEFAULT_TIMEOUT = 30.0
DEFAULT_PORTS = {"pop3": 110, "pop3s": 995, "imap": 143, "imaps": 993}
NETWORK_SCHEMES = tuple(DEFAULT_PORTS)
LOCAL_SCHEMES = ("maildir", "eml")
QUERY_NAMES = ("owner", "forward", "after", "password", "cafile", "timeout", "starttls")
_EWS_SCHEMES = ("ews", "ewss")  # parsed by mailboxes/ews_url.py, which owns their parameters
SENDER_SCHEMES = ("smtp", "smtps", "pickup", *_EWS_SCHEMES)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class MailboxURL:
    """A checked mailbox URL: everything a source needs except the password value."""

    scheme: str
    user: str | None = None
    host: str | None = None
    port: int | None = None
    folder: str = "INBOX"  # IMAP only
    path: str | None = None  # maildir / eml only: absolute directory
    owner: Owner | None = None
    forward: bool = False
    after: str = "leave"
    password_ref: str | None = None
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    starttls: bool = False

    @property
    def implicit_tls(self) -> bool:
        return self.scheme in ("pop3s", "imaps")

    @property
    def uses_tls(self) -> bool:
        return self.implicit_tls or self.starttls

    @property
    def endpoint(self) -> str:
        """``host:port`` as a person would type it (IPv6 in brackets)."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def mailbox_id(self) -> str:
        """The stable, password-free name of the mailbox; the ledger keys its items under it."""
        if self.scheme in LOCAL_SCHEMES:
            return f"{self.scheme}://{quote(self.path or '')}"
        user = quote(self.user or "", safe="")
        base = f"{self.scheme}://{user}@{self.endpoint}"
        if self.scheme.startswith("imap"):
            return f"{base}/{quote(self.folder, safe='/')}"
        return base


def redact_standard_url(url: str) -> str:
    """*url* (a POP3, IMAP, Maildir or .eml URL) with any literal password replaced by ``***``.

    References (``password=env:NAME``) are kept: they name a secret, they are not one. The values
    of parameters these schemes do not take are masked too: a misspelt name may hold a password.
    """
    return redact_secrets_in_url(url, QUERY_NAMES, unreadable="<unreadable mailbox URL>")


def local_mailbox_url(path: str | Path, kind: str = "maildir", **params: str) -> str:
    """A ``maildir://`` or ``eml://`` URL for a directory, quoting whatever the path contains."""
    if kind not in LOCAL_SCHEMES:
        raise MailboxURLError(f"kind must be one of {', '.join(LOCAL_SCHEMES)}, not {kind!r}")
    url = f"{kind}://{quote(str(Path(path).expanduser().resolve()))}"
    return f"{url}?{urlencode(params, safe=':/@')}" if params else url


def checked_query(
    parts: SplitResult, known: Sequence[str], fail: Callable[[str], MailboxURLError]
) -> dict[str, str]:
    """The URL's query as a dict, after the checks every mailbox URL shares: no literal password,
    no fragment, only *known* parameter names, each at most once.

    Literal secrets are refused by :func:`emailrouter_lib.secrets.url_secret_problem`, the check
    every URL front shares (a password in the user part, ``pass%77ord=``, ``PASSWORD=``, ...).
    """
    problem = url_secret_problem(parts.geturl())
    if problem:
        raise fail(problem)
    if parts.fragment:
        raise fail("unexpected '#' part in the URL; percent-encode '#' as %23")
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        name = name.lower()
        if name not in known:
            raise fail(f"unknown parameter {name!r}; known: {', '.join(known)}")
        if name in query:
            raise fail(f"parameter {name!r} is given twice")
        query[name] = value
    return query


def parse_standard_url(
    url: str, *, timeout: float | None = None, ca_file: str | None = None
) -> MailboxURL:
    """Check a POP3, IMAP, Maildir or .eml *url* and return its parts; *timeout* / *ca_file*
    apply when the URL sets none (the URL is the per-mailbox setting, the keywords the run-wide
    defaults, so the URL wins). Other schemes are refused, naming every scheme the registry knows.
    """
    shown = redact_standard_url(url)

    def fail(message: str) -> MailboxURLError:
        return MailboxURLError(message, mailbox=shown)

    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise fail("malformed URL or port; expected e.g. imaps://user@host:993/INBOX") from None
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES + LOCAL_SCHEMES:
        known = ", ".join(f"{s}://" for s in NETWORK_SCHEMES + LOCAL_SCHEMES + _EWS_SCHEMES)
        raise fail(f"unknown mailbox type {scheme + '://' if scheme else '(none)'}; use {known}")
    query = checked_query(parts, QUERY_NAMES, fail)

    try:
        owner = Owner.parse(query["owner"]) if query.get("owner") else None
    except MailboxURLError as exc:
        raise fail(str(exc)) from None
    forward = _flag(query.get("forward", ""), "forward", fail)
    after = _after(query.get("after", "leave"), fail)
    if scheme in LOCAL_SCHEMES:
        for name in ("password", "cafile", "starttls", "timeout"):
            if name in query:
                raise fail(f"{name}= does not apply to a local {scheme}:// directory")
        if parts.username or port:
            raise fail(f"a {scheme}:// URL names a directory: {scheme}:///absolute/path")
        if parts.hostname not in (None, "", "localhost"):
            raise fail(f"{scheme}:// must be followed by an absolute path: {scheme}:///path")
        if not parts.path:
            raise fail(f"no directory given; expected {scheme}:///absolute/path")
        path = Path(unquote(parts.path)).expanduser().resolve()
        return MailboxURL(scheme, path=str(path), owner=owner, forward=forward, after=after)

    if not parts.hostname:
        raise fail(f"no server host; expected {scheme}://user@host:port")
    if not parts.username:
        raise fail(f"no user name; expected {scheme}://USER@{parts.hostname}")
    password_ref = query.get("password")
    if not password_ref:
        raise fail("no password reference; add ?password=env:NAME, file:PATH or keyring:S/U")
    if not is_reference(password_ref):
        raise fail(
            "password= must be a reference (env:NAME, file:PATH or keyring:SERVICE/USER), "
            "not the password itself"
        )
    starttls = _flag(query.get("starttls", ""), "starttls", fail)
    if starttls and scheme in ("pop3s", "imaps"):
        raise fail(f"starttls=1 is for {scheme[:-1]}://; {scheme}:// already uses implicit TLS")
    folder = unquote(parts.path).strip("/")
    if scheme.startswith("pop3"):
        if folder:
            raise fail("POP3 has no folders; remove the path after the port")
        if after.startswith("move:"):
            raise fail("POP3 has no folders, so after=move:… cannot work; use delete or leave")
    seconds = _timeout(query.get("timeout"), timeout, fail)
    return MailboxURL(
        scheme,
        user=unquote(parts.username),
        host=parts.hostname.lower(),
        port=port or DEFAULT_PORTS[scheme],
        folder=folder or "INBOX",
        owner=owner,
        forward=forward,
        after=after,
        password_ref=password_ref,
        ca_file=str(Path(query["cafile"]).expanduser()) if query.get("cafile") else ca_file,
        timeout=seconds,
        starttls=starttls,
    )


def _flag(value: str, name: str, fail) -> bool:
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise fail(f"{name}= must be 1 or 0 (true/false), not {value!r}")


def _after(value: str, fail) -> str:
    verb, sep, folder = value.strip().partition(":")
    verb = verb.lower()
    if verb in ("leave", "delete") and not sep:
        return verb
    if verb == "move" and folder.strip():
        return f"move:{folder.strip()}"
    raise fail(f"after= must be leave, delete or move:FOLDER, not {value!r}")


def _timeout(value: str | None, default: float | None, fail) -> float:
    if value is None:
        return float(default) if default is not None else DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise fail(f"timeout= must be a number of seconds between 0 and 3600, not {value!r}")
    return seconds


__all__ = [
    "LOCAL_SCHEMES",
    "NETWORK_SCHEMES",
    "SENDER_SCHEMES",
    "MailboxURL",
    "checked_query",
    "local_mailbox_url",
    "parse_standard_url",
    "redact_standard_url",
]
