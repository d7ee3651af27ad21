"""The one exception tree of emailrouter.

Every error the library raises on purpose derives from :class:`EmailRouterError`, so a notebook
cell or a cron wrapper can catch one class. Each message names the file and line, mailbox or
message concerned and says what to do about it. Findings that are not failures (unknown XML
elements, skipped message classes) are returned in results, never raised.

    EmailRouterError
    ├── ConfigError                 a router configuration file cannot be used
    │   └── ConfigSyntaxError       malformed XML (carries file and line)
    ├── SecretError                 a secret reference cannot be resolved, or a literal was given
    ├── MessageError                a message cannot be parsed at all
    ├── MailboxError                a mailbox source or sender failed (carries the mailbox)
    │   ├── MailboxConnectError     the server cannot be reached, or dropped the connection
    │   ├── MailboxAuthError        the server refused the credentials
    │   ├── MailboxTLSError         TLS failed (untrusted certificate, wrong host name)
    │   ├── MailboxSendError        a message was not accepted (``permanent``: 5xx, else retry)
    │   └── MailboxURLError         a mailbox URL is malformed or names an unknown protocol
    ├── CrmError                    the CRM store failed or holds something unexpected
    │   └── CrmURLError             a CRM URL is malformed or names an unknown backend
    └── RoutingError                a routing batch cannot run (bad parameters, ledger trouble)
"""

from __future__ import annotations


class EmailRouterError(Exception):
    """Root of every error raised by emailrouter_lib."""


class ConfigError(EmailRouterError):
    """A router configuration file cannot be used as it is."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        self.file = file
        self.line = line
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        super().__init__(f"{where}{message}")


class ConfigSyntaxError(ConfigError):
    """The file is not well-formed XML (or too large to be a router configuration)."""


class SecretError(EmailRouterError):
    """A secret reference could not be resolved, or a literal secret was passed."""


class MessageError(EmailRouterError):
    """A message could not be parsed at all (routing quarantines it instead of raising)."""


class MailboxError(EmailRouterError):
    """A mailbox source or sender failed; ``mailbox`` names it (never with a password)."""

    def __init__(self, message: str, *, mailbox: str | None = None):
        self.mailbox = mailbox
        super().__init__(f"{mailbox}: {message}" if mailbox else message)


class MailboxConnectError(MailboxError):
    """The server could not be reached, timed out, or dropped the connection."""


class MailboxAuthError(MailboxError):
    """The server refused the login."""


class MailboxTLSError(MailboxError):
    """TLS negotiation or certificate verification failed."""


class MailboxSendError(MailboxError):
    """The server did not accept a message; ``permanent`` (SMTP 5xx) means retrying is useless."""

    def __init__(
        self, message: str, *, mailbox: str | None = None, permanent: bool, code: int | None = None
    ):
        self.permanent = permanent
        self.code = code
        super().__init__(message, mailbox=mailbox)


class MailboxURLError(MailboxError):
    """A mailbox URL is malformed or names an unsupported protocol."""


class CrmError(EmailRouterError):
    """The CRM backend failed or returned something unexpected."""


class CrmURLError(CrmError):
    """A CRM URL is malformed or names an unknown backend."""


class RoutingError(EmailRouterError):
    """A routing batch cannot run: bad parameters, or the ledger is unusable."""


__all__ = [
    "ConfigError",
    "ConfigSyntaxError",
    "CrmError",
    "CrmURLError",
    "EmailRouterError",
    "MailboxAuthError",
    "MailboxConnectError",
    "MailboxError",
    "MailboxSendError",
    "MailboxTLSError",
    "MailboxURLError",
    "MessageError",
    "RoutingError",
    "SecretError",
]
