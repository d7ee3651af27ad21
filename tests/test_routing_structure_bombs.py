"""Structural bombs route in bounded time and stop nothing: what held in issue 12 must keep holding.

A message of 100,000 MIME parts and messages nested 5,000 deep (multipart in multipart, and
message/rfc822 in message/rfc822) each go through the real route beside an ordinary message.
The bound is the test's deadline (pytest-timeout), not a measured time: a quadratic walk or a
recursion blow-up fails here by name. Each bomb gets one outcome and the ordinary message is
created.
"""

from __future__ import annotations

import pytest
from routing_helpers import demo_crm, drop, maildir_url, message, route

SUPPORT = "queue:support@contoso.example"
HEAD = (
    b"From: carol@fabrikam.example\r\nTo: support@contoso.example\r\n"
    b"Date: Mon, 04 Mar 2024 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def many_parts(count: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (
        HEAD
        + b"Subject: many parts\r\nMessage-ID: <parts@fabrikam.example>\r\n"
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + part * count
        + b"--b--\r\n"
    )


def nested_multipart(depth: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--d%d--" % n for n in reversed(range(depth)))
    return (
        HEAD
        + b"Subject: deep multipart\r\nMessage-ID: <deep@fabrikam.example>\r\n"
        + opening
        + b"Content-Type: text/plain\r\n\r\nat the bottom"
        + closing
        + b"\r\n"
    )


def nested_rfc822(depth: int) -> bytes:
    inner = b"From: dana@fabrikam.example\r\nSubject: at the bottom\r\n\r\nhello\r\n"
    for n in range(depth):
        inner = (
            b"From: level%d@fabrikam.example\r\nContent-Type: message/rfc822\r\n\r\n" % n + inner
        )
    return HEAD + b"Subject: deep rfc822\r\nMessage-ID: <deep822@fabrikam.example>\r\n" + inner


def route_beside_an_ordinary_message(tmp_path, bomb: bytes) -> None:
    ordinary = message("An ordinary message")
    drop(tmp_path / "Maildir", bomb, ordinary)
    result = route(demo_crm(tmp_path), maildir_url(tmp_path / "Maildir", owner=SUPPORT))
    assert result.ok, result.mailboxes
    assert len(result.rows) == 2
    rows = {row.message_id: row for row in result.rows}
    assert rows[ordinary["Message-ID"]].outcome == "created"
    assert all(row.reason for row in result.rows)


# The issue measured under 10 s on a quiet machine; the deadline leaves room for a shared box
# (12.5 s here at a load average of 8 on 2 cores, over 30 s at 14). A quadratic walk of 100,000
# parts takes hours, so this still tells bounded from unbounded.
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_message_of_100000_mime_parts_routes_in_bounded_time(tmp_path):
    route_beside_an_ordinary_message(tmp_path, many_parts(100_000))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("build", [nested_multipart, nested_rfc822])
def test_a_message_nested_5000_deep_routes_in_bounded_time(tmp_path, build):
    route_beside_an_ordinary_message(tmp_path, build(5_000))
