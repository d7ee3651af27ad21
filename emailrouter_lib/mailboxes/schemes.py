"""The scheme registry: which module parses, redacts and opens each kind of mailbox URL.

Every front (routing, the audit, the Configuration Manager, preflight checks) names a mailbox by
URL and asks this module for its parts, its printable form or an unopened source or sender. The
parsing modules (:mod:`~emailrouter_lib.mailboxes.url` for POP3, IMAP, Maildir and .eml
directories, :mod:`~emailrouter_lib.mailboxes.ews_url` for Exchange) import no protocol code; the
protocol modules are named here as ``module:Class`` and imported when a mailbox is opened, so a
cron run over a Maildir never loads exchangelib (start-up time: ``benchmarks/startup.py``) and no
protocol module imports this registry back.
"""

from __future__ import annotations

import importlib
from typing import Any

from emailrouter_lib.errors import MailboxURLError
from emailrouter_lib.mailboxes.base import MailboxSource, MailSender
from emailrouter_lib.mailboxes.ews_url import EWS_SCHEMES, parse_ews_url, redact_ews_url
from emailrouter_lib.mailboxes.smtp import SMTP_QUERY
from emailrouter_lib.mailboxes.url import (
    LOCAL_SCHEMES,
    NETWORK_SCHEMES,
    SENDER_SCHEMES,
    MailboxURL,
    parse_standard_url,
    redact_standard_url,
)
from emailrouter_lib.secrets import redact_url as redact_secrets_in_url

# scheme -> the class reading that kind of mailbox (its constructor takes a MailboxURL)
SOURCES = {
    "ews": "ews_source:EwsSource",
    "ewss": "ews_source:EwsSource",
    "imap": "imap:ImapSource",
    "imaps": "imap:ImapSource",
    "pop3": "pop3:Pop3Source",
    "pop3s": "pop3:Pop3Source",
    "maildir": "maildir:MaildirSource",
    "eml": "emldir:EmlDirSource",
}
MAILBOX_SCHEMES = (*NETWORK_SCHEMES, *LOCAL_SCHEMES, *EWS_SCHEMES)


def _scheme(url: str) -> str:
    return str(url).strip().partition(":")[0].lower()


def _load(entry: str) -> Any:
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(f"emailrouter_lib.mailboxes.{module}"), name)


def redact_url(url: str) -> str:
    """*url* with any literal password replaced by ``***``, safe to print or log.

    References (``password=env:NAME``) are kept: they name a secret, they are not one. The values
    of parameters the URL's scheme does not take are masked too: a misspelt name may hold one.
    """
    scheme = _scheme(url)
    if scheme in EWS_SCHEMES:
        return redact_ews_url(url)
    if scheme in ("smtp", "smtps"):
        return redact_secrets_in_url(url, SMTP_QUERY, unreadable="<unreadable mailbox URL>")
    return redact_standard_url(url)


def parse_mailbox_url(
    url: str, *, timeout: float | None = None, ca_file: str | None = None
) -> MailboxURL:
    """Check *url* and return its parts; *timeout* / *ca_file* apply when the URL sets none."""
    if _scheme(url) in EWS_SCHEMES:  # Exchange over EWS: its own parameters (ews_url.py)
        return parse_ews_url(url, timeout=timeout, ca_file=ca_file)
    return parse_standard_url(url, timeout=timeout, ca_file=ca_file)


def open_source(
    url: str, *, timeout: float | None = None, ca_file: str | None = None
) -> MailboxSource:
    """The (not yet connected) source for *url*; ``with source:`` connects and logs in."""
    settings = parse_mailbox_url(url, timeout=timeout, ca_file=ca_file)
    return _load(SOURCES[settings.scheme])(settings)


def open_sender(url: str, *, ca_file: str | None = None) -> MailSender:
    """The (not yet connected) sender for ``smtp://``, ``smtps://``, ``pickup:///dir`` or an
    Exchange mailbox (``ews://`` / ``ewss://``, sending with a copy in its Sent Items)."""
    scheme = _scheme(url)
    if scheme in EWS_SCHEMES:  # Exchange: SendAndSaveCopy through a mailbox (ews_sender.py)
        return _load("ews_sender:EwsSender").from_url(url, ca_file=ca_file)
    if scheme == "pickup":
        return _load("pickup:PickupSender").from_url(url)
    if scheme in ("smtp", "smtps"):
        settings = _load("smtp:SmtpSettings").from_url(url, ca_file=ca_file)
        return _load("smtp:SmtpSender")(settings)
    raise MailboxURLError(
        f"unknown sender type {scheme + '://' if scheme else '(none)'}; use smtp://, smtps://, "
        "ewss:// (Exchange) or pickup:///dir"
    )


__all__ = [
    "MAILBOX_SCHEMES",
    "SENDER_SCHEMES",
    "SOURCES",
    "open_sender",
    "open_source",
    "parse_mailbox_url",
    "redact_url",
]
