"""Unwrapping items in a forward mailbox.

A forward mailbox receives, from each user's inbox rule, a wrapper message carrying the user's
original as an attachment. The router processes the original on behalf of the forwarding user;
an item forwarded inline (its text pasted into a new message) cannot be processed and is reported
as *InvalidForwardMailItem*, as server-side synchronization does.
"""

from __future__ import annotations

from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail.message import ParsedMessage

_ATTACHED_FILE_TYPES = ("application/octet-stream", "message/rfc822")


def _candidates(wrapper: ParsedMessage) -> list[tuple[str, bytes]]:
    """Attached originals, best first: ``message/rfc822`` parts, then ``.eml`` files."""
    attached = []
    files = []
    for attachment in wrapper.attachments:
        if attachment.content_type == "message/rfc822":
            attached.append((attachment.filename, attachment.payload))
        elif (
            attachment.content_type in _ATTACHED_FILE_TYPES
            and attachment.filename.lower().endswith(".eml")
        ):
            files.append((attachment.filename, attachment.payload))
    return attached + files


def unwrap_forward(wrapper: ParsedMessage) -> ParsedMessage | None:
    """The original message a forward-mailbox item carries as an attachment, or None.

    The first ``message/rfc822`` attachment wins (an ``.eml`` file sent as
    ``application/octet-stream`` is accepted when there is none). Attachments that are not
    messages at all are passed over. None means the item was not forwarded as an attachment:
    the router's *InvalidForwardMailItem*.
    """
    where = wrapper.origin or wrapper.effective_message_id
    for filename, payload in _candidates(wrapper):
        try:
            return ParsedMessage.from_bytes(payload, origin=f"{where} > {filename}")
        except MessageError:
            continue
    return None


__all__ = ["unwrap_forward"]
