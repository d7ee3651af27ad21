"""Applying a plan to the embedded SQLite CRM: idempotent, recorded, and undone exactly.

"Exactly" is checked on whole rows: every column of every ``emailserverprofile``, ``mailbox``,
``systemuser``, ``queue`` and ``organization`` row is the same after apply + rollback as before
the apply. Faults are injected into the real SQLite CRM (``FaultyStore``), with and without its
transaction.
"""

from __future__ import annotations

import json

import pytest
from fixtures_migration import (
    FaultyStore,
    assert_no_secret,
    set_delivery_methods,
    snapshot,
    variant,
)

from emailrouter_lib.cli import main
from emailrouter_lib.config import load_config
from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.crm.base import MailboxSettingsStore
from emailrouter_lib.demo.migration import prepare_migration_demo
from emailrouter_lib.errors import ConfigError, CrmError, ParameterError
from emailrouter_lib.migration import (
    ApplyRecord,
    PlanOptions,
    apply_plan,
    build_plan,
    read_plan,
    rollback,
    run,
    write_plan,
)
from emailrouter_lib.migration import apply as apply_module

FRANK = "user:0a1b2c3d-13d8-e011-9077-00155d012a03"
SUPPORT_QUEUE = "5e6f7a8b-19d8-e011-9077-00155d012b01"  # in router-a.xml, planned 2 / 2
ROUTERS = ("router-a.xml", "router-b.xml")


def plan_for(crm, *names):
    routers = [load_config(variant(n)) for n in names]
    return build_plan(routers, crm, PlanOptions(created="2024-03-08T00:00:00Z"))


def test_sqlite_crm_is_a_mailbox_settings_store(demo_crm):
    assert isinstance(demo_crm, MailboxSettingsStore)


def test_apply_twice_changes_nothing_the_second_time(demo_crm, tmp_path):
    plan = plan_for(demo_crm, "router-a.xml", "router-b.xml")
    first = apply_plan(plan, demo_crm, record_path=tmp_path / "record.json")
    assert first.status == "applied" and first.changed > 0
    assert first.counts["created"] >= len(plan.profiles)
    after_first = snapshot(demo_crm)

    second = apply_plan(plan_for(demo_crm, "router-a.xml", "router-b.xml"), demo_crm)
    assert second.changed == 0 and set(second.counts) == {"unchanged"}
    assert snapshot(demo_crm) == after_first
    replanned = plan_for(demo_crm, "router-a.xml", "router-b.xml")
    assert {p.action for p in replanned.profiles} == {"unchanged"}
    assert {mb.action for mb in replanned.mailboxes} <= {"unchanged", "skip"}
    assert replanned.organization.action == "unchanged"


def test_apply_writes_the_planned_values(demo_crm):
    plan = plan_for(demo_crm, "router-a.xml")
    apply_plan(plan, demo_crm)
    profiles = {row["name"]: row for row in demo_crm.rows("emailserverprofile")}
    relay = profiles["Queue POP3 + Relay"]
    assert (relay["servertype"], relay["outgoingusessl"], relay["outgoingcredentialretrieval"]) == (
        1,
        0,
        4,
    )
    frank = demo_crm.rows("mailbox", regardingobjectid=FRANK.split(":")[1])[0]
    assert frank["incomingemaildeliverymethod"] == 3
    assert frank["emailserverprofile"] == profiles["Contoso Exchange in"]["emailserverprofileid"]
    forward = demo_crm.rows("mailbox", emailaddress="crm-forward@contoso.example")
    assert len(forward) == 1 and forward[0]["isforwardmailbox"] == 1  # updated, not duplicated
    assert demo_crm.organization().emailconnectionchannel == 0


def test_rollback_restores_the_exact_previous_rows(demo_crm, tmp_path):
    before = snapshot(demo_crm)
    plan = plan_for(demo_crm, "router-a.xml", "router-b.xml")
    record_path = tmp_path / "record.json"
    apply_plan(plan, demo_crm, record_path=record_path)
    assert snapshot(demo_crm) != before
    record = ApplyRecord.read(record_path)
    undo = rollback(record, demo_crm, record_path=record_path)
    assert snapshot(demo_crm) == before
    assert undo.counts.get("deleted", 0) >= 1 and undo.counts.get("updated", 0) >= 1
    again = rollback(ApplyRecord.read(record_path), demo_crm)  # harmless the second time
    assert snapshot(demo_crm) == before and again.changed == 0 and "deleted" not in again.counts
    assert ApplyRecord.read(record_path).status == "rolled back"
    assert_no_secret(record_path.read_text(encoding="utf-8"), "the apply record")


def test_a_json_plan_applies_like_the_plan_itself(demo_crm, tmp_path):
    plan = plan_for(demo_crm, "router-a.xml")
    (path,) = write_plan(plan, tmp_path / "plan.json")
    record = apply_plan(read_plan(path), demo_crm)
    direct = apply_plan(plan, demo_crm)
    assert record.changed > 0 and direct.changed == 0


def test_rollback_refuses_another_crm(demo_crm, tmp_path):
    record = apply_plan(plan_for(demo_crm, "router-a.xml"), demo_crm)
    other = open_crm(init_crm(f"sqlite:///{tmp_path / 'other.sqlite'}", demo=True))
    try:
        with pytest.raises(CrmError, match="roll back against the CRM"):
            rollback(record, other)
    finally:
        other.close()


def test_apply_writes_delivery_methods_on_the_user_and_queue_too(demo_crm):
    set_delivery_methods(demo_crm, "queue", SUPPORT_QUEUE, 0, 0)
    plan = plan_for(demo_crm, *ROUTERS)
    queue_plan = next(mb for mb in plan.mailboxes if mb.owner == f"queue:{SUPPORT_QUEUE}")
    assert "queue.incomingemaildeliverymethod" in queue_plan.changes
    record = apply_plan(plan, demo_crm)
    assert {c.table for c in record.changes if c.action == "updated"} >= {"systemuser", "queue"}
    queue = demo_crm.rows("queue", queueid=SUPPORT_QUEUE)[0]
    mailbox = demo_crm.rows("mailbox", regardingobjectid=SUPPORT_QUEUE)[0]
    for row in (queue, mailbox):
        assert (row["incomingemaildeliverymethod"], row["outgoingemaildeliverymethod"]) == (2, 2)
    frank = demo_crm.rows("systemuser", systemuserid=FRANK.split(":")[1])[0]
    assert frank["incomingemaildeliverymethod"] == 3  # forward mailbox, on both sides
    assert record.transaction is True


def test_apply_again_then_rollback_restores_every_touched_table(demo_crm, tmp_path):
    set_delivery_methods(demo_crm, "queue", SUPPORT_QUEUE, 0, 0)
    before = snapshot(demo_crm)
    record_path = tmp_path / "record.json"
    first = apply_plan(plan_for(demo_crm, *ROUTERS), demo_crm, record_path=record_path)
    after = snapshot(demo_crm)
    assert all(after[table] != before[table] for table in before), "every table is touched"
    second = apply_plan(plan_for(demo_crm, *ROUTERS), demo_crm)
    assert second.changed == 0 and snapshot(demo_crm) == after
    rollback(ApplyRecord.read(record_path), demo_crm)
    assert snapshot(demo_crm) == before
    assert first.changed > 0


@pytest.mark.parametrize(
    ("method", "after"),
    [
        ("save_mailbox", 3),  # in the middle of the mailboxes
        ("update_recipient", 2),  # on a user's own columns
        ("set_email_connection_channel", 0),  # the very last write
    ],
)
def test_a_failure_mid_apply_on_sqlite_leaves_nothing_written(
    demo_crm,
    tmp_path,
    method,
    after,
):
    set_delivery_methods(demo_crm, "queue", SUPPORT_QUEUE, 0, 0)
    before = snapshot(demo_crm)
    record_path = tmp_path / "record.json"
    store = FaultyStore(demo_crm, method, after=after)
    with pytest.raises(CrmError, match="injected"):
        apply_plan(plan_for(demo_crm, *ROUTERS), store, record_path=record_path)
    assert snapshot(demo_crm) == before
    record = ApplyRecord.read(record_path)
    assert record.status == "failed" and record.transaction is True
    assert record.changes == [] and record.discarded > 0
    assert "nothing was written" in record.error
    assert apply_plan(plan_for(demo_crm, *ROUTERS), demo_crm).changed > 0  # still appliable


def test_without_a_transaction_the_record_undoes_a_partial_apply(
    demo_crm,
    tmp_path,
    monkeypatch,
):
    """A store that cannot group writes (``atomic()`` yields False) keeps what it wrote; the
    record, written every CHECKPOINT changes and at the end, undoes exactly that."""
    monkeypatch.setattr(apply_module, "CHECKPOINT", 2)
    set_delivery_methods(demo_crm, "queue", SUPPORT_QUEUE, 0, 0)
    before = snapshot(demo_crm)
    record_path = tmp_path / "record.json"
    on_disk: list[int] = []

    def look_at_the_record():  # what a crash right now would leave behind
        on_disk.append(len(ApplyRecord.read(record_path).changes))

    store = FaultyStore(
        demo_crm, "save_mailbox", after=4, transactions=False, on_fault=look_at_the_record
    )
    with pytest.raises(CrmError, match="injected"):
        apply_plan(plan_for(demo_crm, *ROUTERS), store, record_path=record_path)
    assert snapshot(demo_crm) != before  # half written, as such a store would be
    record = ApplyRecord.read(record_path)
    assert record.status == "failed" and record.transaction is False and record.changes
    assert on_disk and on_disk[0] >= 2 and on_disk[0] % 2 == 0
    rollback(record, demo_crm)
    assert snapshot(demo_crm) == before


def test_read_plan_and_record_errors_name_the_file(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plan\.json"):
        read_plan(bad)
    bad.write_text(json.dumps({"schema": "something-else"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a migration plan"):
        read_plan(bad)
    with pytest.raises(ConfigError, match="not an apply record"):
        ApplyRecord.read(bad)


def test_run_applies_the_demo_and_writes_the_record(tmp_path):
    env = prepare_migration_demo(tmp_path / "demo")
    result = run(
        {
            "config": [str(env.config)],
            "crm": env.crm_url,
            "dry_run": False,
            "run_dir": str(tmp_path / "run"),
        }
    )
    assert result.record.status == "applied"
    assert (tmp_path / "run" / "apply-record.json").is_file()
    with pytest.raises(ParameterError, match="unknown migration parameter"):
        run({"config": [str(env.config)], "dryrun": False})
    with pytest.raises(ConfigError, match="no crm"):
        run({"config": [str(env.config)], "dry_run": False})


# --- the command line ---------------------------------------------------------------------------


def test_cli_plan_apply_rollback(tmp_path, capsys):
    env = prepare_migration_demo(tmp_path / "demo")
    plan_path = tmp_path / "plan.json"
    config = str(env.config)
    assert main(["migrate", "plan", "--config", config, "--crm", env.crm_url]) == 0
    stdout = capsys.readouterr().out
    assert json.loads(stdout)["schema"] == "emailrouter.migration-plan/1"
    assert_no_secret(stdout, "plan on stdout")
    args = ["migrate", "plan", "--config", config, "--crm", env.crm_url]
    assert main([*args, "--output", str(plan_path)]) == 0
    assert main([*args, "--format", "csv", "--output", str(tmp_path / "csv")]) == 0
    assert {p.name for p in (tmp_path / "csv").iterdir()} >= {
        "profiles.csv",
        "mailboxes.csv",
        "not_migrated.csv",
        "warnings.csv",
        "schedule.csv",
    }
    assert main([*args, "--format", "xlsx", "--output", str(tmp_path / "plan.xlsx")]) == 0
    capsys.readouterr()

    with open_crm(env.crm_url) as crm:
        before = snapshot(crm)
    assert main(["migrate", "apply", "--plan", str(plan_path), "--crm", env.crm_url]) == 0
    assert "created" in capsys.readouterr().out
    record = tmp_path / "apply-record.json"
    assert record.is_file()
    assert main(["migrate", "apply", "--plan", str(plan_path), "--crm", env.crm_url]) == 0
    assert "{'unchanged'" in capsys.readouterr().out
    second = tmp_path / "apply-record.2.json"  # the first record, which undoes, is kept
    assert ApplyRecord.read(record).changed > 0 and ApplyRecord.read(second).changed == 0
    assert main(["migrate", "rollback", "--record", str(record), "--crm", env.crm_url]) == 0
    with open_crm(env.crm_url) as crm:
        assert snapshot(crm) == before


def test_cli_rollback_restores(tmp_path, capsys):
    env = prepare_migration_demo(tmp_path / "demo")
    plan_path = tmp_path / "plan.json"
    config = str(env.config)
    args = ["migrate", "plan", "--config", config, "--crm", env.crm_url]
    assert main([*args, "--output", str(plan_path)]) == 0
    with open_crm(env.crm_url) as crm:
        before = snapshot(crm)
    record = tmp_path / "first.json"
    args = ["migrate", "apply", "--plan", str(plan_path), "--crm", env.crm_url]
    assert main([*args, "--record", str(record)]) == 0
    assert main(["migrate", "rollback", "--record", str(record), "--crm", env.crm_url]) == 0
    assert "rolled back" in capsys.readouterr().out
    with open_crm(env.crm_url) as crm:
        assert snapshot(crm) == before
    missing = str(tmp_path / "nope.json")
    assert main(["migrate", "rollback", "--record", missing, "--crm", env.crm_url]) == 2
    assert "cannot read the apply record" in capsys.readouterr().err
