"""The parameters of an incoming routing batch, checked once at the door."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from emailrouter_lib.errors import ParameterError
from emailrouter_lib.mail.classify import TRACKED_CLASSES
from emailrouter_lib.parameters import (
    FlowParameters,
    ca_file_param,
    config_password_param,
    param,
    progress_param,
    run_dir_param,
    run_id_param,
)
from emailrouter_lib.routing.lease import DEFAULT_LEASE_SECONDS

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(eq=False)
class RoutingParams(FlowParameters):
    """What one routing batch reads, where it writes, and how hard it tries."""

    FLOW: ClassVar[str] = "routing"
    NOT_HASHED: ClassVar[frozenset[str]] = frozenset(
        {"run_id", "run_dir", "progress", "max_concurrency", "lease_seconds"}
    )

    mailboxes: list[str] = param(
        factory=list,
        help="mailbox URLs (imaps://, pop3s://, ewss://, maildir://)",
        flags="--mailbox",
    )
    crm: str = param("", help="CRM URL, e.g. sqlite:///crm.sqlite", flags="--crm")
    config: str | None = param(
        None,
        help="a Microsoft.Crm.Tools.EmailAgent.xml whose providers add mailboxes (and senders)",
        flags="--config",
    )
    config_password: str | None = config_password_param()
    ledger: str | None = param(
        None,
        help="the exactly-once ledger; default beside a SQLite CRM, else .emailrouter/",
        flags="--ledger",
    )
    quarantine_dir: str | None = param(
        None, help='quarantine folder; default "quarantine" beside the ledger', flags="--quarantine"
    )
    run_id: str | None = run_id_param()
    run_dir: str | None = run_dir_param()
    tracked_classes: list[str] = param(
        factory=lambda: list(TRACKED_CLASSES),
        help="message classes routed; default IPM.Note and out-of-office replies",
        flags="--track",
    )
    batch_size: int = param(
        200, help="messages fetched and committed together", flags="--batch-size"
    )
    # a batch is in memory whole until its CRM commit (routing/batching.py)
    batch_bytes: int = param(
        DEFAULT_BATCH_BYTES,
        help="bytes of messages one batch holds at most (a larger message is a batch of its own)",
        flags="--batch-bytes",
    )
    ca_file: str | None = ca_file_param()
    progress: bool | None = progress_param()
    # DESIGN.md "Scale": EWS throttling, not CPU, is the limit; 1 routes them one after another
    max_concurrency: int | None = param(
        None,
        help="mailboxes routed at once; None: 4 when a mailbox is on a server, else 1",
        flags="--max-concurrency",
    )
    # routing/lease.py: a second run skips the mailbox meanwhile; after a crash, the next run
    # takes it over once it expired
    lease_seconds: float = param(
        DEFAULT_LEASE_SECONDS,
        help="how long a run holds each mailbox without renewing it",
        flags="--lease-seconds",
    )
    # -- outgoing (reference/email-router.md §4) ------------------------------------------------
    directions: list[str] = param(
        factory=lambda: ["incoming"], help="incoming and/or outgoing", flags="--outgoing"
    )
    transports: dict[str, str] = param(
        factory=dict,
        help='sender address or "*" -> smtp://, ewss://, pickup:/// URL',
        flags="--transport",
    )
    transport_password: str | None = param(
        None,
        help="secret reference template for transports from config or the CRM's email server "
        "profiles (routing/transports.py); None: config_password",
        secret=True,
        flags="--transport-password",
    )
    send_ledger: str | None = param(
        None, help="default: beside the ledger, <crm>.sendledger.sqlite"
    )
    max_delivery_attempts: int = param(10, help="MaximumDeliveryAttempts")
    pending_status_delay: float = param(300.0, help="PendingStatusDelay: seconds before a retry")
    sending_status_delay: float = param(
        1800.0, help="SendingStatusDelay: seconds before a stuck send counts"
    )
    tracking_tokens: bool | None = param(
        None, help="None: when the organisation has a tracking prefix"
    )
    message_id_domain: str | None = param(
        None, help="None: the domain of the sending user's address"
    )
    uncertain_sends: str = param(
        "fail", help='a send a crash left unknown: "fail" (default) or "resend"'
    )
    send_limit: int = param(1000, help="emails sent per run at most")
    dry_run: bool = param(
        False,
        help="decide every message and write the results, change nothing (routing/dry_run.py)",
        flags="--dry-run",
    )

    @classmethod
    def normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("mailboxes"), str):
            data["mailboxes"] = [data["mailboxes"]]
        if isinstance(data.get("directions"), str):
            data["directions"] = [d for d in data["directions"].replace(",", " ").split() if d]
        if isinstance(data.get("transports"), str | list | tuple):
            data["transports"] = parse_transports(data["transports"])
        return data

    def check(self) -> None:
        if not self.crm:
            raise ParameterError(
                "no CRM given: pass crm='sqlite:///PATH' (or --crm on the command line)"
            )
        unknown = sorted(set(self.directions) - {"incoming", "outgoing"})
        if unknown or not self.directions:
            raise ParameterError(
                f"directions must list incoming and/or outgoing, got {self.directions!r}"
            )
        if self.uncertain_sends not in ("fail", "resend"):
            raise ParameterError(
                f"uncertain_sends must be 'fail' or 'resend', not {self.uncertain_sends!r}"
            )
        if "incoming" in self.directions and not self.mailboxes and not self.config:
            raise ParameterError(
                "no mailbox given: pass at least one mailbox URL (e.g. maildir:///path)"
                " or a router configuration file"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ParameterError(
                f"batch_size must be a positive whole number, got {self.batch_size!r}"
            )
        if (
            not isinstance(self.batch_bytes, int)
            or isinstance(self.batch_bytes, bool)
            or self.batch_bytes < 1
        ):
            raise ParameterError(
                f"batch_bytes must be a positive whole number of bytes (default"
                f" {DEFAULT_BATCH_BYTES}, 64 MB), got {self.batch_bytes!r}"
            )
        if self.max_concurrency is not None and (
            not isinstance(self.max_concurrency, int)
            or isinstance(self.max_concurrency, bool)
            or self.max_concurrency < 1
        ):
            raise ParameterError(
                f"max_concurrency must be a positive whole number (1 = one mailbox at a time),"
                f" got {self.max_concurrency!r}"
            )
        if (
            not isinstance(self.lease_seconds, int | float)
            or isinstance(self.lease_seconds, bool)
            or not 1 <= self.lease_seconds <= 86400
        ):
            raise ParameterError(
                f"lease_seconds must be a number of seconds from 1 to 86400 (default"
                f" {DEFAULT_LEASE_SECONDS:g}), got {self.lease_seconds!r}"
            )
        if not isinstance(self.dry_run, bool):
            raise ParameterError(f"dry_run must be true or false, got {self.dry_run!r}")
        if not self.tracked_classes:
            raise ParameterError("tracked_classes is empty: nothing would ever be routed")
        # Mailbox, transport, CRM and ledger URLs and the password templates, before anything
        # connects or is written (a password in a URL would reach results and reports).
        super().check()

    def ledger_path(self) -> Path:
        if self.ledger:
            return Path(self.ledger)
        if self.crm.startswith("sqlite:///"):
            crm_path = Path(self.crm.removeprefix("sqlite:///").split("?", 1)[0])
            return crm_path.with_name(crm_path.stem + ".ledger.sqlite")
        return Path(".emailrouter") / "ledger.sqlite"

    def send_ledger_path(self) -> Path:
        if self.send_ledger:
            return Path(self.send_ledger)
        ledger = self.ledger_path()
        return ledger.with_name(ledger.name.replace("ledger", "sendledger", 1))

    def outbox_path(self) -> Path:
        """The pickup directory used when no transport is configured for a sender."""
        return self.send_ledger_path().parent / "outbox"

    def quarantine_path(self) -> Path:
        return (
            Path(self.quarantine_dir)
            if self.quarantine_dir
            else self.ledger_path().parent / "quarantine"
        )


def parse_transports(values: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """``ADDRESS=URL`` or ``URL`` (the default, key ``*``) items as a transport mapping."""
    items = [values] if isinstance(values, str) else list(values)
    result: dict[str, str] = {}
    for item in items:
        key, sep, url = str(item).partition("=")
        if sep and "@" in key and "://" not in key:
            result[key.strip().lower()] = url.strip()
        else:
            result["*"] = str(item).strip()
    return result
