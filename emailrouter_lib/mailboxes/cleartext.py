"""Warn when a mailbox or transport URL would send its password over the network in clear.

``imap://`` and ``pop3://`` without ``starttls=1`` are legitimate (an old server on a trusted
segment), so they are not refused, but the admin must hear that the login crosses the wire
unencrypted: on stderr from the command, and in the run's summary. ``smtp://`` already refuses a
login without TLS unless ``insecure_auth=1`` says it is meant; that case is warned about too.
Loopback is exempt, as for SMTP: nothing crosses a network.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from emailrouter_lib.errors import MailboxURLError
from emailrouter_lib.mailboxes.schemes import parse_mailbox_url, redact_url
from emailrouter_lib.mailboxes.smtp import _is_loopback  # the one loopback rule for logins

__all__ = ["cleartext_warning", "cleartext_warnings"]

_PLAIN_SCHEMES = ("imap", "pop3", "smtp")


def cleartext_warning(url: str) -> str | None:
    """The warning for *url* when it logs in with a password without TLS, else None.

    A URL that does not parse gets None: its own parser says what is wrong with it.
    """
    try:
        parts = urlsplit(str(url).strip())
        scheme = parts.scheme.lower()
        if scheme not in _PLAIN_SCHEMES or not parts.username or not parts.hostname:
            return None
        query = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        if scheme != "smtp":
            settings = parse_mailbox_url(url)
            if settings.uses_tls or not settings.password_ref:
                return None
        elif query.get("starttls", "").lower() in ("1", "true", "yes", "on") or not query.get(
            "password"
        ):
            return None
    except (MailboxURLError, ValueError):
        return None
    if _is_loopback(parts.hostname.lower()):
        return None
    secure = {"imap": "imaps:// (port 993)", "pop3": "pop3s:// (port 995)", "smtp": "smtps://"}
    return (
        f"{redact_url(url)}: the password is sent in clear text (no TLS); add starttls=1 "
        f"or use {secure[scheme]}"
    )


def cleartext_warnings(urls: Iterable[str]) -> list[str]:
    """:func:`cleartext_warning` for each URL that has one, in order."""
    return [warning for url in urls if (warning := cleartext_warning(url))]
