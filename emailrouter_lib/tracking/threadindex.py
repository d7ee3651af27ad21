"""Outlook's ``Thread-Index``: a 22-byte conversation header plus 5 bytes per reply.

Every message of one conversation shares the first 22 bytes. The CRM indexes a hash of them
(``baseconversationindexhash``, computed in :mod:`emailrouter_lib.crm.conversation` so the store and
correlation agree), and correlation compares the full bases after the hash look-up.
"""

from __future__ import annotations

from emailrouter_lib.crm.conversation import (
    CONVERSATION_INDEX_HEADER_BYTES,
    base_conversation_index_hash,
    decode_conversation_index,
)

conversation_hash = base_conversation_index_hash


def conversation_base(thread_index: str | None) -> bytes | None:
    """The 22-byte conversation header, or None when the value is not a Thread-Index."""
    raw = decode_conversation_index(thread_index) if thread_index else None
    return raw[:CONVERSATION_INDEX_HEADER_BYTES] if raw else None
