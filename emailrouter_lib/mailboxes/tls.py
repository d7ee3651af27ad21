"""TLS contexts and the translation of network failures into mailbox errors.

Every POP3 and IMAP connection gets its context here, so certificate verification is on in one
place and cannot be forgotten in another. The same module turns the many ways a connection fails
(refused, unresolvable, timed out, dropped, untrusted certificate) into the three errors an admin
can act on, each naming the mailbox and saying what to try.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxTLSError,
)


def client_context(ca_file: str | None, *, mailbox: str) -> ssl.SSLContext:
    """A verifying client context; *ca_file* adds a CA to trust (on-premises CAs, tests)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise MailboxTLSError(
            f"cannot load the CA file {ca_file} ({reason}); point cafile= at a PEM file",
            mailbox=mailbox,
        ) from None


def server_text(exc: BaseException) -> str:
    """The server's reply carried by a poplib/imaplib error, as text."""
    value = exc.args[0] if exc.args else exc
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def auth_refused(mailbox: str, exc: BaseException, user: str) -> MailboxAuthError:
    """The error for a refused login, carrying the server's own words (never the password)."""
    return MailboxAuthError(
        f"the server refused the login of {user!r}: {server_text(exc)}; "
        "check the user name and the secret that password= refers to",
        mailbox=mailbox,
    )


@contextmanager
def network_errors(
    mailbox: str,
    endpoint: str,
    action: str,
    timeout: float,
    dropped: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Re-raise socket and TLS failures inside the block as mailbox errors.

    *dropped* lists the protocol library's own "connection lost" exceptions (imaplib's ``abort``).
    """
    try:
        yield
    except MailboxError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise MailboxTLSError(
            f"certificate of {endpoint} not trusted ({exc.verify_message}); "
            "pass cafile=PATH to the CA that signed it, or fix the server certificate",
            mailbox=mailbox,
        ) from exc
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, *dropped) as exc:
        raise _dropped(mailbox, endpoint, action) from exc
    except ssl.SSLError as exc:
        raise MailboxTLSError(
            f"TLS with {endpoint} failed while {action} ({exc.reason or exc}); "
            "check that the port speaks TLS (implicit TLS) or use starttls=1 on the plain port",
            mailbox=mailbox,
        ) from exc
    except ConnectionRefusedError as exc:
        raise MailboxConnectError(
            f"connection to {endpoint} refused; is the server running, and is the port right?",
            mailbox=mailbox,
        ) from exc
    except TimeoutError as exc:
        raise MailboxConnectError(
            f"no answer from {endpoint} within {timeout:g} s while {action}; check host, port and "
            "firewall, or raise timeout=",
            mailbox=mailbox,
        ) from exc
    except socket.gaierror as exc:
        raise MailboxConnectError(
            f"cannot resolve the host of {endpoint} ({exc.strerror}); check the host name",
            mailbox=mailbox,
        ) from exc
    except (ConnectionError, EOFError) as exc:
        raise _dropped(mailbox, endpoint, action) from exc
    except OSError as exc:
        raise MailboxConnectError(
            f"network error with {endpoint} while {action}: {exc.strerror or exc}",
            mailbox=mailbox,
        ) from exc


def _dropped(mailbox: str, endpoint: str, action: str) -> MailboxConnectError:
    return MailboxConnectError(
        f"{endpoint} dropped the connection while {action}; run the batch again "
        "(items already routed are not routed twice)",
        mailbox=mailbox,
    )


__all__ = ["auth_refused", "client_context", "network_errors", "server_text"]
