"""``emailrouter audit``: the mailbox audit from cron or the shell.

    emailrouter audit --crm sqlite:///crm.sqlite [--mailbox URL ...] [--config PATH ...]
                      [--since 30d] [--max-concurrency 8] [--run-dir DIR]
                      [--ews SERVICE-ACCOUNT-URL] [--rule-name NAME] [--forward-mailbox ADDR]

Exit status 0 when every mailbox that was tried answered, 1 when one did not (so a cron job can
alert), 2 on bad input (said before any mailbox is tried), 3 when the audit broke off.
"""

from __future__ import annotations

import argparse


def _audit(args: argparse.Namespace) -> int:
    from emailrouter_lib import audit
    from emailrouter_lib.errors import ConfigError
    from emailrouter_lib.routing.preflight import check_mailbox_urls, check_reference_template

    # Usage errors in the flags' words, before any mailbox is tried.
    if not (args.mailbox or args.crm or args.config):
        raise ConfigError("nothing to audit: give --mailbox URL, --crm URL or --config PATH")
    check_mailbox_urls("--mailbox", args.mailbox or [])
    check_reference_template("--config-password", args.config_password)
    result = audit.run(
        {
            "mailboxes": args.mailbox or [],
            "crm": args.crm,
            "config": args.config or [],
            "config_password": args.config_password,
            "url_template": args.url_template,
            "ledger": args.ledger,
            "since": None if args.since in ("all", "") else args.since,
            "max_concurrency": args.max_concurrency,
            "timeout": args.timeout,
            "max_items": args.max_items,
            "migration_plan": args.migration_plan,
            "ca_file": args.ca_file,
            "ews": args.ews,
            "rule_name": args.rule_name,
            "forward_mailbox": args.forward_mailbox,
            "progress": False if args.quiet else None,
        }
    )
    print(result)
    if args.run_dir:
        for name, path in result.write_artifacts(args.run_dir).items():
            print(f"  {name}: {path}")
    return 0 if result.ok else 1


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``audit`` to the ``emailrouter`` command."""
    audit = commands.add_parser(
        "audit",
        help="test access to every mailbox and report what is in them (changes nothing)",
        description="Test Access, Inbox counts by message class, CRM checks and past runs for "
        "every mailbox named by --mailbox, --config and the CRM.",
    )
    audit.add_argument("--mailbox", action="append", metavar="URL", help="a mailbox URL (repeat)")
    audit.add_argument("--crm", metavar="URL", help="CRM URL, e.g. sqlite:///crm.sqlite")
    audit.add_argument(
        "--config",
        action="append",
        metavar="PATH",
        help="a Microsoft.Crm.Tools.EmailAgent.xml (repeat for several routers)",
    )
    audit.add_argument(
        "--config-password", metavar="REF", help="secret reference template, e.g. env:PW_{local}"
    )
    audit.add_argument(
        "--url-template",
        metavar="URL",
        help="reach CRM mailboxes nobody listed, e.g. "
        "imaps://{address}@mail.example:993/INBOX?password=env:PW_{local}",
    )
    audit.add_argument("--ledger", metavar="PATH", help="routing ledger (default: beside the CRM)")
    audit.add_argument("--since", default="30d", help="window: 30d, 12h, 2w, a date, or all")
    audit.add_argument(
        "--max-concurrency",
        "--concurrency",
        type=int,
        default=8,
        help="mailboxes at a time (8)",
    )
    audit.add_argument("--timeout", type=float, default=30.0, help="seconds per network step")
    audit.add_argument("--max-items", type=int, default=2000, help="newest items read per mailbox")
    audit.add_argument("--migration-plan", metavar="PATH", help="link this plan from the report")
    audit.add_argument("--ca-file", "--cafile", metavar="PATH", help="trust this CA for TLS")
    audit.add_argument(
        "--ews",
        metavar="URL",
        help="service account that reads forward-delivery mailboxes' inbox rules, e.g. "
        "ewss://CONTOSO%%5Csvc@mail.contoso.com/EWS/Exchange.asmx?password=env:EWS_PASSWORD",
    )
    audit.add_argument("--rule-name", metavar="NAME", help="the forward rule's name to look for")
    audit.add_argument(
        "--forward-mailbox", metavar="ADDR", help="the forward mailbox the rule must name"
    )
    audit.add_argument("--run-dir", metavar="DIR", help="write report.html, audit.xlsx, CSVs here")
    audit.add_argument("--quiet", action="store_true", help="no progress bar")
    audit.set_defaults(func=_audit)
