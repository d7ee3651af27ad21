"""The parameters of an incoming routing batch, checked once at the door."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emailrouter_lib.errors import RoutingError
from emailrouter_lib.mail.classify import TRACKED_CLASSES
from emailrouter_lib.routing.lease import DEFAULT_LEASE_SECONDS
from emailrouter_lib.secrets import refuse_literal_secrets

DEFAULT_BATCH_BYTES = 64 * 1024 * 1024


@dataclass
class RoutingParams:
    mailboxes: list[str]
    crm: str
    config: str | None = None  # a Microsoft.Crm.Tools.EmailAgent.xml whose providers add mailboxes
    config_password: str | None = None  # secret reference template for those mailboxes
    ledger: str | None = None  # default: beside a SQLite CRM, else .emailrouter/ledger.sqlite
    quarantine_dir: str | None = None  # default: "quarantine" beside the ledger
    run_id: str | None = None
    run_dir: str | None = None
    tracked_classes: list[str] = field(default_factory=lambda: list(TRACKED_CLASSES))
    batch_size: int = 200
    # bytes of messages one batch holds (about: a single larger message makes a batch of its own);
    # a batch is in memory whole until its CRM commit (routing/batching.py)
    batch_bytes: int = DEFAULT_BATCH_BYTES
    ca_file: str | None = None
    progress: bool | None = None
    # mailboxes routed at once (DESIGN.md "Scale": EWS throttling, not CPU, is the limit); 1 routes
    # them one after another on one ledger connection, as before
    max_concurrency: int | None = None  # None: 4 when a mailbox is on a server, else 1
    # how long a run's hold on a mailbox lasts without renewal (routing/lease.py): a second run
    # skips the mailbox meanwhile; after a crash, the next run takes it over once it expired
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # -- outgoing (reference/email-router.md §4) ------------------------------------------------
    directions: list[str] = field(default_factory=lambda: ["incoming"])  # incoming, outgoing
    transports: dict[str, str] = field(default_factory=dict)  # sender address or "*" -> URL
    # secret reference template for transports built from config / the CRM's email server
    # profiles (routing/transports.py); None: config_password
    transport_password: str | None = None
    send_ledger: str | None = None  # default: beside the ledger, <crm>.sendledger.sqlite
    max_delivery_attempts: int = 10  # MaximumDeliveryAttempts
    pending_status_delay: float = 300.0  # PendingStatusDelay, seconds before a retry
    sending_status_delay: float = 1800.0  # SendingStatusDelay, seconds before a stuck send counts
    tracking_tokens: bool | None = None  # None: when the organisation has a tracking prefix
    message_id_domain: str | None = None  # None: the domain of the sending user's address
    uncertain_sends: str = "fail"  # a send a crash left unknown: "fail" (default) or "resend"
    send_limit: int = 1000  # emails sent per run at most
    dry_run: bool = False  # decide every message, change nothing (routing/dry_run.py)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | RoutingParams) -> RoutingParams:
        if isinstance(values, RoutingParams):
            return values
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RoutingError(
                f"unknown routing parameter(s) {', '.join(unknown)};"
                f" known: {', '.join(sorted(known))}"
            )
        data = {k: v for k, v in values.items() if v is not None}
        if isinstance(data.get("mailboxes"), str):
            data["mailboxes"] = [data["mailboxes"]]
        if isinstance(data.get("directions"), str):
            data["directions"] = [d for d in data["directions"].replace(",", " ").split() if d]
        if isinstance(data.get("transports"), str | list | tuple):
            data["transports"] = parse_transports(data["transports"])
        params = cls(**{"mailboxes": [], "crm": "", **data})
        params.check()
        return params

    def check(self) -> None:
        if not self.crm:
            raise RoutingError(
                "no CRM given: pass crm='sqlite:///PATH' (or --crm on the command line)"
            )
        unknown = sorted(set(self.directions) - {"incoming", "outgoing"})
        if unknown or not self.directions:
            raise RoutingError(
                f"directions must list incoming and/or outgoing, got {self.directions!r}"
            )
        if self.uncertain_sends not in ("fail", "resend"):
            raise RoutingError(
                f"uncertain_sends must be 'fail' or 'resend', not {self.uncertain_sends!r}"
            )
        if "incoming" in self.directions and not self.mailboxes and not self.config:
            raise RoutingError(
                "no mailbox given: pass at least one mailbox URL (e.g. maildir:///path)"
                " or a router configuration file"
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise RoutingError(
                f"batch_size must be a positive whole number, got {self.batch_size!r}"
            )
        if (
            not isinstance(self.batch_bytes, int)
            or isinstance(self.batch_bytes, bool)
            or self.batch_bytes < 1
        ):
            raise RoutingError(
                f"batch_bytes must be a positive whole number of bytes (default"
                f" {DEFAULT_BATCH_BYTES}, 64 MB), got {self.batch_bytes!r}"
            )
        if self.max_concurrency is not None and (
            not isinstance(self.max_concurrency, int)
            or isinstance(self.max_concurrency, bool)
            or self.max_concurrency < 1
        ):
            raise RoutingError(
                f"max_concurrency must be a positive whole number (1 = one mailbox at a time),"
                f" got {self.max_concurrency!r}"
            )
        if (
            not isinstance(self.lease_seconds, int | float)
            or isinstance(self.lease_seconds, bool)
            or not 1 <= self.lease_seconds <= 86400
        ):
            raise RoutingError(
                f"lease_seconds must be a number of seconds from 1 to 86400 (default"
                f" {DEFAULT_LEASE_SECONDS:g}), got {self.lease_seconds!r}"
            )
        if not isinstance(self.dry_run, bool):
            raise RoutingError(f"dry_run must be true or false, got {self.dry_run!r}")
        if not self.tracked_classes:
            raise RoutingError("tracked_classes is empty: nothing would ever be routed")
        # Mailbox, transport, CRM and ledger URLs and the password templates, before anything
        # connects or is written (a password in a URL would reach results and reports).
        refuse_literal_secrets(asdict(self), where="routing parameters")

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

    def fingerprint(self) -> str:
        """A hash of what decides the outcome (not where files go), for the run summary."""
        relevant = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("run_id", "run_dir", "progress", "max_concurrency", "lease_seconds")
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


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
