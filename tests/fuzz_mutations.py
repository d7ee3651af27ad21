"""Hostile variations of real messages: the inputs of the fuzz test and ``benchmarks/fuzz.py``.

A fuzz *case* is a corpus message, a list of named mutations and a seed; :func:`build` turns it
into bytes deterministically, so a failing case is replayed from its three values alone. The
mutations are the ways mail from outside has broken the router (issue 12): text that cannot be
stored (a lone UTF-16 surrogate from ``=?utf-7?Q?+2AA-?=`` or a ``unicode_escape`` label), raw
8-bit bytes inside encoded words, charset labels naming bytes-to-bytes codecs, a first line that
is not a header, long header values without ``@``, deep nesting, truncation, random byte damage,
duplicated headers, broken boundaries, and a few more.

Every case first gets a Message-ID of its own (the first header), so two cases are never the
same message unless the batch holds an exact copy on purpose: a "duplicate" outcome for anything
else means two distinct messages were taken for one.

The corpus is the vendored ``emailrouter_lib/demo/data/corpus`` (always in the checkout) plus
``../shared/corpora`` when that folder is beside the repository.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from emailrouter_lib.crm.demo import DOMAIN, TOKEN_PRINTER

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "emailrouter_lib" / "demo" / "data" / "corpus"
SHARED = ROOT.parent / "shared" / "corpora"
_NOT_MESSAGES = {".json", ".yml", ".yaml", ".md", ".tsv"}

#: Long header values: 20–50 KB keeps the normal suite fast once the scans are linear; the issue
#: measured 200 KB (> 120 s) and 1 MB (≈ 2 h) on quadratic ones. ``benchmarks/fuzz.py`` can ask
#: for more.
LONG_HEADER_BYTES = (20_000, 50_000)

Mutation = Callable[[bytes, random.Random], bytes]


# -- the corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusMessage:
    name: str  # the path below its corpus folder, prefixed "vendored/" or "shared/"
    raw: bytes


def corpus(*, shared: bool = True) -> list[CorpusMessage]:
    """Every RFC 822 file of the vendored corpus, and of ../shared/corpora when it is there."""
    folders = [("vendored", VENDORED)] + ([("shared", SHARED)] if shared else [])
    found: list[CorpusMessage] = []
    for label, folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix.lower() in _NOT_MESSAGES:
                continue
            upper = path.name.upper()
            if "LICENSE" in upper or upper.startswith(("NOTICE", "COPYING", "README")):
                continue
            raw = path.read_bytes()
            if raw[:4] == b"\xd0\xcf\x11\xe0" or b":" not in raw[:300]:  # Outlook .msg, not mail
                continue
            found.append(CorpusMessage(f"{label}/{path.relative_to(folder)}", raw))
    return found


# -- a case ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fuzz input: which corpus message, which mutations in order, which seed."""

    source: str
    mutations: tuple[str, ...]
    seed: int

    def describe(self) -> str:
        return f"{self.source} + {'+'.join(self.mutations) or 'nothing'} (seed {self.seed})"


def build(case: Case, sources: dict[str, bytes], message_id: str) -> bytes:
    """The bytes of *case*: its corpus message with *message_id*, then each mutation in turn."""
    raw = with_message_id(sources[case.source], message_id)
    rng = random.Random(case.seed)
    for name in case.mutations:
        raw = MUTATIONS[name](raw, rng)
    return raw


def random_case(rng: random.Random, names: list[str], *, most: int = 3) -> Case:
    """A case drawn the way the long fuzz run draws them (the test lets Hypothesis draw)."""
    count = rng.choice((1, 1, 1, 2, 2, most)) if most > 1 else 1
    return Case(rng.choice(names), tuple(rng.sample(MUTATION_NAMES, count)), rng.getrandbits(32))


# -- header surgery -------------------------------------------------------------------------------

_SEPARATOR = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_MBOX_FROM = re.compile(rb"From [^\r\n]*(?:\r\n|\n|\r)")
_ADDRESS = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;]+))', re.IGNORECASE)


def newline(raw: bytes) -> bytes:
    head = raw[:4096]
    if b"\r\n" in head:
        return b"\r\n"
    return b"\n" if b"\n" in head or b"\r" not in head else b"\r"


def split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(mbox From line or b"", header block, the rest from the separating blank line on)."""
    envelope = b""
    match = _MBOX_FROM.match(raw)
    if match:
        envelope, raw = raw[: match.end()], raw[match.end() :]
    sep = _SEPARATOR.search(raw)
    if sep is None:
        return envelope, raw, b""
    return envelope, raw[: sep.start()], raw[sep.start() :]


def _header_lines(head: bytes, nl: bytes) -> list[bytes]:
    """The header block as whole (unfolded-in-place) fields, continuation lines attached."""
    fields: list[bytes] = []
    for line in head.split(nl):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += nl + line
        else:
            fields.append(line)
    return fields


def _is(field: bytes, name: bytes) -> bool:
    return field.lower().startswith(name.lower() + b":")


def header_value(raw: bytes, name: bytes) -> bytes | None:
    _, head, _ = split(raw)
    for field in _header_lines(head, newline(raw)):
        if _is(field, name):
            return field.split(b":", 1)[1].strip()
    return None


def set_header(raw: bytes, name: bytes, value: bytes, *, keep_others: bool = False) -> bytes:
    """*raw* with one ``name: value`` field first in the header block (others removed unless
    *keep_others*)."""
    nl = newline(raw)
    envelope, head, rest = split(raw)
    fields = [f for f in _header_lines(head, nl) if keep_others or not _is(f, name)]
    fields.insert(0, name + b": " + value)
    return envelope + nl.join(f for f in fields if f) + (rest or nl + nl)


def remove_header(raw: bytes, name: bytes) -> bytes:
    nl = newline(raw)
    envelope, head, rest = split(raw)
    return envelope + nl.join(f for f in _header_lines(head, nl) if not _is(f, name)) + rest


def with_message_id(raw: bytes, message_id: str) -> bytes:
    return set_header(raw, b"Message-ID", message_id.encode("ascii"))


def _address(raw: bytes, name: bytes, default: bytes) -> bytes:
    found = _ADDRESS.search(header_value(raw, name) or b"")
    return found.group(0) if found else default


def add_part(raw: bytes, part_headers: list[bytes], body: bytes) -> bytes:
    """*raw* wrapped in a multipart/mixed whose first part is the old body and second the new.

    The content headers move into the first part, so the original stays readable as it was.
    """
    nl = newline(raw)
    envelope, head, rest = split(raw)
    fields = _header_lines(head, nl)
    content = [f for f in fields if f.lower().startswith((b"content-", b"mime-version"))]
    others = [f for f in fields if f not in content]
    boundary = b"fuzz-part-" + str(len(raw)).encode()
    inner = [f for f in content if not f.lower().startswith(b"mime-version")] or [
        b"Content-Type: text/plain; charset=us-ascii"
    ]
    old_body = rest.lstrip(b"\r\n")
    return (
        envelope
        + nl.join([*others, b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="'])
        + boundary
        + b'"'
        + nl
        + nl
        + b"--"
        + boundary
        + nl
        + nl.join(inner)
        + nl
        + nl
        + old_body
        + nl
        + b"--"
        + boundary
        + nl
        + nl.join(part_headers)
        + nl
        + nl
        + body
        + nl
        + b"--"
        + boundary
        + b"--"
        + nl
    )


# -- hostile text in a chosen place ---------------------------------------------------------------

#: Words that decode to a lone UTF-16 surrogate: nothing can store them as UTF-8.
UNENCODABLE_WORDS = (
    b"=?utf-7?Q?+2AA-?=",
    b"=?utf-7?B?KzJBQS0=?=",
    b"=?UTF-7?Q?caf+AOk-_+2D3eAA-_+2AA-?=",
    b"=?unicode_escape?Q?\\ud800?=",
    b"=?raw_unicode_escape?Q?\\ud83d?=",
    b"=?unicode-escape?B?XHVkZmZm?=",
)
#: Raw 8-bit bytes inside encoded words, as broken mailers write them.
RAW_8BIT_WORDS = (
    b"=?utf-8?Q?Caf\xc3\xa9?=",
    b"=?iso-8859-1?Q?r\xe9sum\xe9?=",
    b"=?utf-8?B?\xff\xfe\xfd?=",
    b"=?us-ascii?Q?\x80\x81\xff?=",
    b"=?windows-1252?Q?\x93quoted\x94?= \xe4\xf6\xfc",
)
#: Labels that name bytes-to-bytes codecs, which no text can be decoded with.
BYTES_CODECS = (
    b"base64",
    b"zlib",
    b"rot13",
    b"rot_13",
    b"uu",
    b"hex",
    b"bz2",
    b"quopri",
    b"base64_codec",
    b"zip",
    b"hex_codec",
    b"uu_codec",
    b"quopri_codec",
)
#: Bodies of a text part labelled with those charsets.
_UNENCODABLE_BODIES = (
    (b"utf-7", b"Hello +2AA- world"),
    (b"unicode_escape", b"Hello \\udc80 world"),
)


def _words(kind: str, rng: random.Random) -> bytes:
    if kind == "unencodable":
        return rng.choice(UNENCODABLE_WORDS)
    if kind == "raw8bit":
        return rng.choice(RAW_8BIT_WORDS)
    codec = rng.choice(BYTES_CODECS)
    return b"=?" + codec + b"?" + rng.choice((b"Q?abc", b"B?YWJj")) + b"?="


def _hostile_text(place: str, kind: str, raw: bytes, rng: random.Random) -> bytes:
    word = _words(kind, rng)
    if place == "subject":
        return set_header(raw, b"Subject", b"Re: " + word + b" your order")
    if place in ("from-name", "to-name", "cc-name"):
        name = {"from-name": b"From", "to-name": b"To", "cc-name": b"Cc"}[place]
        default = b"carol@fabrikam.example" if name == b"From" else b"support@" + DOMAIN.encode()
        return set_header(raw, name, word + b" <" + _address(raw, name, default) + b">")
    if place == "attachment-name":
        filename = rng.choice(
            (
                b'filename="' + word + b'.txt"',
                b"filename*=" + _charset_of(word) + b"''%2B2AA-%5Cud800.txt",
            )
        )
        return add_part(
            raw,
            [
                b'Content-Type: application/octet-stream; name="' + word + b'.txt"',
                b"Content-Disposition: attachment; " + filename,
                b"Content-Transfer-Encoding: base64",
            ],
            b"SGVsbG8K",
        )
    # place == "body": a text part in a charset whose text cannot be stored or decoded
    if kind == "bytes-charset":
        charset, body = rng.choice(BYTES_CODECS), b"aGVsbG8="
    elif kind == "raw8bit":
        charset, body = b"utf-8", b"\xff\xfe caf\xe9 \xc3("
    else:
        charset, body = rng.choice(_UNENCODABLE_BODIES)
    return add_part(raw, [b"Content-Type: text/plain; charset=" + charset], body)


def _charset_of(word: bytes) -> bytes:
    return word[2:].split(b"?", 1)[0]


# -- a first line that is not a header ------------------------------------------------------------


def _leading_blank_line(raw: bytes, rng: random.Random) -> bytes:
    return newline(raw) + raw


def _received_without_colon(raw: bytes, rng: random.Random) -> bytes:
    return b"Received from mx.fabrikam.example by mx.contoso.example" + newline(raw) + raw


def _leading_garbage_line(raw: bytes, rng: random.Random) -> bytes:
    return rng.choice((b">From someone", b"  indented", b"%PDF-1.4", b"\x00\x01\x02")) + (
        newline(raw) + raw
    )


def _nul_in_first_line(raw: bytes, rng: random.Random) -> bytes:
    end = max(1, raw.find(b"\n") if raw.find(b"\n") > 0 else len(raw))
    at = rng.randrange(0, end)
    return raw[:at] + b"\x00" + raw[at:]


def _mbox_from_bare_cr(raw: bytes, rng: random.Random) -> bytes:
    text = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    return b"From MAILER-DAEMON Mon Mar  4 12:00:00 2024" + rng.choice((b"\r", b"\n")) + text


# -- long header values without "@" ---------------------------------------------------------------


def _long_header(name: bytes, raw: bytes, rng: random.Random) -> bytes:
    """A value of tens of KB with no "@" to anchor on: bare, bracketed or never closed."""
    size = rng.randint(*LONG_HEADER_BYTES)
    filler = rng.choice((b"a", b"a", b"<", b"x.", b"<a", b" a"))
    value = (filler * (size // len(filler)))[:size] + b"%d" % rng.getrandbits(32)
    shape = rng.choice((b"%s", b"<%s>", b"<%s"))  # bare, bracketed, never closed
    return set_header(raw, name, shape % value)


# -- structure ------------------------------------------------------------------------------------


def _deep_multipart(raw: bytes, rng: random.Random) -> bytes:
    """The message's own body at the bottom of hundreds of nested multiparts, some unclosed."""
    nl = newline(raw)
    envelope, head, rest = split(raw)
    fields = _header_lines(head, nl)
    content = [f for f in fields if f.lower().startswith(b"content-")]
    top = [f for f in fields if f not in content and not f.lower().startswith(b"mime-version")]
    opening, closing = [], []
    for level in range(rng.randint(20, 400)):
        b = b"d%d" % level
        opening.append(b'Content-Type: multipart/mixed; boundary="' + b + b'"' + nl + nl)
        opening.append(b"--" + b + nl)
        closing.insert(0, nl + b"--" + b + b"--" + nl)
    if rng.random() < 0.3:
        closing = closing[: rng.randrange(len(closing) + 1)]  # some never closed
    inner = nl.join(content or [b"Content-Type: text/plain"]) + nl + nl + rest.lstrip(b"\r\n")
    return (
        envelope
        + nl.join([*top, b"MIME-Version: 1.0"])
        + nl
        + b"".join(opening)
        + inner
        + b"".join(closing)
    )


def _deep_rfc822(raw: bytes, rng: random.Random) -> bytes:
    nl = newline(raw)
    inner = raw
    for level in range(rng.randint(5, 60)):
        inner = (
            b"From: level%d@fabrikam.example" % level
            + nl
            + b"Subject: wrapped"
            + nl
            + b"Content-Type: message/rfc822"
            + nl
            + nl
            + inner
        )
    _, head, _ = split(raw)
    top = [f for f in _header_lines(head, nl) if not f.lower().startswith(b"content-")]
    return nl.join([*top, b"Content-Type: message/rfc822"]) + nl + nl + inner


def _many_parts(raw: bytes, rng: random.Random) -> bytes:
    nl = newline(raw)
    count = rng.randint(50, 2000)
    part = b"--many" + nl + b"Content-Type: text/plain" + nl + nl + b"x" + nl
    envelope, head, _ = split(raw)
    top = [f for f in _header_lines(head, nl) if not f.lower().startswith(b"content-")]
    return (
        envelope
        + nl.join([*top, b'Content-Type: multipart/mixed; boundary="many"'])
        + nl
        + nl
        + part * count
        + b"--many--"
        + nl
    )


def _boundary_damage(raw: bytes, rng: random.Random) -> bytes:
    match = _BOUNDARY.search(raw)
    if match is None:  # make it multipart first, then damage that
        raw = add_part(raw, [b"Content-Type: text/plain"], b"second part")
        match = _BOUNDARY.search(raw)
    boundary = match.group(1) if match.group(1) is not None else match.group(2)
    how = rng.randrange(6)
    if how == 0:  # the closing delimiter is missing
        return raw.replace(b"--" + boundary + b"--", b"")
    if how == 1:  # the parameter names a boundary the body never uses
        return raw[: match.start()] + b'boundary="not-there"' + raw[match.end() :]
    if how == 2:  # an empty boundary
        return raw[: match.start()] + b'boundary=""' + raw[match.end() :]
    if how == 3:  # a delimiter line damaged somewhere
        lines = [m.start() for m in re.finditer(re.escape(b"--" + boundary), raw)]
        if not lines:  # the body never uses its boundary: nothing to damage
            return raw
        at = rng.choice(lines) + 2 + rng.randrange(max(1, len(boundary)))
        return raw[:at] + b"\x00" + raw[at + 1 :]
    if how == 4:  # the quote is never closed
        return raw[: match.start()] + b'boundary="' + boundary + raw[match.end() :]
    return raw.replace(b"--" + boundary, b"--" + boundary + b" " * rng.randint(1, 3) + b"\t")


def _truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(len(raw) + 1)]


def _byte_flips(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _byte_inserts(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        chunk = rng.choice((b"\x00", b"\r", b"\n", b"\xff", b"=?", b"?=", b":", b"--", b"\x1b"))
        at = rng.randrange(len(data) + 1)
        data[at:at] = chunk
    return bytes(data)


def _byte_deletes(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 20)):
        if data:
            at = rng.randrange(len(data))
            del data[at : at + rng.randint(1, 8)]
    return bytes(data)


def _duplicate_headers(raw: bytes, rng: random.Random) -> bytes:
    nl = newline(raw)
    envelope, head, rest = split(raw)
    fields = _header_lines(head, nl)
    if not fields:
        return raw
    for _ in range(rng.randint(1, 5)):
        fields.insert(rng.randrange(len(fields) + 1), rng.choice(fields))
    return envelope + nl.join(fields) + rest


def _line_endings(raw: bytes, rng: random.Random) -> bytes:
    lf = raw.replace(b"\r\n", b"\n")
    how = rng.randrange(3)
    if how == 0:
        return lf.replace(b"\n", b"\r\n")
    if how == 1:
        return lf.replace(b"\n", b"\r")
    return bytes(b for line in lf.split(b"\n") for b in line + rng.choice((b"\n", b"\r\n", b"\r")))


def _bad_transfer_encoding(raw: bytes, rng: random.Random) -> bytes:
    encoding = rng.choice((b"base64", b"quoted-printable", b"x-uuencode", b"8bit\x00", b"bogus"))
    body = rng.choice((b"!!!not base64===", b"=ZZ=\xff=0", b"begin 644 x\n`\nend\n", b"\xff" * 9))
    return add_part(
        raw,
        [b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: " + encoding],
        body,
    )


def _bad_charset_label(raw: bytes, rng: random.Random) -> bytes:
    label = rng.choice((b"x-unknown", b"utf-8\x00", b"utf-8" * 200, b'"', b"", b"utf-16", b"idna"))
    return add_part(raw, [b"Content-Type: text/plain; charset=" + label], b"caf\xe9 \x00\xff")


def _hostile_date(raw: bytes, rng: random.Random) -> bytes:
    value = rng.choice(
        (
            b"Mon, 99 Foo 99999 99:99:99 +9999",
            b"",
            b"Thu, 01 Jan 1970 00:00:00 -2400",
            b"Fri, 31 Dec 9999 23:59:60 +1400",
            b"0",
            b"\xff\xfe",
        )
    )
    return set_header(raw, b"Date", value)


def _address_garbage(raw: bytes, rng: random.Random) -> bytes:
    value = rng.choice(
        (
            b"," * 500,
            b'"unclosed <support@' + DOMAIN.encode() + b">",
            b"<<<<>>>>@@@",
            b"group: a@b.example, (comment (nested (deep))) c@d.example;" * 20,
            b"\\" * 100 + b"@",
            b"support@" + DOMAIN.encode() + b" " + b"(" * 300,
        )
    )
    return set_header(raw, rng.choice((b"To", b"Cc", b"From", b"Reply-To")), value)


def _drop_message_id(raw: bytes, rng: random.Random) -> bytes:
    return remove_header(raw, b"Message-ID")


def _tracked_reply(raw: bytes, rng: random.Random) -> bytes:
    """A reply the CRM can correlate: the demo's token in the Subject and its In-Reply-To."""
    number = TOKEN_PRINTER.split(":", 1)[1]
    raw = set_header(raw, b"In-Reply-To", f"<crm.{number}.seed@{DOMAIN}>".encode())
    subject = header_value(raw, b"Subject") or b"your request"
    return set_header(raw, b"Subject", b"RE: " + subject + b" " + TOKEN_PRINTER.encode())


def _as_ndr(raw: bytes, rng: random.Random) -> bytes:
    """A bounce: its Subject and From are read for the row of a message that is skipped."""
    raw = set_header(raw, b"X-MS-Exchange-Message-Is-Ndr", b"")
    return set_header(raw, b"From", b"Mail Delivery System <MAILER-DAEMON@fabrikam.example>")


def _nul_bytes(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 10)):
        at = rng.randrange(len(data) + 1)
        data[at:at] = b"\x00"
    return bytes(data)


MUTATIONS: dict[str, Mutation] = {}
for _kind, _places in (
    ("unencodable", ("subject", "from-name", "to-name", "cc-name", "body", "attachment-name")),
    ("raw8bit", ("subject", "from-name", "to-name", "cc-name", "body", "attachment-name")),
    ("bytes-charset", ("subject", "from-name", "body", "attachment-name")),
):
    for _place in _places:
        MUTATIONS[f"{_kind}-{_place}"] = partial(_hostile_text, _place, _kind)
for _name in (b"Message-ID", b"In-Reply-To", b"References", b"Return-Path"):
    MUTATIONS[f"long-{_name.decode().lower()}"] = partial(_long_header, _name)
MUTATIONS.update(
    {
        "leading-blank-line": _leading_blank_line,
        "received-without-colon": _received_without_colon,
        "leading-garbage-line": _leading_garbage_line,
        "nul-in-first-line": _nul_in_first_line,
        "mbox-from-bare-cr": _mbox_from_bare_cr,
        "deep-multipart": _deep_multipart,
        "deep-rfc822": _deep_rfc822,
        "many-parts": _many_parts,
        "boundary-damage": _boundary_damage,
        "truncate": _truncate,
        "byte-flips": _byte_flips,
        "byte-inserts": _byte_inserts,
        "byte-deletes": _byte_deletes,
        "duplicate-headers": _duplicate_headers,
        "line-endings": _line_endings,
        "bad-transfer-encoding": _bad_transfer_encoding,
        "bad-charset-label": _bad_charset_label,
        "hostile-date": _hostile_date,
        "address-garbage": _address_garbage,
        "drop-message-id": _drop_message_id,
        "tracked-reply": _tracked_reply,
        "as-ndr": _as_ndr,
        "nul-bytes": _nul_bytes,
    }
)
MUTATION_NAMES = sorted(MUTATIONS)
