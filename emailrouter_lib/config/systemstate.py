"""Read ``Microsoft.Crm.Tools.EmailAgent.SystemState.xml`` without knowing its structure.

The router writes this file at run time and recreates it when it is deleted; its layout is not
documented. Audit and migration only want to look at it, so it is read as a list of simple
records (one per element that carries attributes or plain-valued children) and the tree is
kept. It is never required: a missing file gives None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.findings import Finding
from emailrouter_lib.config.xmlfile import (
    MAX_CONFIG_BYTES,
    XmlFile,
    child_elements,
    localname,
    read_xml,
)

SYSTEM_STATE_NAME = "Microsoft.Crm.Tools.EmailAgent.SystemState.xml"
HIDDEN = "(hidden)"

_REMEDY = (
    "the Email Router recreates this file when it is deleted and the service restarted; keep "
    "a copy first if you still need it for migration"
)


@dataclass(frozen=True)
class StateRecord:
    """One element of the state file, flattened: its attributes and plain-valued children.

    Values under secret-looking names are replaced by ``(hidden)``.
    """

    tag: str
    path: str
    line: int | None
    fields: dict[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A field by name, case-insensitively (the router's own convention)."""
        lowered = name.lower()
        for key, value in self.fields.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass
class SystemState:
    """The state file as records, plus the kept tree for anything the records do not show."""

    path: Path
    records: list[StateRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    xml: XmlFile | None = field(default=None, repr=False, compare=False)

    def find(self, tag: str) -> list[StateRecord]:
        """Records whose element name is ``tag``, case-insensitively."""
        lowered = tag.lower()
        return [record for record in self.records if record.tag.lower() == lowered]


def system_state_path(config_path: str | os.PathLike[str]) -> Path:
    """Where the state file lives: beside ``Microsoft.Crm.Tools.EmailAgent.xml``."""
    return Path(config_path).with_name(SYSTEM_STATE_NAME)


def load_system_state(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_CONFIG_BYTES
) -> SystemState | None:
    """The state file's records, or None when the file does not exist.

    A file that exists but is malformed raises :class:`~emailrouter_lib.errors.ConfigSyntaxError`
    (the router itself refuses to start on one: "Root element is missing").
    """
    path = Path(path)
    if not path.exists():
        return None
    xml = read_xml(path, max_bytes=max_bytes, remedy=_REMEDY)
    state = SystemState(path=path, xml=xml)
    _collect(xml.tree.getroot(), localname(xml.tree.getroot()), state.records)
    return state


def _collect(element: etree._Element, path: str, records: list[StateRecord]) -> None:
    """Records in document order: the element's own record, then its structured children."""
    values: dict[str, str] = {}
    for name, value in element.attrib.items():
        key = _attribute_name(name)
        values[key] = _safe(key, value)
    nested: list[tuple[etree._Element, str]] = []
    counts: dict[str, int] = {}
    for child in child_elements(element):
        name = localname(child)
        counts[name] = counts.get(name, 0) + 1
        if _is_plain(child):
            key = name if name not in values else f"{name}[{counts[name]}]"
            values[key] = _safe(name, (child.text or "").strip())
        else:
            nested.append((child, f"{path}/{name}[{counts[name]}]"))
    if values:
        records.append(StateRecord(localname(element), path, element.sourceline, values))
    for child, child_path in nested:
        _collect(child, child_path, records)


def _is_plain(element: etree._Element) -> bool:
    return not element.attrib and not child_elements(element)


def _attribute_name(name: str) -> str:
    return etree.QName(name).localname


def _safe(name: str, value: str) -> str:
    return HIDDEN if vocab.looks_secret(name) and value else value
