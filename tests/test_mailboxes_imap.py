"""The IMAP source against a real Dovecot (plaintext; TLS is in test_mailboxes_tls.py)."""

from __future__ import annotations

import email
import re
import socket
import time

import pytest
from servers import Dovecot, DroppingProxy, sample_message

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    SecretError,
)
from emailrouter_lib.mailboxes import ItemRef, MailboxSource, open_source

pytestmark = pytest.mark.dovecot


@pytest.fixture
def inbox(dovecot: Dovecot) -> Dovecot:
    """Dovecot with alice's mailbox emptied."""
    dovecot.reset("alice")
    return dovecot


def subjects(messages) -> list[str]:
    return [email.message_from_bytes(raw)["Subject"] for _, raw in messages]


def flags(server: Dovecot, user: str = "alice", folder: str = "INBOX") -> dict[int, str]:
    conn = server.imap(user)
    try:
        conn.select(folder)
        _, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
        found = {}
        for line in data:
            uid = re.search(rb"UID (\d+)", line or b"")
            flag_list = re.search(rb"FLAGS \(([^)]*)\)", line or b"")
            if uid and flag_list:
                found[int(uid[1])] = flag_list[1].decode()
        return found
    finally:
        conn.logout()


def test_list_fetch_in_arrival_order_with_uidvalidity_keys(inbox: Dovecot):
    for n in range(3):
        inbox.deliver(sample_message(f"message {n}", "x" * (n * 3000)))
    source = open_source(inbox.url("imap", "alice"))
    assert isinstance(source, MailboxSource)
    assert source.mailbox_id == f"imap://alice@127.0.0.1:{inbox.ports['imap']}/INBOX"
    assert source.supports_folders
    with source:
        items = source.list_items()
        assert [type(i) for i in items] == [ItemRef] * 3
        assert all(re.fullmatch(r"\d+:\d+", i.key) for i in items)
        assert len({i.key.split(":")[0] for i in items}) == 1  # one UIDVALIDITY
        assert items[2].size > items[1].size > items[0].size > 0
        got = list(source.fetch([i.key for i in items]))
    assert [k for k, _ in got] == [i.key for i in items]
    assert subjects(got) == ["message 0", "message 1", "message 2"]
    assert [len(raw) for _, raw in got] == [i.size for i in items]


def test_fetch_follows_requested_order_and_skips_vanished_keys(inbox: Dovecot):
    for n in range(3):
        inbox.deliver(sample_message(f"m{n}"))
    with open_source(inbox.url("imap", "alice")) as source:
        keys = [i.key for i in source.list_items()]
        validity = keys[0].split(":")[0]
        wanted = [keys[2], f"{validity}:999999", keys[0], keys[2]]
        got = list(source.fetch(wanted))
        assert [k for k, _ in got] == [keys[2], keys[0]]
        with pytest.raises(MailboxError, match="not an IMAP item key"):
            list(source.fetch(["not-a-key"]))


def test_fetch_in_several_batches(inbox: Dovecot):
    for n in range(7):
        inbox.deliver(sample_message(f"batch {n}"))
    with open_source(inbox.url("imap", "alice")) as source:
        source.batch_messages = 3
        keys = [i.key for i in source.list_items()]
        got = list(source.fetch(keys))
    assert subjects(got) == [f"batch {n}" for n in range(7)]


def test_fetch_does_not_mark_seen(inbox: Dovecot):
    inbox.deliver(sample_message("unread"))
    with open_source(inbox.url("imap", "alice")) as source:
        keys = [i.key for i in source.list_items()]
        assert len(list(source.fetch(keys))) == 1
    assert "\\Seen" not in next(iter(flags(inbox).values()))


def test_keys_are_stable_across_sessions(inbox: Dovecot):
    inbox.deliver(sample_message("first"))
    url = inbox.url("imap", "alice")
    with open_source(url) as source:
        before = source.list_items()
    inbox.deliver(sample_message("second"))
    with open_source(url) as source:
        after = source.list_items()
        assert after[0] == before[0]
        assert subjects(source.fetch([before[0].key])) == ["first"]


def test_key_from_another_uidvalidity_is_gone(inbox: Dovecot):
    inbox.deliver(sample_message("current"))
    with open_source(inbox.url("imap", "alice")) as source:
        key = source.list_items()[0].key
        validity, uid = key.split(":")
        stale = f"{int(validity) - 1}:{uid}"
        assert list(source.fetch([stale])) == []
        source.delete([stale])
        source.move([stale], "Elsewhere")
        assert [i.key for i in source.list_items()] == [key]


def test_delete_removes_only_the_given_items(inbox: Dovecot):
    for n in range(3):
        inbox.deliver(sample_message(f"d{n}"))
    url = inbox.url("imap", "alice")
    with open_source(url) as source:
        keys = [i.key for i in source.list_items()]
        source.delete([keys[1], keys[1]])
        source.delete([keys[1]])  # already gone: fine
        assert [i.key for i in source.list_items()] == [keys[0], keys[2]]
    with open_source(url) as source:
        assert [i.key for i in source.list_items()] == [keys[0], keys[2]]


@pytest.mark.parametrize("use_move_command", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
def test_move_creates_the_folder_and_moves(inbox: Dovecot, use_move_command: bool):
    for n in range(3):
        inbox.deliver(sample_message(f"mv{n}"))
    with open_source(inbox.url("imap", "alice")) as source:
        assert "MOVE" in source._caps  # Dovecot offers MOVE; the fallback is forced below
        if not use_move_command:
            source._caps = source._caps - {"MOVE"}
        keys = [i.key for i in source.list_items()]
        source.move([keys[0], keys[2]], "Processed/2024")
        source.move([keys[1]], "Processed/2024")  # folder exists now
        assert source.list_items() == []
    with open_source(inbox.url("imap", "alice", "Processed/2024")) as moved:
        assert moved.mailbox_id.endswith("/Processed/2024")
        got = list(moved.fetch([i.key for i in moved.list_items()]))
    assert sorted(subjects(got)) == ["mv0", "mv1", "mv2"]
    assert all("\\Seen" not in f for f in flags(inbox, folder="Processed.2024").values())


def test_move_to_a_non_ascii_folder(inbox: Dovecot):
    inbox.deliver(sample_message("umlaut"))
    with open_source(inbox.url("imap", "alice")) as source:
        source.move([source.list_items()[0].key], "Erledigt & Geprüft")
    conn = inbox.imap("alice")
    try:
        _, listing = conn.list()
    finally:
        conn.logout()
    assert any(b"Erledigt &- Gepr&APw-ft" in line for line in listing)


def test_missing_folder_is_a_clear_error(inbox: Dovecot):
    with (
        pytest.raises(MailboxError, match="'NoSuchFolder' cannot be opened"),
        open_source(inbox.url("imap", "alice", "NoSuchFolder")),
    ):
        pass


def test_wrong_password_is_an_auth_error_with_the_server_text(dovecot: Dovecot, monkeypatch):
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    url = dovecot.url("imap", "bob", password="env:WRONG_PW")
    with pytest.raises(MailboxAuthError) as caught, open_source(url):
        pass
    text = str(caught.value)
    assert "[AUTHENTICATIONFAILED] Authentication failed." in text
    assert f"imap://bob@127.0.0.1:{dovecot.ports['imap']}/INBOX" in text
    assert "not-the-password" not in text
    assert caught.value.mailbox.startswith("imap://bob@")


def test_closed_port_is_a_connect_error(free_port: int, monkeypatch):
    monkeypatch.setenv("ANY_PW", "x")
    with (
        pytest.raises(MailboxConnectError, match="refused"),
        open_source(f"imap://alice@127.0.0.1:{free_port}/INBOX?password=env:ANY_PW"),
    ):
        pass


def test_connection_dropped_mid_fetch_is_a_connect_error(inbox: Dovecot):
    inbox.deliver(sample_message("big", "line of text\n" * 40_000))
    with DroppingProxy(inbox.host, inbox.ports["imap"]) as proxy:
        url = inbox.url("imap", "alice").replace(f":{inbox.ports['imap']}", f":{proxy.port}")
        with open_source(url) as source:
            keys = [i.key for i in source.list_items()]
            proxy.cut_after(100_000)
            with pytest.raises(MailboxConnectError, match="dropped the connection"):
                list(source.fetch(keys))
    with open_source(inbox.url("imap", "alice")) as source:  # nothing was lost
        assert [i.key for i in source.list_items()] == keys


def test_use_outside_with_block_says_how(dovecot: Dovecot):
    source = open_source(dovecot.url("imap", "alice"))
    with pytest.raises(MailboxError, match="with-block"):
        source.list_items()


def test_delete_leaves_messages_the_user_flagged_deleted(inbox: Dovecot):
    inbox.deliver(sample_message("ours"))
    inbox.deliver(sample_message("user's, flagged \\Deleted but not expunged"))
    with open_source(inbox.url("imap", "alice")) as source:
        ours, theirs = (i.key for i in source.list_items())
        conn = inbox.imap("alice")
        conn.select("INBOX")
        conn.uid("STORE", theirs.split(":")[1], "+FLAGS", r"(\Deleted)")
        conn.logout()
        source.delete([ours])
        assert [i.key for i in source.list_items()] == [theirs]


def test_password_reference_is_resolved_at_connect_time(dovecot: Dovecot, monkeypatch):
    monkeypatch.delenv("LATE_PW", raising=False)
    source = open_source(dovecot.url("imap", "crm", password="env:LATE_PW"))
    with pytest.raises(SecretError, match="LATE_PW"), source:
        pass
    monkeypatch.setenv("LATE_PW", "crmpw")
    with source:
        source.list_items()
    shown = f"{source!r} {source} {vars(source)!r}"
    assert "crmpw" not in shown and "LATE_PW" not in repr(source)


def test_server_that_never_answers_is_a_connect_error(monkeypatch):
    monkeypatch.setenv("ANY_PW", "x")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets
        port = silent.getsockname()[1]
        started = time.monotonic()
        with (
            pytest.raises(MailboxConnectError, match=r"no answer .* within 0\.5 s"),
            open_source(f"imap://a@127.0.0.1:{port}?password=env:ANY_PW&timeout=0.5"),
        ):
            pass
    assert time.monotonic() - started < 5


def test_without_dovecot_the_fixture_says_how_to_install_it(monkeypatch):
    import servers

    monkeypatch.setattr(servers, "dovecot_binary", lambda: None)
    with pytest.raises(servers.ServerUnavailable, match="run `make test`"):
        servers.start_dovecot()
