"""The one atomic write (emailrouter_lib.files): whole or not at all, permissions kept."""

from __future__ import annotations

import os
import stat

import pytest

from emailrouter_lib.files import replacing, write_atomically


def test_replaces_whole_and_keeps_the_mode(tmp_path):
    target = tmp_path / "EmailAgent.xml"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_atomically(target, "new ✓")
    assert target.read_bytes() == "new ✓".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["EmailAgent.xml"]


def test_a_new_file_gets_the_usual_mode_and_its_folder(tmp_path):
    old = os.umask(0o022)
    try:
        target = write_atomically(tmp_path / "runs" / "summary.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("the last good report")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half a rep")
        raise RuntimeError("disk full")
    assert target.read_text() == "the last good report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_the_temporary_keeps_the_suffix_for_writers_that_look_at_it(tmp_path):
    with replacing(tmp_path / "audit.xlsx") as temporary:
        assert temporary.suffix == ".xlsx" and temporary.parent == tmp_path
        temporary.write_bytes(b"PK")
    assert (tmp_path / "audit.xlsx").read_bytes() == b"PK"


def test_switching_to_wal_waits_for_a_run_that_holds_the_new_file(tmp_path):
    """Two cron runs opening a new ledger together: the second waits instead of failing."""
    import threading

    from emailrouter_lib.files import open_sqlite, use_wal

    path = tmp_path / "crm.ledger.sqlite"
    first = open_sqlite(path, check_same_thread=False)
    first.execute("BEGIN EXCLUSIVE")
    first.execute("CREATE TABLE t (x)")
    threading.Timer(0.3, lambda: first.execute("COMMIT")).start()
    second = open_sqlite(path, timeout=0.1)  # a short busy timeout: only use_wal's wait helps
    use_wal(second, timeout=10)
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.close()
    second.close()
