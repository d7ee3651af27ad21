"""Protocol-free message handling: parse once, infer the message class, unwrap forwards.

Mailbox sources hand over bytes; everything above this layer works on a
:class:`ParsedMessage`, which parses them once with the stdlib ``email`` package (compat32) and
records bad MIME as ``defects`` instead of raising.
"""

from __future__ import annotations

from emailrouter_lib.mail.classify import (
    TRACKED_CLASSES,
    MessageClass,
    infer_message_class,
    is_tracked,
)
from emailrouter_lib.mail.forward import unwrap_forward
from emailrouter_lib.mail.message import Attachment, ParsedMessage

__all__ = [
    "TRACKED_CLASSES",
    "Attachment",
    "MessageClass",
    "ParsedMessage",
    "infer_message_class",
    "is_tracked",
    "unwrap_forward",
]
