"""Quarantine: a copy of every message that could not be routed, with its reason.

Nothing is dropped: the raw bytes go to ``<quarantine>/<mailbox>/<item>.eml`` and the reason beside
them, so an admin can read, fix and re-drop the message. Each name is a readable slug plus a short
hash of the full mailbox id or item key: EWS item ids are longer than a file name may be, and keys
that differ only in characters a file name cannot hold must not overwrite each other's copy.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from emailrouter_lib.files import write_atomically

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
SLUG_LENGTH = 80  # with the hash, well under the 255 bytes a file name may have


def slug(text: str) -> str:
    """A readable file name for *text*; unique per *text* (a slug alone is not)."""
    readable = _UNSAFE.sub("_", text).strip("_.")[:SLUG_LENGTH] or "item"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{readable}-{digest}"


def quarantine(
    root: Path, mailbox_id: str, key: str, raw: bytes, outcome: str, reason: str
) -> Path:
    """Write the item's bytes exactly as fetched, and its reason beside them; return the copy."""
    folder = root / slug(mailbox_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{slug(key)}.eml"
    write_atomically(target, bytes(raw))
    note = {"mailbox": mailbox_id, "item": key, "outcome": outcome, "reason": reason}
    # ensure_ascii: a lone surrogate in a reason is written as an escape, never raises
    write_atomically(target.with_suffix(".json"), json.dumps(note, indent=2).encode("ascii"))
    return target
