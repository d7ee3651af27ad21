"""SOAP and EWS XML: namespaces, element building, envelopes and faults as Exchange words them."""

from __future__ import annotations

from lxml import etree

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"s": S, "m": M, "t": T}
_PREFIX = {"s": S, "m": M, "t": T, "e": E, "xsi": XSI}

# Exchange 2016 CU (what the version header says); exchangelib only reads it
SERVER_VERSION = {
    "MajorVersion": "15",
    "MinorVersion": "1",
    "MajorBuildNumber": "2507",
    "MinorBuildNumber": "6",
    "Version": "V2017_07_11",
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def qname(tag: str) -> str:
    prefix, _, local = tag.partition(":")
    return f"{{{_PREFIX[prefix]}}}{local}"


def el(tag: str, attrs: dict | None = None, *children, text: str | None = None) -> etree._Element:
    """``el("t:ItemId", {"Id": ...})``: an element with attributes, children and text."""
    node = etree.Element(qname(tag), nsmap=NSMAP)
    for name, value in (attrs or {}).items():
        if value is not None:
            node.set(name, str(value))
    for child in children:
        if child is not None:
            node.append(child)
    if text is not None:
        node.text = text
    return node


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, parser=_PARSER)


def find(node, path: str):
    """``find(node, "m:ItemShape/t:BaseShape")`` with the EWS prefixes."""
    return node.find(_path(path)) if node is not None else None


def findall(node, path: str) -> list:
    return node.findall(_path(path)) if node is not None else []


def text(node, path: str, default: str | None = None) -> str | None:
    found = find(node, path)
    return found.text if found is not None and found.text is not None else default


def _path(path: str) -> str:
    return "/".join(qname(p) if ":" in p else p for p in path.split("/"))


def local(node) -> str:
    return etree.QName(node).localname


def envelope(body_child: etree._Element, *, version: bool = True) -> bytes:
    env = el("s:Envelope")
    if version:
        header = el("s:Header")
        info = etree.SubElement(header, qname("t:ServerVersionInfo"), nsmap={"h": T})
        for k, v in SERVER_VERSION.items():
            info.set(k, v)
        env.append(header)
    env.append(el("s:Body", None, body_child))
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def fault(code: str, message: str, *, back_off_ms: int | None = None) -> bytes:
    """A SOAP fault as Exchange sends it for request-level errors (ErrorServerBusy...)."""
    node = etree.Element(qname("s:Fault"), nsmap={"s": S})
    fc = etree.SubElement(node, "faultcode", nsmap={"a": T})
    fc.text = f"a:{code}"
    etree.SubElement(node, "faultstring").text = message
    detail = etree.SubElement(node, "detail")
    etree.SubElement(detail, qname("e:ResponseCode"), nsmap={"e": E}).text = code
    etree.SubElement(detail, qname("e:Message"), nsmap={"e": E}).text = message
    if back_off_ms is not None:
        xml = etree.SubElement(detail, qname("t:MessageXml"), nsmap={"t": T})
        value = etree.SubElement(xml, qname("t:Value"))
        value.set("Name", "BackOffMilliseconds")
        value.text = str(back_off_ms)
    env = etree.Element(qname("s:Envelope"), nsmap={"s": S})
    etree.SubElement(env, qname("s:Body")).append(node)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def to_bytes(node: etree._Element) -> bytes:
    return etree.tostring(node)


__all__ = [
    "NSMAP",
    "E",
    "M",
    "S",
    "T",
    "el",
    "envelope",
    "fault",
    "find",
    "findall",
    "local",
    "parse",
    "qname",
    "text",
]
