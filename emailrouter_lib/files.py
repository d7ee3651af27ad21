"""Writing a file whole or not at all: the one way every module replaces a file.

A reader must never see half a file: the router service re-reads its configuration every few
seconds, an admin opens a report while the next run writes it, and a crash mid-write must not
leave a truncated quarantine copy under the message's name. So the bytes go to a new temporary
file in the same folder (same file system, so the rename is atomic), which then replaces the
target in one ``os.replace``. An existing file keeps its permission bits. This protects against
a crash of the process, not against a power cut (no fsync: the ledgers, not these files, are
what the exactly-once guarantee rests on).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside *path* (same suffix, for writers that look at it, like
    openpyxl); when the block ends without an error it replaces *path*, else it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if target.exists():
            os.chmod(temporary, target.stat().st_mode & 0o7777)
        else:  # mkstemp makes it 0600; a new file gets the usual mode (umask applies)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace *path* with *data* (text is written as UTF-8, newlines as given); return it."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with replacing(path) as temporary:
        temporary.write_bytes(payload)
    return Path(path)


__all__ = ["replacing", "write_atomically"]
