"""A pickup directory: each sent message becomes one ``.eml`` file (the embedded default).

Where no SMTP server is configured (the demo, a dry run, a relay that collects files like IIS's
SMTP pickup folder), the router still does its whole job: the message is complete, and the file
starts with ``X-Sender:`` / ``X-Receiver:`` lines carrying the envelope, as IIS pickup files do
(Bcc recipients are only in the envelope). Files appear atomically (written aside, then renamed),
so a reader never sees half a message.

URL: ``pickup:///absolute/dir`` with optional ``access=delegate&sender=ADDRESS``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from emailrouter_lib.errors import MailboxError, MailboxSendError, MailboxURLError
from emailrouter_lib.mailboxes.smtp import parse_send_mode
from emailrouter_lib.secrets import url_secret_problem


class PickupSender:
    """A :class:`~emailrouter_lib.mailboxes.base.MailSender` writing ``.eml`` files."""

    def __init__(self, directory: str | Path, *, mode=None):
        from emailrouter_lib.mailboxes.smtp import SendMode

        self.directory = Path(directory).expanduser().resolve()
        self.sender_id = f"pickup://{quote(str(self.directory))}"
        self.mode = mode or SendMode()
        self.connections = 0
        self.written: list[Path] = []

    @classmethod
    def from_url(cls, url: str) -> PickupSender:
        parts = urlsplit(str(url).strip())

        def fail(message: str) -> MailboxURLError:
            return MailboxURLError(message, mailbox=f"pickup://{parts.path}")

        problem = url_secret_problem(url)  # the check every URL front shares
        if problem:
            raise fail(problem)
        if parts.scheme.lower() != "pickup" or parts.netloc not in ("", "localhost"):
            raise fail("a pickup URL names a directory: pickup:///absolute/path")
        if not parts.path:
            raise fail("no directory given; expected pickup:///absolute/path")
        query = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        unknown = set(query) - {"access", "sender"}
        if unknown:
            raise fail(f"unknown parameter(s) {', '.join(sorted(unknown))}; known: access, sender")
        return cls(unquote(parts.path), mode=parse_send_mode(query, fail, None))

    def __repr__(self) -> str:
        return f"PickupSender({self.sender_id!r})"

    def __enter__(self) -> PickupSender:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MailboxError(
                f"cannot create the pickup directory ({exc.strerror}); check the path and rights",
                mailbox=self.sender_id,
            ) from None
        self.connections += 1
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, message: bytes, *, envelope_from: str, recipients: Sequence[str]) -> None:
        if not recipients:
            raise MailboxSendError(
                "the message has no recipient", mailbox=self.sender_id, permanent=True
            )
        envelope = f"X-Sender: {envelope_from}\r\n" + "".join(
            f"X-Receiver: {rcpt}\r\n" for rcpt in recipients
        )
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.eml"
        final = self.directory / name
        aside = self.directory / f".{name}.tmp"
        try:
            with open(aside, "wb") as handle:
                handle.write(envelope.encode("ascii", "replace") + message)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(aside, final)
        except OSError as exc:
            aside.unlink(missing_ok=True)
            raise MailboxSendError(
                f"cannot write {final.name} ({exc.strerror}); check free space and rights",
                mailbox=self.sender_id,
                permanent=False,
            ) from None
        self.written.append(final)


__all__ = ["PickupSender"]
