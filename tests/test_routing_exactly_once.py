"""Exactly-once under a real process kill (SIGKILL) at each crash point of a batch.

The routing command runs as its own process and is killed by the kernel at the named point, with
no cleanup; a plain rerun must leave each message once in the CRM, none lost, the mailbox handled.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route_in_subprocess
from servers import Dovecot

from emailrouter_lib.routing.faults import CRASH_POINTS

SUPPORT = "queue:support@contoso.example"


def routed_ids(crm_url: str) -> Counter:
    emails = crm_store(crm_url).emails(directioncode=0)
    return Counter(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


def kill_then_rerun(crm_url: str, url: str, crash_at: str) -> None:
    killed = route_in_subprocess(crm_url, url, crash_at=crash_at, extra=("--batch-size", "2"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = route_in_subprocess(crm_url, url, extra=("--batch-size", "2"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_maildir_batch_killed_at_each_point_routes_each_message_once(tmp_path, crash_at):
    crm_url = demo_crm(tmp_path)
    messages = [message(f"m{n}") for n in range(5)]
    drop(tmp_path / "Maildir", *messages)
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT, after="delete")
    kill_then_rerun(crm_url, url, crash_at)
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    assert not list((tmp_path / "Maildir" / "new").iterdir())  # every source item handled


@pytest.mark.dovecot
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("crash_at", ["after-crm-commit", "after-ledger-commit"])
def test_server_batch_killed_between_crm_commit_and_delete(
    dovecot: Dovecot, tmp_path, protocol, crash_at
):
    crm_url = demo_crm(tmp_path)
    dovecot.reset("crm")
    messages = [message(f"m{n}") for n in range(5)]
    for msg in messages:
        dovecot.deliver(msg, to="crm@example.test")
    url = dovecot.url(protocol, "crm", owner=SUPPORT, after="delete")
    kill_then_rerun(crm_url, url, crash_at)
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    conn = dovecot.imap("crm")
    try:
        _, data = conn.select("INBOX")
        assert int(data[0]) == 0  # all deleted after the rerun
    finally:
        conn.logout()


def test_rerun_after_kill_reports_what_it_recovered(tmp_path):
    crm_url = demo_crm(tmp_path)
    drop(tmp_path / "Maildir", *[message(f"m{n}") for n in range(3)])
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    killed = route_in_subprocess(
        crm_url, url, crash_at="after-crm-commit", extra=("--batch-size", "2")
    )
    assert killed.returncode == -signal.SIGKILL
    rerun = route_in_subprocess(crm_url, url)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 message(s)" in rerun.stdout  # only the third was still to do
    assert "finished 2 item(s) an interrupted run left half done" in rerun.stdout
    assert len(routed_ids(crm_url)) == 3
