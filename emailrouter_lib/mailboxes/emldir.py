"""A directory of ``.eml`` files as a mailbox: a drop folder, a corpus, an export.

Each ``*.eml`` file directly inside the directory is one item, keyed by its path relative to the
directory (its name). Sub-directories are folders, not scanned: a move puts the file into
``FOLDER/`` and it leaves the mailbox. A move never overwrites a file of the same name there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from emailrouter_lib.errors import MailboxConnectError
from emailrouter_lib.mailboxes.base import ItemRef
from emailrouter_lib.mailboxes.common import SourceBase, unique
from emailrouter_lib.mailboxes.url import MailboxURL


class EmlDirSource(SourceBase):
    """The ``*.eml`` files of one directory, oldest first."""

    supports_folders = False  # as base.py declares; move() still files items into FOLDER/

    def __init__(self, settings: MailboxURL):
        super().__init__(settings)
        self.root = Path(settings.path or ".")

    def __enter__(self) -> EmlDirSource:
        if not self.root.is_dir():
            raise MailboxConnectError(
                f"{self.root} is not a directory; check the path of the eml:// URL",
                mailbox=self.mailbox_id,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def list_items(self) -> list[ItemRef]:
        found: list[tuple[int, str, int]] = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or not entry.name.lower().endswith(".eml"):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        info = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((info.st_mtime_ns, entry.name, info.st_size))
        except OSError as exc:
            raise self.error(f"cannot read {self.root}: {exc.strerror}") from None
        found.sort()
        return [ItemRef(name, size) for _, name, size in found]

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        for key in unique(keys):
            path = self._path(key)
            try:
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
            except OSError as exc:
                raise self.error(f"cannot read {path}: {exc.strerror}") from None
            yield key, data

    def delete(self, keys: Sequence[str]) -> None:
        for key in unique(keys):
            path = self._path(key)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self.error(f"cannot delete {path}: {exc.strerror}") from None

    def move(self, keys: Sequence[str], folder: str) -> None:
        parts = folder.strip("/").split("/")
        if any(not p or p in (".", "..") or p.startswith(".") for p in parts):
            raise self.error(f"folder name {folder!r} is not usable; e.g. move:Processed")
        target = self.root.joinpath(*parts)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.error(f"cannot create folder {target}: {exc.strerror}") from None
        for key in unique(keys):
            path = self._path(key)
            if path.exists():
                self._move_file(path, target)

    def _move_file(self, path: Path, target: Path) -> None:
        """Move without overwriting: a name already in *target* gets ``-1``, ``-2``, … added."""
        for n in range(1000):
            dest = target / (path.name if n == 0 else f"{path.stem}-{n}{path.suffix}")
            try:
                os.link(path, dest)  # fails if dest exists: no silent overwrite
            except FileExistsError:
                continue
            except FileNotFoundError:
                return  # removed meanwhile
            except OSError:  # no hard links on this file system
                if dest.exists():
                    continue
                try:
                    os.rename(path, dest)
                except FileNotFoundError:
                    return
                except OSError as exc:
                    raise self.error(f"cannot move {path} to {target}: {exc.strerror}") from None
                return
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self.error(f"cannot move {path} to {target}: {exc.strerror}") from None
            return
        raise self.error(f"cannot move {path}: too many files named like it in {target}")

    def _path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith(".") or "\0" in key:
            raise self.error(f"{key!r} is not an eml item key (a file name in the directory)")
        return self.root / key


__all__ = ["EmlDirSource"]
