"""The outgoing engine and the migration against the fake Dataverse Web API, end to end.

What the contract suite checks method by method is shown here with the real flows: the
outgoing batch (pickup and a real aiosmtpd) through statuses written by PATCH with ``If-Match``,
a process killed with SIGKILL at each outgoing crash point, and a migration apply → apply again →
rollback that leaves every touched row as it was.
"""

from __future__ import annotations

import signal
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from fixtures_dataverse import (
    state_url,
)
from fixtures_smtp import parse, send_pending
from routing_helpers import route_in_subprocess

from emailrouter_lib.crm import SqliteCrm, open_crm
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.base import STATUS_PENDING_SEND, STATUS_SENDING, EmailStatusChange
from emailrouter_lib.routing.outgoing import OUTGOING_CRASH_POINTS

PENDING = [e.activityid for e in seed.PENDING_EMAILS]


@pytest.fixture
def fake_dataverse(flavoured_dataverse):
    """The strict fake in each flavour (online, onprem, crm2016): every test here runs thrice."""
    return flavoured_dataverse


def statuses(server) -> dict[str, tuple[int, int, int]]:
    store = SqliteCrm(server.store.path)
    try:
        return {
            i: (e["statuscode"], e["statecode"], e["deliveryattempts"])
            for i in PENDING
            if (e := store.email(i))
        }
    finally:
        store.close()


def sql(server, statement: str, *params) -> None:
    store = SqliteCrm(server.store.path)
    with store.transaction() as conn:
        conn.execute(statement, params)
    store.close()


def outgoing(server, tmp_path: Path, *transports: str, **params):
    return send_pending(
        state_url(server, tmp_path), *transports, ledger=str(tmp_path / "ledger.sqlite"), **params
    )


def test_pending_emails_go_through_sending_to_sent_by_etag(fake_dataverse, tmp_path):
    outbox = tmp_path / "outbox"
    first = outgoing(fake_dataverse, tmp_path, f"pickup://{outbox}")
    assert first.outgoing_counts == {"sent": 3} and first.ok, first.outgoing
    assert {s for s, _, _ in statuses(fake_dataverse).values()} == {3}
    files = sorted(outbox.glob("*.eml"))
    sent_ids = {
        message_from_bytes(f.read_bytes(), policy=policy.default)["Message-ID"] for f in files
    }
    store = SqliteCrm(fake_dataverse.store.path)
    assert {store.email(i)["messageid"] for i in PENDING} == sent_ids and len(files) == 3
    assert all(store.email(i)["trackingtoken"] for i in PENDING)
    store.close()
    # Every status write was a PATCH with If-Match on the ETag, batched per engine batch.
    patches = [
        (m, target)
        for e in fake_dataverse.log
        if e.is_batch
        for m, target, _ in e.parts
        if m == "PATCH"
    ]
    # 3 claims (Sending) + 3 Sent, each a change set of 3 PATCHes: Pending Send and Sending are
    # closed (statecode 1), so the columns are written between a reopen and the new state.
    assert len(patches) == 18
    assert sum(1 for e in fake_dataverse.log if e.is_batch and e.changesets) == 2
    again = outgoing(fake_dataverse, tmp_path, f"pickup://{outbox}")
    assert again.outgoing == [] and len(list(outbox.glob("*.eml"))) == 3  # nothing twice


def test_4xx_goes_back_to_pending_with_attempts_and_5xx_fails(fake_dataverse, tmp_path, smtp_sink):
    smtp_sink.refuse("451 4.3.0 Mailbox busy, try later")
    smtp_sink.refuse("554 5.6.0 Message content rejected")
    result = outgoing(fake_dataverse, tmp_path, smtp_sink.url(None))
    assert result.outgoing_counts == {"retry": 1, "failed": 1, "sent": 1}, result.outgoing
    rows = {r.outcome: r for r in result.outgoing}
    now = statuses(fake_dataverse)
    retried, failed = rows["retry"], rows["failed"]
    before = {e.activityid: e for e in seed.PENDING_EMAILS}
    assert now[retried.activityid][:2] == (6, 1)
    assert now[retried.activityid][2] == retried.deliveryattempts
    assert retried.deliveryattempts == (before[retried.activityid].deliveryattempts or 0) + 1
    assert now[failed.activityid][:2] == (8, 0)
    crm = open_crm(state_url(fake_dataverse, tmp_path))
    assert "451" in crm.last_delivery_error(retried.activityid)
    assert "554" in crm.last_delivery_error(failed.activityid)
    crm.close()
    again = outgoing(fake_dataverse, tmp_path, smtp_sink.url(None), pending_status_delay=0)
    assert again.outgoing_counts == {"sent": 1} and len(smtp_sink.messages) == 2


def test_a_claim_loses_to_a_change_made_after_the_read(fake_dataverse, tmp_path):
    """The ETag is the compare-and-set: a row changed between read and PATCH answers 412."""
    crm = open_crm(state_url(fake_dataverse, tmp_path))
    (email, *_) = crm.outgoing_emails([STATUS_PENDING_SEND], limit=1)
    versions = crm._versions([email.activityid])
    real = crm._versions
    crm._versions = lambda ids: versions  # type: ignore[method-assign]  # the stale read
    sql(fake_dataverse, "UPDATE email SET description = 'edited' WHERE activityid = ?",
        email.activityid)  # fmt: skip
    claim = EmailStatusChange(email.activityid, STATUS_PENDING_SEND, STATUS_SENDING, 1,
                              attemptid="mine")  # fmt: skip
    assert crm.update_email_status([claim]) == set()
    assert any(status == 412 for e in fake_dataverse.log for _, _, status in e.parts)
    crm._versions = real  # type: ignore[method-assign]
    assert crm.update_email_status([claim]) == {email.activityid}  # re-read: it goes through
    crm.close()


def test_a_claim_answered_too_late_and_sent_again_still_counts(fake_dataverse, tmp_path):
    """The PATCHes commit, the answer times out, the resent $batch gets 412 (our own write):
    the backend re-reads, sees its values and reports the claim as made — not lost, not twice."""
    crm = open_crm(state_url(fake_dataverse, tmp_path, timeout="0.5"))
    (email, *_) = crm.outgoing_emails([STATUS_PENDING_SEND], limit=1)
    fake_dataverse.faults.late_writes, fake_dataverse.faults.late_delay = 1, 1.0
    claim = EmailStatusChange(email.activityid, STATUS_PENDING_SEND, STATUS_SENDING, 1,
                              attemptid="mine", trackingtoken="CRM:0001009")  # fmt: skip
    assert crm.update_email_status([claim]) == {email.activityid}
    assert any(e.fault == "late-write" for e in fake_dataverse.log)
    (held,) = crm.outgoing_emails([STATUS_SENDING], limit=5)
    assert held.attemptid == "mine"
    crm.close()


@pytest.mark.parametrize("crash_at", OUTGOING_CRASH_POINTS)
def test_killed_run_never_sends_an_email_twice(fake_dataverse, tmp_path, smtp_sink, crash_at):
    sql(fake_dataverse, "UPDATE email SET deliveryattempts = 0")  # every email due at once
    url = state_url(fake_dataverse, tmp_path)
    extra = ("--ledger", str(tmp_path / "ledger.sqlite"), "--transport", smtp_sink.url(None))
    killed = route_in_subprocess(url, crash_at=crash_at, extra=extra)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    received_before_rerun = len(smtp_sink.messages)
    rerun = route_in_subprocess(url, extra=extra)
    # an email that may have been delivered is a failure a person must check: exit 1
    expected = 1 if crash_at == "after-smtp-data" else 0
    assert rerun.returncode == expected, rerun.stdout + rerun.stderr
    ids = Counter(parse(m)["Message-ID"] for m in smtp_sink.messages)
    assert max(ids.values()) == 1  # nothing twice
    final = statuses(fake_dataverse)
    if crash_at == "after-smtp-data":
        assert received_before_rerun == 1 and len(ids) == 3
        assert sorted(s for s, _, _ in final.values()) == [3, 3, 8]
        assert "uncertain" in rerun.stdout
    else:
        assert len(ids) == 3 and {s for s, _, _ in final.values()} == {3}
        if crash_at == "after-send-ledger":
            assert received_before_rerun == 1 and "reconciled:sent" in rerun.stdout


def test_migration_apply_then_again_then_rollback_over_the_web_api(
    tmp_path, router_state_in_tmp, dataverse_flavour
):
    from dataverse_server import FakeDataverse
    from fixtures_migration import snapshot as full_snapshot

    columns: dict[str, set[str]] = {}

    def snapshot(store):
        """The touched rows in the columns the demo has: the strict fake adds storage columns
        for schema attributes on first use, which are not part of what apply changed."""
        rows = full_snapshot(store)
        for table, found in rows.items():
            columns.setdefault(table, set(found[0]) if found else set())
        return {
            table: [{k: v for k, v in row.items() if k in columns[table]} for row in found]
            for table, found in rows.items()
        }

    from emailrouter_lib.crm import sqlite_path
    from emailrouter_lib.demo.migration import prepare_migration_demo
    from emailrouter_lib.migration import ApplyRecord, rollback, run

    env = prepare_migration_demo(tmp_path / "demo")
    server = FakeDataverse(sqlite_path(env.crm_url), flavour=dataverse_flavour).start()
    store = SqliteCrm(server.store.path)
    try:
        url = state_url(server, tmp_path)
        before = snapshot(store)

        def apply(run_dir: str):
            params = {"config": [str(env.config)], "crm": url, "dry_run": False}
            return run({**params, "run_dir": str(tmp_path / run_dir)}).record

        first = apply("first")
        assert first.status == "applied" and first.changed > 0 and first.transaction is False
        after = snapshot(store)
        assert after != before and after["organization"][0]["emailconnectionchannel"] == 0
        second = apply("second")
        assert second.changed == 0 and snapshot(store) == after  # applying twice: no change
        crm = open_crm(url)
        undo = rollback(ApplyRecord.read(tmp_path / "first" / "apply-record.json"), crm)
        assert undo.changes and snapshot(store) == before
        rollback(ApplyRecord.read(tmp_path / "first" / "apply-record.json"), crm)  # harmless
        assert snapshot(store) == before
        crm.close()
        # Updates went as PATCH with If-Match, creates as POST, undo of creates as DELETE.
        methods = Counter(e.method for e in server.log.writes())
        assert set(methods) <= {"POST", "PATCH", "DELETE"} and methods["PATCH"] > 0
    finally:
        store.close()
        server.stop()
