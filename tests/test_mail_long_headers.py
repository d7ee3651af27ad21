"""Hostile header values (1 MB, no "@", thousands of "@", "<", "," or encoded words) are read in
linear time, cut at HEADER_READ_LIMIT with a defect, and never stop the message beside them.

Each routing case goes through the real decide + create path (a Maildir into the embedded SQLite
CRM). The deadline is pytest-timeout's: on the code before, a 1 MB Message-ID without "@" took
about two hours, a 20 KB one 13 s.
"""

from __future__ import annotations

import random
import re

import pytest
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route

import emailrouter_lib.mail.message as message_module
from emailrouter_lib.crm import demo
from emailrouter_lib.crm.base import Organization
from emailrouter_lib.mail import classify
from emailrouter_lib.mail.message import (
    _BARE_MSG_ID,
    HEADER_READ_LIMIT,
    PARAMETER_READ_LIMIT,
    ParsedMessage,
    _simple_addresses,
)
from emailrouter_lib.tracking.smartmatch import HashSettings, subject_words
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

MB = 1024 * 1024
SUPPORT = f"queue:{demo.SUPPORT.address}"
HEADERS = (
    "Message-ID",
    "In-Reply-To",
    "References",
    "Return-Path",
    "From",
    "To",
    "Subject",
    "Thread-Index",
)
SHAPES = {
    "no-at": lambda: "x" * MB,
    "many-at": lambda: "a@" * (MB // 2),
    "many-lt": lambda: "<" * MB,
    "many-commas": lambda: "," * MB,
    "encoded-words": lambda: "=?utf-8?q?a=C3=A9?=\r\n " * (MB // 21),
    "blanks": lambda: "x" + " " * MB + "x",
}


def _hostile(header: str, value: str) -> bytes:
    """A message whose *header* holds *value*, on one line (or folded, as the value says)."""
    fields = {
        "From": "carol@fabrikam.example",
        "To": demo.SUPPORT.address,
        "Subject": "hostile header",
        "Date": "Mon, 04 Mar 2024 12:00:00 +0000",
        "Message-ID": "<hostile@test.example>",
        header: value,
    }
    head = "".join(f"{name}: {text}\r\n" for name, text in fields.items())
    return (head + "\r\nThe body.\r\n").encode("utf-8")


def _read_all(msg: ParsedMessage) -> None:
    """Ask the message everything routing asks of it."""
    _ = (msg.effective_message_id, msg.in_reply_to, msg.references, msg.thread_index, msg.date)
    _ = (msg.subject, msg.from_address, msg.to, msg.cc, msg.content_type_params)
    _ = (msg.description, msg.attachments, classify.infer_message_class(msg))


@pytest.fixture(scope="module")
def crm_url(tmp_path_factory):
    return demo_crm(tmp_path_factory.mktemp("crm"))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("header", HEADERS)
def test_a_1mb_header_value_is_routed_and_the_next_message_too(crm_url, tmp_path, header, shape):
    ordinary = message("the ordinary message beside it")
    maildir = tmp_path / "Maildir"
    hostile_path, _ = drop(maildir, _hostile(header, SHAPES[shape]()), ordinary)
    result = route(crm_url, maildir_url(maildir, owner=SUPPORT))
    rows = {row.item_key: row for row in result.rows}
    assert len(rows) == 2
    beside = next(row for key, row in rows.items() if not hostile_path.name.startswith(key))
    assert beside.outcome == "created"
    assert crm_store(crm_url).email(beside.activityid)["messageid"] == ordinary["Message-ID"]
    hostile = next(row for key, row in rows.items() if hostile_path.name.startswith(key))
    # one ordinary outcome, not a crash turned into quarantine
    assert hostile.outcome in ("created", "duplicate") or hostile.outcome.startswith(
        ("skipped:", "filtered:")
    ), hostile
    assert len(hostile.subject or "") <= HEADER_READ_LIMIT
    assert result.mailboxes[0].status == "ok"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("header", HEADERS)
def test_a_long_value_is_read_up_to_the_limit_with_a_defect(header):
    raw = _hostile(header, "x" * MB)
    msg = ParsedMessage.from_bytes(raw)
    _read_all(msg)
    assert any(d.startswith(f"{header}: a header value of {MB} characters") for d in msg.defects)
    assert msg.raw == raw  # the bytes (quarantine copy, attachments) are as received
    if header == "Subject":
        assert msg.subject == "x" * HEADER_READ_LIMIT


def test_a_header_under_the_limit_is_read_whole_without_a_defect():
    references = " ".join(f"<id{n}@test.example>" for n in range(2000))  # ~40 KB, real-world long
    assert len(references) < HEADER_READ_LIMIT
    msg = ParsedMessage.from_bytes(_hostile("References", references))
    assert len(msg.references) == 2000
    assert not msg.defects


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "content_type",
    [
        'text/plain; x="' + ";" * MB,  # the stdlib re-reads the value for every ";" in quotes
        "text/plain" + "; a=b" * (MB // 5),
        'multipart/mixed; boundary="b"' + ";" * MB,  # the parser's own boundary look-up
    ],
    ids=["semicolons-in-quotes", "many-parameters", "multipart-boundary"],
)
def test_content_type_parameters_are_read_in_bounded_time(content_type):
    attached = (
        f"From: a@b.example\r\nContent-Type: {content_type}\r\n"
        'Content-Disposition: attachment; filename="f.txt"' + ";" * MB + "\r\n\r\nbody\r\n"
    ).encode()
    raw = (
        b"From: carol@fabrikam.example\r\nTo: support@contoso.example\r\nSubject: s\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
        b"Content-Type: text/plain\r\n\r\nhello\r\n--outer\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + attached + b"\r\n--outer--\r\n"
    )
    msg = ParsedMessage.from_bytes(_hostile("Content-Type", content_type))
    _read_all(msg)
    assert any(d.startswith("Content-Type: a header value of") for d in msg.defects)
    wrapper = ParsedMessage.from_bytes(raw)
    (eml,) = [a for a in wrapper.attachments if a.content_type == "message/rfc822"]
    head = attached.split(b"\r\n\r\n", 1)[0]
    assert eml.payload.split(b"\r\n\r\n", 1)[0] == head  # written back whole, not as read
    inner = ParsedMessage.from_bytes(eml.payload)
    _read_all(inner)
    assert any("Content-Disposition: a header value of" in d for d in inner.defects)


def test_parameters_up_to_the_limit_are_all_read():
    params = "".join(f"; p{n}=v{n}" for n in range(PARAMETER_READ_LIMIT - 1))
    msg = ParsedMessage.from_bytes(_hostile("Content-Type", "text/plain" + params))
    assert len(msg.content_type_params) == PARAMETER_READ_LIMIT - 1
    assert not msg.defects


@pytest.mark.timeout(30)
def test_a_list_of_many_blanks_is_matched_in_linear_time():
    # the lazy display-name pattern tried every split of the blanks: 20 KB took 3.6 s
    assert _simple_addresses(["x" + " " * MB + "<a@b.example>"]) == [("x", "a@b.example")]
    assert _simple_addresses(["x" + " " * MB + "x"]) is None


@pytest.mark.timeout(30)
def test_a_subject_of_many_tracking_tokens_is_read_once():
    tokens = TrackingTokenFormat()
    settings = HashSettings.from_organization(Organization("org", "Org"))
    subject = "RE: " + " ".join(f"CRM:{n:07d}" for n in range(100_000)) + " printer jam"
    assert subject_words(subject, settings, tokens) == ["printer", "jam"]


# The patterns before the look-behinds and possessive quantifiers: the answers must not change,
# only the time.
_OLD_BARE_MSG_ID = re.compile(r"[^<>\s@]+@[^<>\s@]+")
_OLD_RETURN_PATH = re.compile(r"<?([^<>@\s]+)@[^<>\s]*>?")
_OLD_ADDR_SPEC = r'[^\s<>,@"();:\[\]\\]+@[^\s<>,@"();:\[\]\\]+'
_OLD_LIST_ITEM = re.compile(
    rf'\s*(?:"([^"\\]*)"\s*<({_OLD_ADDR_SPEC})>|([^<>,@"();:\[\]\\]*?)\s*<({_OLD_ADDR_SPEC})>'
    rf"|({_OLD_ADDR_SPEC}))?\s*(?:,|\Z)"
)


def test_anchored_patterns_find_what_the_old_ones_found():
    rng = random.Random(12)
    alphabet = ["a", "b", "@", "@@", " ", "<", ">", "\t", ",", ".", "é", "\xa0", "<a@b>"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert _BARE_MSG_ID.findall(text) == _OLD_BARE_MSG_ID.findall(text), text
        old, new = _OLD_RETURN_PATH.search(text), classify._RETURN_PATH.search(text)
        assert (old and (old.span(), old.groups())) == (new and (new.span(), new.groups())), text


def test_the_possessive_address_list_pattern_reads_lists_as_before(monkeypatch):
    rng = random.Random(3)
    tokens = ['"', '"Jo Doe"', '"Doe, Jo"', "<", ">", "a@b.c", "x.y@z", "@", ",", " ", "\t", ";"]
    tokens += [":", "(c)", "\\", "[1.2.3.4]", "Jo", "=?utf-8?q?x?=", ".", "<a@b>", '""', "\r\n "]
    values = ["".join(rng.choice(tokens) for _ in range(rng.randint(1, 9))) for _ in range(20000)]
    now = [_simple_addresses([value]) for value in values]
    monkeypatch.setattr(message_module, "_LIST_ITEM", _OLD_LIST_ITEM)
    assert [_simple_addresses([value]) for value in values] == now


@pytest.mark.timeout(30)
def test_made_up_charset_labels_are_not_each_looked_up():
    # each new label cost an import attempt (~100-200 µs): 80 parts with a filename of 3,000
    # made-up labels each took about 40 s
    def labels(part: int) -> str:
        return "".join(f"=?x-{part}-{n}?q?a?=" for n in range(3000))

    parts = "".join(
        "--b\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: attachment; filename="{labels(n)}"\r\n\r\nx\r\n'
        for n in range(80)
    )
    raw = (
        f"From: carol@fabrikam.example\r\nTo: support@contoso.example\r\nSubject: {labels(99)}\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + "--b--\r\n"
    ).encode()
    msg = ParsedMessage.from_bytes(raw)
    _read_all(msg)
    assert len(msg.attachments) == 80
    assert msg.subject == "a" * 3000


def test_only_names_no_codec_can_have_are_passed_over():
    import codecs
    import encodings.aliases

    from emailrouter_lib.mail.charsets import _CHARSET_ALIASES, _codec_modules, _may_name_a_codec

    names = {*encodings.aliases.aliases, *encodings.aliases.aliases.values(), *_codec_modules()}
    names |= {*_CHARSET_ALIASES, *_CHARSET_ALIASES.values()}
    names |= {n.replace("_", "-") for n in names} | {n.replace("_", " ") for n in names}
    names |= {n.replace("_", ".") for n in names} | {"x-unknown", "utf-99", "", "..", "a b"}
    for name in sorted(names):
        name = name.lower()
        try:
            codecs.lookup(name)
        except LookupError:
            continue
        assert _may_name_a_codec(name), name
