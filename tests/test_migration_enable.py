"""The Test & Enable step on the SQLite CRM: one batch, queues first, planned then applied,
idempotent, undone by rollback, and all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fixtures_migration import (
    FaultyStore,
    snapshot,
    variant,
)

from emailrouter_lib.cli import main
from emailrouter_lib.config import load_config
from emailrouter_lib.crm import open_crm
from emailrouter_lib.demo.migration import prepare_migration_demo
from emailrouter_lib.errors import ConfigError, CrmError
from emailrouter_lib.migration import (
    ApplyRecord,
    EnablePlan,
    PlanOptions,
    apply_plan,
    apply_test_and_enable,
    build_plan,
    plan_test_and_enable,
    rollback,
    run,
)

NOW = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)


def migrated(crm):
    plan = build_plan(
        [load_config(variant(n)) for n in ("router-a.xml", "router-b.xml")],
        crm,
        PlanOptions(created="2024-03-08T00:00:00Z"),
    )
    apply_plan(plan, crm)
    return plan


def mailbox_of(crm, owner: str) -> dict:
    kind, _, key = owner.partition(":")
    rows = (
        crm.rows("mailbox", emailaddress=key, isforwardmailbox=1)
        if kind == "forward"
        else crm.rows("mailbox", regardingobjectid=key)
    )
    assert len(rows) == 1, owner
    return rows[0]


def test_the_first_batch_is_planned_then_applied_once(demo_crm, tmp_path):
    plan = migrated(demo_crm)
    enable = plan_test_and_enable(plan, demo_crm, batch_size=3, now=NOW)
    assert [r.kind for r in enable.rows] == ["queue", "queue", "forward"]  # queues first
    assert {r.action for r in enable.rows} == {"schedule"}
    assert {r.processemailreceivedafter for r in enable.rows} == {"2024-03-07T12:00:00Z"}
    assert all(
        mailbox_of(demo_crm, r.owner)["testemailconfigurationscheduled"] == 0 for r in enable.rows
    )

    before = snapshot(demo_crm)
    path = enable.write(tmp_path / "batch.json")
    record_path = tmp_path / "record.json"
    record = apply_test_and_enable(EnablePlan.read(path), demo_crm, record_path=record_path)
    assert record.kind == "test-and-enable" and record.changed == 3 and record.transaction
    for row in enable.rows:
        mailbox = mailbox_of(demo_crm, row.owner)
        assert mailbox["testemailconfigurationscheduled"] == 1
        assert mailbox["processemailreceivedafter"] == "2024-03-07T12:00:00Z"
    others = [
        m
        for m in demo_crm.rows("mailbox")
        if m["mailboxid"] not in {r.mailboxid for r in enable.rows}
    ]
    assert all(m["testemailconfigurationscheduled"] == 0 for m in others)  # one batch only

    # idempotent: planned again a day later, and the old plan applied again, change nothing
    later = plan_test_and_enable(plan, demo_crm, batch_size=3, now=NOW.replace(day=9))
    assert {r.action for r in later.rows} == {"unchanged"}
    after = snapshot(demo_crm)
    assert apply_test_and_enable(later, demo_crm).changed == 0
    assert apply_test_and_enable(enable, demo_crm).changed == 0
    assert snapshot(demo_crm) == after

    rollback(ApplyRecord.read(record_path), demo_crm)
    assert snapshot(demo_crm) == before


def test_the_schedule_start_sets_process_email_from_and_later_batches(demo_crm):
    plan = migrated(demo_crm)
    first = plan_test_and_enable(plan, demo_crm, batch_size=2, start="2024-06-01T18:00:00Z")
    assert {r.processemailreceivedafter for r in first.rows} == {"2024-05-31T18:00:00Z"}
    second = plan_test_and_enable(
        plan, demo_crm, batch=2, batch_size=2, start="2024-06-01T18:00:00Z"
    )
    assert {r.processemailreceivedafter for r in second.rows} == {"2024-05-31T23:00:00Z"}
    assert not {r.owner for r in first.rows} & {r.owner for r in second.rows}
    with pytest.raises(ConfigError, match="1 to 200"):
        plan_test_and_enable(plan, demo_crm, batch_size=201)
    with pytest.raises(ConfigError, match="batch 99"):
        plan_test_and_enable(plan, demo_crm, batch=99)


def test_before_the_migration_new_mailboxes_are_skipped(demo_crm):
    plan = build_plan([load_config(variant("router-b.xml"))], demo_crm)
    enable = plan_test_and_enable(plan, demo_crm, now=NOW)
    skipped = [r for r in enable.rows if r.action == "skip"]
    assert skipped and all("apply the migration first" in r.reason for r in skipped)
    assert all(r.owner not in {s.owner for s in skipped} for r in enable.rows if r.mailboxid)
    record = apply_test_and_enable(enable, demo_crm)
    assert record.changed == sum(1 for r in enable.rows if r.action == "schedule")


def test_a_failure_mid_batch_schedules_nothing(demo_crm, tmp_path):
    plan = migrated(demo_crm)
    enable = plan_test_and_enable(plan, demo_crm, batch_size=4, now=NOW)
    before = snapshot(demo_crm)
    with pytest.raises(CrmError, match="injected"):
        apply_test_and_enable(enable, FaultyStore(demo_crm, "save_mailbox", after=2))
    assert snapshot(demo_crm) == before


def test_run_schedules_the_batch_after_applying(tmp_path):
    env = prepare_migration_demo(tmp_path / "demo")
    params = {
        "config": [str(env.config)],
        "crm": env.crm_url,
        "schedule_start": "2024-03-08T18:00:00Z",
        "test_and_enable_batch": 1,
    }
    planned = run(params)  # dry run: the batch is only planned
    assert planned.enable is not None and planned.enable_record is None
    assert "test_and_enable" in planned.tables()
    result = run({**params, "dry_run": False, "run_dir": str(tmp_path / "run")})
    assert result.record.status == "applied" and result.enable_record.status == "applied"
    assert result.enable_record.changed == len(result.enable.rows) > 0
    assert (tmp_path / "run" / "test-and-enable-record.json").is_file()
    assert (tmp_path / "run" / "test-and-enable-plan.json").is_file()
    again = run({**params, "dry_run": False})
    assert again.record.changed == 0 and again.enable_record.changed == 0


def test_cli_schedule_plan_then_apply(tmp_path, capsys):
    env = prepare_migration_demo(tmp_path / "demo")
    plan_path = tmp_path / "plan.json"
    args = ["migrate", "plan", "--config", str(env.config), "--crm", env.crm_url]
    assert main([*args, "--output", str(plan_path)]) == 0
    assert main(["migrate", "apply", "--plan", str(plan_path), "--crm", env.crm_url]) == 0
    schedule = ["migrate", "schedule", "plan", "--plan", str(plan_path), "--crm", env.crm_url]
    assert main([*schedule, "--start", "2024-03-08T18:00:00Z"]) == 0
    batch = tmp_path / "test-and-enable-plan.json"
    assert "'schedule'" in capsys.readouterr().out and batch.is_file()
    with open_crm(env.crm_url) as crm:
        before = snapshot(crm)
    apply = ["migrate", "schedule", "apply", "--batch-plan", str(batch), "--crm", env.crm_url]
    assert main(apply) == 0
    assert "updated" in capsys.readouterr().out
    assert main(apply) == 0
    assert "nothing to do" in capsys.readouterr().out
    record = tmp_path / "test-and-enable-record.json"
    assert main(["migrate", "rollback", "--record", str(record), "--crm", env.crm_url]) == 0
    with open_crm(env.crm_url) as crm:
        assert snapshot(crm) == before
    assert main([*schedule, "--batch-size", "500"]) == 2
    assert "1 to 200" in capsys.readouterr().err
