"""Turning the bytes of real mail into text without ever raising.

Real messages lie about their charsets (Shift_JIS labelled iso-2022-jp, 8-bit bytes in headers,
Outlook's ``ks_c_5601-1987``, charsets Python has never heard of). Routing must still store
something readable, so every decode here falls back: the declared charset, then UTF-8, then
Windows-1252 with replacement characters. RFC 2047 encoded words are decoded by hand because the
stdlib's ``decode_header`` raises on bad base64 and mangles non-ASCII text around encoded words.

Decoding succeeding is not enough: some codecs (UTF-7, ``unicode_escape``) turn bytes into lone
UTF-16 surrogates, text no database, file or JSON encoder will take. :func:`storable` is the one
place that repairs such text; :class:`~emailrouter_lib.mail.message.ParsedMessage` runs every
answer it hands out through it, so no caller has to.
"""

from __future__ import annotations

import binascii
import codecs
import encodings
import encodings.aliases
import pkgutil
import re
from functools import lru_cache

# Labels mail clients use that Python spells differently, or whose superset decodes more real mail
# (the same choices web browsers make for these labels).
_CHARSET_ALIASES = {
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-8-i": "iso-8859-8",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "utf8": "utf-8",
}

# Second guesses tried before UTF-8 when a declared charset does not fit the bytes.
_SIBLINGS = {"iso2022_jp_ext": ("cp932", "euc_jp")}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BLANKS = " \t\r\n"  # what may stand between two encoded words of one text
_MAX_LABEL = 64  # no real charset label is longer; longer ones would only fill the cache
# Code points no UTF-8 encoder accepts: a Python str may hold them, a stored text may not.
_SURROGATES = re.compile("[\ud800-\udfff]+")


@lru_cache(maxsize=1)
def _codec_modules() -> frozenset[str]:
    return frozenset(module.name for module in pkgutil.iter_modules(encodings.__path__))


def _may_name_a_codec(name: str) -> bool:
    """False when no codec of the standard library can have this (lower-cased) name.

    Looking up a name that is no codec costs an import attempt (~200 µs), and one header can
    carry thousands of made-up labels (``=?x-1?q?a?= =?x-2?q?a?= ...``: 1 MB took 15 s). This
    is the test the stdlib's own codec search makes (an alias, else a module of ``encodings``)
    before it tries the import; a codec registered by another package is not known here.
    """
    normal = encodings.normalize_encoding(name)
    aliases = encodings.aliases.aliases
    return normal in aliases or normal.replace(".", "_") in aliases or normal in _codec_modules()


@lru_cache(maxsize=256)
def codec_for(charset: str | None) -> str | None:
    """The Python codec to decode a declared MIME charset with, or None when unusable."""
    if not charset or len(charset) > _MAX_LABEL:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not _may_name_a_codec(name):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):  # unknown, or a label with NUL or surrogates
        return None
    # Bytes-to-bytes codecs ("base64", "zlib", "rot13", "uu", "hex", "bz2", "quopri") are not
    # charsets: bytes.decode() refuses them with LookupError. (``b"".decode(name)`` cannot tell,
    # since decoding nothing never looks the codec up.) The codec registry marks them.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


# What a codec may raise besides UnicodeDecodeError: "idna", "punycode" and "undefined" raise
# UnicodeError, others ValueError or TypeError, and a codec registered by some package anything.
_DECODE_ERRORS = (UnicodeError, ValueError, LookupError, TypeError)


def decode_bytes(data: bytes, charset: str | None = None, *, utf8_first: bool = False) -> str:
    """Decode text bytes: declared charset, else UTF-8, else Windows-1252 with replacements.

    With ``utf8_first`` UTF-8 is tried before the declared charset: right for raw 8-bit bytes
    in headers, which today's mailers write as UTF-8 whatever else the message declares. Never
    raises; the text may still need :func:`storable`.
    """
    codec = codec_for(charset)
    if utf8_first and codec != "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if codec is not None:
        for candidate in (codec, *_SIBLINGS.get(codec, ())):
            try:
                return data.decode(candidate)
            except _DECODE_ERRORS:
                pass
    if codec != "utf-8" and not utf8_first:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(codec or "cp1252", "replace")
    except _DECODE_ERRORS:  # codecs that fail even with replacement ("undefined")
        return data.decode("cp1252", "replace")


def storable(text: str) -> str:
    """*text* with every surrogate code point replaced by U+FFFD, so that it encodes as UTF-8.

    Returns *text* itself (the same object) when nothing needed replacing, so callers can tell.
    ASCII text, nearly all of it, is answered without a scan.
    """
    if text.isascii() or _SURROGATES.search(text) is None:
        return text
    return _SURROGATES.sub(lambda found: "\ufffd" * len(found.group()), text)


def has_raw_8bit(value: str) -> bool:
    """True when a header parsed with surrogateescape still holds undecoded 8-bit bytes."""
    return not value.isascii() and any("\udc80" <= ch <= "\udcff" for ch in value)


def text_from_raw_header(value: str, charset: str | None = None) -> str:
    """Undo surrogateescape: raw 8-bit header bytes become text.

    UTF-8 first, then the declared *charset* (if the caller knows one), then Windows-1252.
    """
    if value.isascii() or not has_raw_8bit(value):
        return value
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already text besides the escaped bytes: leave it to storable()
        return value
    return decode_bytes(data, charset, utf8_first=True)


def unfold(value: str) -> str:
    """RFC 5322 unfolding: drop the line breaks of folded header lines, keep the whitespace.

    A stray CR or LF that does not fold is dropped as well, so every line break goes and the
    whitespace after it stays: two plain replaces, with no pattern to scan.
    """
    if "\n" in value or "\r" in value:
        value = value.replace("\r", "").replace("\n", "")
    return value


def _word_bytes(charset: str, text: str) -> bytes:
    """The bytes of a Q word's text, which may hold raw 8-bit bytes already read as text.

    A mailer that puts raw 8-bit bytes into an encoded word means them in the word's charset, so
    the characters go back into bytes in that charset (UTF-8 when it cannot hold them).
    """
    try:
        return text.encode("ascii", "surrogateescape")  # ASCII, or raw bytes not yet read
    except UnicodeEncodeError:
        pass
    codec = codec_for(charset)
    if codec is not None:
        try:
            return text.encode(codec)
        except (UnicodeError, ValueError, LookupError, TypeError):
            pass
    return text.encode("utf-8", "replace")


def _decode_word(charset: str, encoding: str, text: str) -> bytes | None:
    """The bytes of one encoded word; None when it cannot be decoded (it is kept as written)."""
    if encoding in "bB":
        data = text.strip()
        if not data.isascii():  # raw 8-bit bytes are no base64: keep the word as written
            return None
        data += "=" * (-len(data) % 4)
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            return None
    return binascii.a2b_qp(_word_bytes(charset, text), header=True)


def decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded words; words that cannot be decoded are kept as written.

    Adjacent words in the same charset are joined before decoding, because mailers split a
    multi-byte character across two base64 words more often than the RFC allows.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []  # the decoded bytes of a run of words in one charset
    pending_charset: str | None = None  # as the run's last word spells it
    pending_key = ""  # the same, lower-cased
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        start, end = match.span()
        gap = value[pos:start]
        charset, encoding, text = match.groups()
        if "*" in charset:  # RFC 2231 language suffix
            charset = charset.split("*", 1)[0]
        data = _decode_word(charset, encoding, text)
        if data is None:
            if pending_charset is not None:
                out.append(decode_bytes(b"".join(pending), pending_charset))
                pending, pending_charset = [], None
            out.append(value[pos:end])
            pos = end
            continue
        key = charset.lower()
        if pending_charset is not None and not gap.strip(_BLANKS):
            gap = ""  # whitespace between two encoded words is not part of the text
        if gap or (pending_charset is not None and pending_key != key):
            if pending_charset is not None:
                out.append(decode_bytes(b"".join(pending), pending_charset))
                pending = []
            out.append(gap)
        pending_charset, pending_key = charset, key
        pending.append(data)
        pos = end
    if pending_charset is not None:
        out.append(decode_bytes(b"".join(pending), pending_charset))
    out.append(value[pos:])
    return "".join(out)


def decode_header_text(value: str) -> str:
    """A raw header value (as the compat32 parser stores it) as clean, unfolded text."""
    text = text_from_raw_header(unfold(value))
    return decode_encoded_words(text).strip()


__all__ = [
    "codec_for",
    "decode_bytes",
    "decode_encoded_words",
    "decode_header_text",
    "has_raw_8bit",
    "storable",
    "text_from_raw_header",
    "unfold",
]
