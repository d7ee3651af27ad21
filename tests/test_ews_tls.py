"""``ewss://`` against the fake Exchange over HTTPS: ``cafile=`` trusts a private CA, verification
is on without it, and a refused certificate is a MailboxTLSError that names the server and says to
pass ``cafile=``. The certificate is signed by a throw-away CA made with the openssl CLI."""

from __future__ import annotations

import time

import pytest
from ews_server import FakeEws
from fixtures_ews import (
    PASSWORD,
    SERVICE,
    SUPPORT_BOX,
    TestCA,
    ews_url,
    make_test_ca,
)
from routing_helpers import crm_store, demo_crm, message, route

from emailrouter_lib.errors import MailboxError, MailboxTLSError
from emailrouter_lib.mailboxes import open_source
from emailrouter_lib.mailboxes.ews_sender import EwsSender

SUPPORT = "queue:support@contoso.example"


@pytest.fixture(name="other_ca", scope="module")
def other_ca_fixture(tmp_path_factory) -> TestCA:
    """A second CA that did not sign the server's certificate."""
    return make_test_ca(tmp_path_factory.mktemp("ews-other-ca"))


def test_the_fake_speaks_https_only(ews_tls):
    assert ews_tls.url.startswith("https://127.0.0.1:")
    assert ews_url(ews_tls).startswith("ewss://")


def test_ewss_with_cafile_routes(ews_tls, ews_ca, tmp_path):
    crm_url = demo_crm(tmp_path)
    for n in range(3):
        ews_tls.deliver(SUPPORT_BOX, message(f"Over TLS {n}"))
    url = ews_url(ews_tls, owner=SUPPORT, after="delete", cafile=ews_ca.ca_file)
    result = route(crm_url, url)
    assert result.ok and result.counts == {"created": 3}, result.rows
    subjects = sorted(e["subject"] for e in crm_store(crm_url).emails(directioncode=0))
    assert [s for s in subjects if s.startswith("Over TLS")] == [f"Over TLS {n}" for n in range(3)]
    assert ews_tls.items(SUPPORT_BOX) == []
    assert ews_tls.tls_failures == []


def test_sending_over_ewss_with_cafile(ews_tls, ews_ca):
    url = ews_url(ews_tls, cafile=ews_ca.ca_file)
    msg = message("Reply over TLS")
    with EwsSender.from_url(url) as sender:
        sender.send(msg.as_bytes(), envelope_from=SUPPORT_BOX, recipients=["alice@contoso.example"])
    [sent] = ews_tls.sent
    assert sent["message_id"] == msg["Message-ID"] and "alice@contoso.example" in sent["recipients"]
    assert len(ews_tls.items("alice@contoso.example")) == 1


def _refused(url: str) -> MailboxTLSError:
    started = time.monotonic()
    with pytest.raises(MailboxTLSError) as caught, open_source(url) as source:
        source.list_items()
    assert time.monotonic() - started < 5, "a refused certificate must fail at once, not retry"
    return caught.value


def test_without_cafile_the_certificate_is_refused_by_default(ews_tls):
    error = _refused(ews_url(ews_tls))
    text = str(error)
    assert f"https://127.0.0.1:{ews_tls.port}/EWS/Exchange.asmx" in text
    assert "cafile=" in text
    assert error.mailbox == "ews://support@contoso.example/Inbox"
    assert ews_tls.requests() == []  # nothing was answered: the client hung up in the handshake
    _wait_for(lambda: ews_tls.tls_failures)
    assert "unknown ca" in ews_tls.tls_failures[0].lower()


def _wait_for(condition, seconds: float = 3.0) -> None:
    """The server records a failed handshake in its handler thread, just after the client left."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_cafile_of_another_ca_is_refused_too(ews_tls, other_ca):
    error = _refused(ews_url(ews_tls, cafile=other_ca.ca_file))
    assert "cafile=" in str(error) and str(ews_tls.port) in str(error)


def test_the_certificate_must_name_the_host(ews_ca, monkeypatch):
    # Signed by the trusted CA, but for localhost and 127.0.0.1: a server at 127.0.0.2 presenting
    # it must not pass, cafile= or not.
    monkeypatch.setenv("EWS_PASSWORD", PASSWORD)
    try:
        server = FakeEws(host="127.0.0.2", certificate=(ews_ca.cert_file, ews_ca.key_file))
    except OSError as exc:
        pytest.skip(f"cannot listen on 127.0.0.2 here: {exc}")
    with server:
        server.add_user(SERVICE, PASSWORD, logons=("CONTOSO\\svc",), impersonation=True)
        server.add_user(SUPPORT_BOX)
        error = _refused(ews_url(server, cafile=ews_ca.ca_file))
    assert "127.0.0.2" in str(error) and "cafile=" in str(error)


def test_a_cafile_that_is_not_a_pem_file_is_an_error(ews_tls, tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(MailboxError) as caught, open_source(ews_url(ews_tls, cafile=str(bogus))):
        pass
    assert isinstance(caught.value, MailboxTLSError)
    assert f"cannot load the CA file {bogus}" in str(caught.value)
    assert "point cafile= at a PEM file" in str(caught.value)
    assert ews_tls.requests() == []  # refused before anything was sent


def test_cafile_wins_over_a_ca_bundle_from_the_environment(ews_tls, ews_ca, other_ca, monkeypatch):
    # requests replaces verify=True by $REQUESTS_CA_BUNDLE (conda and corporate images set it);
    # the CA the mailbox URL names must still be the one that decides.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other_ca.ca_file)
    monkeypatch.setenv("CURL_CA_BUNDLE", other_ca.ca_file)
    ews_tls.deliver(SUPPORT_BOX, message("Bundle"))
    with open_source(ews_url(ews_tls, cafile=ews_ca.ca_file)) as source:
        assert len(source.list_items()) == 1
    _refused(ews_url(ews_tls))  # and without cafile= the environment's bundle is used, and fails
