"""Connecting to one Exchange mailbox over EWS, and turning exchangelib's errors into ours.

``connect(settings, secret)`` builds credentials (NTLM, Basic, OAuth client credentials), finds the
endpoint (given, or by Autodiscover), and returns an exchangelib ``Account`` on a shared
:class:`~emailrouter_lib.mailboxes.ews_http.EwsProtocol` with the bounded retry policy. With the
auth type and a version hint given, creating the account sends nothing; the first folder access
does (``warm``).

``ews_errors(...)`` is the one place where exchangelib exceptions become
:class:`~emailrouter_lib.errors.MailboxError` subclasses that name the mailbox and say what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Configuration,
    Credentials,
    Identity,
    OAuth2Credentials,
    Version,
)
from exchangelib import errors as ews
from exchangelib import version as versions

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxThrottledError,
    MailboxTLSError,
)
from emailrouter_lib.mailboxes.ews_autodiscover import autodiscover_endpoint, tls_reason
from emailrouter_lib.mailboxes.ews_http import shared_protocol
from emailrouter_lib.mailboxes.ews_retry import BoundedFaultTolerance, mailbox_scope
from emailrouter_lib.mailboxes.ews_url import EwsMailboxURL
from emailrouter_lib.mailboxes.tls import client_context

_BUILDS = {
    "2007": versions.EXCHANGE_2007,
    "2010": versions.EXCHANGE_2010,
    "2010_sp2": versions.EXCHANGE_2010_SP2,
    "2013": versions.EXCHANGE_2013,
    "2013_sp1": versions.EXCHANGE_2013_SP1,
    "2016": versions.EXCHANGE_2016,
    "2019": versions.EXCHANGE_2019,
    "o365": versions.EXCHANGE_O365,
}
_AUTH = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}


class _TenantOAuth2Credentials(OAuth2Credentials):
    """Client credentials against a chosen authority (sovereign clouds, ADFS, test servers)."""

    def __init__(self, *args, authority: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.authority = authority

    @property
    def token_url(self):
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"


def credentials(settings: EwsMailboxURL, secret: str):
    """exchangelib credentials for the URL's user and auth type; *secret* is not kept elsewhere."""
    if settings.auth == "oauth":
        return _TenantOAuth2Credentials(
            client_id=settings.user,
            client_secret=secret,
            tenant_id=settings.tenant,
            identity=Identity(primary_smtp_address=settings.mailbox),
            authority=settings.authority,
        )
    return Credentials(settings.user or "", secret)


def connect(settings: EwsMailboxURL, secret: str) -> Account:
    """An Account for the URL's mailbox; only Autodiscover (if asked for) talks to the server."""
    if settings.ca_file:
        client_context(settings.ca_file, mailbox=settings.mailbox_id)  # says so if not a PEM file
    creds = credentials(settings, secret)
    policy = BoundedFaultTolerance(max_wait=settings.max_wait)
    endpoint = settings.service_endpoint
    if endpoint is None:
        endpoint = autodiscover_endpoint(settings, creds, _AUTH[settings.auth])
    build = _BUILDS.get(settings.version)
    config = Configuration(
        service_endpoint=endpoint,
        credentials=creds,
        auth_type=_AUTH[settings.auth],
        version=Version(build=build) if build else None,
        retry_policy=policy,
        max_connections=settings.connections,
    )
    protocol = shared_protocol(
        config, ca_file=settings.ca_file, read_chunk=settings.read_chunk, timeout=settings.timeout
    )
    account = Account(
        settings.mailbox,
        config=protocol.config,
        autodiscover=False,
        access_type=IMPERSONATION if settings.access == "impersonation" else DELEGATE,
    )
    account.protocol = protocol  # ours (scoped adapter), not exchangelib's process-wide one
    return account


def warm(account: Account, folder_name: str = "Inbox"):
    """Resolve the account's folders now, one mailbox at a time.

    exchangelib guards ``account.root`` / ``account.inbox`` with a lock shared by *all* Account
    objects, so first access from many threads runs strictly one after another; doing it before a
    thread pool starts keeps the parallel part parallel. Returns the folder to read.
    """
    from emailrouter_lib.mailboxes.ews_folders import open_folder

    _ = account.root
    return open_folder(account, folder_name, create=False)


@contextlib.contextmanager
def ews_errors(settings: EwsMailboxURL, action: str) -> Iterator[None]:
    """Inside the block: back-offs charged to this mailbox, exchangelib errors as ours."""
    mailbox = settings.mailbox_id
    where = settings.service_endpoint or f"the Autodiscover endpoint of {settings.mailbox}"
    with mailbox_scope(settings.mailbox):
        try:
            yield
        except MailboxError:
            raise
        except ews.UnauthorizedError as exc:
            raise MailboxAuthError(
                f"{where} refused the credentials of '{settings.user}' ({settings.auth}) while "
                f"{action}; check the user name (DOMAIN\\user or user@domain), auth= and the "
                "secret that password= refers to",
                mailbox=mailbox,
            ) from exc
        except (ews.ErrorImpersonateUserDenied, ews.ErrorImpersonationDenied) as exc:
            raise MailboxAuthError(
                f"'{settings.user}' may not impersonate {settings.mailbox}: grant it the "
                "ApplicationImpersonation role, or use access=delegate with FullAccess",
                mailbox=mailbox,
            ) from exc
        except ews.ErrorAccessDenied as exc:
            raise MailboxAuthError(
                f"'{settings.user}' has no access to {settings.mailbox} while {action} ({exc}); "
                "grant FullAccess for access=delegate, or use access=impersonation",
                mailbox=mailbox,
            ) from exc
        except ews.ErrorNonExistentMailbox as exc:
            raise MailboxError(
                f"{where} has no mailbox {settings.mailbox}; check mailbox=", mailbox=mailbox
            ) from exc
        except (ews.RateLimitError, ews.ErrorServerBusy) as exc:
            wait = getattr(exc, "wait", None) or getattr(exc, "back_off", None)
            asked = f" (asked to wait {wait:g} s more)" if wait else ""
            raise MailboxThrottledError(
                f"{where} kept throttling this mailbox while {action}{asked}, beyond "
                f"max_wait={settings.max_wait:g} s; run the batch again later (nothing routed is "
                "routed twice) or raise max_wait=",
                mailbox=mailbox,
            ) from exc
        except ews.ErrorTimeoutExpired as exc:
            text = str(exc)
            if any(
                w in text for w in ("NameResolution", "resolve", "Name or service", "getaddrinfo")
            ):
                problem = "cannot be resolved; check the host name of the endpoint"
            elif "refused" in text.lower():
                problem = "refused the connection; is the endpoint right and reachable?"
            elif "timed out" in text.lower() or "timeout" in text.lower():
                problem = (
                    f"did not answer within {settings.timeout:g} s; "
                    "check the endpoint or raise timeout="
                )
            else:
                problem = (
                    "dropped the connection; run the batch again "
                    "(items already routed are not routed twice)"
                )
            raise MailboxConnectError(
                f"{where} {problem} (while {action})", mailbox=mailbox
            ) from exc
        except ews.TransportError as exc:
            text = str(exc)
            if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
                raise MailboxTLSError(
                    f"TLS with {where} failed while {action} ({tls_reason(text)}); pass "
                    "cafile=PATH to the CA that signed the server certificate, or fix the "
                    "certificate",
                    mailbox=mailbox,
                ) from exc
            raise MailboxConnectError(
                f"{where} failed while {action}: {type(exc).__name__}: {text[:300]}",
                mailbox=mailbox,
            ) from exc
        except ews.EWSError as exc:
            raise MailboxError(
                f"{where} answered {type(exc).__name__} while {action}: {str(exc)[:300]}",
                mailbox=mailbox,
            ) from exc


__all__ = ["connect", "credentials", "ews_errors", "warm"]
