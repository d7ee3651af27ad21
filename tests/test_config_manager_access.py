"""Test Access against real servers: Dovecot (POP3, IMAP, TLS) and an aiosmtpd sink (SMTP AUTH).

Each failure must come back as a row with the right outcome and a message an admin can act on,
carrying the server's own words where the server said something.
"""

from __future__ import annotations

import socket
import time

import pytest
from fixtures_ews import SERVICE_LOGON, SUPPORT_BOX
from servers import HOST

from emailrouter_lib.config import RouterConfig
from emailrouter_lib.config.edit import ConfigEditor, Deployment, Profile
from emailrouter_lib.errors import SecretError
from emailrouter_lib.mailboxes.access import (
    AccessTarget,
    access_targets,
    ews_available,
    probe,
    test_access,
)

pytestmark = pytest.mark.dovecot
CRM = "https://crm.contoso.test/Contoso"
ALICE_ID = "0a1b2c3d-13d8-e011-9077-00155d012a01"
QUEUE_ID = "5e6f7a8b-19d8-e011-9077-00155d012b01"


# --- POP3 / IMAP against Dovecot ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_good_login(dovecot, protocol):
    outcome, message, seconds = probe(dovecot.url(protocol, "alice"), timeout=5)
    assert outcome == "ok", message
    assert "opened" in message and seconds < 5


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_bad_password_carries_the_servers_words(dovecot, protocol, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_WRONG", "not-the-password")
    url = dovecot.url(protocol, "alice", password="env:EMAILROUTER_TEST_WRONG")
    outcome, message, _ = probe(url, timeout=5)
    assert outcome == "auth-failed"
    assert "refused the login of 'alice'" in message
    assert "Authentication failed" in message  # Dovecot's own reply
    assert "not-the-password" not in message


def test_closed_port(free_port, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_PW", "x")
    outcome, message, _ = probe(f"pop3://alice@{HOST}:{free_port}?password=env:EMAILROUTER_TEST_PW")
    assert outcome == "unreachable"
    assert f"connection to {HOST}:{free_port} refused" in message


@pytest.mark.parametrize("protocol", ["pop3s", "imaps"])
def test_untrusted_certificate(dovecot_tls, protocol):
    outcome, message, _ = probe(dovecot_tls.url(protocol, "alice", cafile=False), timeout=5)
    assert outcome == "tls-failed"
    assert "not trusted" in message and "cafile=" in message
    trusted = probe(dovecot_tls.url(protocol, "alice"), timeout=5)
    assert trusted[0] == "ok", trusted[1]


def test_a_silent_server_times_out_within_the_bound(monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_PW", "x")
    with socket.socket() as listener:  # accepts connections (backlog) and never says a word
        listener.bind((HOST, 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        report = test_access(
            [
                AccessTarget(f"box{i}", "queue", "incoming", url=_pop3(port, f"u{i}"))
                for i in range(3)
            ],
            workers=3,
            timeout=1,
        )
        elapsed = time.monotonic() - started
    assert [r.outcome for r in report.results] == ["unreachable"] * 3
    assert "no answer" in report.results[0].message
    assert elapsed < 3.5, f"three 1 s timeouts in parallel took {elapsed:.1f} s"


# --- SMTP against aiosmtpd --------------------------------------------------------------------


def test_smtp_good_and_bad_login(login_sink, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_SMTP_PW", "crmpw")
    monkeypatch.setenv("EMAILROUTER_TEST_WRONG", "nope")
    base = f"smtp://crm@{login_sink.host}:{login_sink.port}?password="
    outcome, message, _ = probe(base + "env:EMAILROUTER_TEST_SMTP_PW")
    assert outcome == "ok" and "login of 'crm' accepted" in message
    assert login_sink.logins == ["crm"] and login_sink.messages == []  # a probe sends nothing
    outcome, message, _ = probe(base + "env:EMAILROUTER_TEST_WRONG")
    assert outcome == "auth-failed"
    assert "535" in message and "Authentication credentials invalid" in message


def test_smtp_closed_port(free_port):
    outcome, message, _ = probe(f"smtp://{HOST}:{free_port}")
    assert outcome == "unreachable" and "refused" in message


def test_smtp_starttls_with_an_untrusted_certificate(login_sink_tls, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_SMTP_PW", "crmpw")
    url = (
        f"smtp://crm@{HOST}:{login_sink_tls.port}?starttls=1&password=env:EMAILROUTER_TEST_SMTP_PW"
    )
    outcome, message, _ = probe(url)
    assert outcome == "tls-failed"
    assert "not trusted" in message and "self-signed" in message
    outcome, message, _ = probe(url, ca_file=login_sink_tls.ca_file)
    assert outcome == "ok", message


def test_smtp_auth_offered_only_after_tls(login_sink_tls, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_SMTP_PW", "crmpw")
    url = f"smtp://crm@{HOST}:{login_sink_tls.port}?password=env:EMAILROUTER_TEST_SMTP_PW"
    outcome, message, _ = probe(url)
    assert outcome == "error" and "offers no AUTH without TLS" in message


# --- from a configuration ---------------------------------------------------------------------


def _pop3(port: int, user: str) -> str:
    return f"pop3://{user}@{HOST}:{port}?password=env:EMAILROUTER_TEST_PW&timeout=1"


def _editor(pop3_port: int, smtp_port: int) -> ConfigEditor:
    editor = ConfigEditor(RouterConfig())
    editor.set_profile(
        Profile(
            "Dovecot POP3",
            "incoming",
            "pop3",
            email_server_type="POP3",
            email_server_url=f"{HOST}:{pop3_port}",
            email_auth_mode="ClearText",
            email_access_credentials="UserSpecified",
            use_ssl=False,
        )
    )
    editor.set_profile(
        Profile(
            "Sink SMTP",
            "outgoing",
            "smtp",
            email_server_type="SMTP",
            email_server_url=f"{HOST}:{smtp_port}",
            email_auth_mode="ClearText",
            email_access_credentials="OtherSpecified",
            email_user="crm",
            use_ssl=False,
        )
    )
    editor.set_profile(
        Profile("Exchange", "incoming", "exchange", email_server_url="https://ex.invalid/EWS")
    )
    editor.set_deployment(Deployment(CRM, default_incoming="Dovecot POP3"))
    return editor


def test_access_table_for_a_configuration(dovecot, login_sink, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_CFG_PW_alice", dovecot.users["alice"])
    monkeypatch.setenv("EMAILROUTER_TEST_CFG_PW_crm", "crmpw")
    monkeypatch.setenv("EMAILROUTER_TEST_CFG_PW_bob", "wrong")
    monkeypatch.setenv("EMAILROUTER_TEST_CFG_PW_support", "x")
    editor = _editor(dovecot.ports["pop3"], login_sink.port)
    bob_id = "0a1b2c3d-13d8-e011-9077-00155d012a02"
    editor.addresses.update({ALICE_ID: "alice", bob_id: "bob", QUEUE_ID: "support@contoso.test"})
    editor.set_entry("user", ALICE_ID, outgoing="Sink SMTP")
    editor.set_entry("user", bob_id)
    editor.set_entry("queue", QUEUE_ID, incoming="Exchange")
    editor.set_entry("user", "0a1b2c3d-13d8-e011-9077-00155d012a09", enabled=False)
    targets = access_targets(editor, password="env:EMAILROUTER_TEST_CFG_PW_{local}")
    report = test_access(targets, workers=2, timeout=5)
    rows = {(r.entry, r.direction): r for r in report.results}
    assert rows[("alice", "incoming")].outcome == "ok"
    assert rows[("alice", "outgoing")].outcome == "ok"  # Other specified: logs in as crm
    assert rows[("bob", "incoming")].outcome == "auth-failed"
    support = rows[("support@contoso.test", "incoming")]
    if ews_available():  # ex.invalid does not resolve
        assert (support.outcome, support.protocol) == ("unreachable", "ewss"), support.message
    else:
        assert support.outcome == "skipped" and "EWS" in support.message
    assert not report.ok and "login-refused" in [f.code for f in report.findings()]
    html = report._repr_html_()
    assert "auth-failed" in html and "wrong" not in str(report) + html
    assert "password=env:EMAILROUTER_TEST_CFG_PW_alice" in rows[("alice", "incoming")].target


def test_overrides_and_only(tmp_path):
    editor = _editor(1, 2)
    editor.addresses[QUEUE_ID] = "support@contoso.test"
    editor.addresses[ALICE_ID] = "alice@contoso.test"
    editor.set_entry("queue", QUEUE_ID)
    editor.set_entry("user", ALICE_ID)
    (tmp_path / "md" / "cur").mkdir(parents=True)
    for sub in ("new", "tmp"):
        (tmp_path / "md" / sub).mkdir()
    targets = access_targets(
        editor,
        overrides={"support@contoso.test": f"maildir://{tmp_path / 'md'}"},
        only=["support@contoso.test"],
    )
    report = test_access(targets)
    outcome = {r.entry: r.outcome for r in report.results}
    assert outcome == {"support@contoso.test": "ok", "alice@contoso.test": "skipped"}
    assert report.ok


def test_a_literal_password_template_is_refused():
    with pytest.raises(SecretError) as caught:
        access_targets(_editor(1, 2), password="hunter2")
    assert "hunter2" not in str(caught.value)


# --- EWS, against the protocol-level fake Exchange (tests/ews_server) ---------------------------


@pytest.mark.skipif(not ews_available(), reason="this installation has no ews:// mailbox source")
def test_exchange_profiles_over_ews(ews, monkeypatch):
    monkeypatch.setenv("EMAILROUTER_TEST_WRONG", "nope")
    editor = ConfigEditor(RouterConfig())
    exchange = Profile(
        "Exchange",
        "incoming",
        "exchange",
        email_server_type="Exchange2013",
        email_server_url=f"http://{ews.host}:{ews.port}/EWS/Exchange.asmx",
        email_auth_mode="WindowsAuthentication",
        email_access_credentials="OtherSpecified",
        email_user=SERVICE_LOGON,
        use_ssl=False,
    )
    editor.set_profile(exchange)
    editor.set_deployment(Deployment(CRM, default_incoming="Exchange", default_outgoing=None))
    editor.addresses.update({QUEUE_ID: SUPPORT_BOX, ALICE_ID: "alice@contoso.example"})
    editor.set_entry("queue", QUEUE_ID)
    editor.set_entry("user", ALICE_ID)  # the service account has no full access to Alice's box
    report = test_access(access_targets(editor, password="env:EWS_PASSWORD"), timeout=10)
    rows = {r.entry: r for r in report.results}
    assert rows[SUPPORT_BOX].outcome == "ok", rows[SUPPORT_BOX].message
    assert rows[SUPPORT_BOX].protocol == "ews"
    assert rows["alice@contoso.example"].outcome == "auth-failed"
    wrong = test_access(access_targets(editor, password="env:EMAILROUTER_TEST_WRONG"), timeout=10)
    assert {r.outcome for r in wrong.results} == {"auth-failed"}
    assert "nope" not in str(wrong) and "Ews-Secret" not in str(report)
