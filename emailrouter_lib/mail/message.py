"""A received message, parsed once and read many times.

Routing asks the same message for its Message-ID, addresses, body, attachments and class. Parsing
is the dominant cost, so :class:`ParsedMessage` parses the bytes exactly once, on first use, with
the stdlib ``email`` package under ``policy=compat32`` (``policy.default`` is about ten times
slower and raises on real-world messages), walks the MIME tree once, and caches every answer. The
message is never re-serialised; only an attached ``message/rfc822`` part is turned back into bytes,
and only when asked for.

Like the ``email`` package itself, bad MIME is never an exception: parse problems are recorded in
:attr:`ParsedMessage.defects`. :class:`~emailrouter_lib.errors.MessageError` is raised only for
input that is not a message at all (empty, an Outlook ``.msg`` file, binary data with no header).
A header block that is readable but does not start with a header (blank lines first, a trace line
without its colon, NUL bytes) is recovered, with a defect, rather than read as all body.

Every text the message hands out (headers, names, addresses, bodies, file names) is made storable
here, once: characters no UTF-8 encoder takes are replaced and NUL characters removed, each time
with a defect, so one hostile message cannot fail the CRM write or the run's files later.
"""

from __future__ import annotations

import binascii
import email
import email.utils
import hashlib
import html
import io
import mimetypes
import quopri
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesFeedParser, BytesHeaderParser
from email.policy import Compat32
from functools import cached_property
from typing import TypeVar

from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail.charsets import (
    decode_bytes,
    decode_encoded_words,
    decode_header_text,
    has_raw_8bit,
    storable,
    text_from_raw_header,
    unfold,
)

#: How much of one header value parsing reads. RFC 5322 limits a line to 998 characters, and real
#: values of many folded lines (a long References, a big To list) stay far below this; a longer one
#: is read up to the limit, with a defect. The message's bytes are never changed: the quarantine
#: copy and an attached message's bytes are as received.
HEADER_READ_LIMIT = 64 * 1024
#: Parameters of a Content-Type or Content-Disposition read. The stdlib parameter parser reads the
#: value again from its start for every ";" (64 KB of ";" in quotes took 7 s).
PARAMETER_READ_LIMIT = 100
_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})
_FEED_CHUNK = 64 * 1024
_WELL_FORMED_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]*+(?:=[\r\n]*+){0,2}")
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0"
_HEADER_LINE = re.compile(rb"([A-Za-z0-9][A-Za-z0-9_.-]*)[ \t]*:(?!//)")
# One of these alone makes a header; otherwise two header-like lines are needed, so that a
# licence text with "http://..." in it is not taken for a message.
_KNOWN_FIELDS = frozenset(
    b"from to cc subject date received return-path message-id mime-version reply-to sender "
    b"delivered-to envelope-to in-reply-to references thread-index auto-submitted".split()
)
_KNOWN_PREFIXES = (b"x-", b"content-", b"resent-", b"list-", b"arc-", b"dkim-")
_FIRST_LINES = 12
_MSG_ID = re.compile(r"<([^<>\s]*)>")
# The look-behind lets a match start only where a run of id characters starts: without it, a
# long value with no "@" was re-read from every one of its characters (1 MB: about two hours).
_BARE_MSG_ID = re.compile(r"(?<![^<>\s@])[^<>\s@]+@[^<>\s@]+")
# A plain address list item: ``"Quoted Name" <a@b>``, ``Name <a@b>`` or ``a@b``, then a comma or
# the end. Nothing in it that the stdlib parser would read differently (comments, groups, routes,
# escapes, domain literals); an empty item (``a@b,,c@d``) matches too.
# Possessive quantifiers (nothing to give back: each class stops where the next part starts) keep
# a match linear; the lazy name of before re-tried every split of a long run of blanks.
_ADDR_SPEC = r'[^\s<>,@"();:\[\]\\]++@[^\s<>,@"();:\[\]\\]++'
_LIST_ITEM = re.compile(
    rf'\s*+(?:"([^"\\]*+)"\s*+<({_ADDR_SPEC})>|([^<>,@"();:\[\]\\]*+)<({_ADDR_SPEC})>|({_ADDR_SPEC}))?'
    r"\s*+(?:,|\Z)"
)
# What the stdlib address parser leaves at its top level: quoted strings and plain <...> addresses
# taken out (see _certainly_too_deep).
_QUOTED_OR_ANGLE = re.compile(r'"[^"]*"?|<[^<>"]*>')
# Characters that end a bare address picked out of an unparseable list (besides whitespace).
_ADDRESS_DELIMITERS = frozenset('<>,;:"()[]')
_SYNTHETIC_DOMAIN = "emailrouter.invalid"
# Fields added on the way to the mailbox, not written by the sender: the same message delivered to
# two mailboxes differs in them, and must keep one identity (the second copy is a duplicate).
_TRACE_FIELDS = frozenset(
    (
        b"received return-path delivered-to x-original-to envelope-to x-envelope-to "
        b"x-delivered-to status x-status x-keywords x-uid content-length lines "
        b"x-mozilla-status x-mozilla-status2"
    ).split()
)
_LEADING_BLANK_LINES = re.compile(rb"(?:[ \t]*(?:\r\n|\r|\n))+")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_NUL_WINDOW = 65536  # NUL bytes this far into a message are looked for in its header block
_BODY_SEPARATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*]+')
_TEXT_TYPES = ("text/plain", "text/html")
_DEFECT_DETAIL = 200  # a defect quoting a header line quotes this much of it
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment as the CRM stores it (``activitymimeattachment``)."""

    filename: str
    content_type: str
    payload: bytes = field(repr=False)
    content_id: str | None = None
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """A part that is not a multipart container, with what routing asks of it."""

    part: Message
    content_type: str
    disposition: str


@dataclass(slots=True)
class _Structure:
    """What one walk of the MIME tree found (attached messages are not descended into)."""

    text_part: Message | None = None
    html_part: Message | None = None
    attachments: list[_Leaf] = field(default_factory=list)
    leaves: list[_Leaf] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


def _where(origin: str | None, size: int) -> str:
    return origin if origin else f"message of {size} bytes"


def _looks_like_headers(head: bytes) -> bool:
    """Whether the first lines of *head* are a header block: one known field or two fields."""
    header_like = 0
    for line in head[:8192].splitlines()[:_FIRST_LINES]:
        if b"\x00" in line or not line.strip():
            break  # binary data, or the end of the header block
        match = _HEADER_LINE.match(line)
        if match:
            header_like += 1
            name = match.group(1).lower()
            if header_like >= 2 or name in _KNOWN_FIELDS or name.startswith(_KNOWN_PREFIXES):
                return True
    return False


def _line_end(data: bytes, start: int = 0) -> int:
    """Where the line at *start* ends (after its LF, CRLF or bare CR); the end of the data."""
    found = _LINE_END.search(data, start)
    return found.end() if found else len(data)


def _shown_line(line: bytes) -> str:
    return repr(line.rstrip(b"\r\n")[:80].decode("ascii", "replace"))


def _recover_header_block(data: bytes) -> tuple[bytes, bytes, list[str]]:
    """Make *data* start with its header block: ``(data, skipped line, defects)``.

    The stdlib parser reads everything as body when the first line is not a header, so a
    readable message would lose its sender, recipients and Message-ID. Skipped, each with a
    defect: blank lines before the header; NUL bytes in the header block; one first line that is
    not a header field (a ``Received`` line without its colon) when header fields follow it. An
    mbox envelope line (``From ...`` with any line end) is removed silently, as it always was.
    """
    defects: list[str] = []
    if data.startswith(b"From "):
        data = data[_line_end(data) :]
    blank = _LEADING_BLANK_LINES.match(data)
    if blank and blank.end() < len(data):
        data = data[blank.end() :]
        defects.append("header block: blank lines before the first header field were skipped")
    nul = data.find(b"\x00", 0, _NUL_WINDOW)  # the parser stops at a NUL in a field name
    if nul >= 0 and not data.startswith(_OLE2_MAGIC):
        end = _body_offset(data)
        head = data[:end].replace(b"\x00", b"") if nul < end else b""
        if head and _looks_like_headers(head):
            data = head + data[end:]
            defects.append("header block: NUL bytes removed")
    skipped = b""
    if data[:1] not in (b" ", b"\t") and not _HEADER_LINE.match(data, 0, 1000):
        rest = _line_end(data)
        while data[rest : rest + 1] in (b" ", b"\t"):  # the junk line's continuation lines
            rest = _line_end(data, rest)
        head = data[rest : rest + 8192]
        if _HEADER_LINE.match(head) and _looks_like_headers(head):
            skipped, data = data[:rest], data[rest:]
            defects.append(
                f"header block: the first line {_shown_line(skipped)} is not a header field; "
                "skipped"
            )
    return data, skipped, defects


def _check_is_message(data: bytes, origin: str | None) -> None:
    """Refuse what is not an RFC 822 message at all, without parsing it."""
    where = _where(origin, len(data))
    head = data[:8192].lstrip()  # not data.strip(): that would copy the whole message
    if not head and not data.strip():
        raise MessageError(f"{where}: is empty; there is no message to route")
    if data.startswith(_OLE2_MAGIC):
        raise MessageError(
            f"{where}: is an Outlook .msg file (OLE2 compound document), not an RFC 822 message; "
            "fetch the item from the mailbox as MIME (IMAP, POP3 or EWS) or save it from Outlook "
            "as .eml, then route that"
        )
    if _looks_like_headers(head):
        return
    raise MessageError(
        f"{where}: is not an RFC 822 message (no header field such as 'From:' at its start); "
        "if it is a message in another format, convert it to .eml first"
    )


def _readable(name: str, value: str) -> str:
    """*value* as parsing reads it: at most HEADER_READ_LIMIT characters and PARAMETER_READ_LIMIT
    parameters (a ";" more ends what is read)."""
    if len(value) <= PARAMETER_READ_LIMIT:  # nearly every value: too short to be cut
        return value
    if len(value) > HEADER_READ_LIMIT:
        value = value[:HEADER_READ_LIMIT]
    if ";" in value and name.strip().lower() in _PARAMETER_HEADERS:
        excess = value.count(";") - PARAMETER_READ_LIMIT
        if excess > 0:
            value = value.rsplit(";", excess)[0]
    return value


def _unread_defect(name: str, value: str) -> str | None:
    """The defect of a header value parsing does not read whole, or None."""
    read = len(_readable(name, value))
    if read == len(value):
        return None
    return (
        f"{name.strip()}: a header value of {len(value)} characters; only the first {read} are"
        " read (the message is kept as received)"
    )


class _ReadingPolicy(Compat32):
    """compat32 that hands out at most what :func:`_readable` keeps of a header value.

    Every look-up (``get``, ``get_param``, the parser's own boundary look-up) goes through
    ``header_fetch_parse``; ``raw_items`` and the serialiser do not, so an attached message is
    written back whole.
    """

    def header_fetch_parse(self, name: str, value: str) -> object:  # a str, or a Header
        return super().header_fetch_parse(name, _readable(name, value))


_READING = _ReadingPolicy()


def _parse_bytes(data: bytes) -> Message:
    """What ``email.message_from_bytes`` returns, fed to the parser 64 KB at a time.

    ``message_from_bytes`` copies the whole message into a ``StringIO`` (four bytes a character)
    before parsing it: a 20 MB message peaked at 159 MB in the parser, fed in chunks at 56 MB.
    """
    parser = BytesFeedParser(policy=_READING)
    for start in range(0, len(data), _FEED_CHUNK):
        parser.feed(data[start : start + _FEED_CHUNK])
    return parser.close()


def _parse(data: bytes) -> tuple[Message, list[str]]:
    """Parse with compat32; a message the MIME parser cannot finish keeps its headers at least."""
    try:
        return _parse_bytes(data), []
    except Exception as exc:  # any parser failure must become a defect, not a crash
        message = BytesHeaderParser(policy=_READING).parsebytes(data, headersonly=True)
        return message, [
            f"MIME structure could not be parsed ({type(exc).__name__}); "
            "the body is kept as one text part"
        ]


def _params_of(read: Callable[[], _T]) -> _T | None:
    """What a stdlib parameter reader answers, or None when it raises.

    ``get_param`` and friends decode RFC 2231 parameters, and that code raises on some hostile
    inputs (``TypeError`` when ``name*0=`` and ``name*=`` are mixed); a bad parameter must not
    stop the message from being read.
    """
    try:
        return read()
    except Exception:
        return None


def _defect_text(defect: object, content_type: str, top: bool) -> str:
    name = type(defect).__name__
    detail = storable(text_from_raw_header(str(defect)))  # compat32 quotes raw header lines
    if len(detail) > _DEFECT_DETAIL:
        detail = f"{detail[:_DEFECT_DETAIL]}..."
    text = f"{name}: {detail}" if detail and detail != name else name
    return text if top else f"{text} (in a {content_type} part)"


def _disposition(part: Message) -> str:
    value = part.get("Content-Disposition")
    if not value:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


def _has_filename(part: Message) -> bool:
    """Whether the part is named (a named text part is a file, not the body)."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = part.get(header)
        # a cheap look at the raw header first: parsing parameters costs more than the check
        if (
            value
            and param in str(value).lower()
            and _params_of(lambda: part.get_param(param, header=header))  # noqa: B023
        ):
            return True
    return False


def _walk(root: Message) -> _Structure:
    """One iterative walk: bodies, attachments, content types and defects, in document order."""
    found = _Structure()
    stack: list[tuple[Message, bool]] = [(root, True)]
    while stack:
        part, top = stack.pop()
        content_type = part.get_content_type()
        found.content_types.append(content_type)
        for defect in part.defects:
            found.defects.append(_defect_text(defect, content_type, top))
        for name, value in part._headers:  # raw_items() would copy the list first
            unread = _unread_defect(name, value) if len(value) > PARAMETER_READ_LIMIT else None
            if unread:
                found.defects.append(unread if top else f"{unread} (in a {content_type} part)")
        maintype = content_type.partition("/")[0]
        payload = part._payload  # compat32 keeps parts or text here; get_payload() may copy
        if maintype == "multipart" and isinstance(payload, list):
            stack.extend((child, False) for child in reversed(payload))
            continue
        leaf = _Leaf(part, content_type, _disposition(part))
        found.leaves.append(leaf)
        if maintype == "message":
            found.attachments.append(leaf)
            continue
        if maintype == "multipart":  # a multipart the parser could not split: show it as text
            content_type = "text/plain"
        if (
            content_type in _TEXT_TYPES
            and leaf.disposition != "attachment"
            and not _has_filename(part)
        ):
            if content_type == "text/plain" and found.text_part is None:
                found.text_part = part
                continue
            if content_type == "text/html" and found.html_part is None:
                found.html_part = part
                continue
        found.attachments.append(leaf)
    return found


def _base64_bytes(part: Message) -> bytes | None:
    """A base64 part's bytes decoded straight from the parsed text; None: ask the stdlib.

    ``get_payload(decode=True)`` encodes the text, splits it into lines and joins them again
    before decoding: a 15 MB attachment took 93 MB. Only well-formed base64 (alphabet, line
    breaks, final padding, whole quanta) is taken here, where both give the same bytes.
    """
    payload = part._payload
    if not isinstance(payload, str) or not payload.isascii():
        return None
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return None
    digits = len(payload) - payload.count("\r") - payload.count("\n")
    if digits % 4 or _WELL_FORMED_BASE64.fullmatch(payload) is None:
        return None
    return binascii.a2b_base64(payload)  # reads the ASCII text in place, no copy


def _part_bytes(part: Message) -> bytes:
    payload = _base64_bytes(part)
    if payload is None:
        payload = part.get_payload(decode=True)
    if payload is None:
        return b""
    return payload


def _part_text(part: Message) -> str:
    """Decoded text of a leaf part, robust to wrong charsets (made storable by the caller)."""
    return decode_bytes(_part_bytes(part), _params_of(part.get_content_charset))


def _report_text(part: Message) -> str:
    """A ``message/delivery-status``-like part as text: compat32 parses it into header blocks."""
    payload = part._payload
    if not isinstance(payload, list):
        return _part_text(part)
    blocks = []
    for block in payload:
        lines = [
            f"{name}: {text_from_raw_header(unfold(value))}" for name, value in block.raw_items()
        ]
        rest = block._payload
        if isinstance(rest, str) and rest.strip():
            lines.append(text_from_raw_header(rest))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class _VerbatimHeaders(Compat32):
    """Writes headers back as parsed: compat32 keeps each value with its original folding.

    The stock compat32 folding rebuilds every header through ``email.header.Header``, which is
    slow and changes the bytes; an attached message should come out as it went in.
    """

    def fold(self, name: str, value: str) -> str:
        return f"{name}: {value}{self.linesep}"

    def fold_binary(self, name: str, value: str) -> bytes:
        return self.fold(name, value).encode("ascii", "surrogateescape")


_VERBATIM = {linesep: _VerbatimHeaders(linesep=linesep) for linesep in ("\n", "\r\n")}


def _serialise(message: Message, linesep: str) -> bytes:
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_VERBATIM[linesep]).flatten(message)
    return buffer.getvalue()


def _attached_message_bytes(part: Message, linesep: str) -> bytes:
    """The bytes of an attached message (``message/rfc822`` and other ``message/*`` parts)."""
    payload = part._payload
    if not isinstance(payload, list):
        return _part_bytes(part)
    if part.get_content_type() != "message/rfc822":
        return _report_text(part).encode("utf-8")
    try:
        data = b"".join(_serialise(inner, linesep) for inner in payload)
    except Exception:  # e.g. RecursionError on absurd nesting: no bytes rather than a crash
        data = b""
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":  # against RFC 2046, but some clients do it
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def _safe_filename(name: str) -> str:
    """Strip directories and control characters: attachment names end up as file names."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip().strip(".")
    return name[:200]


_NAMING_HEADERS = ("content-disposition", "content-type")


def _charset_param(part: Message) -> str | None:
    charset = _params_of(lambda: part.get_param("charset"))
    return charset if isinstance(charset, str) else None


def _part_filename(part: Message, message_charset: str | None = None) -> str | None:
    """The part's file name (``filename``, else ``name``), decoded; None when it has none.

    compat32 turns raw 8-bit bytes in a header into U+FFFD before parsing its parameters, so a
    name written in raw 8-bit is read from the raw header instead: UTF-8 first (``ciële.txt``),
    then the charset the part or else the message declares (Outlook Express writes names in
    the sender's charset), then Windows-1252.
    """
    raw_values = [(n, v) for n, v in part.raw_items() if n.lower() in _NAMING_HEADERS]
    if any(has_raw_8bit(value) for _, value in raw_values):
        charset = _charset_param(part) or message_charset
        readable = Message(policy=_READING)
        for name, value in raw_values:
            readable[name] = text_from_raw_header(value, charset)
        part = readable
    raw = _params_of(part.get_filename)
    return decode_header_text(raw) if raw else None


def _attachment_filename(
    part: Message, index: int, content_type: str, message_charset: str | None = None
) -> str:
    raw = _part_filename(part, message_charset)
    if raw:
        name = _safe_filename(raw)
        if name:
            return name
    if content_type == "message/rfc822":
        payload = part._payload
        inner = payload[0] if isinstance(payload, list) and payload else None
        raw_items = inner.raw_items() if inner is not None else ()
        subject = next((value for key, value in raw_items if key.lower() == "subject"), "")
        stem = _safe_filename(decode_header_text(subject)) if subject else ""
        return f"{stem or 'attached message'}.eml"
    if content_type.startswith(("message/", "text/")):
        extension = ".txt"
    else:
        extension = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return f"part-{index}{extension}"


def _content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if not value:
        return None
    value = unfold(str(value)).strip()
    match = _MSG_ID.search(value)
    return (match.group(1) if match else value) or None


def _body_offset(data: bytes) -> int:
    """Where the body starts (after the first empty line); the end of the data when none."""
    best: tuple[int, int] | None = None
    for separator in _BODY_SEPARATORS:
        index = data.find(separator)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, index + len(separator))
    return best[1] if best is not None else len(data)


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """Addresses of plain ``"Name" <a@b>, c@d`` lists; None when the stdlib parser is needed.

    Most address headers are this simple, and the stdlib parser, which walks them one character
    at a time, costs more than parsing the whole message. The answers are the stdlib's: a quoted
    name as written, an unquoted one with its whitespace collapsed.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        pos, end = 0, len(value)
        while pos < end:
            match = _LIST_ITEM.match(value, pos)
            if match is None:
                return None
            pos = match.end()
            quoted, quoted_angle, name, angle, bare = match.groups()
            if quoted_angle:
                pairs.append((quoted, quoted_angle))
            elif angle:
                pairs.append((" ".join(name.split()) if name else "", angle))
            elif bare:
                pairs.append(("", bare))
    return pairs


def _certainly_too_deep(text: str) -> bool:
    """Whether the stdlib address parser must hit the recursion limit on *text*.

    It recurses once per group (``name:``) not yet closed by ``;``, and every colon at its top
    level opens one. A header with more open colons than the recursion limit therefore raises
    RecursionError, but only after ~20 ms of parsing; this finds it in microseconds. Only texts
    whose top level is unambiguous are judged (no comments, escapes, domain literals or quotes
    inside angle brackets); for any other the parser runs as before.
    """
    limit = sys.getrecursionlimit()
    if text.count(":") - text.count(";") < limit or "(" in text or "\\" in text:
        return False
    top = _QUOTED_OR_ANGLE.sub(" ", text)
    if any(char in top for char in '"<>[]'):
        return False
    return top.count(":") - top.count(";") >= limit


def _is_address_delimiter(char: str) -> bool:
    return char in _ADDRESS_DELIMITERS or char.isspace()


def _bare_addresses(text: str) -> list[str]:
    """Every ``local@domain`` in *text*, neither part holding a delimiter or another ``@``.

    Read outward from each ``@``, so a huge header of encoded words with one address in it costs
    microseconds; a pattern scan would try every character as the start of an address.
    """
    found = []
    size = len(text)
    at = text.find("@")
    while at >= 0:
        start = at
        while start > 0 and not _is_address_delimiter(text[start - 1]):
            start -= 1
        stop = at + 1
        while stop < size and not _is_address_delimiter(text[stop]):
            stop += 1
        parts = text[start:stop].split("@")  # a@b@c@d holds a@b and c@d
        index = 0
        while index < len(parts) - 1:
            if parts[index] and parts[index + 1]:
                found.append(f"{parts[index]}@{parts[index + 1]}")
                index += 2
            else:
                index += 1
        at = text.find("@", stop)
    return found


def _normalise_msg_id(value: str | None) -> str | None:
    if not value:
        return None
    value = unfold(value).strip()
    match = _MSG_ID.search(value)
    if match:
        return f"<{match.group(1)}>" if match.group(1) else None
    bare = _BARE_MSG_ID.search(value)
    return f"<{bare.group(0)}>" if bare else None


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    value = unfold(value)
    ids = [f"<{found}>" for found in _MSG_ID.findall(value) if found]
    if not ids:
        ids = [f"<{found}>" for found in _BARE_MSG_ID.findall(value)]
    return ids


class ParsedMessage:
    """A received message: parsed once, lazily, every answer cached.

    Build it with :meth:`from_bytes`. ``origin`` (a file name or mailbox key) only serves to make
    error texts and defect reports say which message they are about.
    """

    def __init__(self, raw: bytes, *, origin: str | None = None) -> None:
        self.raw = raw
        self.origin = origin
        self._skipped = b""  # a first line that was not a header, kept for the synthetic id
        self._start_defects: list[str] = []
        self._late_defects: list[str] = []

    @classmethod
    def from_bytes(cls, raw: bytes, *, origin: str | None = None) -> ParsedMessage:
        """Wrap message bytes; raises MessageError only when they are not a message at all.

        An mbox envelope line is dropped, and a header block that does not start with a header
        is recovered (see ``_recover_header_block``); :attr:`raw` holds what is parsed.
        """
        data = raw if isinstance(raw, bytes) else bytes(raw)
        data, skipped, defects = _recover_header_block(data)
        _check_is_message(data, origin)
        message = cls(data, origin=origin)
        message._skipped, message._start_defects = skipped, defects
        return message

    def __repr__(self) -> str:
        return f"<ParsedMessage {_where(self.origin, self.size)} {self.effective_message_id}>"

    # -- parsing, once ------------------------------------------------------------------------

    @cached_property
    def _parsed(self) -> tuple[Message, list[str]]:
        return _parse(self.raw)

    @property
    def message(self) -> Message:
        """The underlying compat32 :class:`email.message.Message` (read it, do not change it)."""
        return self._parsed[0]

    @cached_property
    def _headers(self) -> dict[str, list[str]]:
        headers: dict[str, list[str]] = {}
        for name, value in self.message.raw_items():
            headers.setdefault(name.strip().lower(), []).append(_readable(name, value))
        return headers

    @cached_property
    def _structure(self) -> _Structure:
        return _walk(self.message)

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def _linesep(self) -> str:
        first = self.raw.find(b"\n")
        return "\r\n" if first > 0 and self.raw[first - 1 : first] == b"\r" else "\n"

    @property
    def defects(self) -> list[str]:
        """Parse problems found in the message, as readable texts (empty for clean MIME).

        Problems with text (characters that had to be replaced) are found when that text is
        first asked for, so they are listed once it has been read.
        """
        return [
            *self._start_defects,
            *self._parsed[1],
            *self._structure.defects,
            *self._late_defects,
        ]

    def _note(self, defect: str) -> None:
        if defect not in self._late_defects:
            self._late_defects.append(defect)

    def _storable(self, text: str, where: str) -> str:
        """*text* as the CRM and the run's files can store it; each repair becomes a defect.

        This is the one place text leaves the message: lone UTF-16 surrogates (which UTF-7 or
        ``unicode_escape`` make of hostile bytes) become U+FFFD and NUL characters are removed.
        """
        if text.isascii() and "\x00" not in text:
            return text
        clean = storable(text)
        if clean is not text:
            self._note(f"{where}: characters that cannot be stored replaced with U+FFFD")
        if "\x00" in clean:
            clean = clean.replace("\x00", "")
            self._note(f"{where}: NUL characters removed")
        return clean

    # -- headers ------------------------------------------------------------------------------

    def header(self, name: str) -> str | None:
        """The first ``name`` header, unfolded and RFC 2047 decoded; None when absent."""
        values = self._headers.get(name.lower())
        if not values:
            return None
        return self._storable(decode_header_text(values[0]), f"{name} header")

    def header_all(self, name: str) -> list[str]:
        """Every ``name`` header, decoded, in message order."""
        return [
            self._storable(decode_header_text(value), f"{name} header")
            for value in self._headers.get(name.lower(), [])
        ]

    def has_header(self, name: str) -> bool:
        return name.lower() in self._headers

    def raw_header(self, name: str) -> str | None:
        """The first ``name`` header unfolded but not RFC 2047 decoded (8-bit bytes as text)."""
        values = self._headers.get(name.lower())
        if not values:
            return None
        return self._storable(text_from_raw_header(unfold(values[0])).strip(), f"{name} header")

    @cached_property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @cached_property
    def message_id(self) -> str | None:
        """The Message-ID as ``<id>``, or None when missing or empty."""
        return _normalise_msg_id(self.raw_header("Message-ID"))

    def headers_for_hash(self) -> bytes:
        """The raw header block behind the synthetic Message-ID, as bytes.

        The bytes as written, not the fields the parser understood: a header block the parser
        misreads must still tell two messages apart. Line ends, folding and runs of whitespace
        are normalised so that POP3 (CRLF), a Maildir file (LF) and a transport re-folding long
        lines agree; trace fields added on delivery (``Received``, ``Delivered-To``...) are left
        out so the same message delivered to two mailboxes keeps one identity.
        """
        block = self._skipped + self.raw[: _body_offset(self.raw)]
        fields: list[list[bytes]] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1].append(line)  # a folded continuation of the field before
            else:
                fields.append([line])
        lines = []
        for parts in fields:
            text = b" ".join(parts)
            match = _HEADER_LINE.match(text)
            if match is None:
                lines.append(b" ".join(text.split()))
                continue
            name = match.group(1).lower()
            if name not in _TRACE_FIELDS:
                lines.append(name + b":" + b" ".join(text[match.end() :].split()))
        return b"\n".join(lines)

    def body_for_hash(self) -> bytes:
        """The body bytes behind the synthetic Message-ID, with line endings made LF.

        POP3 and IMAP deliver CRLF, a Maildir file holds LF: the same message must hash the same.
        """
        body = self.raw[_body_offset(self.raw) :]
        return body.replace(b"\r\n", b"\n")

    @cached_property
    def synthetic_message_id(self) -> str:
        """A stable stand-in Message-ID from the canonical headers and the body."""
        digest = hashlib.sha256(self.headers_for_hash() + b"\n\n" + self.body_for_hash())
        return f"<{digest.hexdigest()[:40]}@{_SYNTHETIC_DOMAIN}>"

    @property
    def effective_message_id(self) -> str:
        return self.message_id or self.synthetic_message_id

    @cached_property
    def in_reply_to(self) -> str | None:
        ids = _msg_ids(self.raw_header("In-Reply-To"))
        return ids[0] if ids else None

    @cached_property
    def references(self) -> list[str]:
        return _msg_ids(self.raw_header("References"))

    @cached_property
    def thread_index(self) -> str | None:
        value = self.raw_header("Thread-Index")
        return value or None

    @cached_property
    def _declared_charset(self) -> str | None:
        """The charset the message declares for its text (top level, else its body parts)."""
        for part in (self.message, self._structure.text_part, self._structure.html_part):
            charset = _charset_param(part) if part is not None else None
            if charset:
                return charset
        return None

    @cached_property
    def filename(self) -> str | None:
        """The file name of the message's own top-level part, if it has one (S/MIME ``.p7m``)."""
        name = _part_filename(self.message, self._declared_charset)
        return self._storable(name, "file name") if name else None

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """``(display name, lower-cased address)`` for every address in every ``name`` header.

        Addresses are split before RFC 2047 decoding, so an encoded comma in a display name cannot
        split an address in two. Entries without ``@`` (groups, ``<>``, garbage) are dropped.
        """
        values = self._headers.get(name.lower())
        if not values:
            return []
        texts = [text_from_raw_header(unfold(value)) for value in values]
        try:
            pairs = _simple_addresses(texts)
            if pairs is None:
                if _certainly_too_deep(", ".join(texts)):
                    raise RecursionError(name)
                pairs = email.utils.getaddresses(texts)
        except RecursionError:  # the stdlib address parser recurses once per open group
            pairs = [("", found) for found in _bare_addresses(" ".join(texts))]
            defect = f"{name}: address list too malformed to parse; addresses picked out by pattern"
            if defect not in self._late_defects:
                self._late_defects.append(defect)
        result = []
        where = f"{name} header"
        for display, address in pairs:
            address = address.strip().lower()
            if "@" not in address:
                continue
            display = decode_encoded_words(display).strip()
            result.append((self._storable(display, where), self._storable(address, where)))
        return result

    @cached_property
    def _from(self) -> tuple[str, str] | None:
        found = self.addresses("From")
        return found[0] if found else None

    @property
    def from_address(self) -> str | None:
        return self._from[1] if self._from else None

    @property
    def from_name(self) -> str | None:
        return (self._from[0] or None) if self._from else None

    @cached_property
    def sender_address(self) -> str | None:
        found = self.addresses("Sender")
        return found[0][1] if found else None

    @cached_property
    def to(self) -> list[tuple[str, str]]:
        return self.addresses("To")

    @cached_property
    def cc(self) -> list[tuple[str, str]]:
        return self.addresses("Cc")

    @cached_property
    def bcc(self) -> list[tuple[str, str]]:
        return self.addresses("Bcc")

    @cached_property
    def date(self) -> datetime | None:
        """The Date header in UTC; a date without a zone is taken as UTC; None when unusable."""
        value = self.raw_header("Date")
        if not value:
            return None
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        offset = parsed[9] or 0
        try:
            local = datetime(*parsed[:6], tzinfo=timezone(timedelta(seconds=offset)))
            return local.astimezone(UTC)
        except (ValueError, OverflowError):
            return None

    # -- MIME structure -----------------------------------------------------------------------

    @cached_property
    def content_type(self) -> str:
        return self.message.get_content_type()

    @cached_property
    def content_type_params(self) -> dict[str, str]:
        """Parameters of the top-level Content-Type (lower-cased names), RFC 2231 collapsed."""
        params: dict[str, str] = {}
        for key, value in (_params_of(self.message.get_params) or [])[1:]:
            text = email.utils.collapse_rfc2231_value(value).strip()
            params.setdefault(key.lower(), self._storable(text, "Content-Type header"))
        return params

    @property
    def content_types(self) -> list[str]:
        """Content types of every part, in document order, not looking into attached messages."""
        return self._structure.content_types

    def parts_text(self, content_type: str, *, include_attached: bool = False) -> Iterator[str]:
        """Decoded text of each leaf part of ``content_type`` (attached messages not entered).

        Parts marked ``Content-Disposition: attachment`` are left out unless
        ``include_attached``: a meeting invitation saved as a file is not a meeting request.
        """
        for leaf in self._structure.leaves:
            if leaf.content_type != content_type:
                continue
            if not include_attached and leaf.disposition == "attachment":
                continue
            if content_type.startswith("message/"):
                text = _report_text(leaf.part)
            else:
                text = _part_text(leaf.part)
            yield self._storable(text, f"a {content_type} part")

    @cached_property
    def body_text(self) -> str | None:
        part = self._structure.text_part
        return self._storable(_part_text(part), "text body") if part is not None else None

    @cached_property
    def body_html(self) -> str | None:
        part = self._structure.html_part
        return self._storable(_part_text(part), "HTML body") if part is not None else None

    @cached_property
    def description(self) -> str:
        """The body as the CRM stores it: the HTML body, else the text body as escaped HTML."""
        if self.body_html is not None:
            return self.body_html
        if self.body_text is not None:
            return f'<pre style="white-space: pre-wrap">{html.escape(self.body_text)}</pre>'
        return ""

    @cached_property
    def attachments(self) -> list[Attachment]:
        """Every part that is not a body: files, inline images, attached messages, reports."""
        result = []
        for index, leaf in enumerate(self._structure.attachments, start=1):
            part, content_type, disposition = leaf.part, leaf.content_type, leaf.disposition
            if content_type.startswith("message/"):
                payload = _attached_message_bytes(part, self._linesep)
            else:
                payload = _part_bytes(part)
            content_id = _content_id(part)
            if content_id is not None:
                content_id = self._storable(content_id, f"attachment {index} Content-ID")
            filename = _attachment_filename(part, index, content_type, self._declared_charset)
            result.append(
                Attachment(
                    filename=self._storable(filename, f"attachment {index} file name"),
                    content_type=self._storable(content_type, f"attachment {index} content type"),
                    payload=payload,
                    content_id=content_id,
                    inline=disposition == "inline" or (not disposition and content_id is not None),
                )
            )
        return result


__all__ = ["Attachment", "ParsedMessage"]
