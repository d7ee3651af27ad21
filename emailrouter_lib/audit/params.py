"""The parameters of a mailbox audit, checked once at the door."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from emailrouter_lib.secrets import is_reference

_RELATIVE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


@dataclass(eq=False)
class AuditParams(FlowParameters):
    """What to audit and how hard to try.

    Mailboxes come from three places, merged by address: explicit ``mailboxes`` URLs, the
    providers of one or more router configuration files (``config``, passwords by the reference
    template ``config_password``), and the CRM's users, queues and forward mailboxes (reached
    through ``url_template`` when given, else listed without a connection test).
    """

    FLOW: ClassVar[str] = "audit"

    mailboxes: list[str] = param(factory=list, help="mailbox URLs to audit", flags="--mailbox")
    crm: str | None = param(None, help="CRM URL: its users, queues and mailboxes", flags="--crm")
    config: list[str] = param(
        factory=list,
        help="router configuration files (Microsoft.Crm.Tools.EmailAgent.xml)",
        flags="--config",
    )
    config_password: str | None = config_password_param()
    url_template: str | None = param(
        None,
        help="mailbox URL for each CRM address, e.g. imaps://{address}@mail.contoso.com/INBOX"
        "?password=env:PW",
        flags="--url-template",
    )
    ledger: str | None = param(
        None, help="the routing ledger; default beside a SQLite CRM", flags="--ledger"
    )
    since: str | int | None = param(
        "30d",
        help='the window: "30d", "12h", "2w", an ISO date, days as a number; None: all items',
        flags="--since",
        keep_none=True,
    )
    max_concurrency: int = param(
        8, help="mailboxes probed at a time", flags=("--max-concurrency", "--concurrency")
    )
    timeout: float = param(
        30.0,
        help="seconds per network operation (connect, login, each command)",
        flags="--timeout",
    )
    mailbox_budget: float = param(
        120.0, help="seconds of reading per mailbox before counts are a sample"
    )
    max_items: int = param(
        2000,
        help="newest items read per mailbox; beyond that counts are a sample",
        flags="--max-items",
    )
    tracked_classes: list[str] = param(
        factory=lambda: list(TRACKED_CLASSES), help="message classes counted as tracked"
    )
    migration_plan: str | None = param(
        None,
        help="path or URL of a migration plan, linked from the report",
        flags="--migration-plan",
    )
    # The forward rule of forward-delivery users and queues (read, never changed): its name, the
    # service account that reads it (ews(s):// URL without mailbox=, as for rule deployment), and
    # the forward mailbox it must name when the CRM and configuration do not say.
    rule_name: str | None = param(
        None, help="the forward rule's name; None: the rules package's", flags="--rule-name"
    )
    ews: str | None = param(
        None, help="service account URL that reads the inbox rules, ewss://…", flags="--ews"
    )
    forward_mailbox: str | None = param(
        None, help="the forward mailbox the rule must name", flags="--forward-mailbox"
    )
    ca_file: str | None = ca_file_param()
    run_id: str | None = run_id_param()
    run_dir: str | None = run_dir_param()
    progress: bool | None = progress_param()

    @classmethod
    def normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        for name in ("mailboxes", "config"):
            if isinstance(data.get(name), str):
                data[name] = [data[name]] if data[name] else []
        return data

    def check(self) -> None:
        if not (self.mailboxes or self.crm or self.config):
            raise ParameterError(
                "nothing to audit: give mailbox URLs (mailboxes), a CRM (crm='sqlite:///PATH') "
                "or a router configuration file (config)"
            )
        if not isinstance(self.max_concurrency, int) or not 1 <= self.max_concurrency <= 256:
            raise ParameterError(
                "max_concurrency must be a whole number from 1 to 256, not "
                f"{self.max_concurrency!r}"
            )
        for name in ("timeout", "mailbox_budget"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ParameterError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(self.max_items, int) or self.max_items < 1:
            raise ParameterError(
                f"max_items must be a positive whole number, not {self.max_items!r}"
            )
        for name in ("config_password",):
            value = getattr(self, name)
            if value and not is_reference(value):
                raise ParameterError(
                    f"{name} must be a secret reference template such as env:PW_{{local}}, "
                    "never a password"
                )
        super().check()
        if self.rule_name is not None and not str(self.rule_name).strip():
            raise ParameterError("rule_name must not be empty; leave it out for the default name")
        if not self.tracked_classes:
            raise ParameterError("tracked_classes is empty: every message would count as untracked")
        self.since_datetime()  # fails early on a bad value

    def since_datetime(self, now: datetime | None = None) -> datetime | None:
        """The start of the window: items dated before it are counted but not classified."""
        value = self.since
        if value in (None, "", 0):
            return None
        now = now or datetime.now(UTC)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return now - timedelta(days=float(value))
        text = str(value).strip()
        match = _RELATIVE.match(text)
        if match:
            return now - timedelta(hours=int(match.group(1)) * _UNIT_HOURS[match.group(2).lower()])
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ParameterError(
                f"since={value!r} is not a window: use 30d, 12h, 2w, a number of days "
                "or an ISO date such as 2024-03-01"
            ) from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def ledger_path(self) -> Path | None:
        if self.ledger:
            return Path(self.ledger)
        if self.crm and self.crm.startswith("sqlite:///"):
            crm_path = Path(self.crm.removeprefix("sqlite:///").split("?", 1)[0])
            return crm_path.with_name(crm_path.stem + ".ledger.sqlite")
        return None
