"""``emailrouter rules plan|apply|verify|remove``: rule deployment from the shell or cron.

    emailrouter rules plan   --crm URL [--config FILE] [--ews URL] [--mailbox ADDR ...]
    emailrouter rules apply  --crm URL [--config FILE] --ews URL [--concurrency 4]
    emailrouter rules verify --crm URL [--config FILE] --ews URL
    emailrouter rules remove --crm URL [--config FILE] --ews URL [--dry-run]

``plan`` and ``verify`` change nothing. ``apply`` plans, applies and verifies; ``remove`` deletes
only rules this tool made (our name and a forward-as-attachment action). Exit status 0 when every
mailbox went as planned (verify: no drift), 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse


def _params(args: argparse.Namespace, **overrides) -> dict:
    from emailrouter_lib.rules.model import DEFAULT_RULE_NAME

    return {
        "crm": args.crm,
        "config": args.config,
        "ews": args.ews,
        "mailboxes": args.mailbox or [],
        "rule_name": args.rule_name or DEFAULT_RULE_NAME,
        "forward_mailbox": args.forward_mailbox,
        "max_concurrency": args.max_concurrency,
        **overrides,
    }


def _finish(result, args: argparse.Namespace, ok: bool) -> int:
    print(result)
    if args.run_dir:
        for name, path in result.write_artifacts(args.run_dir).items():
            print(f"  {name}: {path}")
    return 0 if ok else 1


def _plan(args: argparse.Namespace) -> int:
    from emailrouter_lib import rules

    result = rules.run(_params(args, dry_run=True))
    return _finish(result, args, "error" not in result.counts)


def _apply(args: argparse.Namespace) -> int:
    from emailrouter_lib import rules

    result = rules.run(_params(args, dry_run=False))
    return _finish(result, args, result.ok)


def _remove(args: argparse.Namespace) -> int:
    from emailrouter_lib import rules

    result = rules.run(_params(args, dry_run=args.dry_run, mode="remove"))
    return _finish(result, args, result.ok)


def _verify(args: argparse.Namespace) -> int:
    from emailrouter_lib import rules
    from emailrouter_lib.errors import ConfigError
    from emailrouter_lib.rules.apply import as_verified
    from emailrouter_lib.rules.flow import RulesResult

    if not args.ews:
        raise ConfigError("verify reads the mailboxes: give --ews URL")
    planned = rules.run(_params(args, dry_run=True))  # one read per mailbox
    checked = as_verified(planned.plan)
    result = RulesResult(
        planned.plan, None, checked, dry_run=True, params=planned.params, run=planned.run.finish()
    )
    return _finish(result, args, all(v.status in ("ok", "skipped") for v in checked))


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``rules`` (plan, apply, verify, remove) to the ``emailrouter`` command."""
    rules = commands.add_parser(
        "rules",
        help="deploy the forward-as-attachment inbox rule to forward-mailbox users",
        description="Plan, apply, verify or remove the server-side inbox rule that forwards "
        "each incoming message as an attachment to the forward mailbox.",
    )
    actions = rules.add_subparsers(dest="rules_command", required=True)
    for name, func, text in (
        ("plan", _plan, "show what apply would do (changes nothing)"),
        ("apply", _apply, "create or fix the rules, then verify them"),
        ("verify", _verify, "read every mailbox's rules and report drift (changes nothing)"),
        ("remove", _remove, "delete the rules this tool created"),
    ):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--crm", metavar="URL", help="CRM URL: its mailbox records")
        sub.add_argument("--config", metavar="PATH", help="a Microsoft.Crm.Tools.EmailAgent.xml")
        sub.add_argument(
            "--ews",
            metavar="URL",
            help="service account, e.g. ewss://DOMAIN%%5Csvc@mail.example/EWS/Exchange.asmx"
            "?password=env:EWS_PASSWORD (no mailbox=)",
        )
        sub.add_argument("--mailbox", action="append", metavar="ADDR", help="only these (repeat)")
        sub.add_argument("--rule-name", metavar="NAME", help="rule display name")
        sub.add_argument("--forward-mailbox", metavar="ADDR", help="override the forward mailbox")
        sub.add_argument(
            "--max-concurrency",
            "--concurrency",
            type=int,
            default=4,
            help="mailboxes at a time (4)",
        )
        sub.add_argument("--run-dir", metavar="DIR", help="write report.html, CSVs, manual files")
        if name == "remove":
            sub.add_argument("--dry-run", action="store_true", help="only plan the removal")
        sub.set_defaults(func=func)
