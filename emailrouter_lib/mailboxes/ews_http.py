"""The HTTP layer under exchangelib, scoped to the Protocols this package creates.

Two things differ from exchangelib as shipped, and only for our own :class:`EwsProtocol`
instances (nothing is patched globally, other users of exchangelib in the process are untouched):

* **Response reads.** exchangelib parses every SOAP response through ``response.iter_content()``
  with requests' default chunk size of *one byte*; for GetItem with MIME content that loop is most
  of the client's time (reference/exchange-ews.md §4). Our adapter hands out responses whose
  default chunk is ``read_chunk`` bytes (64 KiB). ``read_chunk=0`` keeps the shipped behaviour
  (the benchmark compares both).
* **Trust and timeouts per mailbox URL.** ``cafile=`` becomes the adapter's CA bundle and
  ``timeout=`` the protocol's request timeout, instead of class-wide settings.

Protocols are shared per (endpoint, credentials, settings), like exchangelib's own cache, so every
mailbox read with one service account reuses its connections (and NTLM handshakes), but they live
in this module's cache: a Protocol exchangelib made elsewhere never gets our adapter, and ours is
never handed to others.
"""

from __future__ import annotations

import threading

import requests
from exchangelib.protocol import BaseProtocol, Protocol
from requests.adapters import HTTPAdapter

DEFAULT_READ_CHUNK = 64 * 1024


class _ChunkedResponse(requests.Response):
    """A response whose ``iter_content()`` default chunk is large (exchangelib passes none)."""

    read_chunk = DEFAULT_READ_CHUNK

    def iter_content(self, chunk_size=1, decode_unicode=False):
        if chunk_size == 1:
            chunk_size = self.read_chunk
        return super().iter_content(chunk_size=chunk_size, decode_unicode=decode_unicode)


class EwsAdapter(HTTPAdapter):
    """requests adapter for one EWS endpoint: CA bundle and response chunk size."""

    def __init__(self, *, ca_file: str | None = None, read_chunk: int = DEFAULT_READ_CHUNK, **kw):
        self.ca_file = ca_file
        self.read_chunk = read_chunk
        super().__init__(**kw)

    def build_response(self, req, resp):
        response = super().build_response(req, resp)
        if self.read_chunk > 1:
            response.__class__ = _ChunkedResponse
            response.read_chunk = self.read_chunk
        return response

    def _verify(self, verify):
        # cafile= wins over True *and* over a bundle requests took from REQUESTS_CA_BUNDLE /
        # CURL_CA_BUNDLE (conda and many corporate images set those): the URL said which CA.
        # verify=False is never turned back on here, and never set by this package.
        return self.ca_file if (verify is not False and self.ca_file) else verify

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn, url, self._verify(verify), cert)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return super().get_connection_with_tls_context(
            request, self._verify(verify), proxies=proxies, cert=cert
        )


class ScopedSessions:
    """Mix-in for exchangelib protocols: sessions mount :class:`EwsAdapter` with ``ca_file`` and
    ``read_chunk`` of this instance (the EWS protocol here, the Autodiscover one in
    ``ews_autodiscover``), never exchangelib's class-wide adapter."""

    ca_file: str | None = None
    read_chunk: int = DEFAULT_READ_CHUNK

    def adapter(self) -> HTTPAdapter:
        # Same pool settings as exchangelib's get_adapter(): one connection per session, no retries
        # inside requests (exchangelib's own retry policy decides).
        options = dict(
            pool_block=True,
            pool_connections=self.CONNECTIONS_PER_SESSION,
            pool_maxsize=self.CONNECTIONS_PER_SESSION,
            max_retries=0,
        )
        if not self.read_chunk and not self.ca_file:
            return HTTPAdapter(**options)
        return EwsAdapter(ca_file=self.ca_file, read_chunk=self.read_chunk, **options)

    def raw_session(
        self, prefix, oauth2_client=None, oauth2_session_params=None, oauth2_token_endpoint=None
    ):
        # exchangelib declares this a classmethod; every caller uses it through the instance.
        session = BaseProtocol.raw_session.__func__(
            type(self), prefix, oauth2_client, oauth2_session_params, oauth2_token_endpoint
        )
        session.mount(prefix, self.adapter())
        if oauth2_token_endpoint:
            session.mount(oauth2_token_endpoint, self.adapter())
        return session


class EwsProtocol(ScopedSessions, Protocol):
    """An exchangelib Protocol whose sessions use :class:`EwsAdapter` with this mailbox's settings.

    Built with :func:`shared_protocol`, not by calling the class (exchangelib's metaclass would put
    it into, or take it from, its process-wide cache).
    """

    RETRY_WAIT = 2  # first wait after a dropped connection / HTTP 503 (exchangelib: 10 s, doubling)

    def __init__(self, *args, ca_file=None, read_chunk=DEFAULT_READ_CHUNK, timeout=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ca_file = ca_file
        self.read_chunk = read_chunk
        if timeout:
            self.TIMEOUT = timeout  # read per instance by exchangelib (protocol.TIMEOUT)


_cache: dict[tuple, EwsProtocol] = {}
_cache_lock = threading.Lock()


def shared_protocol(
    config, *, ca_file: str | None, read_chunk: int, timeout: float | None
) -> EwsProtocol:
    """The protocol for *config*, shared by every mailbox with the same endpoint and settings."""
    key = (
        config.service_endpoint,
        config.credentials,
        config.auth_type,
        ca_file,
        read_chunk,
        timeout,
        getattr(config.retry_policy, "max_wait", None),
        config.max_connections,
    )
    with _cache_lock:
        protocol = _cache.get(key)
        if protocol is None:
            # type.__call__ skips exchangelib's caching metaclass: this cache is ours alone.
            protocol = type.__call__(
                EwsProtocol, config=config, ca_file=ca_file, read_chunk=read_chunk, timeout=timeout
            )
            _cache[key] = protocol
        return protocol


def close_ews_connections() -> None:
    """Close every connection this package opened (tests, benchmarks, long-running hosts)."""
    with _cache_lock:
        protocols = list(_cache.values())
        _cache.clear()
    for protocol in protocols:
        protocol.close()


__all__ = [
    "EwsAdapter",
    "EwsProtocol",
    "ScopedSessions",
    "close_ews_connections",
    "shared_protocol",
]
