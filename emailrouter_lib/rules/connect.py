"""Reaching each mailbox's rules: one service-account ``ews://`` URL, the mailbox filled in.

The admin gives the service account once, without ``mailbox=``::

    ewss://CONTOSO%5Csvc-crm@mail.contoso.com/EWS/Exchange.asmx?password=env:EWS_PASSWORD

and every target mailbox gets that URL with ``mailbox=ADDRESS`` (impersonation by default, or
``access=delegate`` for FullAccess). The secret is resolved once per run, not once per mailbox,
and the connection pool is sized to the run's concurrency so threads do not queue for one socket.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlsplit

from emailrouter_lib.errors import ConfigError
from emailrouter_lib.mailboxes.ews_rules import EwsRules
from emailrouter_lib.mailboxes.ews_url import EWS_SCHEMES, EwsMailboxURL, parse_ews_url
from emailrouter_lib.mailboxes.schemes import redact_url
from emailrouter_lib.secrets import resolve_secret

_PROBE = "probe@example.invalid"


class EwsConnector:
    """``connector(address)`` -> the rules client of that mailbox."""

    def __init__(self, url: str, *, max_concurrency: int = 1):
        parts = urlsplit(str(url).strip())
        if parts.scheme.lower() not in EWS_SCHEMES:
            raise ConfigError(
                f"ews={redact_url(url)!r}: rules are deployed over EWS; give an ews:// or ewss:// "
                "URL of the service account"
            )
        names = {name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        if "mailbox" in names:
            raise ConfigError(
                f"ews={redact_url(url)!r}: leave mailbox= out; each target mailbox is filled in"
            )
        extra = []
        if "connections" not in names:
            extra.append(f"connections={max(1, min(int(max_concurrency), 64))}")
        self._template = url + ("&" if parts.query else "?") + "&".join(extra) if extra else url
        self.settings = self._settings(_PROBE)  # checks the URL now, not per mailbox
        self._secret = resolve_secret(self.settings.password_ref or "")

    def _settings(self, address: str) -> EwsMailboxURL:
        joiner = "&" if urlsplit(self._template).query else "?"
        return parse_ews_url(f"{self._template}{joiner}mailbox={quote(address, safe='@')}")

    def __call__(self, address: str) -> EwsRules:
        return EwsRules(self._settings(address), self._secret)

    def __repr__(self) -> str:
        return f"EwsConnector({redact_url(self._template)!r})"


__all__ = ["EwsConnector"]
