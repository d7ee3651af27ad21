"""``emailrouter config load-data|test-access|publish``: the Configuration Manager for cron and
the shell. ``config validate`` stays in the main CLI.

    emailrouter config load-data EmailAgent.xml --crm sqlite:///crm.sqlite [--apply]
    emailrouter config test-access EmailAgent.xml --crm sqlite:///crm.sqlite \\
        --password 'env:MAILBOX_PW_{local}' [--mailbox ADDRESS=URL] [--only ADDRESS]
    emailrouter config publish STAGED.xml --to 'C:/Program Files/…/EmailAgent.xml' [--apply]

Without ``--apply`` nothing is written: the plan (and the diff) is printed. It lives with the
Configuration Manager's flow, above the config, CRM and mailbox layers it uses; they are imported
inside the commands so that ``emailrouter --help`` stays fast.
"""

from __future__ import annotations

import argparse

from emailrouter_lib.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    """Add the commands to the ``emailrouter config`` sub-command group."""
    load = commands.add_parser(
        "load-data", help="plan (and --apply) the users and queues a CRM routes through the router"
    )
    load.add_argument("path", help="the Microsoft.Crm.Tools.EmailAgent.xml to update")
    load.add_argument("--crm", required=True, metavar="URL", help="e.g. sqlite:///crm.sqlite")
    load.add_argument("--deployment", metavar="URL", help="CRM server URL (default: the only one)")
    load.add_argument("--keep-gone", action="store_true", help="keep entries the CRM no longer has")
    load.add_argument(
        "--remove-profiles",
        action="store_true",
        help="also remove a profile whose last user or queue is gone (kept otherwise)",
    )
    load.add_argument("--to", metavar="PATH", help="publish to this file instead of PATH")
    load.add_argument("--apply", action="store_true", help="write the file (after a backup)")
    load.set_defaults(func=_load_data)

    access = commands.add_parser(
        "test-access", help="log in to every enabled mailbox (POP3, IMAP, SMTP, EWS)"
    )
    access.add_argument("path", help="a Microsoft.Crm.Tools.EmailAgent.xml")
    access.add_argument("--crm", metavar="URL", help="CRM for the users' and queues' addresses")
    access.add_argument(
        "--password", metavar="REF", help="secret reference template, e.g. env:MAILBOX_PW_{local}"
    )
    access.add_argument(
        "--mailbox",
        action="append",
        default=[],
        metavar="ADDRESS=URL",
        help="test this mailbox URL for ADDRESS instead of the one its profile gives",
    )
    access.add_argument("--only", action="append", metavar="ADDRESS", help="test only these")
    access.add_argument("--timeout", type=float, default=10.0, help="seconds per connection")
    access.add_argument(
        "--max-concurrency", "--workers", type=int, default=4, help="connections at a time"
    )
    access.add_argument(
        "--ca-file", "--cafile", metavar="PATH", help="trust this CA (on-premises CAs)"
    )
    access.set_defaults(func=_test_access)

    publish = commands.add_parser(
        "publish", help="show the diff and (--apply) write a configuration for the service"
    )
    publish.add_argument("source", help="the edited configuration")
    publish.add_argument("--to", metavar="PATH", help="the service's file (default: SOURCE)")
    publish.add_argument("--apply", action="store_true", help="write it (after a backup)")
    publish.add_argument("--no-backup", action="store_true", help="do not keep the old file")
    publish.set_defaults(func=_publish)


def _load_data(args: argparse.Namespace) -> int:
    from emailrouter_lib.config import load_config
    from emailrouter_lib.config.edit import ConfigEditor
    from emailrouter_lib.config.load_data import apply_load_data, plan_load_data
    from emailrouter_lib.crm import open_crm

    config = load_config(args.path)
    editor = ConfigEditor(config)
    crm = open_crm(args.crm)
    try:
        records = _records(crm)
    finally:
        crm.close()
    plan = plan_load_data(
        editor,
        records,
        deployment=args.deployment,
        remove_gone=not args.keep_gone,
        remove_profiles=args.remove_profiles,
    )
    print(plan)
    apply_load_data(editor, plan, records)
    return _finish_publish(config, args.to or args.path, apply=args.apply, backup=True)


def _test_access(args: argparse.Namespace) -> int:
    from emailrouter_lib.config import load_config
    from emailrouter_lib.config.edit import ConfigEditor
    from emailrouter_lib.mailboxes.access import access_targets, test_access

    editor = ConfigEditor(load_config(args.path))
    if args.crm:
        from emailrouter_lib.config.load_data import learn_records
        from emailrouter_lib.crm import open_crm

        crm = open_crm(args.crm)
        try:
            learn_records(editor, _records(crm))  # addresses only; the entries stay as listed
        finally:
            crm.close()
    overrides = {}
    for item in args.mailbox:
        address, sep, url = item.partition("=")
        if not sep or not url:
            raise ConfigError(f"--mailbox {item!r} must be ADDRESS=URL")
        overrides[address] = url
    targets = access_targets(
        editor, password=args.password, overrides=overrides, only=args.only or None
    )
    report = test_access(
        targets, workers=args.max_concurrency, timeout=args.timeout, ca_file=args.ca_file
    )
    print(report)
    return 0 if report.ok else 1


def _publish(args: argparse.Namespace) -> int:
    from emailrouter_lib.config import load_config

    config = load_config(args.source)
    return _finish_publish(
        config, args.to or args.source, apply=args.apply, backup=not args.no_backup
    )


def _finish_publish(config, target: str, *, apply: bool, backup: bool) -> int:
    from emailrouter_lib.config.publish import apply_publish, plan_publish

    plan = plan_publish(config, target)
    print(plan)
    if apply:
        print(apply_publish(plan, backup=backup))
    elif plan.changed:
        print("(dry run: add --apply to write it)")
    return 0


def _records(crm) -> list:
    """Every user and queue of the CRM (SQLite or Dataverse: both declare RecipientDirectory)."""
    from emailrouter_lib.crm.base import require

    return list(require(crm, "list its users and queues").recipients())


__all__ = ["register"]
