"""Test Access and Inbox counts for one mailbox: the work one audit thread does.

Like the old Configuration Manager's Test Access, a failed connection is an answer, not an
exception: the state says which kind of failure (the login was refused, the server could not be
reached, TLS failed) and the error keeps the server's own words, which are what an admin pastes
into a ticket. Reading is read-only: sources fetch without setting flags, nothing is moved.

Message classes: a server that knows each item's class (EWS ``ItemClass``, offered by a source's
``item_class``) is believed over inference from MIME, as routing does; not in a forward mailbox,
where the wrapper's class says nothing about the original inside it.

Counting walks the Inbox from the newest item back and stops once a whole batch is older than
the window, after ``max_items`` items or after the time budget, so a mailbox holding years of
mail costs about what its recent mail costs; the row then says its counts are a sample.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from emailrouter_lib.audit.history import LastRun, LedgerView
from emailrouter_lib.errors import (
    EmailRouterError,
    MailboxAuthError,
    MailboxConnectError,
    MailboxThrottledError,
    MailboxTLSError,
    MessageError,
    SecretError,
)
from emailrouter_lib.mail import ParsedMessage, infer_message_class, is_tracked, unwrap_forward
from emailrouter_lib.mailboxes import open_source

OK, AUTH_FAILED, UNREACHABLE, THROTTLED, TLS_FAILED, ERROR = (
    "ok",
    "auth-failed",
    "unreachable",
    "throttled",
    "tls-failed",
    "error",
)
SERVER_CLASSES, INFERRED_CLASSES = "ItemClass", "MIME"  # where a mailbox's classes came from
SKIPPED, NOT_CHECKED = "skipped", "not-checked"
INVALID_FORWARD = "InvalidForwardMailItem"
UNREADABLE = "unreadable"
_BATCH = 50


@dataclass
class Probe:
    """What one mailbox said. Counts are None when the mailbox could not be opened."""

    state: str
    error: str | None = None
    mailbox_id: str | None = None
    items: int | None = None
    unprocessed: int | None = None
    read: int = 0  # items fetched and classified
    in_window: int | None = None
    tracked: int | None = None
    untracked: int | None = None
    classes: Counter = field(default_factory=Counter)  # class → items in the window
    oldest_unprocessed: datetime | None = None
    oldest_unprocessed_subject: str | None = None
    newest: datetime | None = None
    sampled: bool = False
    classes_from: str | None = None  # SERVER_CLASSES or INFERRED_CLASSES, once items were read
    last_run: LastRun | None = None
    seconds: float = 0.0


def probe_mailbox(
    url: str,
    *,
    since: datetime | None,
    tracked_classes: list[str],
    ledger: LedgerView,
    timeout: float,
    budget: float,
    max_items: int,
    ca_file: str | None = None,
) -> Probe:
    started = time.monotonic()
    probe = Probe(state=OK)
    try:
        source = open_source(url, timeout=timeout, ca_file=ca_file)
        probe.mailbox_id = source.mailbox_id
        with source:
            _count(source, probe, since, tracked_classes, ledger, started + budget, max_items)
    except MailboxAuthError as exc:
        probe.state, probe.error = AUTH_FAILED, _text(exc)
    except MailboxTLSError as exc:
        probe.state, probe.error = TLS_FAILED, _text(exc)
    except MailboxThrottledError as exc:
        probe.state, probe.error = THROTTLED, _text(exc)
    except MailboxConnectError as exc:
        probe.state, probe.error = UNREACHABLE, _text(exc)
    except SecretError as exc:
        probe.state, probe.error = ERROR, f"password reference: {exc}"
    except EmailRouterError as exc:
        probe.state, probe.error = ERROR, _text(exc)
    except Exception as exc:  # a bug or a library surprise: one row, not a failed audit
        probe.state, probe.error = ERROR, f"unexpected {type(exc).__name__}: {exc}"
    if probe.state != OK:
        _clear_counts(probe)
    if probe.mailbox_id:
        probe.last_run = ledger.last_run(probe.mailbox_id)
    probe.seconds = round(time.monotonic() - started, 3)
    return probe


def _count(source, probe, since, tracked_classes, ledger, deadline, max_items) -> None:
    items = source.list_items()
    known = ledger.known_keys(source.mailbox_id)
    keys = [item.key for item in items]
    unprocessed = [key for key in keys if key not in known]
    probe.items, probe.unprocessed = len(keys), len(unprocessed)
    probe.in_window = probe.tracked = probe.untracked = 0
    class_of = None if source.is_forward_mailbox else getattr(source, "item_class", None)
    probe.classes_from = SERVER_CLASSES if class_of else INFERRED_CLASSES
    dates: dict[str, datetime | None] = {}
    subjects: dict[str, str] = {}
    position = len(keys)
    while position > 0:
        if probe.read >= max_items or time.monotonic() > deadline:
            probe.sampled = True
            break
        batch = keys[max(0, position - _BATCH) : position]
        position -= len(batch)
        older = 0
        for key, raw in source.fetch(batch):
            probe.read += 1
            date, subject, name = _classify(raw, key, source.is_forward_mailbox)
            name = (class_of(key) if class_of else None) or name
            dates[key], subjects[key] = date, subject
            if date is not None and (probe.newest is None or date > probe.newest):
                probe.newest = date
            if since is not None and date is not None and date < since:
                older += 1
                continue
            probe.in_window += 1
            probe.classes[name] += 1
            if is_tracked(name, tracked_classes):
                probe.tracked += 1
            else:
                probe.untracked += 1
        if since is not None and batch and older == len(batch):
            break  # a whole batch before the window: the rest is older still
    if unprocessed:
        first = unprocessed[0]  # sources list oldest first
        if first not in dates:
            for key, raw in source.fetch([first]):
                dates[key], subjects[key], _ = _classify(raw, key, source.is_forward_mailbox)
        probe.oldest_unprocessed = dates.get(first)
        probe.oldest_unprocessed_subject = subjects.get(first)


def _classify(raw: bytes, key: str, forward: bool) -> tuple[datetime | None, str, str]:
    """Date, subject and message class of one item (of the original, in a forward mailbox)."""
    try:
        message = ParsedMessage.from_bytes(raw, origin=key)
        date, subject = message.date, message.subject
        if forward:
            original = unwrap_forward(message)
            if original is None:
                return date, subject, INVALID_FORWARD
            message = original
        return date, subject, infer_message_class(message).name
    except MessageError:
        return None, "", UNREADABLE


def error_text(exc: BaseException) -> str:
    """The error without the mailbox name in front (the row names the mailbox already), plus
    the server's own answer when our message put it in words of its own."""
    text, mailbox = str(exc), getattr(exc, "mailbox", None)
    if mailbox and text.startswith(f"{mailbox}: "):
        text = text[len(mailbox) + 2 :]
    said = server_words(exc)
    if said and said.split(": ", 1)[-1] not in text:
        text = f"{text} [server: {said}]"
    return text


_text = error_text


def _chain(exc: BaseException):
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def server_words(exc: BaseException) -> str | None:
    """The deepest EWS response code and text in *exc*'s chain (``ErrorServerBusy: The server
    cannot service this request right now…``), which our own messages summarise away."""
    found = None
    for cause in _chain(exc):
        name = type(cause).__name__
        if name.startswith("Error") and not isinstance(cause, EmailRouterError) and str(cause):
            found = f"{name}: {str(cause)[:300]}"
    return found


def _clear_counts(probe: Probe) -> None:
    probe.items = probe.unprocessed = probe.in_window = probe.tracked = probe.untracked = None
    probe.classes.clear()
    probe.oldest_unprocessed = probe.newest = None
    probe.oldest_unprocessed_subject = None
    probe.read = 0
    probe.classes_from = None
