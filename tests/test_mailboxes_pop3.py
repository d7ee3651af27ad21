"""The POP3 source against a real Dovecot (plaintext; TLS is in test_mailboxes_tls.py)."""

from __future__ import annotations

import email

import pytest
from servers import Dovecot, DroppingProxy, sample_message

from emailrouter_lib.errors import MailboxAuthError, MailboxConnectError, MailboxError
from emailrouter_lib.mailboxes import open_source

pytestmark = pytest.mark.dovecot


@pytest.fixture
def maildrop(dovecot: Dovecot) -> Dovecot:
    """Dovecot with bob's mailbox emptied."""
    dovecot.reset("bob")
    return dovecot


def subjects(messages) -> list[str]:
    return [email.message_from_bytes(raw)["Subject"] for _, raw in messages]


def keys_now(server: Dovecot) -> list[str]:
    with open_source(server.url("pop3", "bob")) as source:
        return [i.key for i in source.list_items()]


def test_list_and_fetch_by_uidl(maildrop: Dovecot):
    for n in range(3):
        maildrop.deliver(sample_message(f"pop {n}"), to="bob")
    source = open_source(maildrop.url("pop3", "bob"))
    assert source.mailbox_id == f"pop3://bob@127.0.0.1:{maildrop.ports['pop3']}"
    assert not source.supports_folders
    with source:
        items = source.list_items()
        got = list(source.fetch([items[2].key, "no-such-uidl", items[0].key]))
    assert len({i.key for i in items}) == 3
    assert all(i.size and i.size > 100 for i in items)
    assert [k for k, _ in got] == [items[2].key, items[0].key]
    assert subjects(got) == ["pop 2", "pop 0"]
    assert got[0][1].endswith(b"\r\n") and b"\r\n\r\n" in got[0][1]


def test_keys_are_stable_across_sessions(maildrop: Dovecot):
    maildrop.deliver(sample_message("one"), to="bob")
    maildrop.deliver(sample_message("two"), to="bob")
    first = keys_now(maildrop)
    with open_source(maildrop.url("pop3", "bob")) as source:
        source.delete([first[0]])
    assert keys_now(maildrop) == [first[1]]  # message numbers shifted, the key did not
    with open_source(maildrop.url("pop3", "bob")) as source:
        assert subjects(source.fetch([first[1]])) == ["two"]


def test_delete_is_committed_only_when_the_session_ends(maildrop: Dovecot):
    maildrop.deliver(sample_message("to delete"), to="bob")
    maildrop.deliver(sample_message("to keep"), to="bob")
    gone, kept = keys_now(maildrop)
    with open_source(maildrop.url("pop3", "bob")) as source:
        source.delete([gone, gone, "no-such-uidl"])
        assert [i.key for i in source.list_items()] == [kept]
        assert list(source.fetch([gone])) == []
        assert keys_now(maildrop) == [gone, kept]  # another session still sees it
    assert keys_now(maildrop) == [kept]


def test_deletions_of_a_dropped_session_are_not_committed(maildrop: Dovecot):
    maildrop.deliver(sample_message("survives"), to="bob")
    (key,) = keys_now(maildrop)
    with DroppingProxy(maildrop.host, maildrop.ports["pop3"]) as proxy:
        url = maildrop.url("pop3", "bob").replace(f":{maildrop.ports['pop3']}", f":{proxy.port}")
        with (
            pytest.raises(MailboxConnectError, match="dropped the connection"),
            open_source(url) as source,
        ):
            source.delete([key])
            proxy.cut_now()
    assert keys_now(maildrop) == [key]


def test_connection_dropped_mid_fetch_is_a_connect_error(maildrop: Dovecot):
    maildrop.deliver(sample_message("big", "line of text\n" * 40_000), to="bob")
    with DroppingProxy(maildrop.host, maildrop.ports["pop3"]) as proxy:
        url = maildrop.url("pop3", "bob").replace(f":{maildrop.ports['pop3']}", f":{proxy.port}")
        with (
            pytest.raises(MailboxConnectError, match="dropped the connection while fetching"),
            open_source(url) as source,
        ):
            keys = [i.key for i in source.list_items()]
            proxy.cut_after(100_000)
            list(source.fetch(keys))
    assert keys_now(maildrop) == keys


def test_long_lines_are_fetched_whole(maildrop: Dovecot):
    long_line = "A" * 20_000  # poplib alone stops at 2048 bytes a line
    msg = sample_message("long line")
    msg.set_content(long_line, cte="8bit")
    maildrop.deliver(msg, to="bob")
    with open_source(maildrop.url("pop3", "bob")) as source:
        ((_, raw),) = source.fetch([i.key for i in source.list_items()])
    assert long_line.encode() in raw


def test_dot_stuffed_lines_come_back_unchanged(maildrop: Dovecot):
    maildrop.deliver(sample_message("dots", "first\n.\n..two dots\n.end\n"), to="bob")
    with open_source(maildrop.url("pop3", "bob")) as source:
        ((_, raw),) = source.fetch([i.key for i in source.list_items()])
    assert raw.endswith(b"first\r\n.\r\n..two dots\r\n.end\r\n")


def test_move_is_refused(maildrop: Dovecot):
    with (
        open_source(maildrop.url("pop3", "bob")) as source,
        pytest.raises(MailboxError, match="no folders"),
    ):
        source.move(["x"], "Processed")


def test_wrong_password_is_an_auth_error_with_the_server_text(dovecot: Dovecot, monkeypatch):
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    with (
        pytest.raises(MailboxAuthError) as caught,
        open_source(dovecot.url("pop3", "bob", password="env:WRONG_PW")),
    ):
        pass
    text = str(caught.value)
    assert "-ERR [AUTH] Authentication failed." in text
    assert f"pop3://bob@127.0.0.1:{dovecot.ports['pop3']}" in text
    assert "not-the-password" not in text


def test_closed_port_is_a_connect_error(free_port: int, monkeypatch):
    monkeypatch.setenv("ANY_PW", "x")
    with (
        pytest.raises(MailboxConnectError, match=f"127.0.0.1:{free_port} refused"),
        open_source(f"pop3://bob@127.0.0.1:{free_port}?password=env:ANY_PW"),
    ):
        pass
