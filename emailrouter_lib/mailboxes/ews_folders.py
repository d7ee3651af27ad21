"""Finding (and creating) folders of an EWS mailbox by name, without walking the whole tree.

Well-known folders are opened by their distinguished id (one GetFolder each, cached on the
account); anything else is a path of display names below the Top of Information Store (or below a
well-known folder: ``Inbox/CRM``), found one level at a time with a shallow FindFolder. A missing
folder is created when asked (CreateFolder), e.g. the router's ``Undeliverable``.
"""

from __future__ import annotations

from exchangelib import Account
from exchangelib.errors import ErrorFolderExists, ErrorFolderNotFound
from exchangelib.folders import Messages

# Folder names (compared without case or spaces) -> the Account attribute for that well-known folder
WELL_KNOWN = {
    "inbox": "inbox",
    "sentitems": "sent",
    "deleteditems": "trash",
    "junkemail": "junk",
    "drafts": "drafts",
    "outbox": "outbox",
}


def open_folder(account: Account, path: str, *, create: bool):
    """The folder at *path* (``Inbox``, ``Undeliverable``, ``Inbox/CRM/Done``)."""
    names = [n for n in path.replace("\\", "/").split("/") if n.strip()]
    if not names:
        names = ["Inbox"]
    attribute = WELL_KNOWN.get(names[0].replace(" ", "").lower())
    if attribute:
        folder = getattr(account, attribute)
        names = names[1:]
    else:
        folder = account.msg_folder_root
    for name in names:
        folder = _child(folder, name.strip(), create=create)
    return folder


def _child(parent, name: str, *, create: bool):
    try:
        return parent // name
    except ErrorFolderNotFound:
        if not create:
            raise
    folder = Messages(parent=parent, name=name)
    try:
        folder.save()
    except ErrorFolderExists:  # made by a concurrent run since we looked
        return parent // name
    return folder


__all__ = ["WELL_KNOWN", "open_folder"]
