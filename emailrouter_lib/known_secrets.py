"""The secret values this process has resolved, so any text can be masked before it is kept.

A reference (``password=env:NAME``) keeps the secret out of parameters and URLs, but not out of
what a server says back: a server that echoes the login line (``NO [AUTHENTICATIONFAILED] LOGIN
crm "PW" failed``) hands the password to whatever stores its reply. The router knows the value
(it resolved it), so :func:`emailrouter_lib.secrets.resolve_secret` remembers it here and every
error message, result row and artifact is passed through :func:`mask_known_secrets`.

This module imports nothing of the project so that :mod:`emailrouter_lib.errors`, the bottom of
every layer, can mask its messages. Values are only held in memory, never written anywhere.
"""

from __future__ import annotations

import html
import json
import threading
from urllib.parse import quote

MASK = "***"
# Shorter values are not masked: replacing every "ab" would garble all text, and a password that
# short cannot be told apart from ordinary words anyway.
MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_forms: tuple[str, ...] = ()  # every spelling to replace, longest first


def remember_secret(value: str) -> None:
    """Add *value* (a resolved secret) to the values masked from now on in this process."""
    global _forms
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        forms = {form for v in _values for form in _spellings(v) if len(form) >= MIN_LENGTH}
        _forms = tuple(sorted(forms, key=len, reverse=True))


def mask_known_secrets(text: str) -> str:
    """*text* with every remembered secret (also quoted, escaped or percent-encoded) as ``***``."""
    forms = _forms
    if not forms or not isinstance(text, str):
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def has_known_secrets() -> bool:
    """True once a secret was remembered (so callers can skip masking large tables before)."""
    return bool(_forms)


def forget_secrets() -> None:
    """Forget every remembered value (tests; a long-lived process that rotates secrets)."""
    global _forms
    with _lock:
        _values.clear()
        _forms = ()


def _spellings(value: str) -> set[str]:
    """How a value appears in text a server or a writer produced: as is, quoted as an IMAP or
    Python string, escaped for JSON or HTML, or percent-encoded."""
    return {
        value,
        value.replace("\\", "\\\\").replace('"', '\\"'),
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value),
        html.escape(value, quote=False),
        quote(value, safe=""),
        quote(value),
    }


__all__ = ["MASK", "forget_secrets", "has_known_secrets", "mask_known_secrets", "remember_secret"]
