"""The ``emailrouter`` command: thin fronts over the library for cron and the shell.

    emailrouter route --mailbox URL [--mailbox URL ...] --crm URL [--outgoing]
    emailrouter route --crm URL [--transport [ADDRESS=]URL]    (send what is pending)
    emailrouter crm init sqlite:///PATH [--demo] [--force]
    emailrouter config validate PATH
    emailrouter classify [--json] FILE...
    emailrouter config load-data|test-access|publish ...
    emailrouter audit ...
    emailrouter migrate plan|apply|rollback ...
    emailrouter rules plan|apply|verify|remove ...

Library errors are printed as one line on stderr (exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emailrouter_lib.audit import cli as audit_cli
from emailrouter_lib.config import cli as config_manager
from emailrouter_lib.errors import EmailRouterError
from emailrouter_lib.migration import cli as migration_cli
from emailrouter_lib.rules import cli as rules_cli


def _route(args: argparse.Namespace) -> int:
    from emailrouter_lib import routing

    params = {
        "mailboxes": args.mailbox or [],
        "crm": args.crm,
        "config": args.config,
        "config_password": args.config_password,
        "ledger": args.ledger,
        "quarantine_dir": args.quarantine,
        "batch_size": args.batch_size,
        "max_concurrency": args.max_concurrency,
        "lease_seconds": args.lease_seconds,
        "ca_file": args.cafile,
        "progress": False if args.quiet else None,
    }
    if args.track:
        from emailrouter_lib.mail.classify import TRACKED_CLASSES

        params["tracked_classes"] = list(dict.fromkeys([*TRACKED_CLASSES, *args.track]))
    if args.outgoing or not (args.mailbox or args.config):
        # --outgoing adds sending; with --crm alone, sending is all there is to do
        params["directions"] = (["incoming"] if args.mailbox or args.config else []) + ["outgoing"]
        params["transports"] = args.transport or []
        params["transport_password"] = args.transport_password
    result = routing.run(params)
    print(result)
    if args.run_dir:
        for name, path in result.write_artifacts(args.run_dir).items():
            print(f"  {name}: {path}")
    return 0 if result.ok else 1


def _crm_init(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import init_crm

    where = init_crm(args.url, demo=args.demo, force=args.force)
    print(f"created {where}" + (" with demo data" if args.demo else ""))
    return 0


def _config_validate(args: argparse.Namespace) -> int:
    from emailrouter_lib.config import main_validate

    return main_validate(args.path)


def _classify(args: argparse.Namespace) -> int:
    from emailrouter_lib.mail.cli import main_classify

    return main_classify(args.files, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emailrouter", description="Route email into Dynamics CRM, like the Email Router did."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    route = commands.add_parser(
        "route", help="run one routing batch: incoming mailboxes, outgoing CRM email"
    )
    route.add_argument(
        "--config",
        metavar="PATH",
        help="a Microsoft.Crm.Tools.EmailAgent.xml: route the POP3 mailboxes its providers list "
        "and, with --outgoing, send through the outgoing provider listing each user or queue",
    )
    route.add_argument(
        "--config-password",
        metavar="REF",
        help="secret reference template for those mailboxes, e.g. env:PW_{local}",
    )
    route.add_argument(
        "--mailbox",
        action="append",
        metavar="URL",
        help="mailbox URL, e.g. imaps://crm@mail.example:993/INBOX?owner=queue:support@example.com&password=env:IMAP_PW",
    )
    route.add_argument(
        "--crm", required=True, metavar="URL", help="CRM URL, e.g. sqlite:///crm.sqlite"
    )
    route.add_argument(
        "--ledger", metavar="PATH", help="exactly-once ledger (default: beside the CRM)"
    )
    route.add_argument(
        "--quarantine", metavar="DIR", help="quarantine folder (default: beside the ledger)"
    )
    route.add_argument(
        "--run-dir", metavar="DIR", help="write summary.json, results.csv and report.html here"
    )
    route.add_argument(
        "--outgoing",
        action="store_true",
        help="also send the CRM's Pending Send emails (the default when no --mailbox is given)",
    )
    route.add_argument(
        "--transport",
        action="append",
        metavar="[ADDRESS=]URL",
        help="how to send: smtp://user@host:587?starttls=1&password=env:SMTP_PW, smtps://…, "
        "ewss://…?mailbox=ADDRESS (Exchange), pickup:///dir; ADDRESS= for one sender only "
        "(default: the --config outgoing provider, the CRM mailbox's email server profile, "
        "else a pickup folder beside the ledger)",
    )
    route.add_argument(
        "--transport-password",
        metavar="REF",
        help="secret reference template for transports taken from --config or the CRM's email "
        "server profiles, e.g. env:SMTP_PW_{local} (default: --config-password)",
    )
    route.add_argument("--batch-size", type=int, default=200)
    route.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="mailboxes routed at once (default: 4 when a mailbox is on a server, else 1)",
    )
    route.add_argument(
        "--track",
        action="append",
        default=[],
        metavar="CLASS",
        help="also track this message class besides IPM.Note and out-of-office replies, e.g. "
        "IPM.Note.SMIME.MultipartSigned (repeat)",
    )
    route.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how long this run holds each mailbox without renewing (default 300): another run "
        "skips a held mailbox, and takes over a crashed run's once its lease expired",
    )
    route.add_argument("--cafile", metavar="PATH", help="trust this CA for TLS (on-premises CAs)")
    route.add_argument("--quiet", action="store_true", help="no progress bar")
    route.set_defaults(func=_route)

    crm = commands.add_parser("crm", help="the embedded CRM").add_subparsers(
        dest="crm_command", required=True
    )
    init = crm.add_parser("init", help="create an embedded CRM database")
    init.add_argument("url", metavar="sqlite:///PATH")
    init.add_argument(
        "--demo", action="store_true", help="seed demo users, queues, contacts and emails"
    )
    init.add_argument("--force", action="store_true", help="replace an existing database")
    init.set_defaults(func=_crm_init)

    config = commands.add_parser("config", help="router configuration files").add_subparsers(
        dest="config_command", required=True
    )
    validate = config.add_parser("validate", help="check a Microsoft.Crm.Tools.EmailAgent.xml")
    validate.add_argument("path")
    validate.set_defaults(func=_config_validate)
    config_manager.register(config)

    classify = commands.add_parser("classify", help="infer the message class of .eml files")
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("files", nargs="+", metavar="FILE")
    classify.set_defaults(func=_classify)

    # Each flow's own commands live beside it; these modules import their flow lazily.
    audit_cli.register(commands)
    migration_cli.register(commands)
    rules_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmailRouterError as exc:
        print(f"emailrouter: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
