"""``emailrouter migrate plan|apply|rollback``: the migration from a shell or cron.

    emailrouter migrate plan --config FILE [--config FILE ...] [--state FILE ...] [--crm URL]
                             [--format json|csv|xlsx] [--output PATH]
    emailrouter migrate apply --plan plan.json --crm URL [--record apply-record.json]
    emailrouter migrate rollback --record apply-record.json --crm URL

``plan`` changes nothing. ``apply`` writes a reviewed JSON plan (twice changes nothing the second
time) and records what it did; ``rollback`` undoes that record.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from emailrouter_lib.errors import EmailRouterError


def _plan(args: argparse.Namespace) -> int:
    from emailrouter_lib.migration.flow import run
    from emailrouter_lib.migration.writers import write_plan

    result = run(
        {
            "configs": args.config,
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
    print(f"rolled back {args.record} on {undo.crm}: {undo.counts or 'nothing to undo'}")
    return 0


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

    undo = migrate.add_parser("rollback", help="undo an apply from its record")
    undo.add_argument("--record", required=True, metavar="FILE")
    undo.add_argument("--crm", required=True, metavar="URL")
    undo.set_defaults(func=_rollback)


def main(argv: Sequence[str] | None = None) -> int:
    """``emailrouter migrate …`` on its own (until the lead wires :func:`register` into the
    main command); errors print one line on stderr and exit 2."""
    parser = argparse.ArgumentParser(prog="emailrouter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EmailRouterError as exc:
        print(f"emailrouter: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
