"""A protocol-level fake of the Dataverse Web API, for tests and benchmarks.

It speaks HTTP/1.1 with keep-alive on loopback, OData v4 JSON, ``$batch`` (change sets,
``Content-ID`` references, stop-on-error, ``Prefer: odata.continue-on-error`` except in v8.x
mode), paging (``Prefer: odata.maxpagesize`` + ``@odata.nextLink``), ``@odata.bind``, upserts
with ``If-Match`` / ``If-None-Match``, NTLM (pyspnego acceptor) or bearer auth, and injected
faults (429/503 with ``Retry-After``, timeouts, dropped connections). Every request is logged.
See README.md for what it does not model.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .actions import Operations
from .gate import segment_not_found
from .metadata import csdl, entity_definitions
from .model import EntitySet, build_sets
from .schema import API_VERSION, FLAVOURS, SERVER_VERSION
from .store import ODataError, Store, not_found

API_PATH = re.compile(r"^(?P<org>/.*?)?/api/data/(?P<version>v\d+(?:\.\d+)?)/(?P<rest>.*)$")
RECORD = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<id>[^()]*)\))?$")
MAX_PAGE = 5000


@dataclass
class Fault:
    """One injected fault: ``status`` (429/503/500) with ``retry_after``, or ``kind`` ``timeout``
    (the request is done, then the answer waits ``delay`` seconds) or ``drop`` (the connection is
    closed before the request is done)."""

    status: int = 503
    retry_after: float | None = 1
    kind: str = "status"  # status | timeout | drop
    delay: float = 2.0


@dataclass
class Faults:
    throttle_every: int = 0  # every Nth request is answered 429
    throttle_retry_after: float = 1
    latency: float = 0.0  # seconds added to every answer
    late_writes: int = 0  # the next N writes are committed, then answered after late_delay
    late_delay: float = 2.0
    queue: deque[Fault] = field(default_factory=deque)
    seen: int = 0

    def next(self) -> Fault | None:
        self.seen += 1
        if self.queue:
            return self.queue.popleft()
        if self.throttle_every and self.seen % self.throttle_every == 0:
            return Fault(429, self.throttle_retry_after)
        return None


@dataclass
class Logged:
    """One HTTP request the server answered (never with its Authorization header)."""

    method: str
    path: str
    query: str
    status: int
    parts: list[tuple[str, str, int]] = field(default_factory=list)
    changesets: int = 0
    fault: str | None = None
    seconds: float = 0.0

    @property
    def is_batch(self) -> bool:
        return self.path.endswith("/$batch")

    @property
    def is_write(self) -> bool:
        if self.is_batch:
            return self.changesets > 0 or any(m != "GET" for m, _, _ in self.parts)
        return self.method in ("POST", "PATCH", "PUT", "DELETE")


class RequestLog(list):
    """The requests answered so far, with counts for assertions and benchmarks."""

    def answered(self) -> list[Logged]:
        return [e for e in self if e.status != 401]

    def writes(self) -> list[Logged]:
        return [e for e in self.answered() if e.is_write and e.fault is None]

    def reads(self) -> list[Logged]:
        return [e for e in self.answered() if not e.is_write and e.fault is None]

    def throttled(self) -> list[Logged]:
        return [e for e in self if e.status == 429]

    def summary(self) -> dict[str, int]:
        return {
            "http_requests": len(self),
            "writes": len(self.writes()),
            "reads": len(self.reads()),
            "throttled": len(self.throttled()),
            "faults": sum(1 for e in self if e.fault),
            "auth_challenges": sum(1 for e in self if e.status == 401),
            "batch_parts": sum(len(e.parts) for e in self),
        }


def parse_prefer(headers: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in (
        headers.get_all("Prefer", [])
        if hasattr(headers, "get_all")
        else [headers.get("prefer", "")]
    ):
        for piece in re.findall(r'(?:[^,"]|"[^"]*")+', header or ""):
            name, _, value = piece.strip().partition("=")
            if name:
                found[name.strip().lower()] = value.strip().strip('"')
    return found


class FakeDataverse:
    """Start with ``with FakeDataverse(db_path) as server:``; ``server.url`` is the CRM URL."""

    def __init__(
        self,
        database: str | Path,
        *,
        flavour: str | None = None,
        org: str = "org",
        api: str | None = None,
        ntlm_users: dict[str, str] | None = None,  # {"DOMAIN\\user": password}
        bearer_token: str | None = None,
        host: str = "127.0.0.1",
        caller: str | None = None,  # WhoAmI's UserId; default: the first systemuser
    ):
        if flavour is None:  # an older call naming only the API version
            flavour = "crm2016" if (api or "").startswith("v8") else "online"
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; one of {FLAVOURS}")
        self.flavour = flavour
        self.sets = build_sets(flavour)
        self.store = Store(database, self.sets)
        self.org = org
        self.api = api or API_VERSION[flavour]
        self.caller = caller
        self.operations = Operations(self)
        self._csdl: bytes | None = None
        self.faults = Faults()
        self.log = RequestLog()
        self.refusals: list[str] = []  # every error answered, in order (for test diagnostics)
        self.bearer_token = bearer_token
        self.ntlm_users = ntlm_users or {}
        self._user_file: str | None = None
        self._previous_user_file = os.environ.get("NTLM_USER_FILE")
        if self.ntlm_users:
            self._user_file = _write_user_file(self.ntlm_users)
            os.environ["NTLM_USER_FILE"] = self._user_file  # read by pyspnego's acceptor
        self.httpd = ThreadingHTTPServer((host, 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}/{self.org}/api/data/{self.api}/"

    def crm_url(self, **options: str) -> str:
        query = urlencode({"api": self.api, **options}, safe=":\\")
        return f"dataverse+http://{self.host}:{self.port}/{self.org}?{query}"

    def start(self) -> FakeDataverse:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()
        if self._user_file:
            Path(self._user_file).unlink(missing_ok=True)
            if self._previous_user_file is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._previous_user_file

    def __enter__(self) -> FakeDataverse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request --------------------------------------------------------------------------

    def version_number(self, version: str) -> str:
        """RetrieveVersion's answer: the flavour's build, or 8.2's on a v8.x URL."""
        return SERVER_VERSION["crm2016" if self.v8(version) else self.flavour]

    def v8(self, version: str) -> bool:
        """CRM 2016 behaviour: a v8.x server, or a v8.x URL."""
        return self.flavour == "crm2016" or version.startswith("v8")

    def execute(
        self,
        method: str,
        url: str,
        headers: Any,
        body: bytes,
        base: str,
        refs: dict[str, tuple[EntitySet, str]],
        *,
        in_changeset: bool = False,
    ) -> tuple[int, dict[str, str], bytes, tuple[EntitySet, str] | None]:
        """Answer one (possibly batched) request: status, headers, body, and what it created."""
        try:
            return self._execute(method, url, headers, body, base, refs, in_changeset)
        except ODataError as exc:
            self.refusals.append(f"{exc.status} {exc.code} {exc.message}")
            payload = json.dumps(exc.body()).encode()
            return (
                exc.status,
                {"Content-Type": "application/json; odata.metadata=minimal", **exc.headers},
                payload,
                None,
            )

    def _execute(self, method, url, headers, body, base, refs, in_changeset):
        parts = urlsplit(url)
        path = parts.path
        if path.startswith("$"):
            reference, _, rest = path[1:].partition("/")
            if reference not in refs:
                raise ODataError(
                    400,
                    "0x80060888",
                    f"Content-ID Reference: '${reference}' does not exist in the batch context.",
                )
            es, record_id = refs[reference]
        else:
            match = API_PATH.match(path)
            if not match:
                raise segment_not_found(path)
            rest = match.group("rest")
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if rest == "$metadata" and method == "GET":
                if self._csdl is None:
                    self._csdl = csdl(self.sets)
                headers = {"Content-Type": "application/xml", "OData-Version": "4.0"}
                return 200, headers, self._csdl, None
            if rest.startswith("EntityDefinitions") and method == "GET":
                data = entity_definitions(rest, query, self.sets, base)
                return 200, _json_headers(), json.dumps(data).encode(), None
            answer = self.operations.route(method, rest, query, body, base, match.group("version"))
            if answer is not None:
                return 200, _json_headers(), json.dumps(answer).encode(), None
            record = RECORD.match(rest)
            es = self.sets.get(record.group("set")) if record else None
            if es is None:
                raise segment_not_found(rest.split("(")[0])
            record_id = record.group("id")
            if record_id is not None:
                record_id = record_id.strip("'")
                if "=" in record_id:
                    raise ODataError(400, "0x80060888", "alternate keys are not modelled")
        prefer = parse_prefer(headers)
        annotate = (
            "lookuplogicalname" in prefer.get("odata.include-annotations", "")
            or prefer.get("odata.include-annotations") == "*"
        )
        if method == "GET":
            if in_changeset:
                raise ODataError(400, "0x80060888", "GET requests are not allowed in a change set")
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            select = [s for s in query.get("$select", "").split(",") if s] or None
            if record_id is not None:
                row = self.store.get(es, record_id)
                if row is None:
                    raise not_found(es, record_id)
                data = self.store.to_json(es, row, select, annotate)
                return (
                    200,
                    _json_headers(),
                    json.dumps(
                        {"@odata.context": f"{base}$metadata#{es.name}/$entity", **data}
                    ).encode(),
                    None,
                )
            return self._collection(es, query, select, annotate, prefer, base)
        data = json.loads(body) if body.strip() else {}
        store = self.store
        if method == "POST" and record_id is None:
            created = store.create(es, data, refs)
            return self._written(es, created, prefer, base, 201)
        if record_id is None:
            raise ODataError(405, "0x80060888", f"{method} needs a record: {es.name}(<id>)")
        if method == "DELETE":
            store.delete(es, record_id)
            return 204, {}, b"", None
        if method == "PATCH":
            row = store.get(es, record_id)
            if_match = headers.get("If-Match")
            if_none = headers.get("If-None-Match")
            if if_match and row is None:
                raise not_found(es, record_id)
            if if_match and if_match != "*" and if_match != self.store.etag(es, row):
                raise ODataError(
                    412,
                    "0x80060882",
                    "The version of the existing record doesn't "
                    "match the RowVersion property provided.",
                )
            if if_none == "*" and row is not None:
                raise ODataError(
                    412, "0x80040237", "A record with matching key values already exists."
                )
            if row is None:
                if not es.creatable:
                    raise not_found(es, record_id)
                created = store.create(es, data, refs, record_id=record_id)
                return self._written(es, created, prefer, base, 201)
            store.update(es, record_id, data, refs)
            return self._written(es, row[es.key], prefer, base, 200)
        raise ODataError(405, "0x80060888", f"method {method} is not supported")

    def _written(self, es, record_id, prefer, base, status_with_body):
        entity_id = f"{base}{es.name}({record_id})"
        headers = {"OData-EntityId": entity_id, "Location": entity_id}
        if prefer.get("return") == "representation":
            row = self.store.get(es, record_id)
            data = self.store.to_json(es, row, None, True)
            return (
                status_with_body,
                {**_json_headers(), **headers},
                json.dumps(data).encode(),
                (es, record_id),
            )
        return 204, headers, b"", (es, record_id)

    def _collection(self, es, query, select, annotate, prefer, base):
        try:
            pagesize = min(int(prefer.get("odata.maxpagesize", MAX_PAGE)), MAX_PAGE)
            top = int(query["$top"]) if "$top" in query else None
            if "odata.maxpagesize" in prefer:
                # "If you include both, $top is ignored." (page-results.md)
                top = None
            offset = _skiptoken(query.get("$skiptoken"))
        except ValueError:
            raise ODataError(400, "0x80060888", "bad $top, $skiptoken or maxpagesize") from None
        limit = pagesize + 1
        rows = self.store.query(
            es,
            select=select,
            where=query.get("$filter"),
            orderby=query.get("$orderby"),
            top=top,
            offset=offset,
            limit=limit,
        )
        more = len(rows) > pagesize
        rows = rows[:pagesize]
        data: dict[str, Any] = {
            "@odata.context": f"{base}$metadata#{es.name}",
            "value": [self.store.to_json(es, row, select, annotate) for row in rows],
        }
        headers = _json_headers()
        if "odata.maxpagesize" in prefer:
            headers["Preference-Applied"] = f"odata.maxpagesize={pagesize}"
        if more:
            following = {k: v for k, v in query.items() if k != "$skiptoken"}
            token = base64.urlsafe_b64encode(
                json.dumps({"pagingcookie": offset + pagesize}).encode()
            ).decode()
            following["$skiptoken"] = token
            data["@odata.nextLink"] = f"{base}{es.name}?" + urlencode(
                following, quote_via=quote, safe="$',()=[]:@"
            )
        return 200, headers, json.dumps(data).encode(), None

    # -- $batch ---------------------------------------------------------------------------------

    def batch(self, headers: Any, body: bytes, base: str, version: str, entry: Logged):
        boundary = _boundary(headers.get("Content-Type", ""))
        if not boundary:
            raise ODataError(
                400, "0x80060888", "a $batch needs Content-Type multipart/mixed; boundary="
            )
        prefer = parse_prefer(headers)
        keep_going = "odata.continue-on-error" in prefer and not self.v8(version)
        out: list[bytes] = []
        answer = f"batchresponse_{uuid.uuid4()}"
        top_status = 200
        for part_headers, payload in _parts(body, boundary):
            failed = False
            inner = _boundary(part_headers.get("content-type", ""))
            if inner:
                entry.changesets += 1
                requests_ = [(h, _parse_request(p)) for h, p in _parts(payload, inner)]
                refs: dict[str, tuple[EntitySet, str]] = {}
                answers = []
                with self.store.lock:
                    self.store.begin()
                    for req_headers, (method, url, h, b) in requests_:
                        status, rh, rb, created = self.execute(
                            method, url, h, b, base, refs, in_changeset=True
                        )
                        content_id = req_headers.get("content-id")
                        entry.parts.append((method, urlsplit(url).path.rsplit("/", 1)[-1], status))
                        if status >= 400:
                            self.store.rollback()
                            out.append(_response_part(answer, status, rh, rb, content_id))
                            failed = True
                            break
                        if created and content_id:
                            refs[content_id] = created
                        answers.append((status, rh, rb, content_id))
                    else:
                        self.store.commit()
                if not failed:
                    changeset = f"changesetresponse_{uuid.uuid4()}"
                    head = f"--{answer}\r\nContent-Type: multipart/mixed; boundary={changeset}"
                    out.append(head.encode() + b"\r\n\r\n")
                    for status, rh, rb, content_id in answers:
                        out.append(_response_part(changeset, status, rh, rb, content_id))
                    out.append(f"--{changeset}--\r\n".encode())
            else:
                method, url, h, b = _parse_request(payload)
                with self.store.lock:
                    if method != "GET":
                        self.store.begin()
                    status, rh, rb, _ = self.execute(method, url, h, b, base, {})
                    if method != "GET":
                        (self.store.commit if status < 400 else self.store.rollback)()
                entry.parts.append((method, urlsplit(url).path.rsplit("/", 1)[-1], status))
                out.append(_response_part(answer, status, rh, rb, part_headers.get("content-id")))
                failed = status >= 400
            if failed and not keep_going:
                # "the batch fails on the first request ... The batch error represents the
                # error of the first failing request": its status is the batch's status, the
                # multipart body carries its answer (execute-batch-operations-using-web-api.md,
                # "Handling errors"). The v8.x page documents no continue-on-error, so v8.x
                # answers the same way; assumed, see README.md.
                top_status = status
                break
        out.append(f"--{answer}--\r\n".encode())
        headers = {"Content-Type": f"multipart/mixed; boundary={answer}", "OData-Version": "4.0"}
        return top_status, headers, b"".join(out)


def _json_headers() -> dict[str, str]:
    return {"Content-Type": "application/json; odata.metadata=minimal", "OData-Version": "4.0"}


def _skiptoken(token: str | None) -> int:
    if not token:
        return 0
    return int(json.loads(base64.urlsafe_b64decode(token.encode()))["pagingcookie"])


def _boundary(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/"):
        return None
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    return match.group(1) if match else None


def _split_head(chunk: bytes) -> tuple[bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", chunk)
    return (chunk, b"") if match is None else (chunk[: match.start()], chunk[match.end() :])


def _header_lines(block: bytes) -> dict[str, str]:
    headers = _Headers()
    for line in block.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) of each part between ``--boundary`` lines."""
    delimiter = re.compile(
        rb"(?:^|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|$)"
    )
    marks = list(delimiter.finditer(body))
    found = []
    for this, following in itertools.pairwise(marks):
        if this.group(1):
            break
        head, payload = _split_head(body[this.end() : following.start()])
        found.append((_header_lines(head), payload))
    return found


class _Headers(dict):
    def get(self, key, default=None):  # case-insensitive, like http.client's
        return super().get(key.lower(), default)


def _parse_request(payload: bytes) -> tuple[str, str, _Headers, bytes]:
    head, body = _split_head(payload)
    lines = head.decode("utf-8", "replace").splitlines()
    try:
        method, url, _ = lines[0].split(" ", 2)
    except (IndexError, ValueError):
        raise ODataError(
            400, "0x80060888", f"malformed request line in $batch: {lines[:1]}"
        ) from None
    headers = _header_lines("\n".join(lines[1:]).encode())
    return method.upper(), url, headers, body.strip()


def _response_part(
    boundary: str, status: int, headers: dict[str, str], body: bytes, content_id: str | None
) -> bytes:
    lines = [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("")
    return "\r\n".join(lines).encode() + b"\r\n" + body + b"\r\n"


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _write_user_file(users: dict[str, str]) -> str:
    handle, path = tempfile.mkstemp(prefix="ntlm-users-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        for account, password in users.items():
            domain, _, user = account.rpartition("\\")
            f.write(f"{domain}:{user}:{password}\n")
    return path


def _handler_for(server: FakeDataverse) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # headers and body leave in one write, as IIS sends them
        authenticated = False
        ntlm_context = None

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self.handle_any()

        do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

        def handle_any(self) -> None:
            started = time.perf_counter()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            entry = Logged(self.command, parts.path, parts.query, 0)
            if not self.authorize(entry):
                server.log.append(entry)
                return
            server.log.append(entry)  # in arrival order; status and parts are filled in below
            fault = server.faults.next()
            if fault and fault.kind == "drop":
                entry.fault, entry.status = "drop", 0
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault and fault.kind == "status":
                entry.fault, entry.status = f"{fault.status}", fault.status
                code = "0x80072322" if fault.status == 429 else "0x80040216"
                message = (
                    "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
                    if fault.status == 429
                    else "Service unavailable"
                )
                extra = (
                    {"Retry-After": f"{fault.retry_after:g}"}
                    if fault.retry_after is not None
                    else {}
                )
                self.reply(
                    fault.status,
                    {"Content-Type": "application/json", **extra},
                    json.dumps({"error": {"code": code, "message": message}}).encode(),
                )
                return
            match = API_PATH.match(parts.path)
            version = match.group("version") if match else server.api
            org = (match.group("org") or "") if match else ""
            base = f"http://{server.host}:{server.port}{org}/api/data/{version}/"
            try:
                if match and match.group("rest") == "$batch" and self.command == "POST":
                    status, headers, payload = server.batch(
                        self.headers, body, base, version, entry
                    )
                else:
                    with server.store.lock:
                        writing = self.command != "GET"
                        if writing:
                            server.store.begin()
                        status, headers, payload, _ = server.execute(
                            self.command, self.path, self.headers, body, base, {}
                        )
                        if writing:
                            (server.store.commit if status < 400 else server.store.rollback)()
            except ODataError as exc:
                status, headers, payload = (
                    exc.status,
                    _json_headers(),
                    json.dumps(exc.body()).encode(),
                )
            except Exception:  # a bug of the fake: answer 500, and leave no transaction open
                with server.store.lock:
                    server.store.rollback()
                raise
            entry.status = status
            if fault and fault.kind == "timeout":
                entry.fault = "timeout"
                time.sleep(fault.delay)
            elif entry.is_write and server.faults.late_writes > 0 and status < 400:
                server.faults.late_writes -= 1
                entry.fault = "late-write"
                time.sleep(server.faults.late_delay)
            if server.faults.latency:
                time.sleep(server.faults.latency)
            entry.seconds = time.perf_counter() - started
            try:
                self.reply(status, headers, payload)
            except OSError:
                self.close_connection = True  # the client gave up (a timeout fault)

        def reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

        def authorize(self, entry: Logged) -> bool:
            if server.bearer_token is None and not server.ntlm_users:
                return True
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if server.bearer_token is not None:
                if scheme.lower() == "bearer" and token == server.bearer_token:
                    return True
                entry.status = 401
                self.reply(
                    401,
                    {"WWW-Authenticate": 'Bearer authorization_uri="https://login.invalid"'},
                    b"",
                )
                return False
            if self.authenticated and not header:
                return True
            if scheme.lower() in ("ntlm", "negotiate") and token:
                import spnego

                if self.ntlm_context is None or self.ntlm_context.complete:
                    self.ntlm_context = spnego.server(
                        protocol="ntlm" if scheme.lower() == "ntlm" else "negotiate"
                    )
                try:
                    answer = self.ntlm_context.step(base64.b64decode(token))
                except Exception:
                    self.ntlm_context = None
                    entry.status = 401
                    self.reply(401, {"WWW-Authenticate": "NTLM"}, b"")
                    return False
                if self.ntlm_context.complete:
                    self.authenticated = True
                    return True
                entry.status = 401
                value = f"{scheme} {base64.b64encode(answer or b'').decode()}"
                self.reply(401, {"WWW-Authenticate": value}, b"")
                return False
            entry.status = 401
            self.send_response(401)
            self.send_header("WWW-Authenticate", "NTLM")
            self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

    return Handler
