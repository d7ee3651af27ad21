"""Secrets by reference: ``env:NAME``, ``file:PATH``, ``keyring:SERVICE/USER``.

Parameters, URLs and config name a secret; the value is fetched only when a connection is made and
is never stored on an object that gets printed, logged or written to a report. A literal value where
a reference is expected is refused, because papermill copies parameters into the executed notebook.
"""

from __future__ import annotations

import os
from pathlib import Path

from emailrouter_lib.errors import SecretError

SCHEMES = ("env:", "file:", "keyring:")


def is_reference(value: str | None) -> bool:
    """True when *value* is a secret reference (not a literal secret)."""
    return bool(value) and value.startswith(SCHEMES)


def resolve_secret(reference: str) -> str:
    """Return the secret named by *reference*; the error never contains the value."""
    if not is_reference(reference):
        raise SecretError(
            "expected a secret reference (env:NAME, file:PATH or keyring:SERVICE/USER), "
            "got a literal value; put the secret in an environment variable, a file or the keyring"
        )
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name!r} (from {reference!r}) is not set")
        return value
    if scheme == "file":
        path = Path(name).expanduser()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    service, _, user = name.partition("/")
    if not service or not user:
        raise SecretError(f"keyring reference {reference!r} must be keyring:SERVICE/USER")
    try:
        import keyring

        value = keyring.get_password(service, user)
    except Exception as exc:  # keyring backends raise their own types
        if exc.__class__.__name__ == "NoKeyringError":
            raise SecretError(
                f"{reference}: no keyring backend is available to this user; install and "
                "configure one (the Secret Service, e.g. GNOME Keyring, on Linux; the macOS "
                "Keychain; the Windows Credential Manager; or the keyrings.alt package), "
                "or give the secret as env:NAME or file:PATH instead"
            ) from None
        raise SecretError(
            f"keyring lookup {reference!r} failed: {exc.__class__.__name__}"
        ) from None
    if value is None:
        raise SecretError(f"no keyring entry for service {service!r}, user {user!r}")
    return value
