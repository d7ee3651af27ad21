"""Safe reading and faithful writing of the router's XML files.

Reading is defensive because these files come from other machines (the migration wizard takes
uploads): the size is checked before parsing, a DOCTYPE that declares entities or loads a DTD is
refused before lxml sees it (no XXE, no billion laughs), and lxml itself runs with entity
resolution, DTD loading and network access off. Writing is faithful because an admin's file
holds things we do not understand: the parsed tree is kept, and it is written back in the
encoding, byte-order mark, XML declaration and line endings it came with.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from emailrouter_lib.errors import ConfigError, ConfigSyntaxError
from emailrouter_lib.files import write_atomically

# The migration wizard's limit for the files of all routers together (0x2000000 bytes).
MAX_CONFIG_BYTES = 32 * 1024 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DECLARATION = re.compile(r"^<\?xml\s[^>]*\?>(\s*)")
_PROLOG_ITEM = re.compile(r"\s*(?:<!--.*?-->|<\?.*?\?>)", re.DOTALL)
_LXML_POSITION = re.compile(r",\s*line \d+, column \d+\s*$")

WHAT_TO_DO = (
    "fix the XML there, or restore the file from a backup or republish it from the "
    "Email Router Configuration Manager"
)


@dataclass
class XmlFile:
    """A parsed XML file plus what is needed to write it back as it came."""

    path: Path
    tree: etree._ElementTree = field(repr=False)
    codec: str = "utf-8"
    bom: bool = False
    declaration: str | None = None
    declaration_gap: str = "\n"
    newline: str = "\n"
    trailing_newline: bool = True

    def to_bytes(self) -> bytes:
        """The tree as file bytes, in the original encoding, BOM, declaration and newlines."""
        root = self.tree.getroot()
        nodes: list[str] = [
            _node_text(node) for node in reversed(list(root.itersiblings(preceding=True)))
        ]
        if self.tree.docinfo.doctype:
            nodes.append(self.tree.docinfo.doctype)
        nodes.append(_node_text(root))
        nodes.extend(_node_text(node) for node in root.itersiblings())
        text = "\n".join(nodes)
        if self.declaration:
            text = self.declaration + self.declaration_gap + text
        if self.trailing_newline:
            text += "\n"
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        data = text.encode(self.codec, errors="xmlcharrefreplace")
        if self.bom:
            data = _bom_for(self.codec) + data
        return data


def read_xml(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_CONFIG_BYTES, remedy: str = WHAT_TO_DO
) -> XmlFile:
    """Parse ``path`` safely, or raise :class:`ConfigError` naming the file, line and remedy."""
    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror or exc}); check the path and its permissions",
            file=name,
        ) from exc
    if size > max_bytes:
        raise _refusal(
            "too-large",
            f"the file is {size:,} bytes, over the {max_bytes:,}-byte limit for a router "
            "configuration file; check that this is the right file",
            file=name,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the file ({exc.strerror or exc}); check its permissions", file=name
        ) from exc
    if len(data) > max_bytes:  # the file grew between stat() and read()
        raise _refusal("too-large", f"the file is over the {max_bytes:,}-byte limit", name)

    codec, bom_length = _sniff_encoding(data)
    text = data[bom_length:].decode(codec, errors="replace")
    _refuse_dangerous_doctype(text, name)

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
        remove_blank_text=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        message = _LXML_POSITION.sub("", exc.msg or str(exc))
        message = " ".join(message.split())  # lxml's text can hold newlines: one line each
        raise ConfigSyntaxError(
            f"not well-formed XML: {message}; {remedy}", file=name, line=exc.lineno or None
        ) from None
    tree = root.getroottree()
    _refuse_parsed_dtd(tree, name)

    declaration = _DECLARATION.match(text)
    return XmlFile(
        path=path,
        tree=tree,
        codec=codec,
        bom=bom_length > 0,
        declaration=declaration.group(0).rstrip() if declaration else None,
        declaration_gap=declaration.group(1).replace("\r\n", "\n") if declaration else "",
        newline="\r\n" if "\r\n" in text else "\n",
        trailing_newline=text.endswith("\n"),
    )


def refuse_unsafe_xml(data: bytes, name: str) -> None:
    """Raise the one-line :class:`ConfigSyntaxError` :func:`read_xml` raises for a DOCTYPE that
    declares entities, has an internal subset or loads a DTD, for bytes read some other way (the
    file a publish would overwrite, and diff against)."""
    codec, bom_length = _sniff_encoding(data)
    _refuse_dangerous_doctype(data[bom_length:].decode(codec, errors="replace"), name)


def write_xml(xml: XmlFile, path: str | os.PathLike[str]) -> None:
    """Write atomically: a reader (the router service re-reads every few seconds) never sees
    half a file."""
    write_atomically(path, xml.to_bytes())


def localname(element: etree._Element) -> str:
    """The element name without namespace (real files have none, but tolerate one)."""
    return etree.QName(element).localname


def child_elements(parent: etree._Element) -> list[etree._Element]:
    """Element children only: comments, processing instructions and entities are skipped."""
    return [child for child in parent if isinstance(child.tag, str)]


def _refusal(code: str, message: str, file: str, line: int | None = None) -> ConfigSyntaxError:
    """A syntax error tagged with a finding code (``unsafe-xml``, ``too-large``) for reports."""
    error = ConfigSyntaxError(message, file=file, line=line)
    error.code = code  # type: ignore[attr-defined]
    return error


def _node_text(node: etree._Element) -> str:
    return etree.tostring(node, encoding="unicode", with_tail=False)


def _bom_for(codec: str) -> bytes:
    return next((bom for bom, name in _BOMS if name == codec), b"")


def _sniff_encoding(data: bytes) -> tuple[str, int]:
    """(Python codec, BOM length): BOM first, then UTF-16 without BOM, then the declaration."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    if data.startswith(b"<\x00?\x00"):
        return "utf-16-le", 0
    if data.startswith(b"\x00<\x00?"):
        return "utf-16-be", 0
    declared = _DECLARED_ENCODING.match(data)
    if declared:
        try:
            codec = codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            return "utf-8", 0  # lxml reports the unknown encoding with its line
        if codec in ("utf-16", "utf-32"):  # declared, but no BOM and not UTF-16 bytes
            return "utf-8", 0
        return codec, 0
    return "utf-8", 0


def _refuse_dangerous_doctype(text: str, name: str) -> None:
    """Refuse a DOCTYPE with an internal subset or an external DTD before any parser sees it.

    The router's files never carry one, and a DOCTYPE is how XXE and entity-expansion attacks
    get in. A bare ``<!DOCTYPE Configuration>`` is harmless and is kept.
    """
    position = 0
    declaration = _DECLARATION.match(text)
    if declaration:
        position = declaration.end()
    while (item := _PROLOG_ITEM.match(text, position)) is not None:
        position = item.end()
    rest = text[position:].lstrip()
    if rest[:9].upper() != "<!DOCTYPE":
        return
    start = len(text) - len(rest)
    line = text.count("\n", 0, start) + 1
    header_end = min((i for i in (rest.find("["), rest.find(">")) if i >= 0), default=len(rest))
    header = rest[:header_end]
    subset = rest[header_end:] if rest[header_end : header_end + 1] == "[" else ""
    if "<!ENTITY" in subset.upper():
        raise _refusal(
            "unsafe-xml",
            "the DOCTYPE declares entities, which router configuration files never do (this is "
            "how XXE and 'billion laughs' attacks work); refusing to parse. Remove the DOCTYPE",
            file=name,
            line=line,
        )
    if subset:
        raise _refusal(
            "unsafe-xml",
            "the DOCTYPE has an internal DTD subset, which router configuration files never "
            "have; refusing to parse. Remove the DOCTYPE",
            file=name,
            line=line,
        )
    if re.search(r"\b(SYSTEM|PUBLIC)\b", header):
        raise _refusal(
            "unsafe-xml",
            "the DOCTYPE refers to an external DTD, which router configuration files never do; "
            "refusing to parse. Remove the DOCTYPE",
            file=name,
            line=line,
        )


def _refuse_parsed_dtd(tree: etree._ElementTree, name: str) -> None:
    """Second line of defence, should the text scan above ever be fooled."""
    info = tree.docinfo
    dtd = info.internalDTD
    declares = dtd is not None and (any(True for _ in dtd.iterentities()) or dtd.elements())
    if declares or info.system_url or info.public_id:
        raise _refusal(
            "unsafe-xml",
            "the file carries a DTD (entities or declarations); refusing it. Remove the DOCTYPE",
            file=name,
        )
