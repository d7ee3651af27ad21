"""Mailbox sources (POP3, IMAP, Maildir, a directory of .eml files) behind one protocol.

``open_source(url)`` turns a mailbox URL into an unopened :class:`MailboxSource`; ``with source:``
connects and logs in, resolving the password reference only then. See
:mod:`emailrouter_lib.mailboxes.base` for the URL forms and the protocol.
"""

from __future__ import annotations

from emailrouter_lib.mailboxes.base import ItemRef, MailboxSource, MailSender, Owner
from emailrouter_lib.mailboxes.schemes import (
    open_sender,
    open_source,
    parse_mailbox_url,
    redact_url,
)
from emailrouter_lib.mailboxes.url import MailboxURL, local_mailbox_url

__all__ = [
    "ItemRef",
    "MailSender",
    "MailboxSource",
    "MailboxURL",
    "Owner",
    "local_mailbox_url",
    "open_sender",
    "open_source",
    "parse_mailbox_url",
    "redact_url",
]
