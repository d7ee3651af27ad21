"""SMTP servers for the outgoing tests: an aiosmtpd sink and a real Postfix in front of Dovecot.

``smtp_sink`` (no TLS, AUTH PLAIN/LOGIN offered, not required), ``smtp_sink_auth`` (AUTH
required), ``smtp_sink_starttls`` (STARTTLS required before AUTH) and ``smtp_sink_tls`` (implicit
TLS) keep every message they accept with its envelope and the AUTH mechanism used, and can refuse
the next messages with a given reply (``sink.refuse("451 4.3.0 busy")``) or refuse a recipient
(``sink.reject_rcpt[address] = "550 5.1.1 no such user"``). The TLS variants use a throw-away CA
(``sink.ca_file``). Users: ``crm`` / ``crmpw`` (the password in ``$EMAILROUTER_TEST_SMTP_PW``).

``postfix`` (root only, else skipped) is a self-contained Postfix (own config, spool and log under
/tmp) on a free loopback port that requires SMTP AUTH, checked by the session's Dovecot over its
auth listener, and hands mail for example.test to Dovecot over LMTP. The demo CRM's addresses are
aliased onto Dovecot users: carol@fabrikam.example -> alice, alice@contoso.example -> crm; any
other address lands in outbox. Recipe: ../shared/reference/test-servers.md §3.1, pitfalls §8.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import HOST, Dovecot, ServerUnavailable, _make_certificates, free_ports

USERS = {"crm": "crmpw"}
PASSWORD_ENV = "EMAILROUTER_TEST_SMTP_PW"

warnings.filterwarnings("ignore", "Session.login_data is deprecated")
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    mechanism: str | None


@dataclass
class SmtpSink:
    """A running aiosmtpd with what it received; ``url()`` makes a sender URL for it."""

    host: str
    port: int
    scheme: str = "smtp"
    starttls: bool = False
    ca_file: str | None = None
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0  # SMTP connections opened
    refusals: deque[str] = field(default_factory=deque)
    reject_rcpt: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: object | None = None

    def url(self, user: str | None = "crm", *, cafile: bool = True, **params: str) -> str:
        query = dict(params)
        if user:
            query.setdefault("password", f"env:{PASSWORD_ENV}")
        if self.starttls:
            query.setdefault("starttls", "1")
        if cafile and self.ca_file:
            query.setdefault("cafile", self.ca_file)
        who = f"{user}@" if user else ""
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{self.scheme}://{who}{self.host}:{self.port}" + (f"?{tail}" if tail else "")

    def refuse(self, reply: str, times: int = 1) -> None:
        """Answer the next *times* DATA commands with *reply* (e.g. ``451 4.3.0 busy``)."""
        self.refusals.extend([reply] * times)

    # -- aiosmtpd handler hooks ------------------------------------------------------------------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_rcpt:
            return self.reject_rcpt[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refusals:
                return self.refusals.popleft()
            self.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content,
                    session.auth_data if isinstance(session.auth_data, str) else None,
                    getattr(session, "emailrouter_mechanism", None),
                )
            )
        return "250 2.0.0 OK queued"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and USERS.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        if ok:
            session.emailrouter_mechanism = mechanism
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None
        )


class _CountingSMTP:
    """aiosmtpd's SMTP protocol, counting connections on the sink."""

    @staticmethod
    def factory(sink: SmtpSink, **kwargs):
        from aiosmtpd.smtp import SMTP

        class Counting(SMTP):
            def connection_made(self, transport):
                sink.sessions += 1
                super().connection_made(transport)

        return lambda: Counting(sink, **kwargs)


def start_sink(
    *,
    auth_required: bool = False,
    starttls: bool = False,
    implicit_tls: bool = False,
    certs: Path | None = None,
) -> SmtpSink:
    from aiosmtpd.controller import Controller

    os.environ[PASSWORD_ENV] = USERS["crm"]
    (port,) = free_ports(1)
    sink = SmtpSink(HOST, port, scheme="smtps" if implicit_tls else "smtp", starttls=starttls)
    context = None
    if starttls or implicit_tls:
        assert certs is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
        sink.ca_file = str(certs / "ca.pem")
    smtp_options = {
        "authenticator": sink.authenticator,
        "auth_required": auth_required or starttls,
        "auth_require_tls": starttls,
        "hostname": "sink.example.test",
    }
    if starttls:
        smtp_options.update(tls_context=context, require_starttls=True)

    class SinkController(Controller):
        def factory(self):
            return _CountingSMTP.factory(sink, **smtp_options)()

    controller = SinkController(
        sink, hostname=HOST, port=port, ssl_context=context if implicit_tls else None
    )
    controller.start()
    sink.controller = controller
    return sink


@pytest.fixture(scope="session")
def smtp_certs() -> Iterator[Path]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed for the TLS sinks; apt-get install openssl")
    root = Path(tempfile.mkdtemp(prefix="smtpca-", dir="/tmp"))
    try:
        _make_certificates(root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sink(**options) -> Iterator[SmtpSink]:
    sink = start_sink(**options)
    try:
        yield sink
    finally:
        sink.controller.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    yield from _sink()


@pytest.fixture
def smtp_sink_auth() -> Iterator[SmtpSink]:
    yield from _sink(auth_required=True)


@pytest.fixture
def smtp_sink_starttls(smtp_certs: Path) -> Iterator[SmtpSink]:
    yield from _sink(starttls=True, certs=smtp_certs)


@pytest.fixture
def smtp_sink_tls(smtp_certs: Path) -> Iterator[SmtpSink]:
    yield from _sink(implicit_tls=True, certs=smtp_certs)


# -- Postfix → Dovecot LMTP --------------------------------------------------------------------

ALIASES = {
    "carol@fabrikam.example": "alice@example.test",
    "alice@contoso.example": "crm@example.test",
}


@dataclass
class Postfix:
    root: Path
    port: int
    process: subprocess.Popen
    host: str = HOST

    def url(self, user: str = "crm") -> str:
        return (
            f"smtp://{user}@{self.host}:{self.port}?password=env:EMAILROUTER_TEST_PW_{user.upper()}"
        )

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "log" / "postfix.log").read_text(errors="replace")
        return ""

    def stop(self) -> None:
        subprocess.run(
            ["postfix", "-c", str(self.root / "etc"), "stop"], capture_output=True, check=False
        )
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_postfix(dovecot: Dovecot) -> Postfix:
    binary = shutil.which("postfix") or "/usr/sbin/postfix"
    if not os.access(binary, os.X_OK):
        raise ServerUnavailable(
            "postfix is not installed; run `make test` (.ci/system-packages.sh)"
        )
    if os.geteuid() != 0:
        raise ServerUnavailable("a private Postfix instance needs root (it drops to 'postfix')")
    root = Path(tempfile.mkdtemp(prefix="pf-", dir="/tmp"))
    os.chmod(root, 0o755)
    for sub in ("etc", "spool", "data", "log"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix", "postfix")
    (port,) = free_ports(1)
    master = [
        f"{HOST}:{port} inet n - n - - smtpd",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    (root / "etc" / "master.cf").write_text("\n".join(master) + "\n")
    aliases = ", ".join(f"{k}={v}" for k, v in ALIASES.items())
    users = ", ".join(f"{u}@example.test=ok" for u in dovecot.users)
    (root / "etc" / "catchall.regexp").write_text(
        "if !/@example\\.test$/\n/.*/ outbox@example.test\nendif\n"
    )
    main = f"""compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = {root}/log, /dev/stdout
myhostname = mail.example.test
mydomain = example.test
myorigin = $mydomain
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost =
virtual_mailbox_domains = example.test
virtual_mailbox_maps = inline:{{ {users} }}
virtual_transport = lmtp:inet:{HOST}:{dovecot.ports["lmtp"]}
virtual_alias_maps = inline:{{ {aliases} }}, regexp:{root}/etc/catchall.regexp
virtual_alias_domains =
smtpd_banner = $myhostname ESMTP test
biff = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_host_lookup = native
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
bounce_queue_lifetime = 0
maximal_queue_lifetime = 1m
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:{HOST}:{dovecot.ports["auth"]}
smtpd_tls_security_level = none
"""
    (root / "etc" / "main.cf").write_text(main)
    out = open(root / "log" / "stdout", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [binary, "-c", str(root / "etc"), "start-fg"],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    server = Postfix(root, port, process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            text = (root / "log" / "stdout").read_text(errors="replace") + server.log()
            shutil.rmtree(root, ignore_errors=True)
            raise ServerUnavailable(f"postfix exited at start:\n{text[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2) as s:
            s.settimeout(3)
            if s.recv(64).startswith(b"220"):
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise ServerUnavailable(f"postfix not ready after 30 s:\n{server.log()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """Postfix on loopback, SMTP AUTH via Dovecot, delivering to Dovecot over LMTP."""
    try:
        server = start_postfix(dovecot)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


# -- running the outgoing batch --------------------------------------------------------------------


def send_pending(crm_url: str, *transports: str, **params):
    """One outgoing-only routing run (no mailbox) through *transports* (``[ADDRESS=]URL``)."""
    from emailrouter_lib import routing

    return routing.run(
        {
            "crm": crm_url,
            "directions": ["outgoing"],
            "transports": list(transports),
            "progress": False,
            **params,
        }
    )


def parse(received: Received):
    """The received bytes as an ``email.message.EmailMessage``."""
    from email import message_from_bytes, policy

    return message_from_bytes(received.data, policy=policy.default)
