"""The parameters of a mailbox audit, checked once at the door."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emailrouter_lib.errors import ConfigError
from emailrouter_lib.mail.classify import TRACKED_CLASSES
from emailrouter_lib.secrets import is_reference, refuse_literal_secrets

_RELATIVE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


@dataclass
class AuditParams:
    """What to audit and how hard to try.

    Mailboxes come from three places, merged by address: explicit ``mailboxes`` URLs, the
    providers of one or more router configuration files (``config``, passwords by the reference
    template ``config_password``), and the CRM's users, queues and forward mailboxes (reached
    through ``url_template`` when given, else listed without a connection test).
    """

    mailboxes: list[str] = field(default_factory=list)
    crm: str | None = None
    config: list[str] = field(default_factory=list)  # Microsoft.Crm.Tools.EmailAgent.xml files
    config_password: str | None = None  # reference template, e.g. env:PW_{local}
    url_template: str | None = None  # e.g. imaps://{address}@mail.contoso.com/INBOX?password=…
    ledger: str | None = None  # default: beside a SQLite CRM
    since: str | int | None = "30d"  # "30d", "12h", "2w", an ISO date, days as a number, None
    concurrency: int = 8
    timeout: float = 30.0  # seconds per network operation (connect, login, each command)
    mailbox_budget: float = 120.0  # seconds of reading per mailbox before counts are a sample
    max_items: int = 2000  # newest items read per mailbox; beyond that counts are a sample
    tracked_classes: list[str] = field(default_factory=lambda: list(TRACKED_CLASSES))
    migration_plan: str | None = None  # path or URL of a migration plan, linked from the report
    # The forward rule of forward-delivery users and queues (read, never changed): its name, the
    # service account that reads it (ews(s):// URL without mailbox=, as for rule deployment), and
    # the forward mailbox it must name when the CRM and configuration do not say.
    rule_name: str | None = None  # None: the rules package's DEFAULT_RULE_NAME
    ews: str | None = None
    forward_mailbox: str | None = None
    ca_file: str | None = None
    run_id: str | None = None
    run_dir: str | None = None
    progress: bool | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | AuditParams) -> AuditParams:
        if isinstance(values, AuditParams):
            values.check()
            return values
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown audit parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        data = {k: v for k, v in values.items() if v is not None or k == "since"}
        for name in ("mailboxes", "config"):
            if isinstance(data.get(name), str):
                data[name] = [data[name]] if data[name] else []
        if data.get("tracked_classes") is None:
            data.pop("tracked_classes", None)
        params = cls(**data)
        params.check()
        return params

    def check(self) -> None:
        if not (self.mailboxes or self.crm or self.config):
            raise ConfigError(
                "nothing to audit: give mailbox URLs (mailboxes), a CRM (crm='sqlite:///PATH') "
                "or a router configuration file (config)"
            )
        if not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 256:
            raise ConfigError(
                f"concurrency must be a whole number from 1 to 256, not {self.concurrency!r}"
            )
        for name in ("timeout", "mailbox_budget"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        if not isinstance(self.max_items, int) or self.max_items < 1:
            raise ConfigError(f"max_items must be a positive whole number, not {self.max_items!r}")
        for name in ("config_password",):
            value = getattr(self, name)
            if value and not is_reference(value):
                raise ConfigError(
                    f"{name} must be a secret reference template such as env:PW_{{local}}, "
                    "never a password"
                )
        refuse_literal_secrets(
            {f.name: getattr(self, f.name) for f in fields(self)}, where="audit parameters"
        )
        if self.rule_name is not None and not str(self.rule_name).strip():
            raise ConfigError("rule_name must not be empty; leave it out for the default name")
        if not self.tracked_classes:
            raise ConfigError("tracked_classes is empty: every message would count as untracked")
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
            raise ConfigError(
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
