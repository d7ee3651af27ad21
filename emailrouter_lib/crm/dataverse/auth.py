"""Who the router is to the Web API: NTLM / Negotiate on premises, an Entra ID token online.

Secrets are resolved here, when the session is built, from the references in the URL; they live
only inside the requests auth object (whose repr shows no secret) and never reach a log or an
error message.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase

from emailrouter_lib.crm.dataverse.settings import DataverseSettings
from emailrouter_lib.errors import CrmError
from emailrouter_lib.secrets import resolve_secret


def build_auth(settings: DataverseSettings) -> AuthBase | None:
    """The requests auth for the URL's ``auth=`` method (``None`` for ``auth=none``)."""
    if settings.auth == "none":
        return None
    if settings.auth == "ntlm":
        from requests_ntlm import HttpNtlmAuth

        return HttpNtlmAuth(settings.user, resolve_secret(settings.password or ""))
    if settings.auth == "negotiate":
        return NegotiateAuth(settings.user or "", resolve_secret(settings.password or ""))
    return BearerAuth(MsalTokens(settings))


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` from a token provider (MSAL, or any callable)."""

    def __init__(self, tokens: Callable[[], str]):
        self._tokens = tokens

    def __repr__(self) -> str:
        return "BearerAuth(...)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._tokens()}"
        return request


class MsalTokens:
    """Entra ID access tokens through MSAL: client credentials (unattended) or device code.

    The MSAL application is made on the first call, so opening a CRM makes no network call;
    MSAL's in-memory cache renews the token only when it is about to expire.
    """

    def __init__(self, settings: DataverseSettings, *, prompt: Callable[[str], Any] | None = None):
        self._settings = settings
        self._app: Any = None
        self._lock = threading.Lock()
        self._prompt = prompt or (lambda text: print(text, file=sys.stderr, flush=True))

    def __repr__(self) -> str:
        return f"MsalTokens({self._settings.auth}, client_id={self._settings.client_id})"

    def __call__(self) -> str:
        with self._lock:
            return self._token()

    def _token(self) -> str:
        import msal

        s = self._settings
        scopes = [s.oauth_scope]
        if s.auth == "client_credentials":
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id,
                    authority=s.oauth_authority,
                    client_credential=resolve_secret(s.client_secret or ""),
                )
            result = self._app.acquire_token_for_client(scopes=scopes)
        else:
            if self._app is None:
                self._app = msal.PublicClientApplication(s.client_id, authority=s.oauth_authority)
            accounts = self._app.get_accounts()
            result = (
                self._app.acquire_token_silent(scopes, account=accounts[0]) if accounts else None
            )
            if not result:
                flow = self._app.initiate_device_flow(scopes=scopes)
                if "user_code" not in flow:
                    raise CrmError(f"{s.origin}: device-code sign-in could not start: {flow}")
                self._prompt(flow["message"])
                result = self._app.acquire_token_by_device_flow(flow)
        if "access_token" not in result:
            raise CrmError(
                f"{s.origin}: Entra ID refused a token for {s.oauth_scope} "
                f"({result.get('error')}: {result.get('error_description', '')[:300]}); check the "
                f"tenant, the client id, the secret reference and the application user in the org"
            )
        return result["access_token"]


class NegotiateAuth(AuthBase):
    """HTTP Negotiate (Kerberos, falling back to NTLM) through pyspnego, for IIS on premises.

    The handshake runs on one kept-alive connection, as IIS expects: answer each
    ``WWW-Authenticate: Negotiate <token>`` challenge until the server stops challenging.
    """

    def __init__(self, user: str, password: str):
        self._user = user
        self._password = password

    def __repr__(self) -> str:
        return f"NegotiateAuth(user={self._user!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or "negotiate" not in _schemes(response):
            return response
        import spnego

        host = requests.utils.urlparse(response.url).hostname or ""
        context = spnego.client(
            self._user, self._password, hostname=host, service="HTTP", protocol="negotiate"
        )
        token = context.step()
        for _ in range(4):
            response.content  # noqa: B018 - drain, so the connection can be reused
            response.raw.release_conn()
            retry = response.request.copy()
            retry.headers["Authorization"] = f"Negotiate {base64.b64encode(token).decode()}"
            response = response.connection.send(retry, **kwargs)
            challenge = _challenge(response, "negotiate")
            if response.status_code != 401 or challenge is None or context.complete:
                if challenge and not context.complete:
                    context.step(challenge)  # mutual authentication from the final 200
                return response
            token = context.step(challenge)
            if token is None:
                return response
        return response


def _schemes(response: requests.Response) -> set[str]:
    header = response.headers.get("WWW-Authenticate", "")
    return {part.strip().split(" ", 1)[0].lower() for part in header.split(",") if part.strip()}


def _challenge(response: requests.Response, scheme: str) -> bytes | None:
    for part in response.headers.get("WWW-Authenticate", "").split(","):
        name, _, value = part.strip().partition(" ")
        if name.lower() == scheme and value.strip():
            return base64.b64decode(value.strip())
    return None


def _now() -> float:
    return time.monotonic()


__all__ = ["BearerAuth", "MsalTokens", "NegotiateAuth", "build_auth"]
