"""Two routing runs at once never create an activity twice (issue 12, item 5).

Two ``emailrouter route`` processes are started together on the same mailbox and CRM, as a cron
run overlapping the next one does: one routes the mailbox under its lease, the other skips it
(exit 0, its row says who holds it). A run killed while it holds the lease keeps the mailbox
until the lease expires; the next run after that takes over and finishes its pending entries.
A live foreign lease's entries are never touched, a stale fencing token's write is refused, and
the CRM itself refuses a second received email with the same Message-ID.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from routing_helpers import (
    ROOT,
    crm_store,
    demo_crm,
    drop,
    maildir_url,
    message,
    route,
    route_command,
)

from emailrouter_lib.crm.base import NewEmail
from emailrouter_lib.errors import LeaseHeldError, LeaseLostError, ParameterError
from emailrouter_lib.routing.lease import LeaseKeeper, LeaseOwner
from emailrouter_lib.routing.ledger import PENDING, Ledger, LedgerEntry
from emailrouter_lib.routing.params import RoutingParams

SUPPORT = "queue:support@contoso.example"


def routed_ids(crm_url: str) -> Counter:
    emails = crm_store(crm_url).emails(directioncode=0)
    return Counter(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


def files(folder: Path) -> list[Path]:
    subs = [folder / sub for sub in ("new", "cur") if (folder / sub).is_dir()]
    return [path for sub in subs for path in sub.iterdir()]


def start(crm_url: str, url: str, *extra: str, crash_at: str | None = None) -> subprocess.Popen:
    args, env = route_command(crm_url, url, crash_at=crash_at, extra=extra)
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out + err


def ledger_path(crm_url: str) -> Path:
    return RoutingParams(mailboxes=[], crm=crm_url).ledger_path()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("after", ["leave", "delete", "move:Processed"])
def test_two_runs_started_together_create_each_of_1000_messages_once(tmp_path, after):
    crm_url = demo_crm(tmp_path)
    box = tmp_path / "Maildir"
    messages = [message(f"m{n}") for n in range(1000)]
    drop(box, *messages)
    url = maildir_url(box, owner=SUPPORT, after=after)
    runs = [start(crm_url, url, "--batch-size", "500") for _ in range(2)]
    done = [finish(run) for run in runs]

    assert [code for code, _ in done] == [0, 0], done
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    outputs = [out for _, out in done]
    routed = [out for out in outputs if "1000 message(s)" in out]
    assert len(routed) == 1, outputs  # one run routed them all ...
    other = next(out for out in outputs if out is not routed[0])
    # ... the other either found the lease held (and says by whom) or found nothing left to do
    assert "skipped: held by run" in other or "0 message(s)" in other
    if after == "leave":
        assert len(files(box)) == 1000
    elif after == "delete":
        assert files(box) == []
    else:
        assert files(box) == [] and len(files(box / ".Processed")) == 1000


@pytest.mark.timeout(60)
def test_killed_run_keeps_the_mailbox_until_its_lease_expires_then_the_next_run_takes_over(
    tmp_path,
):
    crm_url = demo_crm(tmp_path)
    box = tmp_path / "Maildir"
    messages = [message(f"m{n}") for n in range(60)]
    drop(box, *messages)
    url = maildir_url(box, owner=SUPPORT, after="delete")
    lease = ("--batch-size", "20", "--lease-seconds", "4")

    killed = finish(start(crm_url, url, *lease, crash_at="after-crm-commit"))
    assert killed[0] == -signal.SIGKILL, killed[1]
    assert len(routed_ids(crm_url)) == 20  # the first batch reached the CRM, its ledger is pending
    ledger = Ledger(ledger_path(crm_url))
    holder = ledger.leases.holder(next(iter(_mailbox_ids(ledger))))
    pending = {k: e.state for k, e in _entries(ledger).items()}
    assert set(pending.values()) == {PENDING} and len(pending) == 20

    # While the dead run's lease is live, the next run skips the mailbox and touches nothing
    # (in this process: a second interpreter may take longer to start than the lease lasts).
    skipping = route(crm_url, url, lease_seconds=4)
    assert skipping.ok and skipping.mailboxes[0].status == "skipped"
    assert f"held by run {holder.owner.run_id}" in skipping.mailboxes[0].error
    assert f"{holder.mailbox_id}: skipped: held by run" in str(skipping)
    assert {k: e.state for k, e in _entries(ledger).items()} == pending
    assert len(routed_ids(crm_url)) == 20 and len(files(box)) == 60

    # Once it expired, the next run takes the mailbox over and finishes the pending entries.
    time.sleep(max(0.0, holder.expires_at - time.time()) + 0.2)
    code, out = finish(start(crm_url, url, *lease))
    assert code == 0, out
    assert "40 message(s)" in out and "finished 20 item(s) an interrupted run left half" in out
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    assert files(box) == []
    assert ledger.leases.holder(holder.mailbox_id).token == holder.token + 1
    ledger.close()


def _mailbox_ids(ledger: Ledger) -> set[str]:
    return {row[0] for row in ledger._db.execute("SELECT mailbox_id FROM ledger_item")}


def _entries(ledger: Ledger) -> dict[str, LedgerEntry]:
    (mailbox_id,) = _mailbox_ids(ledger)
    return ledger.entries(mailbox_id)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_same_1000_messages_in_two_mailboxes_routed_at_once_are_created_once(tmp_path):
    """The CRM's own Message-ID check: two mailboxes (two leases) holding the same delivery,
    routed by two processes at once; whoever writes second gets ``duplicate``, not a copy."""
    crm_url = demo_crm(tmp_path)
    messages = [message(f"m{n}") for n in range(1000)]
    urls = []
    for name in ("a", "b"):
        drop(tmp_path / name, *messages)
        urls.append(maildir_url(tmp_path / name, owner=SUPPORT))
    runs = [start(crm_url, url, "--batch-size", "1000") for url in urls]
    done = [finish(run) for run in runs]

    assert [code for code, _ in done] == [0, 0], done
    assert routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)
    counts = Counter()
    for _, out in done:
        for line in out.splitlines():
            outcome, _, n = line.strip().rpartition(" ")
            if outcome.strip() in ("created", "duplicate"):
                counts[outcome.strip()] += int(n)
    assert counts == {"created": 1000, "duplicate": 1000}, done


def test_a_live_foreign_lease_keeps_its_mailbox_and_its_pending_entries(tmp_path):
    crm_url = demo_crm(tmp_path)
    box = tmp_path / "Maildir"
    drop(box, *[message(f"m{n}") for n in range(3)])
    url = maildir_url(box, owner=SUPPORT, after="delete")
    mailbox_id = _id(url)
    other = LeaseOwner("20260101T000000Z-abcdef", "cron-host", 4242)
    ledger = Ledger(ledger_path(crm_url))
    lease = ledger.acquire(mailbox_id, other, 300)
    keys = sorted(p.name.split(":")[0] for p in files(box))
    written = [
        LedgerEntry(mailbox_id, k, PENDING, "created", "", f"<{k}@x>", f"id-{k}", "delete")
        for k in keys
    ]
    ledger.write(written, other.run_id)  # the other run's batch, its CRM write still under way

    result = route(crm_url, url)
    (report,) = result.mailboxes
    assert report.status == "skipped" and result.ok
    assert f"held by run {other.run_id} on cron-host pid 4242 until " in report.error
    assert f"fencing token {lease.token}" in report.error
    assert list(ledger.entries(mailbox_id).values()) == written  # not "recovered"
    assert routed_ids(crm_url) == Counter() and len(files(box)) == 3
    with pytest.raises(LeaseHeldError):  # and a second acquisition is refused outright
        Ledger(ledger_path(crm_url)).acquire(mailbox_id, LeaseOwner("x", "h", 1), 300)
    ledger.close()


def _id(url: str) -> str:
    from emailrouter_lib.mailboxes import open_source

    return open_source(url).mailbox_id


def test_a_stale_fencing_token_cannot_write_the_ledger(tmp_path):
    path = tmp_path / "ledger.sqlite"
    first, second = Ledger(path), Ledger(path)
    entry = LedgerEntry("maildir:///box", "k1", PENDING, "created", "", "<a@x>", "id-1", "leave")

    stalled = first.acquire("maildir:///box", LeaseOwner("run-1", "h1", 1), 1)
    first.write([entry], "run-1")  # fenced, and accepted while the lease is live
    time.sleep(1.1)  # run-1 is paused past its lease (SIGSTOP, swap, a hung server)
    with pytest.raises(LeaseLostError, match="expired before this write"):
        first.advance("maildir:///box", ["k1"], "done")

    took_over = second.acquire("maildir:///box", LeaseOwner("run-2", "h2", 2), 300)
    assert took_over.token == stalled.token + 1
    second.forget("maildir:///box", ["k1"])  # the new holder's recovery
    for write in (
        lambda: first.write([entry], "run-1"),
        lambda: first.advance("maildir:///box", ["k1"], "done"),
        lambda: first.forget("maildir:///box", ["k1"]),
        lambda: first.leases.renew(stalled, 300),
    ):
        with pytest.raises(LeaseLostError, match="taken over: held by run run-2 on h2 pid 2"):
            write()
    assert second.entries("maildir:///box") == {}  # nothing of run-1's reached the ledger
    first.release(stalled)  # giving up a lost lease leaves the new holder's alone
    assert second.leases.holder("maildir:///box").expires_at > time.time()
    first.close()
    second.close()


def test_the_crm_creates_one_received_email_per_message_id_whatever_its_case(tmp_path):
    crm = crm_store(demo_crm(tmp_path))
    received = [
        NewEmail("a1", "s", "", "<Same@Test.Example>"),
        NewEmail("a2", "s", "", "<same@test.example>"),  # the same id, cased differently
        NewEmail("a3", "s", "", "<other@test.example>"),
    ]
    assert crm.create_emails(received) == {"a2"}
    assert crm.create_emails([NewEmail("a4", "s", "", "<SAME@test.example>")]) == {"a4"}
    # outgoing emails are not checked: the router's own sent copy may meet its received one
    sent = NewEmail("o1", "s", "", "<same@test.example>", directioncode=True)
    assert crm.create_emails([sent]) == set()
    ids = [e["activityid"] for e in crm.emails(directioncode=0)]
    assert "a1" in ids and "a3" in ids and "a2" not in ids and "a4" not in ids


def test_a_live_run_keeps_its_lease_through_a_step_longer_than_the_lease(tmp_path):
    """The background renewal: a slow CRM write or fetch does not hand the mailbox over."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    lease = ledger.acquire("maildir:///box", LeaseOwner("run-1", "h1", 1), 1.5)
    keeper = LeaseKeeper(lambda: Ledger.lease_store(path))
    keeper.keep(lease, 1.5)
    try:
        time.sleep(2.5)  # one step, longer than the lease
        with pytest.raises(LeaseHeldError):
            Ledger(path).acquire("maildir:///box", LeaseOwner("run-2", "h2", 2), 300)
        entry = LedgerEntry("maildir:///box", "k", PENDING, "created", "", "<a@x>", "id", "leave")
        ledger.write([entry], "run-1")  # still the holder: accepted
    finally:
        keeper.stop()
    assert ledger.entries("maildir:///box")["k"] == entry
    ledger.close()


@pytest.mark.parametrize("bad", [0, -5, True, "300", 10**6])
def test_lease_seconds_is_checked_at_the_door(tmp_path, bad):
    with pytest.raises(ParameterError, match="lease_seconds must be a number of seconds"):
        RoutingParams.from_mapping(
            {"mailboxes": ["maildir:///x"], "crm": "sqlite:///c.sqlite", "lease_seconds": bad}
        )
