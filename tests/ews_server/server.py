"""The HTTP side: a keep-alive HTTP/1.1 server on loopback, its request log and fault injection."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lxml import etree

from . import operations
from .auth import Authenticator, register_ntlm
from .autodiscover import AUTODISCOVER_PATH, get_user_settings
from .soap import envelope, fault, find, local, parse, text
from .store import DISTINGUISHED, Folder, Item, Rule, Store, StoreError, User

EWS_PATH = "/EWS/Exchange.asmx"


@dataclass
class LoggedRequest:
    """One POST the server answered (or refused): what a test asserts request counts on."""

    op: str  # GetFolder, FindItem... ("" when the body never got read: 401 challenges)
    status: int
    logon: str | None = None
    impersonated: str | None = None  # from the ExchangeImpersonation header
    mailboxes: tuple[str, ...] = ()  # the mailboxes the operation acted on
    anchor: str | None = None  # X-AnchorMailbox, logged only: it never decides anything
    version: str | None = None  # RequestServerVersion
    items: int = 0
    fault: str | None = None
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    connection: int = 0  # client port: one per TCP connection
    body: bytes = field(default=b"", repr=False)


@dataclass
class Fault:
    """A fault to inject into the next *times* matching requests.

    ``kind``: ``busy`` (SOAP ErrorServerBusy with ``back_off_ms``), ``status`` (HTTP ``status``
    with ``body``), ``slow`` (answer after ``seconds``), ``drop`` (close the connection unanswered).
    ``op`` and ``mailbox`` narrow which requests it hits (the mailbox the request targets);
    ``skip`` lets that many matching requests through first.
    """

    kind: str
    op: str | None = None
    mailbox: str | None = None
    times: int = 1
    back_off_ms: int = 1000
    status: int = 500
    body: bytes = b""
    seconds: float = 0.0
    skip: int = 0

    def hits(self, op: str, mailbox: str | None) -> bool:
        if not (
            self.times > 0
            and (self.op is None or self.op == op)
            and (self.mailbox is None or (mailbox or "").lower() == self.mailbox.lower())
        ):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        return True


class FakeEws:
    """A protocol-level EWS server for the real exchangelib client.

    ``with FakeEws() as ews:`` starts it on a free loopback port; ``ews.url`` is the endpoint.
    With ``certificate=(cert.pem, key.pem)`` it speaks HTTPS only (``ews.url`` is ``https://``).
    ``ews.autodiscover_url`` answers SOAP Autodiscover for every mailbox the store holds.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, ...] = ("NTLM", "Basic"),
        find_count_limit: int = 1000,
        host: str = "127.0.0.1",
        certificate: tuple[str, str] | None = None,
    ):
        self.store = Store()
        self.auth = auth
        self.find_count_limit = find_count_limit
        self.log: list[LoggedRequest] = []
        self.sent: list[dict] = []
        self.faults: list[Fault] = []
        self.apps: dict[str, tuple[str, User]] = {}  # OAuth client id -> (secret, its identity)
        self.tokens: dict[str, User] = {}
        # Autodiscover: extra/overriding settings for every user, address -> RedirectAddress target
        self.autodiscover_settings: dict[str, str] = {}
        self.autodiscover_redirects: dict[str, str] = {}
        self.tls_failures: list[str] = []  # handshakes that failed (the client refused the cert)
        self._lock = threading.Lock()
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.fake = self
        self._httpd.tls = None
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self._httpd.tls = context
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self._httpd.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{EWS_PATH}"

    @property
    def autodiscover_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{AUTODISCOVER_PATH}"

    def start(self) -> FakeEws:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-ews", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> FakeEws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up and inspection (the API tests use) ---------------------------------------------
    def add_user(
        self,
        address: str,
        password: str = "",
        *,
        logons: tuple[str, ...] = (),
        impersonation: bool = False,
        full_access: tuple[str, ...] = (),
    ) -> User:
        """A mailbox; with a password also an account that can log on (NTLM and Basic)."""
        user = self.store.add_user(
            address, password, logons=logons, impersonation=impersonation, full_access=full_access
        )
        if password and "NTLM" in self.auth:
            for name in user.logons:
                register_ntlm(name, password)
        return user

    def add_app(self, client_id: str, secret: str, *, impersonation: bool = True) -> User:
        """An Entra ID application for OAuth client credentials (app-only, impersonating)."""
        user = self.store.add_user(
            f"{client_id}@apps.fake-ews.test", logons=(client_id,), impersonation=impersonation
        )
        self.apps[client_id] = (secret, user)
        return user

    @property
    def authority(self) -> str:
        """What to pass as ``authority=``: tokens come from ``/{tenant}/oauth2/v2.0/token`` here."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def issue_token(self, form: dict[str, str]) -> tuple[int, bytes]:
        import json
        import secrets

        app = self.apps.get(form.get("client_id", ""))
        if (
            form.get("grant_type") != "client_credentials"
            or app is None
            or app[0] != form.get("client_secret")
        ):
            return 401, json.dumps(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                }
            ).encode()
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = app[1]
        body = {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }
        return 200, json.dumps(body).encode()

    def deliver(
        self, mailbox: str, message, *, folder: str = "inbox", item_class: str = "IPM.Note"
    ) -> Item:
        """Put a message (EmailMessage or bytes) into *folder* (distinguished id or A/B path)."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with self.store.lock:
            target = self._folder(mailbox, folder)
            return self.store.add_item(mailbox, target, raw, item_class=item_class)

    def items(self, mailbox: str, folder: str = "inbox") -> list[Item]:
        with self.store.lock:
            try:
                target = self._folder(mailbox, folder)
            except StoreError:
                return []
            return sorted(self.store.in_folder(target), key=lambda i: i.received)

    def folder(self, mailbox: str, path: str) -> Folder | None:
        with contextlib.suppress(StoreError):
            return self._folder(mailbox, path)
        return None

    def rules(self, mailbox: str) -> list[etree._Element]:
        """The inbox rules stored for *mailbox*, as the ``t:Rule`` elements clients sent."""
        return [etree.fromstring(r.xml) for r in self.store.rules[mailbox.lower()]]

    def seed_rule(self, mailbox: str, rule_xml: bytes | str) -> str:
        """Store a rule (a ``t:Rule`` element) as if a user had made it in Outlook; its id."""
        node = etree.fromstring(rule_xml.encode() if isinstance(rule_xml, str) else rule_xml)
        rid = self.store.new_rule_id()
        operations._set_rule_id(node, rid)
        self.store.rules[mailbox.lower()].append(Rule(rid, etree.tostring(node)))
        return rid

    def inject(self, kind: str, **options) -> Fault:
        """Add a fault (see :class:`Fault`); returns it so a test can check ``times`` left."""
        added = Fault(kind, **options)
        with self._lock:
            self.faults.append(added)
        return added

    def requests(self, op: str | None = None) -> list[LoggedRequest]:
        """Answered SOAP requests (auth challenges left out), optionally of one operation."""
        with self._lock:
            return [r for r in self.log if r.op and (op is None or r.op == op)]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.requests():
            counts[r.op] = counts.get(r.op, 0) + 1
        return counts

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _folder(self, mailbox: str, path: str) -> Folder:
        if path.lower() in DISTINGUISHED:
            return self.store.distinguished(mailbox, path.lower())
        return self.store.folder_by_path(mailbox, path)

    # -- request handling ----------------------------------------------------------------------
    def take_fault(self, op: str, mailbox: str | None) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.hits(op, mailbox):
                    f.times -= 1
                    return f
        return None

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)

    def answer(self, user: User, data: bytes, entry: LoggedRequest) -> tuple[int, bytes]:
        """Run one SOAP request for the logged-on *user*: (HTTP status, response body)."""
        try:
            root = parse(data)
            header = find(root, "s:Header")
            body = find(root, "s:Body")[0]
        except Exception:
            return 500, fault("ErrorSchemaValidation", "The request failed schema validation.")
        entry.op = local(body)
        version = find(header, "t:RequestServerVersion")
        entry.version = version.get("Version") if version is not None else None
        entry.impersonated = text(
            header, "t:ExchangeImpersonation/t:ConnectingSID/t:PrimarySmtpAddress"
        )
        principal = user
        if entry.impersonated:
            if not user.impersonation:
                return 500, fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                )
            principal = self.store.users.get(entry.impersonated.lower())
            if principal is None:
                return 500, fault(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
                )
        handler = operations.OPERATIONS.get(entry.op)
        if entry.op == "FindItem":
            handler = lambda ctx: operations.find_item(ctx, find_count_limit=self.find_count_limit)  # noqa: E731
        if handler is None:
            return 500, fault(
                "ErrorInvalidRequest", f"The request is valid but {entry.op} is not modelled."
            )
        ctx = operations.Context(self.store, user, principal, body)
        with self.store.lock:
            response = handler(ctx)
        entry.mailboxes = tuple(sorted(ctx.mailboxes))
        entry.items = ctx.items
        with self._lock:
            self.sent.extend(ctx.sent)
        return 200, envelope(response)

    @staticmethod
    def target_hint(data: bytes, logon: User) -> str | None:
        """The mailbox a request is about, cheaply (for faults scoped to one mailbox)."""
        try:
            root = parse(data)
        except Exception:
            return logon.address
        impersonated = text(
            root, "s:Header/t:ExchangeImpersonation/t:ConnectingSID/t:PrimarySmtpAddress"
        )
        if impersonated:
            return impersonated.lower()
        for node in root.iter():
            tag = local(node) if isinstance(node.tag, str) else ""
            if tag in ("EmailAddress", "MailboxSmtpAddress") and node.text:
                return node.text.lower()
            if tag in ("ItemId", "FolderId") and node.get("Id"):
                owner = Store.owner_of(node.get("Id"))
                if owner:
                    return owner
        return logon.address


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeEws
    tls: ssl.SSLContext | None

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake runs in the handler's thread (setup), so a client that refuses the
            # certificate or stalls never blocks the accepting thread.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(request, ssl.SSLSocket) and isinstance(exc, OSError):
            with self.fake._lock:
                self.fake.tls_failures.append(f"{type(exc).__name__}: {exc}")
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        # Without this, keep-alive + delayed ACK stalls every request by ~40 ms (Nagle).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.auth = Authenticator(
            self.server.fake.store, self.server.fake.auth, self.server.fake.tokens
        )

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._send(405, b"", [])

    def do_POST(self) -> None:
        fake = self.server.fake
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        entry = LoggedRequest(
            op="",
            status=0,
            anchor=self.headers.get("X-AnchorMailbox"),
            bytes_in=len(data),
            connection=self.client_address[1],
            body=data,
        )
        if self.path.endswith("/oauth2/v2.0/token"):
            from urllib.parse import parse_qsl

            status, body = fake.issue_token(dict(parse_qsl(data.decode("utf-8", "replace"))))
            entry.op, entry.status = "token", status
            fake.record(entry)
            return self._send(status, body, [("Content-Type", "application/json")])
        path = self.path.split("?")[0].lower()
        if path not in (EWS_PATH.lower(), AUTODISCOVER_PATH):
            entry.status = 404
            fake.record(entry)
            return self._send(404, b"", [])
        user, challenge = self.auth.check(self.headers.get("Authorization"))
        if user is None:
            entry.status = 401
            fake.record(entry)
            return self._send(401, b"", challenge)
        entry.logon = user.address
        if path == AUTODISCOVER_PATH:
            return self._autodiscover(entry, data, user, started)
        op = _op_name(data)
        injected = fake.take_fault(op, fake.target_hint(data, user))
        if injected is not None:
            entry.op, entry.fault = op, injected.kind
            if injected.kind == "drop":
                entry.status = 0
                fake.record(entry)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if injected.kind == "slow":
                time.sleep(injected.seconds)
            elif injected.kind == "busy":
                body = fault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    back_off_ms=injected.back_off_ms,
                )
                return self._finish(entry, 500, body, started)
            elif injected.kind == "status":
                headers = [("WWW-Authenticate", "NTLM")] if injected.status == 401 else []
                if injected.status == 401:
                    self.auth.user = None
                return self._finish(entry, injected.status, injected.body, started, headers)
        status, body = fake.answer(user, data, entry)
        self._finish(entry, status, body, started)

    def _autodiscover(self, entry, data, user, started) -> None:
        fake = self.server.fake
        entry.op = "GetUserSettings"
        injected = fake.take_fault(entry.op, user.address)
        if injected is not None and injected.kind == "status":
            entry.fault = injected.kind
            return self._finish(entry, injected.status, injected.body, started)
        values = {"ExternalEwsUrl": fake.url, "InternalEwsUrl": fake.url}
        values.update(fake.autodiscover_settings)
        with fake.store.lock:
            known = set(fake.store.users)
        answer = get_user_settings(
            data, known=known, values=values, redirects=fake.autodiscover_redirects
        )
        entry.mailboxes = answer.users
        headers = [] if answer.status == 200 else [("Content-Type", "text/plain")]
        self._finish(entry, answer.status, answer.body, started, headers)

    def _finish(self, entry, status, body, started, headers=()) -> None:
        entry.status = status
        entry.bytes_out = len(body)
        entry.seconds = time.perf_counter() - started
        self.server.fake.record(entry)
        self._send(status, body, list(headers))

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        if body and not any(name == "Content-Type" for name, _ in headers):
            self.send_header("Content-Type", "text/xml; charset=utf-8")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _op_name(data: bytes) -> str:
    """The operation element's name, without a full parse."""
    marker = data.find(b"<s:Body>")
    if marker < 0:
        return ""
    start = data.find(b"<", marker + 8)
    end = min(
        i for i in (data.find(b" ", start), data.find(b">", start), data.find(b"/", start)) if i > 0
    )
    name = data[start + 1 : end].decode("ascii", "replace")
    return name.rpartition(":")[2]


__all__ = ["EWS_PATH", "FakeEws", "Fault", "LoggedRequest"]
