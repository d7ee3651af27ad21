"""Throttling without hanging the batch: a bounded, per-mailbox retry policy for exchangelib.

exchangelib's ``FaultTolerance`` is the right idea (honour ``BackOffMilliseconds``, retry busy and
transient errors) with three traps for a router reading many mailboxes:

* its default ``max_wait`` is an hour, and it bounds each single wait, not their sum: a server that
  keeps answering "busy, retry in 1 s" is retried for ever;
* it treats HTTP 401 as throttling, so a wrong password retries 10 s, 20 s, … for ~85 minutes;
* the back-off deadline lives in the policy object, shared by every mailbox and thread that uses
  the same Protocol: one throttled mailbox pauses all the others.

:class:`BoundedFaultTolerance` keeps the retrying but bounds the wait (``max_wait=`` in the mailbox
URL: the sum of the back-offs since the mailbox's last HTTP 200), raises ``UnauthorizedError`` on
401 at once, and keeps one back-off deadline per mailbox: the
mailbox whose call is running is named by :func:`mailbox_scope` (a context variable, so it is per
thread too). Exchange charges impersonated calls to the target mailbox, so per-mailbox back-off
matches how the server counts.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Iterator
from contextvars import ContextVar

from exchangelib.errors import RateLimitError, UnauthorizedError
from exchangelib.protocol import FaultTolerance

_current: ContextVar[str] = ContextVar("ews_mailbox", default="")


@contextlib.contextmanager
def mailbox_scope(mailbox: str) -> Iterator[None]:
    """Charge back-offs of the EWS calls inside the block to *mailbox*."""
    token = _current.set(mailbox)
    try:
        yield
    finally:
        _current.reset(token)


class BoundedFaultTolerance(FaultTolerance):
    """FaultTolerance with a bounded wait, fail-fast on 401, and a back-off per mailbox."""

    DEFAULT_BACKOFF = 10  # when the server asks for a back-off without saying how long

    def __init__(self, max_wait: float = 60):
        super().__init__(max_wait=max_wait)
        self._until: dict[str, datetime.datetime] = {}
        self._spent: dict[str, float] = {}  # seconds backed off since the last HTTP 200
        self._lock = threading.Lock()

    @property
    def back_off_until(self):
        key = _current.get()
        with self._lock:
            until = self._until.get(key)
            if until is not None and until < datetime.datetime.now():
                del self._until[key]
                return None
            return until

    @back_off_until.setter
    def back_off_until(self, value):
        with self._lock:
            if value is None:
                self._until.pop(_current.get(), None)
            else:
                self._until[_current.get()] = value

    def back_off(self, seconds):
        if seconds is None:
            seconds = self.DEFAULT_BACKOFF
        key = _current.get()
        with self._lock:
            spent = self._spent.get(key, 0.0) + seconds
            if spent > self.max_wait:
                self._spent.pop(key, None)
                raise RateLimitError("Max timeout reached", wait=seconds)
            self._spent[key] = spent
        self.back_off_until = datetime.datetime.now() + datetime.timedelta(seconds=seconds)

    def raise_response_errors(self, response):
        if response.status_code == 401:
            # A wrong password, not throttling: NTLM/Basic challenges were already answered by
            # the auth handler, so a 401 reaching here is final.
            raise UnauthorizedError(f"Invalid credentials for {response.url}")
        if response.status_code == 200:
            with self._lock:
                self._spent.pop(_current.get(), None)
        return super().raise_response_errors(response)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()


__all__ = ["BoundedFaultTolerance", "mailbox_scope"]
