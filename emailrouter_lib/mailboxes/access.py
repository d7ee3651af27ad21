"""Test Access: connect to and log in to every enabled mailbox of a router configuration.

The Configuration Manager's Test Access told an admin, per user, queue and forward mailbox,
whether the router could reach and open it. Here each entry becomes a mailbox URL (POP3, IMAP,
Maildir, EWS when this installation has it) or an SMTP URL for outgoing profiles; every URL is
probed once, a few at a time, with a socket timeout, and the result is one table row per entry
with the server's own error text. The SMTP probe connects, says EHLO, starts TLS and logs in;
it never sends a message.

URLs for SMTP (probe only)::

    smtp://user@host:587?starttls=1&password=env:NAME     smtps://user@host:465?password=…
    smtp://host:25                                        (anonymous relay: no login)

Passwords come from a secret reference *template* (``env:PW_{local}``: ``{user}`` is the login,
``{local}`` its local part without domain, ``{address}`` the mailbox address and ``{id}`` the CRM
record id), or from the URLs given in ``overrides``.
"""

from __future__ import annotations

import concurrent.futures as futures
import functools
import html
import smtplib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from emailrouter_lib.config.edit import ConfigEditor, Entry, Profile
from emailrouter_lib.config.findings import Finding
from emailrouter_lib.errors import (
    EmailRouterError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxTLSError,
    MailboxURLError,
    SecretError,
)
from emailrouter_lib.mailboxes.ews_url import ews_url_for
from emailrouter_lib.mailboxes.schemes import open_source, parse_mailbox_url, redact_url
from emailrouter_lib.mailboxes.tls import client_context, network_errors
from emailrouter_lib.secrets import is_reference, resolve_secret, url_secret_problem

DEFAULT_TIMEOUT = 10.0
DEFAULT_WORKERS = 4
OUTCOMES = ("ok", "auth-failed", "tls-failed", "unreachable", "error", "skipped")
_SMTP_QUERY = ("password", "starttls", "cafile", "timeout")
# The SMTP sender's own parameters (mailboxes/smtp.py): accepted so its URLs can be probed as they
# are, and ignored, because a probe sends nothing.
_SMTP_SENDER_QUERY = ("auth", "helo", "per_connection", "access", "sender", "insecure_auth")


@dataclass(frozen=True)
class AccessTarget:
    """One thing to test: an entry, one direction, and the URL to open (or why not)."""

    entry: str
    kind: str  # user | queue | forward
    direction: str  # incoming | outgoing
    url: str | None = None
    skipped: str | None = None

    @property
    def protocol(self) -> str:
        return urlsplit(self.url).scheme if self.url else ""


@dataclass(frozen=True)
class AccessResult:
    entry: str
    kind: str
    direction: str
    protocol: str
    target: str  # the URL, password-free
    outcome: str  # one of OUTCOMES
    message: str
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("ok", "skipped")


@dataclass
class AccessReport:
    """Test Access results, one row per entry and direction; renders as a table."""

    results: list[AccessResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed (skipped rows are not failures)."""
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[AccessResult]:
        return [r for r in self.results if not r.ok]

    def counts(self) -> dict[str, int]:
        return {o: n for o in OUTCOMES if (n := sum(r.outcome == o for r in self.results))}

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]

    def findings(self) -> list[Finding]:
        """Failures as validation findings ("unreachable URLs, when tested")."""
        code = {"unreachable": "unreachable-server", "auth-failed": "login-refused"}
        return [
            Finding("error", code.get(r.outcome, r.outcome), f"{r.entry}: {r.message}")
            for r in self.failures
        ]

    def summary(self) -> str:
        counts = ", ".join(f"{n} {o}" for o, n in self.counts().items())
        return f"Test Access: {len(self.results)} checked ({counts or 'nothing to test'})"

    def __str__(self) -> str:
        lines = [self.summary()]
        for r in self.results:
            lines.append(f"  {r.outcome:11} {r.direction:8} {r.entry}: {r.message}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"ok": "#116611", "skipped": "#666666"}
        columns = ("entry", "kind", "direction", "protocol", "outcome", "message", "seconds")
        head = "".join(f"<th>{c}</th>" for c in columns)
        rows = []
        for r in self.results:
            cells = []
            for c in columns:
                value = getattr(r, c)
                text = f"{value:.2f}" if c == "seconds" else str(value)
                style = (
                    f' style="color:{colours.get(r.outcome, "#aa1111")}"' if c == "outcome" else ""
                )
                cells.append(f"<td{style}>{html.escape(text)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        return (
            f"<p><b>{html.escape(self.summary())}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )


# --- from a configuration to targets ----------------------------------------------------------


def access_targets(
    editor: ConfigEditor,
    *,
    password: str | None = None,
    overrides: Mapping[str, str] | None = None,
    only: Sequence[str] | None = None,
) -> list[AccessTarget]:
    """What Test Access should open for every entry of the configuration.

    *overrides* maps an address (or entry label) to the URL to test instead of the one derived
    from its profile; *only*, when given, limits the test to those addresses, labels or ids
    (``incoming:ADDRESS`` or ``outgoing:ADDRESS`` for one direction).
    """
    if password is not None and not is_reference(password):
        raise SecretError(
            "the password must be a secret reference template such as env:PW_{local}, "
            "file:/etc/emailrouter/{local}.secret or keyring:emailrouter/{address}"
        )
    chosen = {o.strip().lower() for o in only} if only else None
    replaced = {k.strip().lower(): v for k, v in (overrides or {}).items()}
    targets: list[AccessTarget] = []
    for entry in editor.entries():
        keys = {k.lower() for k in (entry.email_address, entry.label, entry.id) if k}
        for direction in ("incoming", "outgoing"):
            target = _target(editor, entry, direction, password)
            if target is None:
                continue
            override = next((replaced[k] for k in keys if k in replaced), None)
            if override and direction == "incoming":
                target = AccessTarget(entry.label, entry.kind, direction, url=override)
            elif chosen is not None and not (keys | {f"{direction}:{k}" for k in keys}) & chosen:
                target = AccessTarget(
                    entry.label, entry.kind, direction, skipped="not selected for this test"
                )
            targets.append(target)
    return targets


def _target(
    editor: ConfigEditor, entry: Entry, direction: str, password: str | None
) -> AccessTarget | None:
    def skip(reason: str) -> AccessTarget:
        return AccessTarget(entry.label, entry.kind, direction, skipped=reason)

    name = entry.incoming if direction == "incoming" else entry.outgoing
    if direction == "incoming" and entry.forward_mailbox:
        return skip(f"mail arrives through the forward mailbox {entry.forward_mailbox}")
    if not name:
        return None
    if not entry.enabled:
        return skip("disabled")
    profile = editor.profiles.get((name, direction))
    if profile is None:
        return skip(f"profile {name!r} is not defined")
    address = entry.email_address
    if not address:
        return skip("no mailbox address known; run Load Data from the CRM first")
    login = address
    if entry.kind == "forward":
        own = editor.config.forward_mailboxes
        login = next(
            (p.email_user for p in own if p.email_address == address and p.email_user), login
        )
    elif profile.email_access_credentials and "other" in profile.email_access_credentials.lower():
        login = profile.email_user or login
    anonymous = (profile.email_auth_mode or "").strip().lower() in ("anonymous", "none")
    credentials = (profile.email_access_credentials or "").lower().replace(" ", "")
    if credentials.startswith("localsystem") and profile.kind != "exchange" and not anonymous:
        return skip("Local System credentials cannot log in to this server; change the profile")
    if not profile.email_server_url:
        return skip(f"profile {name!r} has no server location")
    if profile.kind == "exchange" and not ews_available():
        return skip("Exchange (EWS) is not available in this installation")
    secret = None
    if password and not anonymous:
        local = login.split("@", 1)[0].split("\\")[-1]  # the secret belongs to the login
        secret = password.format(address=address, local=local, id=entry.id or "", user=login)
    if not anonymous and secret is None:
        return skip("no password reference; give a template such as env:PW_{local}")
    try:
        url = _profile_url(profile, login, address, None if anonymous else secret)
    except MailboxURLError as exc:
        return skip(str(exc))
    if url is None:
        return skip("Exchange (EWS) is not available in this installation")
    return AccessTarget(entry.label, entry.kind, direction, url=url)


def _profile_url(profile: Profile, login: str, address: str, secret: str | None) -> str | None:
    location = profile.email_server_url or ""
    parts = urlsplit(location if "://" in location else "//" + location)
    host, port = parts.hostname or "", parts.port
    query = {"password": secret} if secret else {}
    tls = profile.use_ssl is not False
    if profile.kind == "exchange":
        if not ews_available():
            return None
        return _ews_url(profile, login, address, secret)
    if profile.kind == "pop3":
        scheme = "pop3s" if tls and port != 110 else "pop3"
        if tls and port == 110:
            query["starttls"] = "1"
    elif profile.kind == "smtp":
        scheme = "smtps" if tls and port == 465 else "smtp"
        if tls and port != 465:
            query["starttls"] = "1"
    else:
        raise MailboxURLError(f"a {profile.kind} profile cannot be tested")
    user = "" if secret is None and profile.kind == "smtp" else f"{quote(login, safe='')}@"
    netloc = f"{user}{host}" + (f":{port}" if port else "")
    return f"{scheme}://{netloc}" + (f"?{urlencode(query, safe=':/@{}')}" if query else "")


def _ews_url(profile: Profile, login: str, address: str, secret: str | None) -> str:
    """Windows authentication is NTLM, Clear Text is Basic; a login other than the mailbox's
    own ("Other specified") reaches it with full access (delegate)."""
    mode = (profile.email_auth_mode or "").lower().replace(" ", "")
    return ews_url_for(
        profile.email_server_url or "",
        login=login,
        mailbox=address,
        password=secret,
        auth="basic" if mode in ("cleartext", "basic") else None,
        access="delegate" if login.lower() != address.lower() else None,
        use_ssl=profile.use_ssl,
    )


@functools.cache
def ews_available() -> bool:
    """True when this installation opens ``ews://`` mailbox URLs."""
    try:
        parse_mailbox_url(
            "ewss://probe@ews.invalid/EWS/Exchange.asmx?mailbox=probe@ews.invalid"
            "&password=env:EMAILROUTER_X"
        )
    except MailboxURLError as exc:
        return "unknown mailbox type" not in str(exc)
    return True


# --- probing ---------------------------------------------------------------------------------


def test_access(
    targets: Iterable[AccessTarget],
    *,
    workers: int = DEFAULT_WORKERS,
    timeout: float = DEFAULT_TIMEOUT,
    ca_file: str | None = None,
) -> AccessReport:
    """Probe every target (each distinct URL once), *workers* at a time; never raises for a
    mailbox problem: it becomes the row's outcome and message."""
    targets = list(targets)
    urls = list(dict.fromkeys(t.url for t in targets if t.url))
    done: dict[str, tuple[str, str, float]] = {}
    pool = futures.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="access")
    try:
        pending = {pool.submit(probe, url, timeout=timeout, ca_file=ca_file): url for url in urls}
        # Sockets time out on their own; this only guards against a server that trickles bytes.
        deadline = time.monotonic() + timeout * 3 * (len(urls) // max(1, workers) + 1) + 5
        for future, url in pending.items():
            try:
                done[url] = future.result(timeout=max(0.1, deadline - time.monotonic()))
            except futures.TimeoutError:
                done[url] = ("unreachable", f"no result within {timeout * 3:g} s", timeout * 3)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    report = AccessReport()
    for t in targets:
        row = ("skipped", t.skipped or "", 0.0) if t.url is None else done[t.url]
        report.results.append(
            AccessResult(
                t.entry, t.kind, t.direction, t.protocol, _shown(t.url), row[0], row[1], row[2]
            )
        )
    return report


test_access.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def probe(
    url: str, *, timeout: float = DEFAULT_TIMEOUT, ca_file: str | None = None
) -> tuple[str, str, float]:
    """(outcome, message, seconds) for one mailbox or SMTP URL."""
    started = time.monotonic()
    try:
        if urlsplit(url).scheme.lower() in ("smtp", "smtps"):
            message = probe_smtp(url, timeout=timeout, ca_file=ca_file)
        else:
            message = _probe_mailbox(url, timeout, ca_file)
        outcome = "ok"
    except MailboxAuthError as exc:
        outcome, message = "auth-failed", str(exc)
    except MailboxTLSError as exc:
        outcome, message = "tls-failed", str(exc)
    except MailboxConnectError as exc:
        outcome, message = "unreachable", str(exc)
    except EmailRouterError as exc:  # URL, secret and protocol errors
        outcome, message = "error", str(exc)
    except Exception as exc:  # a client library's own error: still a row, not a crash
        outcome, message = "error", f"{_shown(url)}: {type(exc).__name__}: {exc}"
    return outcome, message, round(time.monotonic() - started, 3)


def _probe_mailbox(url: str, timeout: float, ca_file: str | None) -> str:
    source = open_source(url, timeout=timeout, ca_file=ca_file)
    with source:
        count = len(source.list_items())
    return f"opened; {count} item(s) waiting"


@dataclass(frozen=True)
class _SmtpURL:
    scheme: str
    host: str
    port: int
    user: str | None
    password_ref: str | None
    starttls: bool
    ca_file: str | None
    timeout: float

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def mailbox_id(self) -> str:
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        return f"{self.scheme}://{user}{self.endpoint}"


def _parse_smtp_url(url: str, timeout: float, ca_file: str | None) -> _SmtpURL:
    shown = _shown(url)
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise MailboxURLError("malformed port", mailbox=shown) from None
    problem = url_secret_problem(url)  # the check every URL front shares
    if problem:
        raise MailboxURLError(problem, mailbox=shown)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(_SMTP_QUERY) - set(_SMTP_SENDER_QUERY))
    if unknown:
        raise MailboxURLError(
            f"unknown parameter {', '.join(unknown)}; known: {', '.join(_SMTP_QUERY)}",
            mailbox=shown,
        )
    if not parts.hostname:
        raise MailboxURLError("no server host; expected smtp://user@host:587", mailbox=shown)
    ref = query.get("password")
    if ref and not is_reference(ref):
        raise MailboxURLError("password= must be a secret reference", mailbox=shown)
    if parts.username and not ref:
        raise MailboxURLError("a user without password=…; add a secret reference", mailbox=shown)
    scheme = parts.scheme.lower()
    return _SmtpURL(
        scheme=scheme,
        host=parts.hostname,
        port=port or (465 if scheme == "smtps" else 25),
        user=unquote(parts.username) if parts.username else None,
        password_ref=ref,
        starttls=query.get("starttls", "").lower() in ("1", "true", "yes", "on"),
        ca_file=query.get("cafile") or ca_file,
        timeout=float(query.get("timeout") or timeout),
    )


def probe_smtp(url: str, *, timeout: float = DEFAULT_TIMEOUT, ca_file: str | None = None) -> str:
    """Connect, EHLO, STARTTLS and AUTH as the URL says, then QUIT; raise a MailboxError.

    Only a probe: no MAIL FROM, nothing is sent.
    """
    s = _parse_smtp_url(url, timeout, ca_file)
    where = s.mailbox_id
    tls = s.scheme == "smtps" or s.starttls
    context = client_context(s.ca_file, mailbox=where) if tls else None
    dropped = (smtplib.SMTPServerDisconnected,)
    with network_errors(where, s.endpoint, "connecting", s.timeout, dropped):
        if s.scheme == "smtps":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
    try:
        with network_errors(where, s.endpoint, "greeting", s.timeout, dropped):
            conn.ehlo()
            if s.starttls:
                if not conn.has_extn("starttls"):
                    raise MailboxTLSError(
                        f"{s.endpoint} does not offer STARTTLS; use smtps:// on the TLS port, or "
                        "turn SSL off in the profile if the relay really has no TLS",
                        mailbox=where,
                    )
                conn.starttls(context=context)
                conn.ehlo()
        if not s.user:
            return "connected; anonymous relay, no login tried"
        try:
            password = resolve_secret(s.password_ref or "")
        except SecretError as exc:
            raise SecretError(f"{where}: {exc}") from None
        with network_errors(where, s.endpoint, "logging in", s.timeout, dropped):
            try:
                conn.login(s.user, password)
            except smtplib.SMTPAuthenticationError as exc:
                text = exc.smtp_error.decode("utf-8", "replace") if exc.smtp_error else ""
                raise MailboxAuthError(
                    f"the server refused the login of {s.user!r}: {exc.smtp_code} {text}; check "
                    "the user name and the secret that password= refers to",
                    mailbox=where,
                ) from None
            except smtplib.SMTPNotSupportedError:
                raise MailboxError(
                    f"{s.endpoint} offers no AUTH"
                    + ("" if tls else " without TLS; add starttls=1 (turn SSL on in the profile)")
                    + "; or set the profile's authentication to Anonymous",
                    mailbox=where,
                ) from None
        return f"connected; login of {s.user!r} accepted"
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


def _shown(url: str | None) -> str:
    if not url:
        return ""
    return redact_url(url)


__all__ = [
    "OUTCOMES",
    "AccessReport",
    "AccessResult",
    "AccessTarget",
    "access_targets",
    "ews_available",
    "probe",
    "probe_smtp",
    "test_access",
]
