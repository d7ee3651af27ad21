"""Send over SMTP (smtplib): implicit TLS, STARTTLS, AUTH PLAIN/LOGIN, or an anonymous relay.

URLs (the password only by reference, as for mailbox sources)::

    smtp://relay.example:25                          anonymous relay, no TLS
    smtp://crm@mail.example:587?starttls=1&password=env:SMTP_PW
    smtps://crm@mail.example:465?password=keyring:emailrouter/crm

Query parameters: ``starttls=1`` (required, not opportunistic), ``password=REF``,
``cafile=PATH`` (trust this CA; certificates are always verified), ``timeout=SECONDS``,
``auth=plain|login`` (force one mechanism; default: the best the server offers),
``helo=NAME``, ``per_connection=N`` (messages per connection, default 100; 1 opens one per
message), ``access=sendas|delegate`` and ``sender=ADDRESS`` (the outgoing profile's access type:
with *delegate* the message carries ``Sender: ADDRESS``, "on behalf of"), and
``insecure_auth=1`` (allow a password without TLS to a host other than loopback).

A message is handed over with separate MAIL, RCPT and DATA commands, so a dropped connection is
only retried on a fresh one while nothing of the message has been sent. Server replies map onto
:class:`~emailrouter_lib.errors.MailboxSendError`: 5xx is ``permanent``, anything else is not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import smtplib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxSendError,
    MailboxTLSError,
    MailboxURLError,
)
from emailrouter_lib.mailboxes.tls import client_context, network_errors
from emailrouter_lib.secrets import is_reference, resolve_secret, url_secret_problem

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 30.0
DEFAULT_PER_CONNECTION = 100
ACCESS_TYPES = ("sendas", "delegate")
SMTP_QUERY = (
    "starttls",
    "password",
    "cafile",
    "timeout",
    "auth",
    "helo",
    "per_connection",
    "access",
    "sender",
    "insecure_auth",
)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class SendMode:
    """Send As (``From`` is the user or queue) or Delegate (``Sender:`` names who really sent)."""

    access: str = "sendas"
    sender: str | None = None  # the Sender: address for delegate access


def parse_send_mode(query: dict[str, str], fail: Callable[[str], Exception], user: str | None):
    """The ``access=`` / ``sender=`` pair shared by every sender URL."""
    access = query.get("access", "sendas").strip().lower().replace("-", "").replace("_", "")
    if access not in ACCESS_TYPES:
        raise fail(f"access= must be sendas or delegate, not {query['access']!r}")
    sender = query.get("sender", "").strip() or (user if user and "@" in user else None)
    if access == "delegate" and not sender:
        raise fail("access=delegate needs sender=ADDRESS (the mailbox that sends on behalf)")
    return SendMode(access, sender if access == "delegate" else None)


@dataclass(frozen=True)
class SmtpSettings:
    scheme: str
    host: str
    port: int
    user: str | None = None
    password_ref: str | None = None
    starttls: bool = False
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    auth: str | None = None  # "plain" / "login" / None (best offered)
    helo: str | None = None
    per_connection: int = DEFAULT_PER_CONNECTION
    mode: SendMode = SendMode()

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def sender_id(self) -> str:
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        tls = "?starttls=1" if self.starttls else ""
        return f"{self.scheme}://{user}{self.endpoint}{tls}"

    @classmethod
    def from_url(cls, url: str, *, ca_file: str | None = None) -> SmtpSettings:
        parts = urlsplit(str(url).strip())
        shown = f"{parts.scheme}://{parts.hostname or ''}"

        def fail(message: str) -> MailboxURLError:
            return MailboxURLError(message, mailbox=shown)

        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise fail("an SMTP sender URL starts with smtp:// or smtps://")
        problem = url_secret_problem(url)  # the check every URL front shares
        if problem:
            raise fail(problem)
        try:
            port = parts.port
        except ValueError:
            raise fail("malformed port; expected e.g. smtp://host:587") from None
        if not parts.hostname:
            raise fail(f"no server host; expected {scheme}://[user@]host[:port]")
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            name = name.lower()
            if name not in SMTP_QUERY:
                raise fail(f"unknown parameter {name!r}; known: {', '.join(SMTP_QUERY)}")
            query[name] = value
        user = unquote(parts.username) if parts.username else None
        starttls = _flag(query.get("starttls", ""), "starttls", fail)
        if starttls and scheme == "smtps":
            raise fail("starttls=1 is for smtp://; smtps:// already uses implicit TLS")
        password_ref = query.get("password") or None
        if password_ref and not is_reference(password_ref):
            raise fail("password= must be a reference (env:NAME, file:PATH, keyring:S/U)")
        if user and not password_ref:
            raise fail("a user name needs ?password=env:NAME (or file:/keyring:)")
        host = parts.hostname.lower()
        if (
            user
            and scheme == "smtp"
            and not starttls
            and not _is_loopback(host)
            and not _flag(query.get("insecure_auth", ""), "insecure_auth", fail)
        ):
            raise fail(
                "the password would cross the network in clear text; use smtps:// or "
                "starttls=1 (or insecure_auth=1 if you really mean it)"
            )
        auth = query.get("auth", "").strip().lower() or None
        if auth not in (None, "plain", "login"):
            raise fail(f"auth= must be plain or login, not {auth!r}")
        try:
            timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
            per_connection = int(query.get("per_connection", DEFAULT_PER_CONNECTION))
        except ValueError:
            raise fail("timeout= and per_connection= must be numbers") from None
        if not 0 < timeout <= 3600 or per_connection < 1:
            raise fail("timeout= must be in (0, 3600] seconds and per_connection= at least 1")
        default_port = STARTTLS_PORT if starttls else DEFAULT_PORTS[scheme]
        return cls(
            scheme=scheme,
            host=host,
            port=port or default_port,
            user=user,
            password_ref=password_ref,
            starttls=starttls,
            ca_file=query.get("cafile") or ca_file,
            timeout=timeout,
            auth=auth,
            helo=query.get("helo") or None,
            per_connection=per_connection,
            mode=parse_send_mode(query, fail, user),
        )


class SmtpSender:
    """A :class:`~emailrouter_lib.mailboxes.base.MailSender` over one (reused) SMTP connection."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings
        self.sender_id = settings.sender_id
        self.mode = settings.mode
        self.connections = 0  # opened so far (the benchmark and the tests read it)
        self.last_refused: dict[str, tuple[int, str]] = {}
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0

    def __repr__(self) -> str:
        return f"SmtpSender({self.sender_id!r})"

    def __enter__(self) -> SmtpSender:
        self._connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            with contextlib.suppress(OSError):
                smtp.close()

    # -- connection ----------------------------------------------------------------------------
    def _connect(self) -> None:
        self.close()
        s = self.settings
        helo = s.helo or socket.gethostname() or "localhost"
        with network_errors(self.sender_id, s.endpoint, "connecting", s.timeout):
            try:
                if s.scheme == "smtps":
                    context = client_context(s.ca_file, mailbox=self.sender_id)
                    smtp = smtplib.SMTP_SSL(
                        s.host, s.port, local_hostname=helo, timeout=s.timeout, context=context
                    )
                else:
                    smtp = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout)
            except smtplib.SMTPConnectError as exc:
                raise MailboxConnectError(
                    f"{s.endpoint} refused the session: {_reply(exc)}", mailbox=self.sender_id
                ) from exc
            try:
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        raise MailboxTLSError(
                            f"{s.endpoint} does not offer STARTTLS; use smtps:// or fix the server",
                            mailbox=self.sender_id,
                        )
                    smtp.starttls(context=client_context(s.ca_file, mailbox=self.sender_id))
                    smtp.ehlo()
                if s.user:
                    self._login(smtp)
            except BaseException:
                with contextlib.suppress(OSError):
                    smtp.close()
                raise
        self._smtp = smtp
        self._sent_on_connection = 0
        self.connections += 1

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        password = resolve_secret(s.password_ref or "")
        try:
            if s.auth:
                if not smtp.has_extn("auth"):
                    raise smtplib.SMTPNotSupportedError("AUTH not offered")
                smtp.user, smtp.password = s.user, password
                smtp.auth(s.auth.upper(), getattr(smtp, f"auth_{s.auth}"))
            else:
                smtp.login(s.user or "", password)
        except smtplib.SMTPNotSupportedError:
            tls = s.starttls or s.scheme == "smtps"
            hint = "" if tls else " (many servers offer it only after STARTTLS)"
            wanted = f"AUTH {s.auth.upper()}" if s.auth else "AUTH"
            raise MailboxAuthError(
                f"{s.endpoint} offers no {wanted}{hint}", mailbox=self.sender_id
            ) from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPException) as exc:
            raise MailboxAuthError(
                f"the server refused the login of {s.user!r}: {_reply(exc)}; check the user name "
                "and the secret that password= refers to",
                mailbox=self.sender_id,
            ) from None

    # -- sending -------------------------------------------------------------------------------
    def send(self, message: bytes, *, envelope_from: str, recipients: Sequence[str]) -> None:
        if not recipients:
            raise MailboxSendError(
                "the message has no recipient", mailbox=self.sender_id, permanent=True
            )
        if self._smtp is None or self._sent_on_connection >= self.settings.per_connection:
            self._connect()
        s = self.settings
        with network_errors(self.sender_id, s.endpoint, "sending", s.timeout):
            try:
                self._mail_from(envelope_from)
            except smtplib.SMTPServerDisconnected:
                self._connect()  # an idle connection the server closed: nothing was sent yet
                self._mail_from(envelope_from)
            smtp = self._smtp
            assert smtp is not None
            refused: dict[str, tuple[int, str]] = {}
            for rcpt in recipients:
                code, text = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = (code, text.decode("utf-8", "replace"))
            self.last_refused = refused
            if len(refused) == len(recipients):
                self._reset()
                permanent = all(code >= 500 for code, _ in refused.values())
                first = next(iter(refused.items()))
                raise MailboxSendError(
                    f"every recipient refused, e.g. {first[0]}: {first[1][0]} {first[1][1]}",
                    mailbox=self.sender_id,
                    permanent=permanent,
                    code=first[1][0],
                )
            try:
                code, text = smtp.data(message)
            except smtplib.SMTPDataError as exc:
                self._reset()
                raise _send_error(self.sender_id, "DATA", exc.smtp_code, exc.smtp_error) from None
            if code != 250:
                raise _send_error(self.sender_id, "DATA", code, text)
            self._sent_on_connection += 1

    def _mail_from(self, envelope_from: str) -> None:
        smtp = self._smtp
        assert smtp is not None
        code, text = smtp.mail(envelope_from)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPServerDisconnected("421")
        if code != 250:
            self._reset()
            raise _send_error(self.sender_id, "MAIL FROM", code, text)

    def _reset(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.rset()


def _send_error(sender_id: str, stage: str, code: int, text: bytes | str) -> MailboxSendError:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    permanent = 500 <= code < 600
    advice = (
        "the server will not take it; fix the message or recipient, then set the email back to "
        "Pending Send"
        if permanent
        else "temporary; it is retried later"
    )
    return MailboxSendError(
        f"{stage} refused: {code} {text.strip()} ({advice})",
        mailbox=sender_id,
        permanent=permanent,
        code=code,
    )


def _reply(exc: BaseException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip() if code else str(exc)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: str, name: str, fail: Callable[[str], Exception]) -> bool:
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise fail(f"{name}= must be 1 or 0, not {value!r}")


__all__ = ["SendMode", "SmtpSender", "SmtpSettings", "parse_send_mode"]
