"""The ``$batch`` wire format: multipart/mixed requests with change sets, and their answers.

A change set is atomic on the server (one failure rolls back every request in it) and may refer
to a record created earlier in the same change set as ``$<Content-ID>``. Requests outside a change
set (GETs) are independent. Lines end in CRLF, as the Web API documentation shows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

CRLF = b"\r\n"


@dataclass
class BatchRequest:
    """One request inside a ``$batch``: ``url`` is absolute, or ``$n`` inside a change set."""

    method: str
    url: str
    body: Any = None  # JSON-able, or None
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str | None = None


@dataclass
class BatchResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None
    part: int = 0  # which top-level part of the $batch (a change set is one part)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def encode_batch(items: list[BatchRequest | list[BatchRequest]]) -> tuple[str, bytes]:
    """The Content-Type and body of a ``$batch``; a list among *items* is one change set."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[bytes] = []
    for item in items:
        out.append(b"--" + boundary.encode() + CRLF)
        if isinstance(item, list):
            changeset = f"changeset_{uuid.uuid4()}"
            out.append(f"Content-Type: multipart/mixed; boundary={changeset}".encode() + CRLF)
            out.append(CRLF)
            for request in item:
                out.append(b"--" + changeset.encode() + CRLF)
                out.append(_encode_request(request))
            out.append(b"--" + changeset.encode() + b"--" + CRLF)
        else:
            out.append(_encode_request(item))
    out.append(b"--" + boundary.encode() + b"--" + CRLF)
    return f"multipart/mixed; boundary={boundary}", b"".join(out)


def _encode_request(request: BatchRequest) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if request.content_id:
        lines.append(f"Content-ID: {request.content_id}")
    lines += ["", f"{request.method} {request.url} HTTP/1.1"]
    headers = dict(request.headers)
    payload = b""
    if request.body is not None:
        payload = json.dumps(request.body, separators=(",", ":")).encode("utf-8")
        headers.setdefault("Content-Type", "application/json; type=entry")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("")
    return "\r\n".join(lines).encode() + CRLF + payload + CRLF


def decode_batch(content_type: str, body: bytes) -> list[BatchResponse]:
    """Every response of a ``$batch`` answer, change sets flattened, in order; ``part`` says
    which top-level part (request or change set) each answers. A failed change set answers
    with its failing request only."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise ValueError(f"not a multipart answer: Content-Type {content_type!r}")
    found: list[BatchResponse] = []
    for part, (headers, payload) in enumerate(_parts(body, boundary)):
        inner = headers.get("content-type", "")
        if inner.lower().startswith("multipart/mixed"):
            for response in decode_batch(inner, payload):
                response.part = part
                found.append(response)
        else:
            response = _decode_response(payload, headers.get("content-id"))
            response.part = part
            found.append(response)
    return found


def is_multipart(content_type: str) -> bool:
    """Whether an answer's Content-Type is a multipart body (a ``$batch`` answer to decode)."""
    return content_type.strip().lower().startswith("multipart/mixed") and (
        _boundary(content_type) is not None
    )


def _boundary(content_type: str) -> str | None:
    for piece in content_type.split(";")[1:]:
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip().strip('"')
    return None


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
        head, _, payload = _split_head(chunk)
        parts.append((_headers(head), payload.removesuffix(b"\r\n").removesuffix(b"\n")))
    return parts


def _split_head(chunk: bytes) -> tuple[bytes, bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in chunk:
            return chunk.partition(sep)
    return chunk, b"", b""


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _decode_response(payload: bytes, content_id: str | None) -> BatchResponse:
    head, _, body = _split_head(payload)
    lines = head.decode("utf-8", "replace").splitlines()
    status_line = lines[0] if lines else ""
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ValueError(f"malformed status line in a $batch answer: {status_line!r}") from None
    headers = _headers("\n".join(lines[1:]).encode())
    return BatchResponse(status, headers, body.strip(), content_id or headers.get("content-id"))


__all__ = ["BatchRequest", "BatchResponse", "decode_batch", "encode_batch", "is_multipart"]
