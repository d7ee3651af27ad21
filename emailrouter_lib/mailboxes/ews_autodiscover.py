"""Finding a mailbox's EWS endpoint by Autodiscover, once per process and mailbox.

A URL with the host ``autodiscover`` asks for this. Two ways, both SOAP Autodiscover
(``GetUserSettings``, what exchangelib 5 speaks):

* ``autodiscover=HOST[:PORT]`` names the Autodiscover server: one request to
  ``https://HOST/autodiscover/autodiscover.svc`` asking only for the EWS URLs, through the same
  scoped HTTP adapter as EWS itself (so ``cafile=`` and ``timeout=`` apply), no DNS lookups.
  Redirects to another address (``RedirectAddress``) or another https server (``RedirectUrl``)
  are followed a few times.
* Without it, exchangelib's own discovery from the mailbox's domain (``https://DOMAIN/…``,
  ``https://autodiscover.DOMAIN/…``, the http redirect, the SRV record). That path uses
  exchangelib's process-wide HTTP settings: the system's CAs, not ``cafile=``.

The endpoint found is kept in this process for :data:`CACHE_SECONDS` per (server, mailbox, logon),
so a batch that opens the mailbox again, and every later batch in a long-running host, costs no
Autodiscover request. :func:`clear_autodiscover_cache` forgets all (tests, a moved mailbox).
"""

from __future__ import annotations

import re
import threading
import time

from exchangelib import Configuration
from exchangelib import errors as ews
from exchangelib.autodiscover import AutodiscoverProtocol
from exchangelib.protocol import FailFast

from emailrouter_lib.errors import (
    MailboxConnectError,
    MailboxError,
    MailboxThrottledError,
    MailboxTLSError,
)
from emailrouter_lib.mailboxes.ews_http import ScopedSessions
from emailrouter_lib.mailboxes.ews_url import EwsMailboxURL

AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
CACHE_SECONDS = 3600.0  # Exchange moves mailboxes rarely; a long-running host re-asks hourly
MAX_REDIRECTS = 5
_SETTINGS = ["external_ews_url", "internal_ews_url", "auto_discover_smtp_address"]

_cache: dict[tuple, tuple[str, float]] = {}
_lock = threading.Lock()


class _Protocol(ScopedSessions, AutodiscoverProtocol):
    """exchangelib's Autodiscover protocol on our scoped adapter (cafile=, timeout=)."""

    def __init__(self, config, *, ca_file: str | None, timeout: float | None):
        super().__init__(config=config)
        self.ca_file = ca_file
        if timeout:
            self.TIMEOUT = timeout


def autodiscover_endpoint(settings: EwsMailboxURL, credentials, auth_type: str) -> str:
    """The EWS endpoint of ``settings.mailbox``: from the cache, else asked for now."""
    key = (settings.scheme, settings.autodiscover_server, settings.mailbox, settings.user)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        return hit[0]
    if settings.autodiscover_server:
        endpoint = _ask_server(settings, credentials, auth_type)
    else:
        endpoint = _discover_from_domain(settings, credentials)
    with _lock:
        _cache[key] = (endpoint, now)
    return endpoint


def cached_endpoints() -> dict[str, str]:
    """Mailbox → endpoint for what the cache holds (for logs and tests)."""
    with _lock:
        return {key[2]: value[0] for key, value in _cache.items()}


def clear_autodiscover_cache() -> None:
    """Forget every endpoint found: the next connect asks Autodiscover again."""
    with _lock:
        _cache.clear()


def _ask_server(settings: EwsMailboxURL, credentials, auth_type: str) -> str:
    http = "https" if settings.uses_tls else "http"
    url = f"{http}://{settings.autodiscover_server}{AUTODISCOVER_PATH}"
    address = settings.mailbox
    seen: list[str] = []
    for _ in range(MAX_REDIRECTS + 1):
        seen.append(f"{address} at {url}")
        answer = _get_user_settings(settings, url, address, credentials, auth_type)
        if answer.redirect_address:
            address = answer.redirect_address.lower()
        elif answer.redirect_url:
            if not answer.redirect_url.lower().startswith("https://"):
                raise _failed(settings, url, f"redirected to {answer.redirect_url}, not https")
            url = answer.redirect_url
        else:
            return _endpoint_of(settings, url, answer)
        if f"{address} at {url}" in seen:
            raise _failed(settings, url, f"redirects go round in a circle ({', '.join(seen)})")
    raise _failed(settings, url, f"more than {MAX_REDIRECTS} redirects ({', '.join(seen)})")


def _get_user_settings(settings, url, address, credentials, auth_type):
    protocol = _Protocol(
        Configuration(
            service_endpoint=url,
            credentials=credentials,
            auth_type=auth_type,
            retry_policy=FailFast(),
        ),
        ca_file=settings.ca_file,
        timeout=settings.timeout,
    )
    try:
        return protocol.get_user_settings(user=address, settings=_SETTINGS)
    except ews.UnauthorizedError:
        raise  # ews_errors says what to check about the credentials
    except ews.TransportError as exc:
        text = str(exc)
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
            raise MailboxTLSError(
                f"TLS with the Autodiscover server {url} failed ({tls_reason(text)}); pass "
                "cafile=PATH to the CA that signed its certificate, or fix the certificate",
                mailbox=settings.mailbox_id,
            ) from exc
        raise _failed(settings, url, _problem(exc), cause=exc) from exc
    except (ews.EWSError, ValueError) as exc:
        raise _failed(settings, url, _problem(exc), cause=exc) from exc
    finally:
        protocol.close()


def _endpoint_of(settings: EwsMailboxURL, url: str, answer) -> str:
    if answer.error_code == "InvalidUser":
        raise MailboxError(
            f"the Autodiscover server {url} knows no mailbox {settings.mailbox} "
            f"({answer.error_message}); check mailbox=, or that the mailbox is on this Exchange",
            mailbox=settings.mailbox_id,
        )
    if answer.error_code not in (None, "NoError"):
        raise _failed(settings, url, f"{answer.error_code}: {answer.error_message}")
    found = answer.user_settings or {}
    endpoint = found.get("external_ews_url") or found.get("internal_ews_url")
    if not endpoint:
        raise _failed(settings, url, "the answer names no EWS URL (ExternalEwsUrl/InternalEwsUrl)")
    return endpoint


def _discover_from_domain(settings: EwsMailboxURL, credentials) -> str:
    from exchangelib.autodiscover import Autodiscovery

    try:
        _, protocol = Autodiscovery(email=settings.mailbox, credentials=credentials).discover()
    except ews.UnauthorizedError:
        raise
    except ews.ErrorNonExistentMailbox as exc:
        raise MailboxError(
            f"Autodiscover knows no mailbox {settings.mailbox} ({exc}); check mailbox=",
            mailbox=settings.mailbox_id,
        ) from exc
    except (ews.EWSError, ValueError) as exc:
        domain = settings.mailbox.rpartition("@")[2]
        problem = f"{type(exc).__name__}: {exc}"
        raise _failed(settings, f"the domain {domain}", problem, cause=exc) from exc
    return protocol.service_endpoint


def _problem(exc: Exception) -> str:
    """A short cause: ``HTTP 404`` rather than exchangelib's dump of headers and body."""
    status = re.search(r"Code: (\d{3})", str(exc))
    return f"HTTP {status.group(1)}" if status else f"{type(exc).__name__}: {str(exc)[:200]}"


def tls_reason(text: str) -> str:
    """The OpenSSL reason inside requests' long wrapped error text (``[SSL: …] …``)."""
    found = re.search(r"\[(?:SSL|X509)[^\]]*\][^()'\"]*", text)
    return found.group(0).strip() if found else text[:200]


def _failed(
    settings: EwsMailboxURL, where: str, problem: str, *, cause: Exception | None = None
) -> MailboxConnectError:
    # A busy Autodiscover server (FailFast: one "busy" answer ends the attempt) is throttling, not
    # a wrong host: the audit reports it apart.
    busy = isinstance(cause, ews.ErrorServerBusy | ews.RateLimitError)
    return (MailboxThrottledError if busy else MailboxConnectError)(
        f"Autodiscover for {settings.mailbox} at {where} found no EWS endpoint ({problem}); "
        "name the Autodiscover server with autodiscover=HOST (e.g. autodiscover.contoso.com), or "
        "give the EWS endpoint instead of the host autodiscover "
        "(ewss://USER@mail.contoso.com/EWS/Exchange.asmx?...)",
        mailbox=settings.mailbox_id,
    )


__all__ = [
    "AUTODISCOVER_PATH",
    "CACHE_SECONDS",
    "autodiscover_endpoint",
    "cached_endpoints",
    "clear_autodiscover_cache",
    "tls_reason",
]
