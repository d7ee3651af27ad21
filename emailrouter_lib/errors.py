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
    │   │   └── MailboxThrottledError   the server kept throttling beyond the bounded wait
    │   ├── MailboxAuthError        the server refused the credentials
    │   ├── MailboxTLSError         TLS failed (untrusted certificate, wrong host name)
    │   ├── MailboxSendError        a message was not accepted (``permanent``: 5xx, else retry)
    │   └── MailboxURLError         a mailbox URL is malformed or names an unknown protocol
    ├── CrmError                    the CRM store failed or holds something unexpected
    │   ├── CrmURLError             a CRM URL is malformed or names an unknown backend
    │   ├── CrmPathError            no CRM database where the URL points (a mistyped path?),
    │   │                           or one already where ``crm init`` would create it
    │   └── CrmHTTPError            the CRM's Web API answered an error (``status``, ``code``)
    │       ├── CrmAuthError        401/403: credentials refused, or a privilege is missing
    │       └── CrmThrottledError   429/503 beyond the bounded wait (``retry_after``)
    ├── RoutingError                a routing batch cannot run (bad parameters, ledger trouble)
    │   ├── LeaseHeldError          another live run holds the mailbox's lease: it is skipped
    │   └── LeaseLostError          a ledger write's lease expired or was taken over: refused
    └── NotebookError               a notebook run failed, timed out, or its kernel died
        └── NotebookParameterError  the notebook refused its parameters (raised a usage error)
"""

from __future__ import annotations

from emailrouter_lib.known_secrets import mask_known_secrets


class EmailRouterError(Exception):
    """Root of every error raised by emailrouter_lib.

    Its text never holds a secret the process resolved: a message quoting a server's reply (which
    may echo the login line) is masked when it is made and again when it is printed.
    """

    def __init__(self, *args: object):
        super().__init__(*(mask_known_secrets(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return mask_known_secrets(super().__str__())


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


class ParameterError(EmailRouterError):
    """A flow's parameters cannot be used: an unknown name, a wrong type or value, a missing
    one (exit 2: nothing ran). The message names the parameter and what it takes."""


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


class MailboxThrottledError(MailboxConnectError):
    """The server kept answering "busy" beyond the mailbox's bounded wait (``max_wait=``).

    A subclass of :class:`MailboxConnectError` because the remedy is the same (run again later),
    but an audit reports it apart: the mailbox is reachable and the credentials were accepted.
    """


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


class CrmPathError(CrmError):
    """The file a ``sqlite:///`` URL names is not what the command needs: no database where one
    must be (a mistyped path, most likely), or a database where ``crm init`` would create one.

    Its own class because it is a usage error (exit 2), unlike a CRM that fails while working.
    """


class CrmHTTPError(CrmError):
    """The CRM's Web API answered with an HTTP error.

    ``status`` is the HTTP status (None when the request never got an answer) and ``code`` the
    server's error code (Dataverse: ``0x80072322`` and the like; "" when the body had none), so a
    caller can decide without parsing the message.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = ""):
        self.status = status
        self.code = code
        super().__init__(message)


class CrmAuthError(CrmHTTPError):
    """401 (credentials refused) or 403 (the user lacks a privilege): retrying cannot help."""


class CrmThrottledError(CrmHTTPError):
    """429/503 beyond the bounded wait; ``retry_after`` is what the server last asked (seconds)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
    ):
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code)


class CrmRecordError(CrmError):
    """The CRM refused a write because of what one of its records holds (a constraint, a value
    it cannot store), not because it is unreachable: routing writes the batch again without the
    refused email and quarantines that one; any other :class:`CrmError` stops the mailbox."""


class RoutingError(EmailRouterError):
    """A routing batch cannot run: bad parameters, or the ledger is unusable."""


class LeaseHeldError(RoutingError):
    """Another run holds the mailbox's live lease (``holder``: who, until when); the mailbox is
    skipped by this run, not an error: the holder routes it, or the next run once it expires."""

    def __init__(self, message: str, *, holder: object = None):
        self.holder = holder
        super().__init__(message)


class LeaseLostError(RoutingError):
    """A ledger write was refused: the run's lease on the mailbox expired or another run took it
    over (its fencing token is stale), so this run must stop acting on the mailbox."""


class NotebookError(EmailRouterError):
    """A notebook run failed: a cell raised, a cell ran past the timeout, or the kernel died.

    The executed notebook, with the traceback, is named in the message.
    """


class NotebookParameterError(NotebookError):
    """The notebook stopped on one of its parameters (a cell raised a usage error such as
    :class:`ConfigError` or :class:`MailboxURLError`): bad parameters (exit 2), not a broken
    notebook (exit 3)."""


__all__ = [
    "ConfigError",
    "ConfigSyntaxError",
    "CrmAuthError",
    "CrmError",
    "CrmHTTPError",
    "CrmPathError",
    "CrmRecordError",
    "CrmThrottledError",
    "CrmURLError",
    "EmailRouterError",
    "LeaseHeldError",
    "LeaseLostError",
    "MailboxAuthError",
    "MailboxConnectError",
    "MailboxError",
    "MailboxSendError",
    "MailboxTLSError",
    "MailboxThrottledError",
    "MailboxURLError",
    "MessageError",
    "NotebookError",
    "NotebookParameterError",
    "ParameterError",
    "RoutingError",
    "SecretError",
]
