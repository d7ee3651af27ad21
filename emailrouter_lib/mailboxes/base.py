"""Mailbox sources behind one small protocol, addressed by URL.

A source lists items by a key that stays valid across sessions (IMAP ``UIDVALIDITY:UID``, POP3
UIDL, Maildir file name, EWS item id), so the routing ledger can remember what it has done with
each item. Nothing here knows about the CRM.

URLs (the password is never in the URL itself, only a reference to it)::

    pop3://user@host:110          pop3s://user@host:995          (POP3, STARTTLS with ?starttls=1)
    imap://user@host:143/INBOX    imaps://user@host:993/INBOX    (IMAP, STARTTLS with ?starttls=1)
    maildir:///path/to/Maildir    eml:///path/to/dir-of-eml-files

Query parameters:

    owner=user:ADDRESS | queue:ADDRESS   the CRM user or queue that owns the mailbox
    forward=1                            a forward mailbox (items are wrappers around originals)
    after=leave | delete | move:FOLDER   what happens to a processed item (default leave)
    password=env:NAME | file:PATH | keyring:SERVICE/USER
    cafile=PATH                          trust this CA (tests, on-premises CAs); default system CAs
    timeout=SECONDS                      socket timeout (default 30)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ItemRef:
    """One item in a mailbox: its ledger key and, when the server says, its size in bytes."""

    key: str
    size: int | None = None


@dataclass(frozen=True)
class Owner:
    """The CRM user or queue a mailbox belongs to (``user:ADDRESS`` / ``queue:ADDRESS``)."""

    kind: str  # "user" or "queue"
    address: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.address}"

    @classmethod
    def parse(cls, text: str) -> Owner:
        kind, sep, address = text.partition(":")
        kind = kind.strip().lower()
        if not sep or kind not in ("user", "queue") or "@" not in address:
            from emailrouter_lib.errors import MailboxURLError

            raise MailboxURLError(
                f"owner {text!r} must be user:ADDRESS or queue:ADDRESS,"
                " e.g. queue:support@contoso.com"
            )
        return cls(kind, address.strip().lower())


@runtime_checkable
class MailboxSource(Protocol):
    """An open-able mailbox. Use as a context manager: ``with source: ...`` connects and logs in."""

    mailbox_id: str  # stable, password-free; the ledger's mailbox key, e.g. imap://crm@127.0.0.1:10143/INBOX
    owner: Owner | None
    is_forward_mailbox: bool
    after: str  # "leave", "delete" or "move:FOLDER"
    supports_folders: bool  # IMAP, Maildir, EWS: True; POP3, eml directory: False

    def __enter__(self) -> MailboxSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def list_items(self) -> list[ItemRef]:
        """Every item now in the mailbox (the Inbox / named folder), oldest first."""
        ...

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Raw RFC 822 bytes of each key, in order; a vanished key is skipped, not an error."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete these items (committed when the source is closed); missing keys are fine."""
        ...

    def move(self, keys: Sequence[str], folder: str) -> None:
        """Move these items to *folder*, creating it if needed; MailboxError if unsupported."""
        ...


@runtime_checkable
class MailSender(Protocol):
    """An open-able outgoing transport (SMTP, a pickup directory, Exchange).

    ``send`` either returns (the server took responsibility for the message) or raises
    :class:`~emailrouter_lib.errors.MailboxSendError` (``permanent`` or not) or another
    :class:`~emailrouter_lib.errors.MailboxError` (connection, auth, TLS: transient for a message).
    """

    sender_id: str  # stable, password-free, e.g. smtp://crm@127.0.0.1:10587

    def __enter__(self) -> MailSender: ...

    def __exit__(self, *exc: object) -> None: ...

    def send(self, message: bytes, *, envelope_from: str, recipients: Sequence[str]) -> None: ...
