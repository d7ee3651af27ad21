"""Check a router configuration and report every problem with its file and line.

The reader's findings (unknown elements, bad values) come first-hand; the checks here look
across fields and providers for what makes the router misbehave or the migration to
server-side synchronization stumble. Nothing is raised for a problem in the content; only an
unreadable or malformed file raises, and :func:`main_validate` turns that into exit code 2.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.findings import Finding, Severity
from emailrouter_lib.config.model import ProviderConfig, RouterConfig, _Bound
from emailrouter_lib.config.reader import load_config
from emailrouter_lib.config.xmlfile import MAX_CONFIG_BYTES
from emailrouter_lib.errors import ConfigError, ConfigSyntaxError

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class ValidationReport:
    """Findings about one file, in line order. Prints as ``FILE:LINE: severity [code] message``
    lines and renders as a table in Jupyter."""

    path: str | None
    findings: list[Finding] = field(default_factory=list)
    config: RouterConfig | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "info"]

    @property
    def ok(self) -> bool:
        """No errors (warnings and notes do not make a file unusable)."""
        return not self.errors

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def summary(self) -> str:
        counts = f"{_count(self.errors, 'error')}, {_count(self.warnings, 'warning')}, "
        counts += f"{_count(self.infos, 'note')}"
        return f"{self.path or '<config>'}: {counts}"

    def to_records(self) -> list[dict[str, object]]:
        """Plain dicts, e.g. for ``pandas.DataFrame(report.to_records())``."""
        return [{f.name: getattr(item, f.name) for f in fields(item)} for item in self.findings]

    def __str__(self) -> str:
        return "\n".join(str(finding) for finding in self.findings)

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(value))}</td>"
                for value in (f.line or "", f.severity, f.code, f.message)
            )
            + "</tr>"
            for f in self.findings
        )
        head = "".join(f"<th>{name}</th>" for name in ("line", "severity", "code", "message"))
        return (
            f"<p><b>{html.escape(self.summary())}</b></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )


def validate_file(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_CONFIG_BYTES
) -> ValidationReport:
    """Read and check a file. Raises :class:`ConfigError` if it cannot be read or parsed."""
    return validate_config(load_config(path, max_bytes=max_bytes))


def validate_config(config: RouterConfig) -> ValidationReport:
    """The reader's findings plus the cross-field checks, sorted by line."""
    file = str(config.path) if config.path else None
    found = list(config.findings) + list(_Checks(config, file).run())
    found.sort(key=lambda f: (f.line or 0, _ORDER[f.severity]))
    return ValidationReport(path=file, findings=found, config=config)


def main_validate(path: str) -> int:
    """``emailrouter config validate PATH``: print the report; exit 0 (no errors), 1 (errors) or
    2 (the file cannot be read or is not well-formed XML)."""
    try:
        report = validate_file(path)
    except ConfigError as exc:
        default = "malformed-xml" if isinstance(exc, ConfigSyntaxError) else "unreadable"
        code = getattr(exc, "code", default)
        print(str(_error_finding(exc, code, path)), file=sys.stderr)  # one line, as every command
        return 2
    if report.findings:
        print(str(report))
    print(report.summary())
    return 0 if report.ok else 1


def _error_finding(exc: ConfigError, code: str, path: str) -> Finding:
    text = str(exc)
    file = exc.file or path
    for prefix in (f"{exc.file}:{exc.line}: ", f"{exc.file}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return Finding("error", code, text, file=file, line=exc.line)


def _count(items: list[Finding], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


class _Checks:
    def __init__(self, config: RouterConfig, file: str | None):
        self.config = config
        self.file = file

    def finding(self, severity: Severity, code: str, message: str, line: int | None) -> Finding:
        return Finding(severity, code, message, file=self.file, line=line)

    def run(self) -> Iterator[Finding]:
        yield from self.ranges(self.config.system, vocab.SYSTEM_FIELDS)
        yield from self.ranges(self.config.system.overrides, vocab.OVERRIDE_FIELDS)
        if not self.config.providers:
            root = self.config.tree.getroot() if self.config.tree is not None else None
            yield self.finding(
                "warning",
                "no-providers",
                f"no <{vocab.PROVIDER}>: this router would route no mail. Publish the "
                "configuration from the Configuration Manager, or add providers",
                root.sourceline if root is not None else None,
            )
        for provider in self.config.providers:
            yield from self.ranges(provider, vocab.PROVIDER_FIELDS)
            yield from self.provider(provider)
        yield from self.duplicate_mailboxes()
        yield from self.duplicate_records()

    def ranges(self, target: _Bound, specs: tuple[vocab.FieldSpec, ...]) -> Iterator[Finding]:
        for spec in specs:
            limits = vocab.RANGES.get(spec.attr)
            value = getattr(target, spec.attr)
            if spec.kind != "int" or limits is None or value is None:
                continue
            low, high = limits
            if value < low or (high is not None and value > high):
                allowed = f"{low}–{high}" if high is not None else f"{low} or more"
                yield self.finding(
                    "warning",
                    "out-of-range",
                    f"<{spec.canonical}> is {value}; expected {allowed}",
                    target.lines.get(spec.attr),
                )

    def provider(self, p: ProviderConfig) -> Iterator[Finding]:
        label = p.label

        def line(attr: str) -> int | None:
            return p.lines.get(attr, p.line)

        if not p.user_ids and not p.queue_ids and not p.email_address:
            yield self.finding(
                "warning",
                "provider-without-mailbox",
                f"provider lists no <UserId>, <QueueId> or <EmailAddress>, so it serves no "
                f"mailbox ({label})",
                p.line,
            )
        if p.is_forward_mailbox and not p.email_address:
            yield self.finding(
                "warning",
                "forward-mailbox-without-address",
                f"forward mailbox has no <EmailAddress>; rules cannot forward to it ({label})",
                line("is_forward_mailbox"),
            )
        if p.is_forward_mailbox and p.direction == "outgoing":
            yield self.finding(
                "warning",
                "outgoing-forward-mailbox",
                f"an outgoing provider cannot be a forward mailbox ({label})",
                line("is_forward_mailbox"),
            )
        credentials = p.credentials_kind
        if credentials == "local_system" and p.is_exchange_online:
            yield self.finding(
                "error",
                "local-system-on-exchange-online",
                "Local System credentials cannot sign in to Exchange Online; use Other specified "
                f"(one account with access to every mailbox) or User specified ({label})",
                line("email_access_credentials"),
            )
        elif credentials == "local_system" and p.kind == "pop3":
            yield self.finding(
                "warning",
                "local-system-not-supported",
                "Local System credentials work only with on-premises Exchange, not POP3; use "
                f"User specified or Other specified ({label})",
                line("email_access_credentials"),
            )
        if credentials == "unknown" or p.auth_mode_kind == "unknown":
            which = "EmailAccessCredentials" if credentials == "unknown" else "EmailAuthMode"
            attr = "email_access_credentials" if credentials == "unknown" else "email_auth_mode"
            yield self.finding(
                "warning",
                "unknown-value",
                f"<{which}> has a value this project does not know ({label}); check it "
                "against the Email Router Configuration Manager's choices",
                line(attr),
            )
        if p.is_exchange_online and p.ssl_off:
            yield self.finding(
                "error",
                "exchange-online-without-ssl",
                f"Exchange Online requires SSL (HTTPS); set <UseSsl>true</UseSsl> ({label})",
                line("use_ssl") if p.use_ssl is False else line("email_server_url"),
            )
        elif p.ssl_off:
            ssl_line = line("use_ssl") if p.use_ssl is False else line("email_server_url")
            sends_password = p.auth_mode_kind == "clear_text" and credentials != "local_system"
            if sends_password:
                yield self.finding(
                    "warning",
                    "cleartext-without-ssl",
                    "clear-text authentication without SSL sends the password unencrypted; "
                    f"turn SSL on ({label})",
                    ssl_line,
                )
            else:
                yield self.finding(
                    "info",
                    "no-ssl",
                    "SSL is off; server-side synchronization profiles use SSL by default, so "
                    f"the migration wizard flags this profile ({label})",
                    ssl_line,
                )
        if p.email_server_type and vocab.squash(p.email_server_type) in vocab.LEGACY_SERVER_TYPES:
            yield self.finding(
                "warning",
                "legacy-server-type",
                f"{p.email_server_type} (WebDAV) cannot be used over EWS or migrated to "
                f"server-side synchronization ({label})",
                line("email_server_type"),
            )
        if not p.crm_server_url:
            yield self.finding(
                "warning",
                "no-crm-server-url",
                "provider has no <CrmServerUrl>; it cannot be tied to a CRM organization (the "
                f"migration wizard skips it) ({label})",
                p.line,
            )

    def duplicate_mailboxes(self) -> Iterator[Finding]:
        first: dict[str, ProviderConfig] = {}
        for p in self.config.incoming:
            if not p.email_address:
                continue
            address = p.email_address.strip().lower()
            if address not in first:
                first[address] = p
                continue
            earlier = first[address]
            forward = p.is_forward_mailbox or earlier.is_forward_mailbox
            yield self.finding(
                "error",
                "duplicate-forward-mailbox" if forward else "duplicate-mailbox",
                f"{'forward mailbox' if forward else 'mailbox'} {address} is also polled by the "
                f"provider at line {earlier.line}; each message would be processed twice",
                p.lines.get("email_address", p.line),
            )

    def duplicate_records(self) -> Iterator[Finding]:
        for direction, severity in (("incoming", "error"), ("outgoing", "warning")):
            providers = [p for p in self.config.providers if p.direction == direction]
            for kind, attr in (("user", "user_ids"), ("queue", "queue_ids")):
                first: dict[str, ProviderConfig] = {}
                for p in providers:
                    for record_id in getattr(p, attr):
                        if record_id not in first:
                            first[record_id] = p
                            continue
                        yield self.finding(
                            severity,  # type: ignore[arg-type]
                            f"{kind}-in-two-{direction}-providers",
                            f"{kind} {record_id} is also listed in the {direction} provider at "
                            f"line {first[record_id].line}; "
                            + (
                                "its mail would be imported by both"
                                if direction == "incoming"
                                else "both providers would try to send its email"
                            ),
                            p.lines.get(f"{attr}:{record_id}", p.line),
                        )
