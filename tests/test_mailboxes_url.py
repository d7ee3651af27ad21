"""Mailbox URLs: parsing, refusing literal passwords, redaction, and late password resolution."""

from __future__ import annotations

import pytest

from emailrouter_lib.errors import MailboxURLError, SecretError
from emailrouter_lib.mailboxes import (
    Owner,
    local_mailbox_url,
    open_source,
    parse_mailbox_url,
    redact_url,
)
from emailrouter_lib.mailboxes.emldir import EmlDirSource
from emailrouter_lib.mailboxes.imap import ImapSource
from emailrouter_lib.mailboxes.maildir import MaildirSource
from emailrouter_lib.mailboxes.pop3 import Pop3Source

PW = "password=env:CRM_PW"


def test_imap_url_with_every_parameter():
    url = (
        "imap://crm%40contoso.com@Mail.Contoso.com:1143/Shared/Support?password=env:CRM_PW"
        "&owner=queue:Support@Contoso.com&forward=1&after=move:Processed/Done"
        "&cafile=/etc/ca.pem&timeout=12.5&starttls=1"
    )
    s = parse_mailbox_url(url)
    assert (s.scheme, s.user, s.host, s.port, s.folder) == (
        "imap",
        "crm@contoso.com",
        "mail.contoso.com",
        1143,
        "Shared/Support",
    )
    assert s.owner == Owner("queue", "support@contoso.com")
    assert s.forward and s.starttls and s.uses_tls and not s.implicit_tls
    assert (s.after, s.password_ref, s.ca_file, s.timeout) == (
        "move:Processed/Done",
        "env:CRM_PW",
        "/etc/ca.pem",
        12.5,
    )
    assert s.mailbox_id == "imap://crm%40contoso.com@mail.contoso.com:1143/Shared/Support"


@pytest.mark.parametrize(
    ("url", "mailbox_id", "kind"),
    [
        (f"imap://crm@127.0.0.1:10143/INBOX?{PW}", "imap://crm@127.0.0.1:10143/INBOX", ImapSource),
        (f"imaps://crm@host?{PW}", "imaps://crm@host:993/INBOX", ImapSource),
        (f"imap://crm@host?{PW}", "imap://crm@host:143/INBOX", ImapSource),
        (f"pop3://crm@host?{PW}", "pop3://crm@host:110", Pop3Source),
        (f"POP3S://crm@HOST/?{PW}", "pop3s://crm@host:995", Pop3Source),
        (f"imap://crm@[::1]:143/INBOX?{PW}", "imap://crm@[::1]:143/INBOX", ImapSource),
        ("maildir:///var/mail/x/../crm", "maildir:///var/mail/crm", MaildirSource),
        ("eml:///srv/drop%20box", "eml:///srv/drop%20box", EmlDirSource),
    ],
)
def test_forms_defaults_and_mailbox_ids(url, mailbox_id, kind):
    source = open_source(url)
    assert isinstance(source, kind)
    assert source.mailbox_id == mailbox_id
    assert source.after == "leave" and source.owner is None and not source.is_forward_mailbox


def test_defaults_and_precedence_of_keywords():
    s = parse_mailbox_url(f"imaps://crm@host?{PW}")
    assert (s.timeout, s.ca_file) == (30.0, None)
    s = parse_mailbox_url(f"imaps://crm@host?{PW}", timeout=5, ca_file="/run.pem")
    assert (s.timeout, s.ca_file) == (5.0, "/run.pem")
    s = parse_mailbox_url(
        f"imaps://crm@host?{PW}&timeout=9&cafile=/box.pem", timeout=5, ca_file="/x"
    )
    assert (s.timeout, s.ca_file) == (9.0, "/box.pem")  # the mailbox's own setting wins


def test_local_mailbox_url_round_trips_odd_paths(tmp_path):
    odd = tmp_path / "a #b?c d"
    url = local_mailbox_url(odd, owner="user:a@b.example")
    s = parse_mailbox_url(url)
    assert s.path == str(odd) and s.owner == Owner("user", "a@b.example")
    assert parse_mailbox_url(local_mailbox_url(odd, "eml")).scheme == "eml"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("exchange://crm@host?password=env:X", "unknown mailbox type exchange://"),
        ("imap://host/INBOX?password=env:X", "no user name"),
        ("imap://crm@/INBOX?password=env:X", "no server host"),
        ("imap://crm@host/INBOX", "no password reference"),
        ("imap://crm@host:99999?password=env:X", "malformed URL or port"),
        ("imap://crm@host?password=env:X&pasword=env:Y", "unknown parameter 'pasword'"),
        ("imap://crm@host?password=env:X&password=env:Y", "given twice"),
        ("imap://crm@host?password=env:X&after=archive", "after= must be leave"),
        ("imap://crm@host?password=env:X&after=move:", "after= must be leave"),
        ("imap://crm@host?password=env:X&forward=maybe", "forward= must be 1 or 0"),
        ("imap://crm@host?password=env:X&timeout=0", "timeout= must be"),
        ("imap://crm@host?password=env:X&owner=bob", "owner 'bob' must be user:ADDRESS"),
        ("imaps://crm@host?password=env:X&starttls=1", "already uses implicit TLS"),
        ("pop3://crm@host/INBOX?password=env:X", "POP3 has no folders"),
        ("pop3://crm@host?password=env:X&after=move:Done", "POP3 has no folders"),
        ("maildir://server/path", "absolute path"),
        ("maildir:///path?password=env:X", "does not apply"),
        ("eml://", "no directory given"),
    ],
)
def test_bad_urls_are_refused_with_a_hint(url, message):
    with pytest.raises(MailboxURLError, match=message) as caught:
        open_source(url)
    assert caught.value.mailbox  # the error names the (redacted) URL


@pytest.mark.parametrize(
    "url",
    [
        "imap://crm:Sup3rSecret@host/INBOX",
        "pop3s://crm:Sup3rSecret@host?owner=user:a@b.example",
        "imap://crm@host/INBOX?password=Sup3rSecret",
        "imap://crm@host/INBOX?passwd=Sup3rSecret&password=env:X",
    ],
)
def test_literal_passwords_are_refused_without_echo(url):
    with pytest.raises(MailboxURLError) as caught:
        open_source(url)
    assert "Sup3rSecret" not in str(caught.value)
    assert "Sup3rSecret" not in repr(caught.value)
    assert "Sup3rSecret" not in redact_url(url)


def test_redact_url_keeps_references_and_the_rest():
    url = "imap://crm:pw@host:143/INBOX?owner=user:a@b.example&password=env:CRM_PW"
    assert (
        redact_url(url)
        == "imap://crm:***@host:143/INBOX?owner=user:a@b.example&password=env:CRM_PW"
    )
    assert redact_url("imap://[broken") == "<unreadable mailbox URL>"


def test_password_reference_is_resolved_only_when_connecting(monkeypatch):
    monkeypatch.delenv("NOT_SET_YET", raising=False)
    source = open_source("imap://crm@127.0.0.1:1/INBOX?password=env:NOT_SET_YET")  # no error yet
    with pytest.raises(SecretError) as caught:
        source.resolve_password()
    assert "NOT_SET_YET" in str(caught.value)
    assert "imap://crm@127.0.0.1:1/INBOX" in str(caught.value)
    monkeypatch.setenv("NOT_SET_YET", "s3cr3t-value")
    assert source.resolve_password() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(source) + str(source) + repr(vars(source))
