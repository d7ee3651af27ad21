"""An aiosmtpd sink with AUTH, for Test Access: plain (AUTH without TLS) and STARTTLS.

``login_sink`` offers AUTH LOGIN/PLAIN on a plain connection (loopback only); ``login_sink_tls``
offers STARTTLS with a throw-away self-signed certificate (untrusted unless ``ca_file`` is given)
and AUTH only after it. Users: ``crm`` / ``crmpw``. Messages are kept in ``messages``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import HOST, free_ports

USERS = {"crm": "crmpw"}


@dataclass
class SmtpSink:
    host: str
    port: int
    ca_file: str | None = None
    messages: list[dict] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


def _handler(sink: SmtpSink):
    class Store:
        async def handle_DATA(self, server, session, envelope):
            sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos)})
            return "250 OK"

    return Store()


def _authenticator(sink: SmtpSink):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = USERS.get(login) == auth_data.password.decode()
        if ok:
            sink.logins.append(login)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    return check


def _self_signed(folder: Path) -> tuple[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        pytest.skip(f"openssl could not make a certificate: {done.stderr.strip()}")
    return str(cert), str(key)


def _start(tls_folder: Path | None) -> Iterator[SmtpSink]:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        pytest.skip("aiosmtpd is not installed (pip install -e .[dev])")
    sink = SmtpSink(HOST, free_ports(1)[0])
    options: dict = {"auth_require_tls": False}
    if tls_folder is not None:
        cert, key = _self_signed(tls_folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options = {"tls_context": context, "auth_require_tls": True}
        sink.ca_file = cert
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        controller = Controller(
            _handler(sink),
            hostname=HOST,
            port=sink.port,
            authenticator=_authenticator(sink),
            auth_required=True,
            **options,
        )
        controller.start()
    try:
        yield sink
    finally:
        stopper = threading.Thread(target=controller.stop, daemon=True)
        stopper.start()
        stopper.join(10)


@pytest.fixture
def login_sink() -> Iterator[SmtpSink]:
    """SMTP with AUTH on a plain loopback connection."""
    yield from _start(None)


@pytest.fixture
def login_sink_tls(tmp_path) -> Iterator[SmtpSink]:
    """SMTP with STARTTLS (self-signed certificate) and AUTH after it."""
    yield from _start(tmp_path)
