"""Routing from a real Dovecot over POP3 and IMAP (plain, STARTTLS, implicit TLS), mail delivered
over LMTP; failures that must lose nothing: a wrong password and a connection dropped mid-batch."""

from __future__ import annotations

import pytest
from routing_helpers import crm_store, demo_crm, message, route
from servers import Dovecot, DroppingProxy

pytestmark = pytest.mark.dovecot

SUPPORT = "queue:support@contoso.example"


@pytest.fixture
def crm_url(tmp_path):
    return demo_crm(tmp_path)


def deliver(server: Dovecot, count: int, *, size: int = 200) -> list[str]:
    server.reset("crm")
    ids = []
    for n in range(count):
        msg = message(f"Question {n}", body=f"line {n}\n" * size)
        server.deliver(msg, to="crm@example.test")
        ids.append(msg["Message-ID"])
    return ids


def stored_ids(crm_url: str) -> list[str]:
    """Message-IDs of the emails routing created (the demo seed's own are left out), sorted."""
    emails = crm_store(crm_url).emails(directioncode=0)
    return sorted(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


@pytest.mark.parametrize(
    ("protocol", "starttls"),
    [("pop3", False), ("imap", False)],
)
def test_routes_from_plain_pop3_and_imap(dovecot, crm_url, protocol, starttls):
    ids = deliver(dovecot, 3)
    url = dovecot.url(protocol, "crm", owner=SUPPORT, after="delete")
    result = route(crm_url, url)
    assert result.ok and result.counts == {"created": 3}
    assert all(i in stored_ids(crm_url) for i in ids)
    again = route(crm_url, url)  # deleted on the server: nothing left, nothing twice
    assert again.rows == [] and again.mailboxes[0].seen == 0


@pytest.mark.parametrize(
    ("protocol", "starttls"),
    [("pop3", True), ("imap", True), ("pop3s", False), ("imaps", False)],
)
def test_routes_over_tls_verified_against_the_test_ca(dovecot_tls, crm_url, protocol, starttls):
    deliver(dovecot_tls, 2)
    url = dovecot_tls.url(protocol, "crm", starttls=starttls, owner=SUPPORT)
    result = route(crm_url, url)
    assert result.ok and result.counts == {"created": 2}


def test_untrusted_certificate_fails_the_mailbox_and_routes_nothing(dovecot_tls, crm_url):
    deliver(dovecot_tls, 1)
    url = dovecot_tls.url("imaps", "crm", cafile=False, owner=SUPPORT)
    result = route(crm_url, url)
    assert result.mailboxes[0].status == "error"
    assert "certificate" in result.mailboxes[0].error and result.rows == []


def test_wrong_password_is_reported_with_the_server_text(dovecot, crm_url, monkeypatch):
    deliver(dovecot, 1)
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    url = f"imap://crm@{dovecot.host}:{dovecot.ports['imap']}/INBOX?password=env:WRONG_PW&owner={SUPPORT}"
    result = route(crm_url, url)
    error = result.mailboxes[0].error
    assert "AUTHENTICATIONFAILED" in error or "Authentication failed" in error
    assert "not-the-password" not in error and result.rows == []


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_connection_dropped_mid_batch_leaves_the_batch_resumable(dovecot, crm_url, protocol):
    ids = deliver(dovecot, 6, size=2000)  # ~14 kB each
    with DroppingProxy(dovecot.host, dovecot.ports[protocol]) as proxy:
        url = dovecot.url(protocol, "crm", owner=SUPPORT, after="delete").replace(
            f":{dovecot.ports[protocol]}", f":{proxy.port}"
        )
        proxy.cut_after(40_000)  # the first batch of two arrives, the second is cut off
        first = route(crm_url, url, batch_size=2)
        assert first.mailboxes[0].status == "interrupted"
        assert first.mailboxes[0].resumable > 0
        assert 0 < len(stored_ids(crm_url)) < 6
        proxy.cut_after(10**12)
        second = route(crm_url, url, batch_size=2)
        third = route(crm_url, url)
    assert second.ok
    assert third.mailboxes[0].seen == 0  # the deletes the dropped session lost were redone
    assert stored_ids(crm_url) == sorted(ids)  # every message once, none lost
