"""Fixtures for tests over EWS: a fresh protocol-level fake Exchange per test (tests/ews_server).

The organisation: ``CONTOSO\\svc`` (svc@contoso.example) holds ApplicationImpersonation and
FullAccess on the support queue; mailboxes for the demo CRM's support queue, a forward mailbox and
two users. The service account's password is in ``$EWS_PASSWORD`` for URLs to refer to.

``ews`` speaks plain HTTP; ``ews_tls`` is the same organisation over HTTPS with a certificate (for
127.0.0.1 and localhost) signed by a throw-away test CA, ``ews_ca`` (made once per session with the
openssl CLI, like the Dovecot fixtures' CA).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ews_server import FakeEws
from servers import ServerUnavailable, _make_certificates

from emailrouter_lib.mailboxes.ews_autodiscover import clear_autodiscover_cache
from emailrouter_lib.mailboxes.ews_http import close_ews_connections

SERVICE = "svc@contoso.example"
SERVICE_LOGON = "CONTOSO\\svc"
PASSWORD = "Ews-Secret-1"
SUPPORT_BOX = "support@contoso.example"
FORWARD_BOX = "crm-forward@contoso.example"
USERS = ("alice@contoso.example", "frank@contoso.example", "bob@contoso.example")


def _organise(server: FakeEws) -> FakeEws:
    server.add_user(
        SERVICE,
        PASSWORD,
        logons=(SERVICE_LOGON,),
        impersonation=True,
        full_access=(SUPPORT_BOX,),
    )
    for address in (SUPPORT_BOX, FORWARD_BOX, *USERS):
        server.add_user(address)
    return server


@pytest.fixture(name="ews")
def ews_fixture(monkeypatch) -> Iterator[FakeEws]:
    """A started fake EWS server with the organisation above."""
    monkeypatch.setenv("EWS_PASSWORD", PASSWORD)
    with FakeEws() as server:
        yield _organise(server)
    close_ews_connections()
    clear_autodiscover_cache()


@dataclass(frozen=True)
class TestCA:
    """A CA's certificate (what ``cafile=`` names) and a server certificate + key it signed."""

    __test__ = False  # not a pytest test class

    ca_file: str
    cert_file: str
    key_file: str


def make_test_ca(root: Path) -> TestCA:
    """A fresh CA and server certificate under *root*; skips when the openssl CLI is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is missing (apt-get install openssl)")
    root.mkdir(parents=True, exist_ok=True)
    try:
        ca_file = _make_certificates(root)
    except ServerUnavailable as exc:
        pytest.skip(f"cannot make a test CA: {exc}")
    return TestCA(ca_file, str(root / "cert.pem"), str(root / "key.pem"))


@pytest.fixture(name="ews_ca", scope="session")
def ews_ca_fixture(tmp_path_factory) -> TestCA:
    """The test CA that signs ``ews_tls``'s certificate (once per session: openssl is slow)."""
    return make_test_ca(tmp_path_factory.mktemp("ews-ca"))


@pytest.fixture(name="ews_tls")
def ews_tls_fixture(monkeypatch, ews_ca: TestCA) -> Iterator[FakeEws]:
    """The organisation above on a fake EWS server that speaks HTTPS only."""
    monkeypatch.setenv("EWS_PASSWORD", PASSWORD)
    with FakeEws(certificate=(ews_ca.cert_file, ews_ca.key_file)) as server:
        yield _organise(server)
    close_ews_connections()
    clear_autodiscover_cache()


def ews_url(server: FakeEws, mailbox: str = SUPPORT_BOX, **params: str) -> str:
    """An ``ews://`` URL for *mailbox* on *server*, logging on as the service account."""
    query = {"mailbox": mailbox, "password": "env:EWS_PASSWORD", **params}
    text = "&".join(f"{k}={v}" for k, v in query.items())
    scheme = "ewss" if server.scheme == "https" else "ews"
    return f"{scheme}://CONTOSO%5Csvc@{server.host}:{server.port}/EWS/Exchange.asmx?{text}"


def autodiscover_url(server: FakeEws, mailbox: str = SUPPORT_BOX, **params: str) -> str:
    """A URL with the host ``autodiscover`` that asks *server*'s Autodiscover for the endpoint."""
    query = {
        "mailbox": mailbox,
        "password": "env:EWS_PASSWORD",
        "autodiscover": f"{server.host}:{server.port}",
        **params,
    }
    text = "&".join(f"{k}={v}" for k, v in query.items())
    scheme = "ewss" if server.scheme == "https" else "ews"
    return f"{scheme}://CONTOSO%5Csvc@autodiscover?{text}"


__all__ = [
    "FORWARD_BOX",
    "PASSWORD",
    "SERVICE",
    "SUPPORT_BOX",
    "USERS",
    "TestCA",
    "autodiscover_url",
    "ews_ca_fixture",
    "ews_fixture",
    "ews_tls_fixture",
    "ews_url",
    "make_test_ca",
]
