"""POP3 and IMAP over TLS against a real Dovecot whose certificate a generated test CA signed."""

from __future__ import annotations

import email

import pytest
from servers import Dovecot, sample_message

from emailrouter_lib.errors import MailboxTLSError
from emailrouter_lib.mailboxes import open_source

pytestmark = pytest.mark.dovecot

VARIANTS = [
    ("imaps", False),  # implicit TLS
    ("imap", True),  # STARTTLS on the plain port
    ("pop3s", False),
    ("pop3", True),
]
IDS = ["imaps", "imap+STARTTLS", "pop3s", "pop3+STLS"]


@pytest.fixture
def carol(dovecot_tls: Dovecot) -> Dovecot:
    dovecot_tls.reset("crm")
    dovecot_tls.deliver(sample_message("over TLS"), to="crm")
    return dovecot_tls


@pytest.mark.parametrize(("protocol", "starttls"), VARIANTS, ids=IDS)
def test_verified_against_the_test_ca(carol: Dovecot, protocol: str, starttls: bool):
    source = open_source(carol.url(protocol, "crm", starttls=starttls))
    assert "cafile" not in source.mailbox_id and "password" not in source.mailbox_id
    with source:
        items = source.list_items()
        ((_, raw),) = source.fetch([i.key for i in items])
    assert email.message_from_bytes(raw)["Subject"] == "over TLS"


@pytest.mark.parametrize(("protocol", "starttls"), VARIANTS, ids=IDS)
def test_untrusted_certificate_is_a_tls_error(carol: Dovecot, protocol: str, starttls: bool):
    url = carol.url(protocol, "crm", starttls=starttls, cafile=False)
    with pytest.raises(MailboxTLSError) as caught, open_source(url):
        pass
    text = str(caught.value)
    assert "not trusted" in text and "cafile=" in text
    assert f"{protocol}://crm@127.0.0.1:" in text


def test_ca_file_can_come_from_the_caller(carol: Dovecot):
    url = carol.url("imaps", "crm", cafile=False)
    with open_source(url, ca_file=carol.ca_file, timeout=5) as source:
        assert len(source.list_items()) == 1


def test_implicit_tls_on_a_plain_port_is_a_tls_error(carol: Dovecot):
    url = carol.url("imaps", "crm").replace(f":{carol.ports['imaps']}", f":{carol.ports['imap']}")
    with (
        pytest.raises(MailboxTLSError, match=r"TLS with 127\.0\.0\.1"),
        open_source(url, timeout=5),
    ):
        pass


def test_unreadable_ca_file_is_a_tls_error(carol: Dovecot, tmp_path):
    url = carol.url("imaps", "crm", cafile=False) + f"&cafile={tmp_path}/missing.pem"
    with pytest.raises(MailboxTLSError, match="cannot load the CA file"), open_source(url):
        pass
