"""Quarantine: a copy of every message that could not be routed, with its reason.

Nothing is dropped: the raw bytes go to ``<quarantine>/<mailbox>/<item>.eml`` and the reason beside
them, so an admin can read, fix and re-drop the message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def slug(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_")[:120] or "item"


def quarantine(
    root: Path, mailbox_id: str, key: str, raw: bytes, outcome: str, reason: str
) -> Path:
    folder = root / slug(mailbox_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{slug(key)}.eml"
    target.write_bytes(raw)
    target.with_suffix(".json").write_text(
        json.dumps(
            {"mailbox": mailbox_id, "item": key, "outcome": outcome, "reason": reason}, indent=2
        ),
        encoding="utf-8",
    )
    return target
