"""Read ``Microsoft.Crm.Tools.EmailAgent.xml`` leniently into a :class:`RouterConfig`.

Lenient because no complete real file is public and Microsoft's own reader matches element
names case-insensitively: any order, any case, comments anywhere, unknown elements kept and
reported. A bad value never stops the read: it becomes a finding with its line and the
documented default is used, so an admin sees every problem in one pass.
"""

from __future__ import annotations

import os
import re
from typing import Any

from lxml import etree

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.findings import Finding, Severity
from emailrouter_lib.config.model import (
    ProviderConfig,
    ProviderOverrides,
    RouterConfig,
    SystemConfiguration,
    UnknownElement,
    _Bound,
)
from emailrouter_lib.config.xmlfile import (
    MAX_CONFIG_BYTES,
    XmlFile,
    child_elements,
    localname,
    read_xml,
)

_INTEGER = re.compile(r"^[+-]?\d+$")
_MAX_DIGITS = 18  # every whole-number setting fits a 64-bit integer
_GUID = re.compile(
    r"^(?:\{(?P<b>[0-9a-f-]{36})\}|\((?P<p>[0-9a-f-]{36})\)|(?P<d>[0-9a-f-]{36})|(?P<n>[0-9a-f]{32}))$",
    re.IGNORECASE,
)
_GUID_D = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_SYSTEM_INDEX = vocab.field_index(vocab.SYSTEM_FIELDS)
_OVERRIDE_INDEX = vocab.field_index(vocab.OVERRIDE_FIELDS)
_PROVIDER_INDEX = vocab.field_index(vocab.PROVIDER_FIELDS)


def load_config(path: str | os.PathLike[str], *, max_bytes: int = MAX_CONFIG_BYTES) -> RouterConfig:
    """Read a router configuration file; problems that are not fatal land on ``.findings``.

    Raises :class:`~emailrouter_lib.errors.ConfigSyntaxError` for malformed, oversized or
    DTD-carrying files and :class:`~emailrouter_lib.errors.ConfigError` for unreadable ones.
    """
    return read_config_xml(read_xml(path, max_bytes=max_bytes))


def read_config_xml(xml: XmlFile) -> RouterConfig:
    """Build the model from an already parsed file (the seam for callers holding bytes)."""
    return _Reader(xml).read()


def parse_guid(text: str) -> str | None:
    """A GUID in any .NET ``Guid.Parse`` layout (D, B, P, N) as lower-case D, or None."""
    match = _GUID.match(text.strip())
    if not match:
        return None
    raw = next(group for group in match.groups() if group).lower()
    if len(raw) == 32:
        raw = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    return raw if _GUID_D.match(raw) else None


def classify(
    provider_class: str | None, server_type: str | None, direction_text: str | None
) -> tuple[vocab.Kind, vocab.Direction | None, list[tuple[str, str]]]:
    """(kind, direction, notes): from the provider class first, since that is what the router
    runs; then from ``EmailServerType`` and ``Direction``. Notes are (code, message) pairs that
    explain every guess."""
    notes: list[tuple[str, str]] = []
    class_name = (provider_class or "").split(",")[0].strip()
    namespace, _, short = class_name.rpartition(".")
    known = vocab.provider_class_kind(short) if class_name else None
    declared = vocab.DIRECTIONS.get(vocab.squash(direction_text or ""))
    if direction_text and declared is None:
        notes.append(
            ("bad-direction", f"<Direction> is {_quote(direction_text)}, not Inbound or Outbound")
        )

    if known:
        kind, class_direction = known
        if declared and declared != class_direction:
            notes.append(
                (
                    "direction-conflict",
                    f"<Direction> says {declared} but {short} is an {class_direction} provider; "
                    f"using {class_direction}",
                )
            )
        return kind, class_direction, notes

    server_kind = _server_kind(server_type)
    builtin = not namespace or namespace.lower() == vocab.BUILTIN_PROVIDER_NAMESPACE.lower()
    if class_name and not builtin:
        kind: vocab.Kind = "custom"
        notes.append(
            (
                "custom-provider",
                f"provider class {class_name} is a custom provider; this project cannot run it "
                "and the migration wizard does not migrate it",
            )
        )
    elif server_kind:
        kind = server_kind
        if class_name:
            notes.append(
                (
                    "unknown-provider-class",
                    f"{class_name} is not a provider class this project knows; treating it as "
                    f"{kind} from <EmailServerType>",
                )
            )
    else:
        kind = "custom"
        notes.append(
            (
                "unknown-provider-kind",
                "neither <ProviderClass> nor <EmailServerType> names a known provider "
                "(Exchange, POP3, SMTP); treating it as a custom provider",
            )
        )
    direction = declared
    if direction is None:
        if kind == "pop3" or "mailbox" in short.lower():
            direction = "incoming"
        elif kind == "smtp" or "sendemail" in short.lower():
            direction = "outgoing"
    return kind, direction, notes


def _server_kind(server_type: str | None) -> vocab.Kind | None:
    if not server_type:
        return None
    squashed = vocab.squash(server_type)
    if squashed in vocab.SERVER_TYPES:
        return vocab.SERVER_TYPES[squashed]
    return "exchange" if squashed.startswith("exchange") else None


class _Reader:
    def __init__(self, xml: XmlFile):
        self.xml = xml
        self.file = str(xml.path)
        self.findings: list[Finding] = []
        self.unknown: list[UnknownElement] = []

    def note(self, severity: Severity, code: str, message: str, line: int | None) -> None:
        self.findings.append(Finding(severity, code, message, file=self.file, line=line))

    def read(self) -> RouterConfig:
        root = self.xml.tree.getroot()
        config = RouterConfig(path=self.xml.path, xml=self.xml)
        if localname(root).lower() != vocab.ROOT.lower():
            self.note(
                "error",
                "wrong-root",
                f"the root element is <{localname(root)}>, not <{vocab.ROOT}>; is this "
                "Microsoft.Crm.Tools.EmailAgent.xml?",
                root.sourceline,
            )
        system_seen = False
        for child in child_elements(root):
            name = localname(child).lower()
            if name == vocab.SYSTEM.lower():
                if system_seen:
                    self.duplicate(child, root)
                    continue
                system_seen = True
                config.system = self.read_system(child)
            elif name == vocab.PROVIDER.lower():
                config.providers.append(self.read_provider(child, len(config.providers) + 1))
            else:
                self.unknown_element(child, localname(root), "warning")
        if not system_seen:
            config.system._snapshot()
            config.system.overrides._snapshot()
        config.findings = self.findings
        config.unknown_elements = self.unknown
        return config

    # --- sections ---------------------------------------------------------------------------

    def read_system(self, element: etree._Element) -> SystemConfiguration:
        system = SystemConfiguration(element=element)
        overrides_seen = False
        for child in child_elements(element):
            name = localname(child).lower()
            if name == vocab.OVERRIDES.lower():
                if overrides_seen:
                    self.duplicate(child, element)
                    continue
                overrides_seen = True
                system.overrides = self.read_fields(
                    child, ProviderOverrides(element=child), _OVERRIDE_INDEX, vocab.OVERRIDES
                )
            else:
                self.read_field(child, system, _SYSTEM_INDEX, vocab.SYSTEM, set())
        if not overrides_seen:
            system.overrides._snapshot()
        system._snapshot()
        return system

    def read_provider(self, element: etree._Element, number: int) -> ProviderConfig:
        provider = ProviderConfig(element=element, line=element.sourceline)
        path = f"{vocab.PROVIDER}[{number}]"
        seen: set[str] = set()
        before = len(self.unknown)
        for child in child_elements(element):
            self.read_field(child, provider, _PROVIDER_INDEX, path, seen)
        provider.unknown_elements = self.unknown[before:]
        direction_text = provider.direction  # read_field stored the raw text
        kind, direction, notes = classify(
            provider.provider_class, provider.email_server_type, direction_text
        )
        provider.kind, provider.direction = kind, direction
        for code, message in notes:
            severity: Severity = "info" if code == "unknown-provider-class" else "warning"
            line = provider.lines.get("direction") if "direction" in code else None
            self.note(severity, code, f"{message} ({provider.label})", line or provider.line)
        if direction is None:
            self.note(
                "warning",
                "no-direction",
                "cannot tell whether this provider is incoming or outgoing; add "
                "<Direction>Inbound</Direction> or <Direction>Outbound</Direction> "
                f"({provider.label})",
                provider.line,
            )
        provider._snapshot()
        return provider

    def read_fields(
        self, element: etree._Element, target: _Bound, index: dict[str, vocab.FieldSpec], path: str
    ) -> Any:
        seen: set[str] = set()
        for child in child_elements(element):
            self.read_field(child, target, index, path, seen)
        target._snapshot()
        return target

    def read_field(
        self,
        child: etree._Element,
        target: _Bound,
        index: dict[str, vocab.FieldSpec],
        path: str,
        seen: set[str],
    ) -> None:
        name = localname(child)
        spec = index.get(name.lower())
        if spec is None:
            self.unknown_element(child, path, "info")
            return
        line = child.sourceline
        if spec.kind == "guids":
            target.lines.setdefault(spec.attr, line)
            self.read_guid(child, target, spec)
            return
        if spec.attr in seen:
            self.note(
                "warning",
                "duplicate-element",
                f"<{name}> appears more than once in <{path}>; the first one is used",
                line,
            )
            return
        seen.add(spec.attr)
        target.lines[spec.attr] = line
        if child_elements(child):
            self.note(
                "warning",
                "unexpected-structure",
                f"<{name}> should hold a plain value but has child elements; it is kept but "
                "ignored",
                line,
            )
            return
        if spec.kind == "secret":
            setattr(target, spec.attr, bool(_text(child)))
            return
        text = _text(child)
        if spec.kind == "str":
            setattr(target, spec.attr, text or None)
            return
        default = getattr(target, spec.attr)
        if not text:
            self.note(
                "warning",
                "empty-value",
                f"<{name}> is empty; {_fallback(default)}",
                line,
            )
            return
        if spec.kind == "int":
            digits = len(text.lstrip("+-"))
            if _INTEGER.match(text) and digits > _MAX_DIGITS:
                # int() itself refuses over 4,300 digits (ValueError); no setting needs 19
                self.note(
                    "error",
                    "bad-number",
                    f"<{name}> is a number of {digits:,} digits, larger than any setting takes; "
                    f"{_fallback(default)}",
                    line,
                )
            elif _INTEGER.match(text):
                setattr(target, spec.attr, int(text))
            else:
                self.note(
                    "error",
                    "bad-number",
                    f"<{name}> is {_quote(text)}, not a whole number; {_fallback(default)}. "
                    "Write digits only (milliseconds for times)",
                    line,
                )
        elif spec.kind == "bool":
            lowered = text.lower()
            if lowered in vocab.TRUE_WORDS or lowered in vocab.FALSE_WORDS:
                setattr(target, spec.attr, lowered in vocab.TRUE_WORDS)
            else:
                self.note(
                    "error",
                    "bad-boolean",
                    f"<{name}> is {_quote(text)}, not true or false; {_fallback(default)}",
                    line,
                )

    def read_guid(self, child: etree._Element, target: _Bound, spec: vocab.FieldSpec) -> None:
        name = localname(child)
        text = _text(child)
        guid = parse_guid(text)
        if guid is None:
            self.note(
                "error",
                "bad-guid",
                f"<{name}> is {_quote(text)}, not a GUID; this entry is ignored. Copy the "
                "record's id from the CRM (e.g. 0a1b2c3d-13d8-e011-9077-00155d012a01)",
                child.sourceline,
            )
            return
        ids: list[str] = getattr(target, spec.attr)
        if (
            f"{spec.attr}:{guid}" in target.lines
        ):  # the lines map doubles as a set: a relay lists 10k ids
            self.note(
                "info",
                "duplicate-id",
                f"<{name}> {guid} is listed twice in this provider",
                child.sourceline,
            )
            return
        ids.append(guid)
        target.lines[f"{spec.attr}:{guid}"] = child.sourceline

    # --- reporting helpers ------------------------------------------------------------------

    def unknown_element(self, child: etree._Element, parent: str, severity: Severity) -> None:
        name = localname(child)
        self.unknown.append(UnknownElement(name, f"{parent}/{name}", child.sourceline))
        self.note(
            severity,
            "unknown-element",
            f"unknown element <{name}> in <{parent.split('[')[0]}>: kept as is and written "
            "back, but not used; check its spelling (element names are case-sensitive)",
            child.sourceline,
        )

    def duplicate(self, child: etree._Element, parent: etree._Element) -> None:
        self.note(
            "warning",
            "duplicate-element",
            f"<{localname(child)}> appears more than once in <{localname(parent)}>; the first "
            "one is used, this one is kept but ignored",
            child.sourceline,
        )


def _text(element: etree._Element) -> str:
    """The element's own text, including text split by comments, stripped."""
    parts = [element.text or ""]
    parts.extend(child.tail or "" for child in element if not isinstance(child.tag, str))
    return "".join(parts).strip()


def _quote(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _fallback(value: object) -> str:
    if value is None:
        return "treating it as not set"
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"using the default ({shown})"
