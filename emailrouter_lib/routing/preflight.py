"""Check a command's URLs before anything runs, and say what is wrong in the command's words.

A routing run that meets a malformed mailbox URL reports that mailbox as failed and goes on,
which is right for a notebook working through a list, but on the command line a typo is a usage
error: one line on stderr naming the flag, exit 2, and nothing routed or sent. So the commands
parse every URL they were given first (parsing never connects) and check that each ``env:``
variable a URL names is set; ``file:`` and ``keyring:`` secrets are read only when used, as
always.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from emailrouter_lib.errors import MailboxURLError, SecretError
from emailrouter_lib.mailboxes import redact_url
from emailrouter_lib.mailboxes.schemes import open_sender, parse_mailbox_url
from emailrouter_lib.secrets import is_reference

__all__ = ["check_mailbox_urls", "check_reference_template", "check_transports"]


def check_mailbox_urls(flag: str, urls: Iterable[str]) -> None:
    """Each of *urls* (given as *flag*, e.g. ``--mailbox``) parses and its ``env:`` names are
    set; raises :class:`MailboxURLError` or :class:`SecretError` naming the flag."""
    for url in urls:
        try:
            parse_mailbox_url(url)
        except MailboxURLError as exc:
            raise MailboxURLError(f"{flag} {exc}") from None
        _check_env(flag, url)


def check_transports(flag: str, values: Iterable[str]) -> None:
    """Each ``[ADDRESS=]URL`` of ``--transport`` names a sender that parses (none connects)."""
    from emailrouter_lib.routing.params import parse_transports

    for value in values:
        for url in parse_transports([value]).values():
            try:
                open_sender(url)
            except MailboxURLError as exc:
                raise MailboxURLError(f"{flag} {exc}") from None
            _check_env(flag, url)


def check_reference_template(flag: str, value: str | None) -> None:
    """A password template such as ``env:PW_{local}`` is a reference, never a password."""
    if value and not is_reference(value):
        raise SecretError(
            f"{flag} must be a secret reference template such as env:PW_{{local}}, "
            "file:/etc/emailrouter/{local}.secret or keyring:emailrouter/{address}, "
            "never the password itself"
        )


def _check_env(flag: str, url: str) -> None:
    """Every ``env:NAME`` in the URL's query names a variable that is set in this environment."""
    try:
        query = parse_qsl(urlsplit(str(url).strip()).query, keep_blank_values=True)
    except ValueError:
        return  # the parsers above have said what is wrong with it
    for name, value in query:
        if value.startswith("env:") and value[4:] not in os.environ:
            raise SecretError(
                f"{flag} {redact_url(url)}: environment variable {value[4:]!r} ({name}={value}) "
                "is not set; export it in the environment this command runs in"
            )
