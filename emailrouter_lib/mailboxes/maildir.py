"""Local Maildir source: items keyed by the unique part of their file name.

A Maildir file is renamed whenever its flags change (``new/X`` → ``cur/X:2,S`` → ``cur/X:2,RS``),
but the part before ``:`` never changes, so that part is the ledger key. The directory is read
with ``os.scandir`` (one pass over ``new/`` and ``cur/``, no per-message parsing), which keeps a
10,000-message drop fast. Folders are Maildir++ sub-folders (``.Processed``), as Dovecot and
Courier lay them out, so a move is visible to an IMAP server serving the same Maildir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from emailrouter_lib.errors import MailboxConnectError
from emailrouter_lib.mailboxes.base import ItemRef
from emailrouter_lib.mailboxes.common import SourceBase, unique
from emailrouter_lib.mailboxes.url import MailboxURL

_SUBDIRS = ("new", "cur")


class MaildirSource(SourceBase):
    """The top level (INBOX) of a Maildir directory."""

    supports_folders = True

    def __init__(self, settings: MailboxURL):
        super().__init__(settings)
        self.root = Path(settings.path or ".")
        self._paths: dict[str, str] = {}  # key -> absolute file path, from the last scan
        self._rescanned = False

    def __enter__(self) -> MaildirSource:
        if not all((self.root / sub).is_dir() for sub in _SUBDIRS):
            raise MailboxConnectError(
                f"{self.root} is not a Maildir (it needs cur/ and new/ sub-directories); "
                "check the path (is the folder mounted, readable by this user?)",
                mailbox=self.mailbox_id,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._paths = {}

    def list_items(self) -> list[ItemRef]:
        found: list[tuple[int, str, str, int | None]] = []
        paths: dict[str, str] = {}
        for sub in _SUBDIRS:
            for entry in self._scandir(self.root / sub):
                if entry.name.startswith("."):
                    continue
                key = maildir_key(entry.name)
                size = _size_from_name(key)
                if size is None:
                    try:
                        size = entry.stat().st_size
                    except FileNotFoundError:  # renamed by a mail client during the scan
                        continue
                paths[key] = entry.path
                found.append((_delivery_time(key), key, entry.path, size))
        found.sort()
        self._paths = paths
        return [ItemRef(key, size) for _, key, _, size in found]

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        self._rescanned = False
        for key in unique(keys):
            self._check_key(key)
            path = self._find(key)
            while path is not None:
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except FileNotFoundError:  # a client changed its flags (renamed it), or removed it
                    path = self._find(key, stale=path)
                    continue
                except OSError as exc:
                    raise self.error(f"cannot read {path}: {exc.strerror}") from None
                yield key, data
                break

    def delete(self, keys: Sequence[str]) -> None:
        self._rescanned = False
        for key in unique(keys):
            self._with_file(key, "delete", os.unlink)

    def move(self, keys: Sequence[str], folder: str) -> None:
        keys = unique(keys)
        if not keys:
            return
        target = self._folder_path(folder)
        self._rescanned = False

        def rename(path: str) -> None:
            sub, name = Path(path).parent.name, Path(path).name
            os.rename(path, target / sub / name)

        for key in keys:
            self._with_file(key, f"move to {folder!r}", rename)

    # -- helpers ---------------------------------------------------------------------------

    def _with_file(self, key: str, action: str, operation) -> None:
        """Apply *operation* to the file of *key*, finding it again if a client renamed it."""
        self._check_key(key)
        path = self._find(key)
        while path is not None:
            try:
                operation(path)
            except FileNotFoundError:
                path = self._find(key, stale=path)
                continue
            except OSError as exc:
                raise self.error(f"cannot {action} {path}: {exc.strerror}") from None
            self._paths.pop(key, None)
            return

    def _find(self, key: str, stale: str | None = None) -> str | None:
        """The file of *key*; the directory is scanned again at most once per operation."""
        path = self._paths.get(key)
        if (path is None or path == stale) and not self._rescanned:
            self._rescanned = True
            self.list_items()
            path = self._paths.get(key)
        return None if path == stale else path

    def _folder_path(self, folder: str) -> Path:
        parts = folder.strip("/").split("/")
        if not parts or any(not p or p.startswith(".") or os.sep in p for p in parts):
            raise self.error(f"folder name {folder!r} is not usable; e.g. move:Processed")
        target = self.root / ("." + ".".join(parts))
        owner = self.root.stat()
        try:
            for path in (target, *(target / sub for sub in ("tmp", "new", "cur"))):
                if not path.is_dir():
                    path.mkdir(mode=0o700, exist_ok=True)
                    _same_owner(path, owner)
            marker = target / "maildirfolder"
            if not marker.exists():
                marker.touch()
                _same_owner(marker, owner)
        except OSError as exc:
            raise self.error(f"cannot create folder {target}: {exc.strerror}") from None
        return target

    def _check_key(self, key: str) -> None:
        if not key or "/" in key or key.startswith(".") or "\0" in key:
            raise self.error(f"{key!r} is not a Maildir item key (a file name's unique part)")

    def _scandir(self, path: Path) -> Iterator[os.DirEntry]:
        try:
            with os.scandir(path) as entries:
                yield from entries
        except FileNotFoundError:
            raise MailboxConnectError(f"{path} vanished", mailbox=self.mailbox_id) from None
        except OSError as exc:
            raise self.error(f"cannot read {path}: {exc.strerror}") from None


def maildir_key(name: str) -> str:
    """The part of a Maildir file name that survives flag changes (before ``:2,FLAGS``)."""
    return name.split(":", 1)[0]


def _size_from_name(key: str) -> int | None:
    """Dovecot and others put ``,S=<bytes>`` in the unique part; it saves a stat per file."""
    for field in key.split(",")[1:]:
        if field.startswith("S=") and field[2:].isdigit():
            return int(field[2:])
    return None


def _delivery_time(key: str) -> int:
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _same_owner(path: Path, owner: os.stat_result) -> None:
    """As root, give new folders to the Maildir's owner, so the mail server can still use them."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(path, owner.st_uid, owner.st_gid)


__all__ = ["MaildirSource", "maildir_key"]
