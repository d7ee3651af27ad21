"""emailrouter_lib: the library behind the emailrouter notebooks and CLI.

It does what the Microsoft Dynamics CRM Email Router did: routes incoming mail (POP3, IMAP,
Maildir, Exchange) into the CRM as tracked email activities, exactly once, and reads the router's
configuration files. Notebooks and the ``emailrouter`` command are thin fronts over it.

Layers, bottom to top (nothing imports upward)::

    mail, config  ->  mailboxes, crm  ->  tracking  ->  routing  ->  reports  ->  notebooks / cli

Errors form one tree rooted at :class:`EmailRouterError`; see :mod:`emailrouter_lib.errors`.
"""

from __future__ import annotations

from emailrouter_lib.errors import (
    ConfigError,
    ConfigSyntaxError,
    CrmAuthError,
    CrmError,
    CrmHTTPError,
    CrmThrottledError,
    CrmURLError,
    EmailRouterError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxSendError,
    MailboxThrottledError,
    MailboxTLSError,
    MailboxURLError,
    MessageError,
    NotebookError,
    RoutingError,
    SecretError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConfigSyntaxError",
    "CrmAuthError",
    "CrmError",
    "CrmHTTPError",
    "CrmThrottledError",
    "CrmURLError",
    "EmailRouterError",
    "MailboxAuthError",
    "MailboxConnectError",
    "MailboxError",
    "MailboxSendError",
    "MailboxTLSError",
    "MailboxThrottledError",
    "MailboxURLError",
    "MessageError",
    "NotebookError",
    "RoutingError",
    "SecretError",
    "__version__",
]
