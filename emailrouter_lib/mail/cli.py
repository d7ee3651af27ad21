"""``emailrouter classify``: the message class of message files, as the router would see them.

Admins use it to find out why a message was skipped (or tracked) without running a batch.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail.classify import infer_message_class, is_tracked
from emailrouter_lib.mail.message import ParsedMessage


def _files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, str | None]]:
    """Each file to classify, directories recursed in name order; a reason for missing paths."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file():
                    yield found, None
        elif path.is_file():
            yield path, None
        else:
            yield path, "no such file or directory"


def _shown(path: Path) -> str:
    """The path as printable text: a file name that is not UTF-8 gets U+FFFD, not a traceback."""
    return os.fsencode(path).decode("utf-8", "replace")


def classify_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[dict]:
    """``{"file", "message_class", "tracked", "reason"}`` for every file under ``paths``.

    A file that is not a message (or cannot be read) gets ``message_class`` None, ``tracked``
    False and the reason; nothing here raises for a bad file.
    """
    for path, problem in _files(paths):
        shown = _shown(path)
        row = {"file": shown, "message_class": None, "tracked": False, "reason": problem}
        if problem is None:
            try:
                message = ParsedMessage.from_bytes(path.read_bytes(), origin=shown)
                found = infer_message_class(message)
            except MessageError as exc:
                row["reason"] = str(exc)
            except OSError as exc:
                row["reason"] = f"{shown}: cannot be read ({exc.strerror or exc})"
            except Exception as exc:  # a bug must cost one row, not the rest of the listing
                row["reason"] = (
                    f"{shown}: could not be classified ({type(exc).__name__}: {exc}); "
                    "please report this message as a bug"
                )
            else:
                row.update(
                    message_class=found.name, tracked=is_tracked(found.name), reason=found.reason
                )
        yield row


def main_classify(
    paths: Iterable[str | os.PathLike[str]], as_json: bool, *, out: TextIO | None = None
) -> int:
    """Print one line per file (JSON objects with ``as_json``, else a readable table).

    Returns 0 when every file was a message, 1 when some were not (or were missing).
    """
    out = out or sys.stdout
    status = 0
    for row in classify_paths(paths):
        if row["message_class"] is None:
            status = 1
        if as_json:
            print(json.dumps(row, ensure_ascii=False), file=out)
        else:
            shown = row["message_class"] or "(not a message)"
            verdict = "tracked" if row["tracked"] else "skipped"
            print(f"{shown:<40} {verdict:<8} {row['file']}\n{'':<49}{row['reason']}", file=out)
    return status


__all__ = ["classify_paths", "main_classify"]
