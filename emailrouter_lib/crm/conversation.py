"""The ``baseconversationindexhash`` the CRM stores for an email's conversation index.

Outlook and Exchange put a ``Thread-Index`` header on every message: base64 of a 22-byte header
(one reserved byte, a 5-byte FILETIME, a 16-byte conversation GUID) followed by one 5-byte block
per reply. Every message of a conversation shares those first 22 bytes, so a hash of them finds
the conversation with one indexed integer lookup. Dataverse does not document its own hash, so
this is ours: CRC-32 of the header, masked to 31 bits. It must stay equal to
``emailrouter_lib.tracking.threadindex.conversation_hash`` (a test checks it): the store fills the
column when a writer leaves it empty, and correlation looks it up with the tracking function.
"""

from __future__ import annotations

import base64
import binascii
import zlib

CONVERSATION_INDEX_HEADER_BYTES = 22
CHILD_BLOCK_BYTES = 5


def decode_conversation_index(value: str) -> bytes | None:
    """The raw bytes of a ``Thread-Index`` value, or None when it is not a conversation index."""
    text = "".join(value.split())
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < CONVERSATION_INDEX_HEADER_BYTES:
        return None
    if (len(raw) - CONVERSATION_INDEX_HEADER_BYTES) % CHILD_BLOCK_BYTES:
        return None
    return raw


def base_conversation_index_hash(conversationindex: str | None) -> int | None:
    """A 31-bit hash of the conversation's 22-byte header (fits Dataverse's Int32 column).

    Returns None for a missing or malformed value, so such emails never correlate by accident.
    """
    if not conversationindex:
        return None
    raw = decode_conversation_index(conversationindex)
    if raw is None:
        return None
    return zlib.crc32(raw[:CONVERSATION_INDEX_HEADER_BYTES]) & 0x7FFFFFFF


def make_conversation_index(filetime: int, conversation_guid: bytes, replies: int = 0) -> str:
    """Build a ``Thread-Index`` value: a header plus *replies* child blocks (deterministic).

    Used by the demo seed and the scenario messages; real values come from the mail client.
    """
    if len(conversation_guid) != 16:
        raise ValueError("conversation_guid must be 16 bytes")
    header = b"\x01" + (filetime >> 16).to_bytes(6, "big")[1:] + conversation_guid
    blocks = b"".join(((i + 1) * 0x01000000 + i).to_bytes(5, "big") for i in range(replies))
    return base64.b64encode(header + blocks).decode("ascii")


__all__ = [
    "CONVERSATION_INDEX_HEADER_BYTES",
    "base_conversation_index_hash",
    "decode_conversation_index",
    "make_conversation_index",
]
