"""Write a :class:`RouterConfig` back to ``Microsoft.Crm.Tools.EmailAgent.xml``.

Only what a caller changed in the model is written into the kept tree; everything else (unknown
elements, comments, values we could not parse, element order, the encoding) stays as the admin
had it, so reading and writing an unedited file gives the same canonical XML. The old file is
backed up first, as the Configuration Manager's Publish should have done.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from lxml import etree

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.model import RouterConfig, _Bound
from emailrouter_lib.config.xmlfile import XmlFile, child_elements, localname, write_xml
from emailrouter_lib.errors import ConfigError

_INDENT = "  "


def write_config(
    config: RouterConfig, path: str | os.PathLike[str], *, backup: bool = True
) -> Path | None:
    """Apply the model's edits to the kept tree and write it atomically to ``path``.

    Returns the backup of the file that was replaced (``NAME.YYYYmmdd-HHMMSS.bak`` beside it),
    or None when there was nothing to back up or ``backup`` is false.
    """
    path = Path(path)
    if config.xml is None:
        config.xml = _new_file(path)
    apply_edits(config)
    saved = _backup(path) if backup and path.exists() else None
    write_xml(config.xml, path)
    return saved


def apply_edits(config: RouterConfig) -> None:
    """Bring the kept tree in line with the model, touching only edited values."""
    assert config.xml is not None
    root = config.xml.tree.getroot()
    _sync_system(config, root)
    _sync_providers(config, root)


def _new_file(path: Path) -> XmlFile:
    root = etree.Element(vocab.ROOT)
    return XmlFile(
        path=path,
        tree=root.getroottree(),
        declaration='<?xml version="1.0" encoding="utf-8"?>',
    )


def backup_file(path: Path) -> Path:
    """Copy *path* to ``NAME.YYYYmmdd-HHMMSS.bak`` beside it (``-2``, ``-3``… when taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.bak")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.{stamp}-{counter}.bak")
    shutil.copy2(path, target)
    return target


_backup = backup_file


# --- sections -------------------------------------------------------------------------------


def _sync_system(config: RouterConfig, root: etree._Element) -> None:
    system, overrides = config.system, config.system.overrides
    if not system.changed() and not overrides.changed():
        return
    if system.element is None:
        system.element = _find_or_insert(root, vocab.SYSTEM, index=0)
    _sync_fields(system.element, system, vocab.SYSTEM_FIELDS, vocab.SYSTEM)
    if overrides.changed():
        if overrides.element is None:
            overrides.element = _find_or_insert(system.element, vocab.OVERRIDES)
        _sync_fields(overrides.element, overrides, vocab.OVERRIDE_FIELDS, vocab.OVERRIDES)


def _sync_providers(config: RouterConfig, root: etree._Element) -> None:
    kept = [p.element for p in config.providers if p.element is not None]
    for element in child_elements(root):
        is_provider = localname(element).lower() == vocab.PROVIDER.lower()
        if is_provider and not any(element is k for k in kept):
            _remove(element)
    for provider in config.providers:
        if provider.element is None:
            anchor = _last_provider_index(root)
            provider.element = _insert(root, vocab.PROVIDER, anchor)
            if provider.provider_class is None:
                provider.provider_class = vocab.builtin_provider_class(
                    provider.kind, provider.direction
                )
        if provider.changed():
            _sync_fields(provider.element, provider, vocab.PROVIDER_FIELDS, provider.label)


def _last_provider_index(root: etree._Element) -> int:
    nodes = list(root)
    for index in range(len(nodes) - 1, -1, -1):
        node = nodes[index]
        if isinstance(node.tag, str) and localname(node).lower() == vocab.PROVIDER.lower():
            return index + 1
    return len(nodes)


def _sync_fields(
    element: etree._Element, target: _Bound, specs: tuple[vocab.FieldSpec, ...], where: str
) -> None:
    changed = set(target.changed())
    for spec in specs:
        if spec.attr not in changed:
            continue
        value = getattr(target, spec.attr)
        if spec.kind == "guids":
            _set_list(element, spec, value)
        elif spec.kind == "secret":
            _set_secret(element, spec, bool(value), where)
        elif spec.attr == "direction":
            _set_scalar(element, spec, vocab.DIRECTION_TEXT.get(value) if value else None)
        elif value is False and spec.default is False and not _matching(element, spec):
            continue  # do not add an element only to state the default
        else:
            _set_scalar(element, spec, None if value is None else _format(value))
    target._snapshot()


def _set_secret(element: etree._Element, spec: vocab.FieldSpec, present: bool, where: str) -> None:
    """A secret can be removed, never written: we do not hold the router's encryption key."""
    matches = _matching(element, spec)
    if present and not matches:
        raise ConfigError(
            f"{where}: cannot write <{spec.canonical}>: router passwords are encrypted with the "
            "router's own key, which this project never uses. Enter the password in the Email "
            "Router Configuration Manager, or give this project a secret reference (env:, "
            "file:, keyring:)"
        )
    if not present:
        for match in matches:
            _remove(match)


# --- tree edits -----------------------------------------------------------------------------


def _matching(parent: etree._Element, spec: vocab.FieldSpec) -> list[etree._Element]:
    return [child for child in child_elements(parent) if localname(child).lower() in spec.names]


def _set_scalar(parent: etree._Element, spec: vocab.FieldSpec, text: str | None) -> None:
    matches = _matching(parent, spec)
    if text is None:
        if matches:
            _remove(matches[0])
        return
    element = matches[0] if matches else _insert(parent, spec.canonical)
    for child in list(element):  # comments inside a replaced value go with the old value
        element.remove(child)
    element.text = text


def _set_list(parent: etree._Element, spec: vocab.FieldSpec, values: list[str]) -> None:
    matches = _matching(parent, spec)
    index = list(parent).index(matches[0]) if matches else None
    name = localname(matches[0]) if matches else spec.canonical  # keep the file's spelling
    for match in matches:
        _remove(match)
    for offset, value in enumerate(values):
        element = _insert(parent, name, None if index is None else index + offset)
        element.text = value


def _find_or_insert(parent: etree._Element, name: str, index: int | None = None) -> etree._Element:
    for child in child_elements(parent):
        if localname(child).lower() == name.lower():
            return child
    return _insert(parent, name, index)


def _insert(parent: etree._Element, name: str, index: int | None = None) -> etree._Element:
    """A new child in the parent's namespace, indented like its siblings."""
    namespace = etree.QName(parent).namespace
    element = etree.Element(etree.QName(namespace, name) if namespace else name)
    depth = sum(1 for _ in parent.iterancestors())
    nodes = list(parent)
    child_indent = (
        parent.text
        if nodes and parent.text and not parent.text.strip()
        else "\n" + _INDENT * (depth + 1)
    )
    if not nodes:
        parent.text = child_indent
        element.tail = "\n" + _INDENT * depth
        parent.append(element)
    elif index is None or index >= len(nodes):
        last = nodes[-1]
        element.tail = last.tail if last.tail is not None else "\n" + _INDENT * depth
        last.tail = child_indent
        parent.append(element)
    else:
        parent.insert(index, element)
        element.tail = child_indent
    return element


def _remove(element: etree._Element) -> None:
    """Remove an element (and its tail); the closing indentation moves to its predecessor."""
    parent = element.getparent()
    if parent is None:
        return
    if element.getnext() is None:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = element.tail
        else:
            parent.text = element.tail
    parent.remove(element)


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
