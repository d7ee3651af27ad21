"""Basic and NTLM authentication as IIS does it for /EWS: per TCP connection, with 401 challenges.

NTLM is verified by pyspnego's acceptor (a real NTLMv2 check of the client's response), which reads
its credentials from the file named by ``NTLM_USER_FILE``; every fake server in the process adds
its users to one such file.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from pathlib import Path

import spnego
from spnego.exceptions import SpnegoError

from .store import Store, User

_lock = threading.Lock()
_lines: dict[str, str] = {}
_file: Path | None = None


def register_ntlm(logon: str, password: str) -> None:
    """Make *logon* (``DOMAIN\\user`` or ``user@domain``) known to the NTLM acceptor."""
    global _file
    domain, sep, user = logon.rpartition("\\")
    line = f"{domain}:{user}:{password}" if sep else f":{logon}:{password}"
    with _lock:
        _lines[logon.lower()] = line
        if _file is None:
            handle, name = tempfile.mkstemp(prefix="fake-ews-ntlm-", suffix=".txt")
            os.close(handle)
            _file = Path(name)
        _file.write_text("\n".join(_lines.values()) + "\n", encoding="utf-8")
        os.environ["NTLM_USER_FILE"] = str(_file)


class Authenticator:
    """The authentication state of one TCP connection."""

    def __init__(
        self, store: Store, schemes: tuple[str, ...], tokens: dict[str, User] | None = None
    ):
        self.store = store
        self.schemes = schemes
        self.tokens = tokens if tokens is not None else {}  # OAuth bearer token -> application
        self.user: User | None = None  # set once NTLM completed on this connection
        self._ntlm = None

    def challenge_headers(self) -> list[tuple[str, str]]:
        headers = []
        if "NTLM" in self.schemes:
            headers += [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]
        if "Basic" in self.schemes:
            headers.append(("WWW-Authenticate", 'Basic realm="mail.fake-ews.test"'))
        return headers

    def check(self, header: str | None) -> tuple[User | None, list[tuple[str, str]]]:
        """(the user, or None and the headers of the 401 to answer with)."""
        if not header:
            if self.user is not None:  # NTLM authenticates the connection, not each request
                return self.user, []
            return None, self.challenge_headers()
        scheme, _, token = header.partition(" ")
        scheme = scheme.strip()
        if scheme.lower() == "bearer":
            user = self.tokens.get(token.strip())
            return (
                (user, [])
                if user
                else (None, [("WWW-Authenticate", 'Bearer error="invalid_token"')])
            )
        if scheme.lower() == "basic" and "Basic" in self.schemes:
            return self._basic(token.strip())
        if scheme.upper() in ("NTLM", "NEGOTIATE") and "NTLM" in self.schemes:
            return self._ntlm_step(scheme, token.strip())
        return None, self.challenge_headers()

    def _basic(self, token: str) -> tuple[User | None, list[tuple[str, str]]]:
        try:
            name, _, password = base64.b64decode(token).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, self.challenge_headers()
        user = self.store.logon(name)
        if user is None or not user.password or user.password != password:
            return None, self.challenge_headers()
        return user, []

    def _ntlm_step(self, scheme: str, token: str) -> tuple[User | None, list[tuple[str, str]]]:
        try:
            raw = base64.b64decode(token)
            if raw[8:9] == b"\x01" or self._ntlm is None:  # NEGOTIATE: a new handshake
                self._ntlm = spnego.server(protocol="ntlm")
                self.user = None
            reply = self._ntlm.step(raw)
        except (SpnegoError, ValueError):
            self._ntlm = None
            return None, self.challenge_headers()
        if not self._ntlm.complete:
            return None, [("WWW-Authenticate", f"{scheme} {base64.b64encode(reply).decode()}")]
        principal = self._ntlm.client_principal or ""
        self._ntlm = None
        user = self.store.logon(principal) or self.store.logon(principal.rpartition("\\")[2])
        if user is None:
            return None, self.challenge_headers()
        self.user = user
        return user, []


__all__ = ["Authenticator", "register_ntlm"]
