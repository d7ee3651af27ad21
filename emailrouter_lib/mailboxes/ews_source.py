"""Exchange mailbox source over EWS (exchangelib): items keyed by their EWS item id.

What a batch costs, in requests: 2 GetFolder on entering (root and the folder, once), one FindItem
per ``page`` items (only ItemClass, Size and DateTimeReceived: FindItem can return those, so no
GetItem is needed to list), one GetItem per ``chunk`` messages for MIME content, and one
MoveItem/DeleteItem per 100 processed items, sent after the CRM commit. Moving to a folder the first
time adds a FindFolder (and a CreateFolder when it is missing).

The EWS ``ItemClass`` of each listed item is kept: :meth:`EwsSource.item_class` gives it to routing,
which can prefer it to classes inferred from MIME. ``Delete`` moves items to Deleted Items
(recoverable by the mailbox owner), it never purges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack

from exchangelib import Account
from exchangelib.errors import ErrorItemNotFound
from exchangelib.items import MOVE_TO_DELETED_ITEMS
from exchangelib.properties import ItemId

from emailrouter_lib.errors import MailboxError
from emailrouter_lib.mailboxes.base import ItemRef
from emailrouter_lib.mailboxes.common import SourceBase, chunks, unique
from emailrouter_lib.mailboxes.ews_account import connect, ews_errors, warm
from emailrouter_lib.mailboxes.ews_folders import open_folder
from emailrouter_lib.mailboxes.ews_url import EwsMailboxURL

BULK_CHUNK = 100  # ids per MoveItem / DeleteItem (exchangelib's default, well under server limits)


class EwsSource(SourceBase):
    """One folder (default Inbox) of one Exchange mailbox."""

    supports_folders = True
    settings: EwsMailboxURL

    def __init__(self, settings: EwsMailboxURL):
        super().__init__(settings)
        self._account: Account | None = None
        self._folder = None
        self._classes: dict[str, str] = {}
        self._change_keys: dict[str, str] = {}
        self._targets: dict[str, object] = {}

    # -- session -------------------------------------------------------------------------------
    def __enter__(self) -> EwsSource:
        with ews_errors(self.settings, "connecting"):
            account = connect(self.settings, self.resolve_password())
            self._folder = warm(account, self.settings.folder)
        self._account = account
        return self

    def __exit__(self, *exc: object) -> None:
        # Connections stay in the shared pool for the next mailbox of the same service account.
        self._account = None
        self._folder = None

    # -- MailboxSource -------------------------------------------------------------------------
    def list_items(self) -> list[ItemRef]:
        self._open()
        with ews_errors(self.settings, "listing the folder"):
            query = (
                self._folder.all()
                .only("item_class", "size", "datetime_received")
                .order_by("datetime_received")
            )
            query.page_size = self.settings.page_size
            found = list(query)
        self._classes = {i.id: i.item_class or "" for i in found}
        self._change_keys = {i.id: i.changekey for i in found}
        return [ItemRef(i.id, i.size) for i in found]

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        account = self._open()
        size = self.settings.chunk_size
        for batch in chunks(unique(keys), size):
            with ews_errors(self.settings, "fetching messages"):
                got = list(
                    account.fetch(
                        ids=self._ids(batch), only_fields=["mime_content"], chunk_size=size
                    )
                )
            for key, item in zip(batch, got, strict=True):
                if isinstance(item, ErrorItemNotFound):
                    continue  # gone since listing: not an error
                if isinstance(item, Exception):
                    raise self.error(f"cannot read item {key[:24]}…: {type(item).__name__}: {item}")
                yield key, item.mime_content or b""

    def delete(self, keys: Sequence[str]) -> None:
        account = self._open()
        ids = self._ids(unique(keys))
        with ews_errors(self.settings, "deleting processed items"):
            results = account.bulk_delete(
                ids, delete_type=MOVE_TO_DELETED_ITEMS, chunk_size=BULK_CHUNK
            )
        self._check(results, "delete")

    def move(self, keys: Sequence[str], folder: str) -> None:
        account = self._open()
        keys = unique(keys)
        if not keys:
            return
        with ews_errors(self.settings, f"moving items to {folder!r}"):
            target = self._target(folder)
            results = account.bulk_move(self._ids(keys), to_folder=target, chunk_size=BULK_CHUNK)
        self._check(results, "move")

    # -- beyond the protocol -------------------------------------------------------------------
    def item_class(self, key: str) -> str | None:
        """The EWS ItemClass of a listed item (``IPM.Note``, ``REPORT.IPM.Note.NDR``...)."""
        return self._classes.get(key)

    def attached_originals(self, key: str) -> list[bytes]:
        """MIME of the items attached to *key* (``ItemAttachment``): a forward mailbox's originals.

        Exchange already renders attached items as ``message/rfc822`` parts in an item's MIME
        content, which is what routing unwraps; this reads them one by one instead (GetItem for
        the attachment list, GetAttachment with MIME content) for tools that inspect a wrapper.
        """
        account = self._open()
        with ews_errors(self.settings, "reading attachments"):
            got = list(account.fetch(ids=self._ids([key]), only_fields=["attachments"]))
            if not got or isinstance(got[0], Exception):
                return []
            from exchangelib.attachments import ItemAttachment

            originals = []
            for attachment in got[0].attachments or []:
                if isinstance(attachment, ItemAttachment) and attachment.item is not None:
                    originals.append(attachment.item.mime_content or b"")
            return originals

    # -- helpers -------------------------------------------------------------------------------
    def _open(self) -> Account:
        if self._account is None:
            raise self.error("not connected; use the source in a with-block: `with source: ...`")
        return self._account

    def _ids(self, keys: Sequence[str]) -> list[ItemId]:
        return [ItemId(id=k, changekey=self._change_keys.get(k)) for k in keys]

    def _target(self, folder: str):
        if folder not in self._targets:
            self._targets[folder] = open_folder(self._open(), folder, create=True)
        return self._targets[folder]

    def _check(self, results, verb: str) -> None:
        failed = [
            r for r in results if isinstance(r, Exception) and not isinstance(r, ErrorItemNotFound)
        ]
        if failed:
            first = failed[0]
            raise MailboxError(
                f"could not {verb} {len(failed)} item(s): {type(first).__name__}: {first}; "
                "the ledger keeps them as to-do, the next run tries again",
                mailbox=self.mailbox_id,
            )


def enter_all(sources: Sequence[EwsSource], stack: ExitStack) -> list[EwsSource]:
    """Enter (connect and warm) *sources* one after another, before any parallel work.

    The first folder access of an exchangelib Account is serialised across all accounts in the
    process; entering sequentially pays it up front, then a thread pool can list, fetch and move
    in parallel. Sources that fail to connect are returned with the error instead of raising:
    one unreachable or throttled mailbox must not stop the others.
    """
    entered = []
    for source in sources:
        try:
            entered.append(stack.enter_context(source))
        except MailboxError as exc:
            entered.append(exc)  # type: ignore[arg-type]
    return entered


__all__ = ["EwsSource", "enter_all"]
