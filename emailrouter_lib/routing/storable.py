"""Text every store can take: what routing hands the CRM, the ledger and the run's files.

A lone UTF-16 surrogate (``=?utf-7?Q?+2AA-?=`` decodes to one) or a NUL cannot be encoded as
UTF-8: SQLite, the Dataverse JSON body, ``results.csv`` and ``report.html`` each raise on it, and
one such character once stopped a whole batch. The mail layer aims to hand out storable text;
routing does not rely on it: every string it stores goes through :func:`storable` once, at this
boundary, and the replaced characters are counted so the message's row can say so.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, TypeVar

REPLACEMENT = "\ufffd"
# Python keeps a surrogate pair from a broken decoder as two lone code points: both go.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

T = TypeVar("T")


def storable(text: str | None) -> str | None:
    """*text* with every character UTF-8 cannot carry (and NUL) replaced by U+FFFD."""
    if text is None or _is_storable(text):
        return text  # the common case, without a regex pass
    return _UNSTORABLE.sub(REPLACEMENT, text)


def unstorable_count(text: str | None) -> int:
    if text is None or _is_storable(text):
        return 0
    return len(_UNSTORABLE.findall(text))


def _is_storable(text: str) -> bool:
    """The fast check: C-speed ``isascii`` / UTF-8 encoding, a regex only when it fails."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_record(record: T) -> tuple[T, int]:
    """A copy of the dataclass *record* whose strings (also in nested records, lists and tuples)
    are storable, and how many characters were replaced; *record* itself when nothing was."""
    replaced = 0

    def clean(value: Any) -> Any:
        nonlocal replaced
        if isinstance(value, str):
            count = unstorable_count(value)
            if not count:
                return value
            replaced += count
            return _UNSTORABLE.sub(REPLACEMENT, value)
        names = _field_names(type(value))
        if names:
            changes = {}
            for name in names:
                old = getattr(value, name)
                new = clean(old)
                if new is not old:
                    changes[name] = new
            return dataclasses.replace(value, **changes) if changes else value
        if isinstance(value, (list, tuple)):
            items = [clean(v) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        return value

    return clean(record), replaced


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """The fields of a dataclass type (none for anything else), looked up once per type."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()


def storable_value(value: Any) -> Any:
    """*value* (a string, or a dict / list of them, as in ``summary.json``) made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_value(k): storable_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_value(v) for v in value]
    return value
