"""IMAP source (imaplib): items keyed ``UIDVALIDITY:UID``, fetched without setting \\Seen.

A UID is only meaningful together with the folder's UIDVALIDITY; when the server renumbers a
folder, old keys are treated as gone instead of silently naming other messages. Bodies are read
with ``BODY.PEEK[]`` so a user mailbox looks untouched to its owner, and in batches so a large
mailbox costs few round trips. Moves use ``UID MOVE`` when offered, else COPY + expunge of exactly
those UIDs, never a folder-wide EXPUNGE or CLOSE that could remove mail the user flagged.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
from collections.abc import Iterator, Sequence

from emailrouter_lib.errors import MailboxTLSError
from emailrouter_lib.mailboxes.base import ItemRef
from emailrouter_lib.mailboxes.common import SourceBase, chunks, unique
from emailrouter_lib.mailboxes.tls import auth_refused, client_context, network_errors, server_text
from emailrouter_lib.mailboxes.url import MailboxURL

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_LIST_DELIMITER = re.compile(rb'\) (?:"((?:[^"\\]|\\.)*)"|NIL) ')
# One namespace of a NAMESPACE reply (RFC 2342): ("prefix" "delimiter") or ("prefix" NIL).
_NAMESPACE = re.compile(rb'\(\s*"((?:[^"\\]|\\.)*)"\s+(?:"(?:[^"\\]|\\.)*"|NIL)')


class ImapSource(SourceBase):
    """One IMAP folder (the URL path, default INBOX) of one account."""

    supports_folders = True
    batch_messages = 100  # messages per UID FETCH
    batch_bytes = 16 * 1024 * 1024  # and at most about this many bytes
    batch_uids = 500  # UIDs per STORE / MOVE command

    def __init__(self, settings: MailboxURL):
        super().__init__(settings)
        self._conn: imaplib.IMAP4 | None = None
        self._uidvalidity: int | None = None
        self._caps: frozenset[str] = frozenset()
        self._delimiter: str | None = None
        self._namespaces: tuple[str, list[str]] | None = None  # personal prefix, every prefix
        self._sizes: dict[int, int] = {}
        self._known_folders: set[str] = set()

    # -- session ---------------------------------------------------------------------------

    def __enter__(self) -> ImapSource:
        s = self.settings
        context = client_context(s.ca_file, mailbox=self.mailbox_id) if s.uses_tls else None
        with self._guard("connecting"):
            try:
                if s.implicit_tls:
                    conn = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout)
                else:
                    conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise self.error(
                    f"{s.endpoint} did not greet as an IMAP server: {server_text(exc)}"
                ) from None
        try:
            if s.starttls:
                with self._guard("starting TLS"):
                    try:
                        conn.starttls(ssl_context=context)
                    except imaplib.IMAP4.abort:
                        raise
                    except imaplib.IMAP4.error as exc:
                        raise self.tls_error(f"STARTTLS refused ({server_text(exc)})") from None
            self._login(conn)
            self._conn = conn
            with self._guard("reading capabilities"):
                caps = self._ok(conn.capability(), "CAPABILITY")[0]
                self._caps = frozenset(caps.decode("ascii", "replace").upper().split())
            self._select()
        except BaseException:
            self._conn = None
            _shutdown(conn)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # LOGOUT without CLOSE: CLOSE would expunge every \Deleted message, not only ours.
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            _shutdown(conn)  # logout() shuts the socket only when the server answered

    def _login(self, conn: imaplib.IMAP4) -> None:
        user = self.settings.user or ""
        with self._guard("logging in"):
            try:
                password = self.resolve_password()
                if (user + password).isascii():
                    conn.login(user, password)
                else:  # LOGIN is ASCII-only in imaplib; SASL PLAIN carries UTF-8
                    token = f"\0{user}\0{password}".encode()
                    conn.authenticate("PLAIN", lambda _challenge: token)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise auth_refused(self.mailbox_id, exc, user) from None

    def _select(self) -> None:
        conn = self._open()
        folder = self.settings.folder
        with self._guard("opening the folder"):
            try:
                typ, data = conn.select(self._server_name(folder))
            except imaplib.IMAP4.readonly:
                raise self.error(
                    f"folder {folder!r} is read-only for this user; items cannot be moved or "
                    "deleted, grant write access or use another folder"
                ) from None
            if typ != "OK":
                raise self.error(
                    f"folder {folder!r} cannot be opened ({_text(data)}); check the URL path"
                )
            _, values = conn.response("UIDVALIDITY")
        if not values or not values[0]:
            raise self.error(f"the server gave no UIDVALIDITY for {folder!r}; keys would be unsafe")
        self._uidvalidity = int(values[0])

    # -- MailboxSource ---------------------------------------------------------------------

    def list_items(self) -> list[ItemRef]:
        conn = self._open()
        with self._guard("listing the folder"):
            conn.noop()  # let the server report mail that arrived since SELECT
            data = self._ok(conn.uid("FETCH", "1:*", "(UID RFC822.SIZE)"), "UID FETCH")
        sizes: dict[int, int] = {}
        for line in data:
            head = line[0] if isinstance(line, tuple) else line
            uid = _UID.search(head or b"")
            size = _SIZE.search(head or b"")
            if uid:
                sizes[int(uid[1])] = int(size[1]) if size else 0
        self._sizes = sizes
        return [ItemRef(f"{self._uidvalidity}:{uid}", sizes[uid]) for uid in sorted(sizes)]

    def fetch(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        conn = self._open()
        for batch in self._fetch_batches(self._current_uids(keys)):
            with self._guard("fetching messages"):
                data = self._ok(conn.uid("FETCH", _uid_set(batch), "(UID BODY.PEEK[])"), "FETCH")
            bodies = _bodies(data)
            for uid in batch:
                if uid in bodies:
                    yield f"{self._uidvalidity}:{uid}", bodies.pop(uid)

    def delete(self, keys: Sequence[str]) -> None:
        conn = self._open()
        for batch in chunks(self._current_uids(keys), self.batch_uids):
            uid_set = _uid_set(batch)
            with self._guard("deleting messages"):
                self._ok(conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                self._expunge(uid_set)

    def move(self, keys: Sequence[str], folder: str) -> None:
        conn = self._open()
        uids = self._current_uids(keys)
        if not uids:
            return
        target = self._ensure_folder(folder)
        for batch in chunks(uids, self.batch_uids):
            uid_set = _uid_set(batch)
            with self._guard(f"moving messages to {folder!r}"):
                if "MOVE" in self._caps:
                    self._ok(conn.uid("MOVE", uid_set, target), "MOVE")
                else:
                    self._ok(conn.uid("COPY", uid_set, target), "COPY")
                    self._ok(conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                    self._expunge(uid_set)

    # -- helpers ---------------------------------------------------------------------------

    def _open(self) -> imaplib.IMAP4:
        if self._conn is None:
            raise self.error("not connected; use the source in a with-block: `with source: ...`")
        return self._conn

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Network failures become mailbox errors; so does an unexpected NO/BAD reply."""
        s = self.settings
        with network_errors(
            self.mailbox_id, s.endpoint, action, s.timeout, dropped=(imaplib.IMAP4.abort,)
        ):
            try:
                yield
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                raise self.error(f"the server refused {action}: {server_text(exc)}") from None

    def tls_error(self, message: str) -> MailboxTLSError:
        return MailboxTLSError(
            f"{message}; use imaps:// on the TLS port or check the server's TLS setup",
            mailbox=self.mailbox_id,
        )

    def _ok(self, reply: tuple[str, list], command: str) -> list:
        typ, data = reply
        if typ != "OK":
            raise self.error(f"the server refused {command}: {_text(data)}")
        return data

    def _expunge(self, uid_set: str) -> None:
        conn = self._open()
        if "UIDPLUS" in self._caps:
            self._ok(conn.uid("EXPUNGE", uid_set), "UID EXPUNGE")
        else:  # no way to expunge only our UIDs; the folder-wide EXPUNGE is the only option
            self._ok(conn.expunge(), "EXPUNGE")

    def _current_uids(self, keys: Sequence[str]) -> list[int]:
        """UIDs of *keys* that belong to the folder's current UIDVALIDITY (others are gone)."""
        uids = []
        for key in unique(keys):
            validity, sep, uid = key.partition(":")
            if not (sep and validity.isdigit() and uid.isdigit()):
                raise self.error(f"{key!r} is not an IMAP item key (UIDVALIDITY:UID)")
            if int(validity) == self._uidvalidity:
                uids.append(int(uid))
        return uids

    def _fetch_batches(self, uids: list[int]) -> Iterator[list[int]]:
        batch: list[int] = []
        size = 0
        for uid in uids:
            batch.append(uid)
            size += self._sizes.get(uid, 64 * 1024)
            if len(batch) >= self.batch_messages or size >= self.batch_bytes:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _server_name(self, folder: str) -> str:
        """*folder* (``/`` between levels) as a quoted IMAP mailbox name for this server.

        A name in none of the server's namespaces is put in the personal one: on a server whose
        folders live under ``INBOX.`` (Cyrus's legacy namespace, Courier) ``move:Processed``
        is ``INBOX.Processed``, the folder a mail client would create.
        """
        if folder.upper() == "INBOX":
            return "INBOX"
        delimiter = self._hierarchy_delimiter()
        if delimiter and delimiter != "/":
            folder = folder.replace("/", delimiter)
        personal, prefixes = self._namespace_prefixes()
        if personal and not any(_in_namespace(folder, prefix) for prefix in prefixes):
            folder = personal + folder
        return _quote(_utf7(folder))

    def _namespace_prefixes(self) -> tuple[str, list[str]]:
        """The personal namespace's prefix and every namespace's (NAMESPACE, RFC 2342)."""
        if self._namespaces is None:
            self._namespaces = ("", [])
            if "NAMESPACE" in self._caps:
                typ, data = self._open().namespace()
                reply = data[0] if typ == "OK" and data and isinstance(data[0], bytes) else b""
                found = [_unquote(m[1]) for m in _NAMESPACE.finditer(reply)]
                personal = found[0] if found and reply.lstrip().startswith(b"((") else ""
                self._namespaces = (personal, [p for p in found if p])
        return self._namespaces

    def _hierarchy_delimiter(self) -> str | None:
        if self._delimiter is None:
            typ, data = self._open().list('""', '""')
            found = _LIST_DELIMITER.search(data[0] or b"") if typ == "OK" and data else None
            self._delimiter = found[1].decode() if found and found[1] else ""
        return self._delimiter or None

    def _ensure_folder(self, folder: str) -> str:
        conn = self._open()
        with self._guard(f"creating folder {folder!r}"):
            name = self._server_name(folder)
            if folder in self._known_folders:
                return name
            typ, data = conn.list('""', name)
            if not (typ == "OK" and any(data)):
                typ, data = conn.create(name)
                if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d or b"" for d in data):
                    raise self.error(f"cannot create folder {folder!r}: {_text(data)}")
                conn.subscribe(name)
        self._known_folders.add(folder)
        return name


def _bodies(data: list) -> dict[int, bytes]:
    """UID -> raw message from a UID FETCH reply (the UID may come before or after the body)."""
    bodies: dict[int, bytes] = {}
    waiting: bytes | None = None
    for item in data:
        if isinstance(item, tuple):
            head, body = item
            uid = _UID.search(head)
            if b"BODY[]" not in head:
                continue
            if uid:
                bodies[int(uid[1])] = body
            else:
                waiting = body
        elif isinstance(item, bytes) and waiting is not None:
            uid = _UID.search(item)
            if uid:
                bodies[int(uid[1])] = waiting
            waiting = None
    return bodies


def _uid_set(uids: list[int]) -> str:
    """A compact IMAP sequence set: ``1:3,7,9:10``."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        ranges.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(ranges)


def _utf7(name: str) -> str:
    """IMAP's modified UTF-7 for mailbox names (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",").decode() + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _in_namespace(name: str, prefix: str) -> bool:
    """*name* lies in the namespace *prefix* (``INBOX`` compares case-insensitively)."""
    if prefix[:5].upper() == "INBOX":
        name, prefix = name[:5].upper() + name[5:], "INBOX" + prefix[5:]
    return name.startswith(prefix) or name == prefix[:-1]  # "INBOX." holds "INBOX" itself


def _unquote(value: bytes) -> str:
    return re.sub(r"\\(.)", r"\1", value.decode("utf-8", "replace"))


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: list) -> str:
    parts = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in data if d]
    return " ".join(parts) or "no reason given"


def _shutdown(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown()


__all__ = ["ImapSource"]
