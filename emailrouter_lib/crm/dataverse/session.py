"""One HTTP session to the Web API: OData headers, timeouts, throttling and error messages.

Dataverse answers 429 (service protection) and 503 with ``Retry-After``; the session waits that
long and sends again, but never longer in total than ``max_wait`` seconds per call, so a routing
batch is slowed down, not hung. Timeouts and dropped connections are retried too: every write the
backend sends carries ids it chose itself, so a repeat that already happened shows up as "exists",
never as a second record (see ``backend.create_emails``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from emailrouter_lib.crm.dataverse.auth import build_auth
from emailrouter_lib.crm.dataverse.settings import DataverseSettings
from emailrouter_lib.errors import CrmAuthError, CrmError, CrmHTTPError, CrmThrottledError

RETRY_STATUS = frozenset({429, 502, 503, 504})
THROTTLE_STATUS = frozenset({429, 503})  # "slow down", as opposed to 502/504 "gateway failed"
AUTH_STATUS = frozenset({401, 403})
ODATA_HEADERS = {
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Accept": "application/json",
}

# Service-protection error codes (api-limits): request count, execution time, concurrency.
THROTTLE_CODES = {
    "0x80072322": "too many requests",
    "0x80072321": "too much execution time",
    "0x80072326": "too many concurrent requests",
}


class DataverseSession:
    """Sends requests to one organisation's Web API and retries what may be retried."""

    def __init__(
        self,
        settings: DataverseSettings,
        *,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.http = http or requests.Session()
        self.http.headers.update(ODATA_HEADERS)
        if http is None:
            self.http.auth = build_auth(settings)
        if settings.ca:
            self.http.verify = settings.ca
        self._sleep = sleep
        self.stats: Counter[str] = Counter()  # requests, retries, throttled, timeouts, waited_ms

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.settings.base_url + path

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> tuple[requests.Response, int]:
        """Send until answered (not 429/5xx, no timeout); return the response and the attempts.

        More than one attempt after a timeout means the server may have done the work already:
        the caller checks before treating "already exists" as an error.
        """
        s = self.settings
        waited = 0.0
        attempt = 0
        answered: requests.Response | None = None  # the last 429/5xx, None after a timeout
        what = what or f"{method} {path.split('?', 1)[0]}"
        while True:
            attempt += 1
            self.stats["requests"] += 1
            try:
                response = self.http.request(
                    method,
                    self.url(path),
                    data=body,
                    headers=dict(headers or {}),
                    timeout=s.timeout,
                )
            except requests.exceptions.SSLError as exc:
                raise CrmError(
                    f"{s.origin}: TLS failed for {what} ({_short(exc)}); if the server uses an "
                    f"internal CA, add ca=/path/to/ca.pem to the CRM URL"
                ) from None
            except (requests.Timeout, requests.ConnectionError) as exc:
                self.stats["timeouts"] += 1
                problem = (
                    "timed out" if isinstance(exc, requests.Timeout) else "lost the connection"
                )
                delay = min(0.25 * 2 ** (attempt - 1), 30.0)
                answered = None
                if attempt > s.retries:
                    raise CrmError(
                        f"{s.origin}: {what} {problem} {attempt} times ({_short(exc)}); check "
                        f"that the server is up, or raise timeout= in the CRM URL"
                    ) from None
            else:
                if response.status_code not in RETRY_STATUS:
                    return response, attempt
                if response.status_code == 429:
                    self.stats["throttled"] += 1
                delay = retry_after(response, default=min(2.0**attempt, 60.0))
                if attempt > s.retries:
                    raise error_for(response, what, attempts=attempt)
                problem = f"answered {response.status_code}"
                answered = response
            if waited + delay > s.max_wait:
                message = (
                    f"{s.origin}: {what} {problem}; waiting {delay:g} s more would pass "
                    f"max_wait={s.max_wait:g} s (waited {waited:g} s over {attempt} attempts). "
                    f"The server is throttling or down: run the batch later, or raise max_wait"
                )
                if answered is None:
                    raise CrmError(message)
                status, code = answered.status_code, _error_code(answered)
                if status in THROTTLE_STATUS:
                    raise CrmThrottledError(message, status=status, code=code, retry_after=delay)
                raise CrmHTTPError(message, status=status, code=code)
            self.stats["retries"] += 1
            self.stats["waited_ms"] += int(delay * 1000)
            waited += delay
            self._sleep(delay)

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        import json as _json

        headers = dict(kwargs.pop("headers", {}) or {})
        data = None
        if body is not None:
            data = _json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        response, _ = self.send(method, path, body=data, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise error_for(response, kwargs.get("what") or f"{method} {path.split('?', 1)[0]}")
        return response.json() if response.content else None


def retry_after(response: requests.Response, *, default: float) -> float:
    """Seconds the server asks us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return default


def odata_error(body: Any) -> tuple[str, str]:
    """(code, message) of a Web API error body ``{"error": {"code": ..., "message": ...}}``."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", ""


def error_for(
    response: requests.Response | None,
    what: str,
    *,
    status: int | None = None,
    body: Any = None,
    attempts: int = 1,
) -> CrmHTTPError:
    """An error that says what failed, what the server said and what to do.

    Its class sorts it for callers: :class:`CrmAuthError` for 401/403, :class:`CrmThrottledError`
    for 429/503 (with the server's ``Retry-After``), else :class:`CrmHTTPError`.
    """
    if response is not None:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        where = response.url.split("?", 1)[0]
    else:
        where = what
    code, message = odata_error(body)
    said = f"{code} {message}".strip() or "no error body"
    hint = {
        400: "the request was refused as malformed; this is a bug in emailrouter or a "
        "customisation of the org (check the attribute and navigation names in $metadata)",
        401: "the credentials were refused; check user/password (auth=ntlm|negotiate) or the "
        "tenant, client id and secret (auth=client_credentials)",
        403: "the user lacks a privilege; give the router's user the Email Router role",
        404: "the record or the API version does not exist; check the org path and api=",
        412: "a record with that key exists already, or it changed since it was read",
        429: f"throttled ({THROTTLE_CODES.get(code, 'service protection')}); "
        "run later or raise max_wait",
    }.get(status or 0, "the server failed; retry later, and look at the server's trace log")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    message = f"{where}: {what} failed with HTTP {status}{tries}: {said[:500]}. {hint}"
    if status in AUTH_STATUS:
        return CrmAuthError(message, status=status, code=code)
    if status in THROTTLE_STATUS:
        asked = None
        if response is not None and response.headers.get("Retry-After"):
            asked = retry_after(response, default=0.0)
        return CrmThrottledError(message, status=status, code=code, retry_after=asked)
    return CrmHTTPError(message, status=status, code=code)


def _error_code(response: requests.Response) -> str:
    try:
        return odata_error(response.json())[0]
    except ValueError:
        return ""


def _short(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"


__all__ = ["DataverseSession", "error_for", "odata_error", "retry_after"]
