"""``emailrouter migrate plan|apply|rollback``: the migration from a shell or cron.

    emailrouter migrate plan --config FILE [--config FILE ...] [--state FILE ...] [--crm URL]
                             [--format json|csv|xlsx] [--output PATH]
    emailrouter migrate apply --plan plan.json --crm URL [--record apply-record.json]
    emailrouter migrate rollback --record apply-record.json --crm URL
    emailrouter migrate schedule plan --plan plan.json --crm URL [--batch N] [--start ISO]
                                      [--output test-and-enable-plan.json]
    emailrouter migrate schedule apply --batch-plan test-and-enable-plan.json --crm URL

``plan`` changes nothing. ``apply`` writes a reviewed JSON plan (twice changes nothing the second
time) and records what it did; ``rollback`` undoes that record (or a ``schedule apply`` record).
``schedule plan`` picks one Test & Enable batch (at most 200 mailboxes, queues first) and
``schedule apply`` sets its mailboxes' "Process Email From" and Test & Enable flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _plan(args: argparse.Namespace) -> int:
    from emailrouter_lib.migration.flow import run
    from emailrouter_lib.migration.writers import write_plan

    result = run(
        {
            "config": args.config,
            "states": args.state,
            "crm": args.crm,
            "dry_run": True,
            "crm_on_premises": args.crm_on_premises,
        }
    )
    fmt = args.format
    if args.output is None and fmt == "json":
        sys.stdout.write(result.plan.to_json())
        return 0
    output = Path(args.output or {"csv": "migration-plan", "xlsx": "migration-plan.xlsx"}[fmt])
    extra = {k: v for k, v in result.tables().items() if k in ("schedule", "batches")}
    for path in write_plan(result.plan, output, fmt, extra_tables=extra):
        print(f"wrote {path}")
    print(str(result).splitlines()[0], file=sys.stderr)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import open_crm
    from emailrouter_lib.migration.apply import apply_plan
    from emailrouter_lib.migration.writers import read_plan

    plan = read_plan(args.plan)
    record_path = _unused(Path(args.record or Path(args.plan).with_name("apply-record.json")))
    crm = open_crm(args.crm)
    try:
        record = apply_plan(
            plan, crm, switch_channel=not args.keep_channel, record_path=record_path
        )
    finally:
        crm.close()
    print(f"applied to {record.crm}: {record.counts}; record: {record_path}")
    return 0


def _unused(path: Path) -> Path:
    """*path*, or ``name.2.json``, ``name.3.json``…: an apply never overwrites the record that
    undoes an earlier one."""
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}.{number}{path.suffix}")
    return candidate


def _rollback(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import open_crm
    from emailrouter_lib.migration.apply import ApplyRecord, rollback

    record = ApplyRecord.read(args.record)
    crm = open_crm(args.crm)
    try:
        undo = rollback(record, crm, record_path=args.record)
    finally:
        crm.close()
    done = undo.counts if undo.changed else "nothing to undo (already rolled back)"
    print(f"rolled back {args.record} on {undo.crm}: {done}")
    return 0


def _schedule_plan(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import open_crm
    from emailrouter_lib.migration.enable import plan_test_and_enable
    from emailrouter_lib.migration.writers import read_plan

    plan = read_plan(args.plan)
    crm = open_crm(args.crm)
    try:
        enable = plan_test_and_enable(
            plan,
            crm,
            batch=args.batch,
            start=args.start,
            batch_size=args.batch_size,
            lookback_hours=args.lookback_hours,
        )
    finally:
        crm.close()
    output = Path(args.output or Path(args.plan).with_name("test-and-enable-plan.json"))
    enable.write(output)
    print(f"Test & Enable batch {enable.batch}: {enable.counts or 'no mailbox'}; plan: {output}")
    return 0


def _schedule_apply(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import open_crm
    from emailrouter_lib.migration.enable import EnablePlan, apply_test_and_enable

    enable = EnablePlan.read(args.batch_plan)
    default = Path(args.batch_plan).with_name("test-and-enable-record.json")
    record_path = _unused(Path(args.record or default))
    crm = open_crm(args.crm)
    try:
        record = apply_test_and_enable(enable, crm, record_path=record_path)
    finally:
        crm.close()
    print(
        f"scheduled Test & Enable batch {enable.batch} on {record.crm}: "
        f"{record.counts or 'nothing to do'}; record: {record_path}"
    )
    return 0


def _register_schedule(migrate: argparse._SubParsersAction) -> None:
    schedule = migrate.add_parser(
        "schedule", help="Test & Enable one batch of migrated mailboxes (plan, then apply)"
    ).add_subparsers(dest="schedule_command", required=True)
    plan = schedule.add_parser("plan", help="pick one batch and compare it with the CRM")
    plan.add_argument("--plan", required=True, metavar="FILE", help="plan.json from `plan`")
    plan.add_argument("--crm", required=True, metavar="URL")
    plan.add_argument("--batch", type=int, default=1, help="batch number (1: the first)")
    plan.add_argument(
        "--start", metavar="ISO", help="when batch 1 starts (default: now); sets Process Email From"
    )
    plan.add_argument("--batch-size", type=int, default=200, help="at most 200 (the default)")
    plan.add_argument("--lookback-hours", type=float, default=24.0, help="default 24")
    plan.add_argument(
        "--output", metavar="FILE", help="default: test-and-enable-plan.json beside --plan"
    )
    plan.set_defaults(func=_schedule_plan)
    apply = schedule.add_parser("apply", help="schedule a reviewed batch in the CRM")
    apply.add_argument("--batch-plan", required=True, metavar="FILE")
    apply.add_argument("--crm", required=True, metavar="URL")
    apply.add_argument("--record", metavar="FILE", help="default: beside --batch-plan")
    apply.set_defaults(func=_schedule_apply)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``migrate plan|apply|rollback`` to the ``emailrouter`` command."""
    migrate = commands.add_parser(
        "migrate", help="migrate router settings to server-side synchronization"
    ).add_subparsers(dest="migrate_command", required=True)

    plan = migrate.add_parser("plan", help="write the migration plan (changes nothing)")
    plan.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="FILE",
        help="a router's Microsoft.Crm.Tools.EmailAgent.xml (repeat for several routers; the "
        "first listing a user decides its profile)",
    )
    plan.add_argument(
        "--state",
        action="append",
        metavar="FILE",
        help="the SystemState.xml of the --config at the same position (default: beside it)",
    )
    plan.add_argument("--crm", metavar="URL", help="CRM URL, e.g. sqlite:///crm.sqlite")
    plan.add_argument("--format", choices=("json", "csv", "xlsx"), default="json")
    plan.add_argument(
        "--output",
        metavar="PATH",
        help="file (json, xlsx) or folder (csv); json without --output goes to stdout",
    )
    plan.add_argument(
        "--crm-on-premises",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the CRM is on premises (Exchange Online profiles become servertype 3); default: "
        "guessed from the providers' CrmServerUrl",
    )
    plan.set_defaults(func=_plan)

    apply = migrate.add_parser("apply", help="write a reviewed JSON plan into the CRM")
    apply.add_argument("--plan", required=True, metavar="FILE", help="plan.json from `plan`")
    apply.add_argument("--crm", required=True, metavar="URL")
    apply.add_argument(
        "--record", metavar="FILE", help="where to keep the undo record (default: beside the plan)"
    )
    apply.add_argument(
        "--keep-channel",
        action="store_true",
        help="leave organization.emailconnectionchannel as it is (switch later by hand)",
    )
    apply.set_defaults(func=_apply)

    undo = migrate.add_parser(
        "rollback",
        help="undo an apply from its record",
        description="Undo an `apply` (or a `schedule apply`) from the record it wrote: newest "
        "change first, created rows deleted, updated rows given their old values. Rolling back "
        "twice changes nothing the second time.",
    )
    undo.add_argument(
        "--record",
        required=True,
        metavar="FILE",
        help="the apply-record.json that `migrate apply` wrote (or a schedule apply record)",
    )
    undo.add_argument("--crm", required=True, metavar="URL", help="the CRM the plan was applied to")
    undo.set_defaults(func=_rollback)

    _register_schedule(migrate)
