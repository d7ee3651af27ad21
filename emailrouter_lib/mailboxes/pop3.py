"""POP3 source (poplib): items keyed by UIDL, deletions committed only by QUIT.

POP3 message numbers change between sessions, so the ledger key is the server's UIDL; a server
without UIDL cannot be routed safely and is refused. DELE only marks a message: the server removes
it when the session ends with QUIT, so a session that dies half-way leaves every message in place
and the next run (with the ledger) picks up where this one stopped.
"""

from __future__ import annotations

import contextlib
import poplib
from collections.abc import Iterator, Sequence

from emailrouter_lib.errors import MailboxError, MailboxTLSError
from emailrouter_lib.mailboxes.base import ItemRef
from emailrouter_lib.mailboxes.common import SourceBase, unique
from emailrouter_lib.mailboxes.tls import auth_refused, client_context, network_errors, server_text
from emailrouter_lib.mailboxes.url import MailboxURL


class _LineTooLong(poplib.error_proto):
    pass


class _LongLines:
    """Line reading for poplib with room for real mail.

    poplib stops at 2048 bytes a line, and HTML mail often has longer ones; this allows 1 MiB.
    A connection that closes mid-line or mid-response raises EOFError (a dropped connection),
    not a protocol error that would look like a server's ``-ERR``.
    """

    max_line = 1024 * 1024
    file: object

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(self.max_line + 1)  # type: ignore[attr-defined]
        if len(line) > self.max_line:
            raise _LineTooLong(f"-ERR a line is longer than {self.max_line} bytes")
        if not line.endswith(b"\n"):
            raise EOFError("the server closed the connection")
        octets = len(line)
        return line.rstrip(b"\r\n"), octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


class Pop3Source(SourceBase):
    """The maildrop of one POP3 account."""

    supports_folders = False

    def __init__(self, settings: MailboxURL):
        super().__init__(settings)
        self._conn: poplib.POP3 | None = None
        self._numbers: dict[str, int] | None = None
        self._deleted: set[str] = set()

    def __enter__(self) -> Pop3Source:
        s = self.settings
        context = client_context(s.ca_file, mailbox=self.mailbox_id) if s.uses_tls else None
        with self._guard("connecting"):
            try:
                if s.implicit_tls:
                    conn = _POP3_SSL(s.host, s.port, timeout=s.timeout, context=context)
                else:
                    conn = _POP3(s.host, s.port, timeout=s.timeout)
            except poplib.error_proto as exc:
                raise self.error(
                    f"{s.endpoint} did not greet as a POP3 server: {server_text(exc)}"
                ) from None
        try:
            if s.starttls:
                with self._guard("starting TLS"):
                    try:
                        conn.stls(context=context)
                    except poplib.error_proto as exc:
                        raise MailboxTLSError(
                            f"STLS refused ({server_text(exc)}); use pop3s:// on the TLS port "
                            "or check the server's TLS setup",
                            mailbox=self.mailbox_id,
                        ) from None
            with self._guard("logging in"):
                try:
                    conn.user(s.user or "")
                    conn.pass_(self.resolve_password())
                except poplib.error_proto as exc:
                    raise auth_refused(self.mailbox_id, exc, s.user or "") from None
        except BaseException:
            _close_quietly(conn)
            raise
        self._conn = conn
        self._numbers = None
        self._deleted = set()
        return self

    def __exit__(self, exc_type: object = None, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        pending = len(self._deleted)
        try:
            with self._guard("ending the session (QUIT commits deletions)"):
                try:
                    conn.quit()
                except poplib.error_proto as exc:
                    raise self.error(
                        f"the server did not commit {pending} deletion(s) at QUIT: "
                        f"{server_text(exc)}; they will be seen again next run"
                    ) from None
        except MailboxError:
            _close_quietly(conn)
            if pending and exc_type is None:  # don't hide the error already on its way
                raise

    def list_items(self) -> list[ItemRef]:
        conn = self._open()
        with self._guard("listing the maildrop"):
            try:
                _, uidl_lines, _ = conn.uidl()
            except poplib.error_proto as exc:
                raise self.error(
                    f"the server does not support UIDL ({server_text(exc)}), so messages have no "
                    "stable key and cannot be routed exactly once; enable UIDL on the server"
                ) from None
            _, list_lines, _ = conn.list()
        sizes = dict(_pairs(list_lines))
        numbers = {uid.decode("latin-1"): int(num) for num, uid in _pairs(uidl_lines)}
        self._numbers = numbers
        return [
            ItemRef(key, int(sizes[num]) if num in sizes else None)
            for key, num in sorted(numbers.items(), key=lambda kv: kv[1])
            if key not in self._deleted
        ]

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        conn = self._open()
        numbers = self._numbers_now()
        for key in unique(keys):
            number = numbers.get(key)
            if number is None or key in self._deleted:
                continue
            with self._guard("fetching a message"):
                try:
                    _, lines, _ = conn.retr(number)
                except _LineTooLong as exc:
                    raise self.error(f"message {key!r}: {server_text(exc)}") from None
                except poplib.error_proto:
                    continue  # removed by another session since the listing
            yield key, b"\r\n".join(lines) + b"\r\n"

    def delete(self, keys: Sequence[str]) -> None:
        conn = self._open()
        numbers = self._numbers_now()
        for key in unique(keys):
            number = numbers.get(key)
            if number is None or key in self._deleted:
                continue
            with self._guard("marking a message deleted"):
                try:
                    conn.dele(number)
                except poplib.error_proto:
                    continue  # already gone
            self._deleted.add(key)

    def move(self, keys: Sequence[str], folder: str) -> None:
        raise self.no_folders(folder)

    def _open(self) -> poplib.POP3:
        if self._conn is None:
            raise self.error("not connected; use the source in a with-block: `with source: ...`")
        return self._conn

    def _numbers_now(self) -> dict[str, int]:
        if self._numbers is None:
            self.list_items()
        assert self._numbers is not None
        return self._numbers

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Network failures become mailbox errors; so does an unexpected ``-ERR`` reply."""
        s = self.settings
        with network_errors(self.mailbox_id, s.endpoint, action, s.timeout):
            try:
                yield
            except poplib.error_proto as exc:
                raise self.error(f"the server refused {action}: {server_text(exc)}") from None


def _close_quietly(conn: poplib.POP3) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _pairs(lines: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """``b"3 value"`` lines as (3, b"value")."""
    for line in lines:
        num, _, value = line.strip().partition(b" ")
        if num.isdigit() and value:
            yield int(num), value.strip()


__all__ = ["Pop3Source"]
