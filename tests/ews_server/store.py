"""The fake server's mailboxes: users, folders, items and inbox rules, in memory.

Everything the SOAP operations change lives here, behind one lock, so a test can inspect the state
(``store.items(mailbox, "inbox")``) the same way the client changed it. Ids are opaque base64
strings that, like Exchange's, name the mailbox they belong to; clients must not parse them.
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Distinguished folders every mailbox has: id -> (display name, parent id, folder class)
DISTINGUISHED = {
    "root": ("Root", None, None),
    "msgfolderroot": ("Top of Information Store", "root", "IPF.Note"),
    "inbox": ("Inbox", "msgfolderroot", "IPF.Note"),
    "sentitems": ("Sent Items", "msgfolderroot", "IPF.Note"),
    "deleteditems": ("Deleted Items", "msgfolderroot", "IPF.Note"),
    "drafts": ("Drafts", "msgfolderroot", "IPF.Note"),
    "outbox": ("Outbox", "msgfolderroot", "IPF.Note"),
    "junkemail": ("Junk Email", "msgfolderroot", "IPF.Note"),
}

# ItemClass prefix -> the element name EWS uses for the item (it decides the client's class)
ELEMENT_BY_CLASS = (
    ("ipm.schedule.meeting.request", "MeetingRequest"),
    ("ipm.schedule.meeting.canceled", "MeetingCancellation"),
    ("ipm.schedule.meeting.resp", "MeetingResponse"),
    ("ipm.post", "PostItem"),
    ("ipm.note", "Message"),
    ("report.", "Message"),
)


@dataclass
class User:
    """An account that can log on: its logon names, password, mailbox and rights."""

    address: str
    password: str
    logons: set[str]
    impersonation: bool = False  # holds the ApplicationImpersonation role
    full_access: set[str] = field(default_factory=set)  # mailboxes it may open as a delegate


@dataclass
class Folder:
    id: str
    mailbox: str
    name: str
    parent_id: str | None
    folder_class: str | None
    distinguished: str | None = None


@dataclass
class Attachment:
    id: str
    name: str
    mime: bytes  # the attached item, as MIME


@dataclass
class Item:
    id: str
    change_key: str
    mailbox: str
    folder_id: str
    mime: bytes
    item_class: str
    received: datetime
    subject: str = ""
    message_id: str | None = None
    sender: str | None = None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.mime)

    @property
    def element(self) -> str:
        lowered = self.item_class.lower()
        return next(
            (name for prefix, name in ELEMENT_BY_CLASS if lowered.startswith(prefix)), "Item"
        )


@dataclass
class Rule:
    id: str
    xml: bytes  # the client's <t:Rule> element, as sent (with the server's RuleId put in)


class StoreError(Exception):
    """An EWS response code (``ErrorItemNotFound``...) with its message text."""

    def __init__(self, code: str, text: str):
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class Store:
    """All mailboxes of the fake organisation."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}  # by lower-case address
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self.rules: dict[str, list[Rule]] = {}
        self._ids = itertools.count(1)
        self._clock = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)

    # -- set-up ------------------------------------------------------------------------------
    def add_user(
        self,
        address: str,
        password: str = "",
        *,
        logons: tuple[str, ...] = (),
        impersonation: bool = False,
        full_access: tuple[str, ...] = (),
    ) -> User:
        """A mailbox (and an account that can log on when *password* is given)."""
        address = address.lower()
        with self.lock:
            names = {address, *(n.lower() for n in logons)}
            user = User(address, password, names, impersonation, {a.lower() for a in full_access})
            self.users[address] = user
            self.rules.setdefault(address, [])
            for distinguished, (name, parent, cls) in DISTINGUISHED.items():
                fid = self._id(address, "folder", distinguished)
                parent_id = self._id(address, "folder", parent) if parent else None
                self.folders[fid] = Folder(fid, address, name, parent_id, cls, distinguished)
            return user

    def logon(self, name: str) -> User | None:
        name = name.lower()
        with self.lock:
            return next((u for u in self.users.values() if name in u.logons), None)

    # -- folders -----------------------------------------------------------------------------
    def distinguished(self, mailbox: str, name: str) -> Folder:
        folder = self.folders.get(self._id(mailbox.lower(), "folder", name))
        if folder is None:
            if mailbox.lower() not in self.users:
                raise StoreError("ErrorNonExistentMailbox", f"No mailbox with address {mailbox}")
            raise StoreError(
                "ErrorFolderNotFound", f"The distinguished folder {name} was not found"
            )
        return folder

    def folder(self, folder_id: str) -> Folder:
        folder = self.folders.get(folder_id)
        if folder is None:
            raise StoreError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        return folder

    def children(self, folder: Folder) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder.id]

    def create_folder(self, parent: Folder, name: str, folder_class: str | None) -> Folder:
        with self.lock:
            if any(f.name.lower() == name.lower() for f in self.children(parent)):
                raise StoreError(
                    "ErrorFolderExists", "A folder with the specified name already exists."
                )
            fid = self._id(parent.mailbox, "folder", str(next(self._ids)))
            folder = Folder(fid, parent.mailbox, name, parent.id, folder_class or "IPF.Note")
            self.folders[fid] = folder
            return folder

    def folder_by_path(self, mailbox: str, path: str) -> Folder:
        """A folder below the Top of Information Store by ``A/B`` display names (tests' helper)."""
        folder = self.distinguished(mailbox, "msgfolderroot")
        for name in path.strip("/").split("/"):
            if name.lower() in DISTINGUISHED and folder.distinguished == "msgfolderroot":
                folder = self.distinguished(mailbox, name.lower())
                continue
            match = [f for f in self.children(folder) if f.name.lower() == name.lower()]
            if not match:
                raise StoreError("ErrorFolderNotFound", f"no folder {path!r} in {mailbox}")
            folder = match[0]
        return folder

    # -- items -------------------------------------------------------------------------------
    def add_item(
        self, mailbox: str, folder: Folder, mime: bytes, *, item_class: str = "IPM.Note"
    ) -> Item:
        with self.lock:
            self._clock += timedelta(seconds=1)
            iid = self._id(mailbox.lower(), "item", str(next(self._ids)))
            parsed = email.message_from_bytes(mime, policy=email.policy.compat32)
            item = Item(
                iid,
                self._change_key(),
                mailbox.lower(),
                folder.id,
                mime,
                item_class,
                self._clock,
                subject=str(parsed.get("Subject", "")),
                message_id=(parsed.get("Message-ID") or "").strip() or None,
                sender=str(parsed.get("From", "")) or None,
            )
            for n, part in enumerate(parsed.walk()):
                if part.get_content_type() == "message/rfc822" and part.is_multipart():
                    inner = part.get_payload(0)
                    aid = self._id(mailbox.lower(), "attachment", f"{iid}:{n}")
                    name = str(inner.get("Subject", "") or "attached message")
                    item.attachments.append(Attachment(aid, name, inner.as_bytes()))
            self.items[iid] = item
            return item

    def item(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None:
            raise StoreError(
                "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return item

    def in_folder(self, folder: Folder) -> list[Item]:
        with self.lock:
            return [i for i in self.items.values() if i.folder_id == folder.id]

    def move(self, item: Item, target: Folder) -> Item:
        """Exchange gives a moved item a new id; the old one stops working."""
        with self.lock:
            del self.items[item.id]
            item.id = self._id(target.mailbox, "item", str(next(self._ids)))
            item.change_key = self._change_key()
            item.folder_id = target.id
            self.items[item.id] = item
            return item

    def delete(self, item: Item, delete_type: str) -> None:
        with self.lock:
            if delete_type == "HardDelete":
                del self.items[item.id]
            else:  # SoftDelete / MoveToDeletedItems: both end in Deleted Items here
                self.move(item, self.distinguished(item.mailbox, "deleteditems"))

    def attachment(self, attachment_id: str) -> tuple[Item, Attachment]:
        with self.lock:
            for item in self.items.values():
                for att in item.attachments:
                    if att.id == attachment_id:
                        return item, att
        raise StoreError("ErrorItemNotFound", "The specified attachment was not found.")

    # -- ids ---------------------------------------------------------------------------------
    @staticmethod
    def _id(mailbox: str, kind: str, local: str) -> str:
        return base64.b64encode(f"AAMk|{mailbox}|{kind}|{local}".encode()).decode()

    @staticmethod
    def owner_of(opaque_id: str) -> str | None:
        """The mailbox an id belongs to (the fake's ids, like Exchange's, carry it)."""
        try:
            parts = base64.b64decode(opaque_id, validate=True).decode().split("|")
        except (ValueError, UnicodeDecodeError):
            return None
        return parts[1] if len(parts) == 4 and parts[0] == "AAMk" else None

    def _change_key(self) -> str:
        return base64.b64encode(f"CQAAABYA{next(self._ids)}".encode()).decode()

    def new_rule_id(self) -> str:
        return base64.b64encode(f"rule{next(self._ids)}".encode()).decode()


__all__ = ["DISTINGUISHED", "Attachment", "Folder", "Item", "Rule", "Store", "StoreError", "User"]
