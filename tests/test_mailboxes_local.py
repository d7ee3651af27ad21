"""Local sources: a Maildir and a directory of .eml files (real files in a temporary directory)."""

from __future__ import annotations

import email
import mailbox
import os
import time
from pathlib import Path

import pytest
from servers import Dovecot, sample_message

from emailrouter_lib.errors import MailboxConnectError, MailboxError
from emailrouter_lib.mailboxes import local_mailbox_url, open_source


def subjects(messages) -> list[str]:
    return [email.message_from_bytes(raw)["Subject"] for _, raw in messages]


@pytest.fixture
def maildir(tmp_path: Path) -> tuple[Path, mailbox.Maildir]:
    root = tmp_path / "Maildir"
    box = mailbox.Maildir(root, create=True)
    return root, box


def add(box: mailbox.Maildir, subject: str, when: int) -> str:
    """Add a message delivered at *when* (epoch seconds); the name's time orders the items."""
    key = box.add(sample_message(subject))
    old = Path(box._path) / "new" / key
    name = f"{when}.{key.split('.', 1)[1]}"
    old.rename(old.with_name(name))
    return name


# -- Maildir -------------------------------------------------------------------------------


def test_maildir_lists_new_and_cur_oldest_first(maildir):
    root, box = maildir
    names = [add(box, f"md {n}", 1_700_000_000 + n) for n in range(3)]
    (root / "new" / names[0]).rename(root / "cur" / f"{names[0]}:2,S")  # read by a client
    source = open_source(local_mailbox_url(root))
    assert source.mailbox_id == f"maildir://{root}"
    with source:
        items = source.list_items()
        got = list(source.fetch([i.key for i in items]))
    assert [i.key for i in items] == names
    assert [i.size for i in items] == [len(raw) for _, raw in got]
    assert subjects(got) == ["md 0", "md 1", "md 2"]


def test_maildir_keys_survive_flag_changes(maildir):
    root, box = maildir
    name = add(box, "flagged later", 1_700_000_000)
    with open_source(local_mailbox_url(root)) as source:
        (item,) = source.list_items()
        (root / "new" / name).rename(root / "cur" / f"{name}:2,RS")  # a client replies
        assert subjects(source.fetch([item.key])) == ["flagged later"]  # found again
        (root / "cur" / f"{name}:2,RS").rename(root / "cur" / f"{name}:2,FRS")
        assert [i.key for i in source.list_items()] == [item.key]
        source.delete([item.key])
        assert source.list_items() == []


def test_maildir_fetch_skips_vanished_and_refuses_bad_keys(maildir):
    root, box = maildir
    name = add(box, "only", 1_700_000_000)
    with open_source(local_mailbox_url(root)) as source:
        assert [k for k, _ in source.fetch(["1.gone.host", name])] == [name]
        source.delete(["1.gone.host"])
        with pytest.raises(MailboxError, match="not a Maildir item key"):
            list(source.fetch(["../../etc/passwd"]))


def test_maildir_move_into_a_maildirplusplus_folder(maildir):
    root, box = maildir
    names = [add(box, f"mv {n}", 1_700_000_000 + n) for n in range(2)]
    (root / "new" / names[1]).rename(root / "cur" / f"{names[1]}:2,S")
    with open_source(local_mailbox_url(root)) as source:
        source.move(names, "Processed/2024")
        assert source.list_items() == []
    folder = root / ".Processed.2024"
    assert (folder / "maildirfolder").exists()
    assert (folder / "new" / names[0]).exists() and (folder / "cur" / f"{names[1]}:2,S").exists()
    with open_source(local_mailbox_url(folder)) as moved:
        assert [i.key for i in moved.list_items()] == names
    with (
        open_source(local_mailbox_url(root)) as source,
        pytest.raises(MailboxError, match="not usable"),
    ):
        source.move(names, "../escape")


def test_not_a_maildir_is_a_connect_error(tmp_path):
    with (
        pytest.raises(MailboxConnectError, match="not a Maildir"),
        open_source(local_mailbox_url(tmp_path / "nowhere")),
    ):
        pass


def test_maildir_scan_is_fast(tmp_path):
    root = tmp_path / "big"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True)
    raw = sample_message("bulk").as_bytes()
    for n in range(2000):
        sub, info = ("cur", ":2,S") if n % 2 else ("new", "")
        (root / sub / f"{1_700_000_000 + n}.M{n}P1.host,S={len(raw)}{info}").write_bytes(raw)
    with open_source(local_mailbox_url(root)) as source:
        started = time.perf_counter()
        items = source.list_items()
        elapsed = time.perf_counter() - started
        assert len(items) == 2000 and items[0].size == len(raw)
        assert elapsed < 0.5, f"listing 2,000 messages took {elapsed:.2f} s"
        assert len(list(source.fetch([i.key for i in items[:500]]))) == 500


@pytest.mark.dovecot
def test_maildir_written_by_dovecot_keeps_keys_when_imap_marks_seen(dovecot: Dovecot):
    dovecot.reset("outbox")
    dovecot.deliver(sample_message("via dovecot"), to="outbox")
    with open_source(local_mailbox_url(dovecot.user_maildir("outbox"))) as source:
        (item,) = source.list_items()
        conn = dovecot.imap("outbox")  # Dovecot renames new/X to cur/X:2,S
        conn.select("INBOX")
        conn.fetch("1", "(RFC822)")
        conn.logout()
        assert list((dovecot.user_maildir("outbox") / "new").iterdir()) == []
        assert [i.key for i in source.list_items()] == [item.key]
        assert subjects(source.fetch([item.key])) == ["via dovecot"]


# -- directory of .eml files ------------------------------------------------------------------


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    root = tmp_path / "drop"
    root.mkdir()
    for n, name in enumerate(["b.eml", "a.EML", "c.eml"]):
        path = root / name
        path.write_bytes(sample_message(f"eml {name}").as_bytes())
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))
    (root / "notes.txt").write_text("not mail")
    (root / ".hidden.eml").write_text("skipped")
    (root / "sub").mkdir()
    (root / "sub" / "inner.eml").write_bytes(b"Subject: inner\r\n\r\n")
    return root


def test_eml_directory_lists_top_level_eml_files_oldest_first(drop: Path):
    source = open_source(local_mailbox_url(drop, "eml"))
    assert source.mailbox_id == f"eml://{drop}"
    with source:
        items = source.list_items()
        got = list(source.fetch([i.key for i in items] + ["gone.eml"]))
    assert [i.key for i in items] == ["b.eml", "a.EML", "c.eml"]
    assert subjects(got) == ["eml b.eml", "eml a.EML", "eml c.eml"]
    assert items[0].size == (drop / "b.eml").stat().st_size


def test_eml_directory_delete_and_move_without_overwriting(drop: Path):
    (drop / "Processed").mkdir()
    (drop / "Processed" / "a.EML").write_text("an older file with the same name")
    with open_source(local_mailbox_url(drop, "eml")) as source:
        source.delete(["b.eml", "b.eml", "never-there.eml"])
        source.move(["a.EML", "c.eml"], "Processed")
        assert source.list_items() == []
        with pytest.raises(MailboxError, match="not an eml item key"):
            source.delete(["../drop/c.eml"])
        with pytest.raises(MailboxError, match="not usable"):
            source.move(["c.eml"], "../out")
    moved = sorted(p.name for p in (drop / "Processed").iterdir())
    assert moved == ["a-1.EML", "a.EML", "c.eml"]
    assert (drop / "Processed" / "a.EML").read_text() == "an older file with the same name"
    with open_source(local_mailbox_url(drop / "Processed", "eml")) as processed:
        assert len(processed.list_items()) == 3


def test_eml_directory_missing_is_a_connect_error(tmp_path):
    with (
        pytest.raises(MailboxConnectError, match="not a directory"),
        open_source(local_mailbox_url(tmp_path / "missing", "eml")),
    ):
        pass
