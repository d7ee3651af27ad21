"""What every mailbox source shares: its identity, its settings and a password-free repr.

The password value is fetched by :meth:`SourceBase.resolve_password` at login time and handed
straight to the protocol library; no source keeps it in an attribute, so it cannot show up in
``repr()``, a traceback's locals summary or a pickled task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from emailrouter_lib.errors import MailboxError, SecretError
from emailrouter_lib.secrets import resolve_secret

if TYPE_CHECKING:
    from emailrouter_lib.mailboxes.base import Owner
    from emailrouter_lib.mailboxes.url import MailboxURL


class SourceBase:
    """Identity and settings of a source, taken from its checked URL."""

    supports_folders = False

    def __init__(self, settings: MailboxURL):
        self.settings = settings
        self.mailbox_id: str = settings.mailbox_id
        self.owner: Owner | None = settings.owner
        self.is_forward_mailbox: bool = settings.forward
        self.after: str = settings.after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mailbox_id!r})"

    __str__ = __repr__

    def resolve_password(self) -> str:
        """Resolve the password reference now; errors name the mailbox, never the value."""
        ref = self.settings.password_ref
        if not ref:
            raise MailboxError("no password reference in the URL", mailbox=self.mailbox_id)
        try:
            return resolve_secret(ref)
        except SecretError as exc:
            raise SecretError(f"{self.mailbox_id}: {exc}") from None

    def error(self, message: str) -> MailboxError:
        return MailboxError(message, mailbox=self.mailbox_id)

    def no_folders(self, folder: str) -> MailboxError:
        return self.error(
            f"cannot move items to {folder!r}: this kind of mailbox has no folders; "
            "use after=delete or after=leave"
        )


T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Successive lists of at most *size* items."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def unique(keys: Sequence[str]) -> list[str]:
    """*keys* without repeats, first occurrence kept."""
    return list(dict.fromkeys(keys))


__all__ = ["SourceBase", "chunks", "unique"]
