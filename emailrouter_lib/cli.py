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

Every command exits as :mod:`emailrouter_lib.exit_codes` says: 0 ok, 1 some mailbox or message
failed, 2 bad input (one line on stderr, nothing ran), 3 the command failed part way (one line on
stderr). Never a traceback, except for a bug, which is labelled as one.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from emailrouter_lib import exit_codes
from emailrouter_lib.audit import cli as audit_cli
from emailrouter_lib.configure import cli as config_manager
from emailrouter_lib.errors import EmailRouterError
from emailrouter_lib.migration import cli as migration_cli
from emailrouter_lib.rules import cli as rules_cli
from emailrouter_lib.secrets import mask_output_streams, refuse_literal_secrets


def _route(args: argparse.Namespace) -> int:
    from emailrouter_lib import routing
    from emailrouter_lib.routing.preflight import (
        check_mailbox_urls,
        check_reference_template,
        check_transports,
    )

    # A typo is a usage error: said before anything is routed or sent, in the flags' words.
    check_mailbox_urls("--mailbox", args.mailbox or [])
    check_transports("--transport", args.transport or [])
    check_reference_template("--config-password", args.config_password)
    check_reference_template("--transport-password", args.transport_password)
    params = {
        "mailboxes": args.mailbox or [],
        "crm": args.crm,
        "config": args.config,
        "config_password": args.config_password,
        "ledger": args.ledger,
        "quarantine_dir": args.quarantine,
        "batch_size": args.batch_size,
        "batch_bytes": args.batch_bytes,
        "max_concurrency": args.max_concurrency,
        "lease_seconds": args.lease_seconds,
        "ca_file": args.ca_file,
        "progress": False if args.quiet else None,
        "dry_run": args.dry_run,
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
    if args.run_dir:
        for name, path in result.write_artifacts(args.run_dir).items():
            print(f"  {name}: {path}")
    print(result)  # ends with the verdict and the counts, the line a cron mail shows
    for line in result.warnings:
        print(f"emailrouter: warning: {line}", file=sys.stderr)
    for line in result.failures:
        print(f"emailrouter: failed: {line}", file=sys.stderr)
    return exit_codes.for_result(result.ok)


def _crm_init(args: argparse.Namespace) -> int:
    from emailrouter_lib.crm import init_crm

    where = init_crm(args.url, demo=args.demo, force=args.force)
    print(f"created {where}" + (" with demo data" if args.demo else ""))
    return exit_codes.OK


def _config_validate(args: argparse.Namespace) -> int:
    from emailrouter_lib.config import main_validate

    return main_validate(args.path)


def _classify(args: argparse.Namespace) -> int:
    from emailrouter_lib.mail.cli import main_classify

    return main_classify(args.files, as_json=args.json)


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return value


EXIT_STATUS = (
    "exit status: 0 ok; 1 some mailbox or message failed (the rest was done); 2 bad input "
    "(nothing ran); 3 the command failed part way (rerunning is safe)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emailrouter",
        description="Route email into Dynamics CRM, like the Email Router did.",
        epilog=EXIT_STATUS,
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
    route.add_argument(
        "--batch-size",
        type=positive_int,
        default=200,
        metavar="N",
        help="messages fetched and committed together per mailbox (default 200); a crash "
        "repeats at most one batch, never creates an activity twice",
    )
    route.add_argument(
        "--batch-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="bytes of messages held in one batch at most (default 67108864, 64 MB; a larger "
        "message makes a batch of its own)",
    )
    route.add_argument(
        "--max-concurrency",
        type=positive_int,
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
    route.add_argument(
        "--ca-file", "--cafile", metavar="PATH", help="trust this CA for TLS (on-premises CAs)"
    )
    route.add_argument(
        "--dry-run",
        action="store_true",
        help="decide every message as a real run would and write the same results, changing "
        "nothing: no CRM write, ledger entry, quarantine copy, delete, move or send",
    )
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
    validate = config.add_parser(
        "validate",
        help="check a Microsoft.Crm.Tools.EmailAgent.xml",
        description="Check a router configuration file: exit 0 when it has no errors, 1 when "
        "it has some (each printed with its line), 2 when it cannot be read or parsed.",
    )
    validate.add_argument(
        "path", metavar="PATH", help="the Microsoft.Crm.Tools.EmailAgent.xml to check"
    )
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
    mask_output_streams()  # a secret a server echoes is never printed (emailrouter_lib.secrets)
    args = build_parser().parse_args(argv)  # a bad command line: argparse says so, exit 2
    return run_command(args.func, args)


def run_command(func, args: argparse.Namespace) -> int:
    """Run one command under the exit-code scheme; every error is one line on stderr.

    A reader that stops early (``emailrouter classify … | head``) closes the pipe: that ends the
    command quietly, as it does for any Unix tool, not with a ``BrokenPipeError`` traceback.
    """
    try:
        # Every argument of every subcommand: URLs, templates, paths (before anything runs).
        options = {f"--{k.replace('_', '-')}": v for k, v in vars(args).items() if k != "func"}
        refuse_literal_secrets(options, where="the command line")
        code = func(args)
        sys.stdout.flush()
        return code
    except EmailRouterError as exc:
        print(f"emailrouter: error: {exc}", file=sys.stderr)
        return exit_codes.for_error(exc)
    except BrokenPipeError:
        _quiet_stdout()
        return exit_codes.OK
    except KeyboardInterrupt:
        print("emailrouter: interrupted; rerunning is safe", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: keep the traceback for the report, but exit as a failure
        traceback.print_exc()
        print(
            f"emailrouter: internal error: {exc.__class__.__name__}: {exc}; this is a bug, "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return exit_codes.RUN_FAILED


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
