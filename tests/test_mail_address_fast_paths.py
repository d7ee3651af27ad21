"""The fast paths of address and header parsing give the stdlib's answers, only sooner."""

from __future__ import annotations

import email.utils
import random
import re
import sys

import pytest

from emailrouter_lib.mail.charsets import decode_encoded_words, unfold
from emailrouter_lib.mail.message import (
    ParsedMessage,
    _bare_addresses,
    _certainly_too_deep,
    _simple_addresses,
)

# The pattern the bare-address fallback used before it read outward from each "@".
_BARE_PATTERN = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")


def _cleaned(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What ParsedMessage.addresses keeps of a parse (before RFC 2047 decoding)."""
    return [(d.strip(), a.strip().lower()) for d, a in pairs if "@" in a.strip().lower()]


@pytest.mark.parametrize(
    "value",
    [
        '"Doe, John" <john@example.com>',
        '"John  Doe" <john@example.com>, jane@example.com',
        '"" <a@b.example>',
        '"support@ourdomain.com" <support@ourdomain.com>',
        '"Yangzhou ABC Lighting Equipment " <bob@example.com>, "LTD" <ly@example.com>',
        '"=?utf-8?q?J=C3=B6rg?=" <j@example.de>',
        "Jo B. User <jo@example.com>,, x@y.example",
        "plain@example.com",
    ],
)
def test_plain_lists_parse_as_the_stdlib_does(value: str) -> None:
    fast = _simple_addresses([value])
    assert fast is not None
    assert _cleaned(fast) == _cleaned(email.utils.getaddresses([value]))


@pytest.mark.parametrize(
    "value",
    ['"a\\"b" <a@b.example>', "group: a@b.example;", "a@b.example (comment)", '"x" y <a@b>'],
)
def test_anything_else_goes_to_the_stdlib(value: str) -> None:
    assert _simple_addresses([value]) is None


def test_random_lists_agree_with_the_stdlib() -> None:
    rng = random.Random(7)
    tokens = ['"', '"Jo Doe"', '"Doe, Jo"', "<", ">", "a@b.c", "x.y@z", "@", ",", " ", "\t"]
    tokens += [";", ":", "(c)", "\\", "[1.2.3.4]", "Jo", "=?utf-8?q?x?=", ".", "<a@b>", '""']
    for _ in range(20000):
        value = "".join(rng.choice(tokens) for _ in range(rng.randint(1, 8)))
        fast = _simple_addresses([value])
        if fast is not None:
            assert _cleaned(fast) == _cleaned(email.utils.getaddresses([value])), value


def test_bare_addresses_match_the_pattern_scan() -> None:
    rng = random.Random(11)
    alphabet = ["a", "b", "@", " ", ",", "<", ">", '"', "\t", ":", "é", "\xa0", ".", "@@", "["]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert _bare_addresses(text) == _BARE_PATTERN.findall(text), text


def _deep_header(words: int) -> str:
    word = "=?utf-8?Q?date=3E2017-08-20T10:08:28.617=3C/pr?="
    return '"test" <test@test.com>,\r\n\t' + "\r\n\t".join([word] * words)


def test_a_header_too_deep_for_the_stdlib_is_recognised() -> None:
    text = unfold(_deep_header(sys.getrecursionlimit()))
    assert _certainly_too_deep(text)
    with pytest.raises(RecursionError):
        email.utils.getaddresses([text])
    assert not _certainly_too_deep("undisclosed-recipients:;")
    assert not _certainly_too_deep("a:;" * 2000)  # closed groups never nest
    assert not _certainly_too_deep("(c:)" * 2000)  # comments are left to the stdlib


def test_a_too_deep_header_keeps_its_addresses_and_says_so() -> None:
    raw = f"From: a@example.com\r\nTo: {_deep_header(3000)}\r\nSubject: x\r\n\r\nbody\r\n"
    message = ParsedMessage.from_bytes(raw.encode())
    assert message.to == [("", "test@test.com")]
    assert any("address list too malformed" in defect for defect in message.defects)


def test_encoded_words_and_unfolding_unchanged() -> None:
    # one character split over two words of one charset (spelt two ways), then plain text
    assert decode_encoded_words("=?utf-8?q?a=C3?= =?UTF-8?Q?=A9b?= x") == "a\xe9b x"
    assert decode_encoded_words("=?utf-8?b?w6k=?=(=?bogus?q?x?=)") == "\xe9(x)"
    assert unfold("a\r\n b\nc\rd") == "a bcd"
