"""ParsedMessage: one parse, robust header/body decoding, and refusing what is not a message."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail import Attachment, ParsedMessage

PLAIN = (
    b"From: =?utf-8?q?Doe=2C_John?= <John.Doe@Example.COM>\n"
    b'To: "Smith, Ann" <ann@example.org>, bob@example.org, undisclosed-recipients:;\n'
    b"Cc: =?iso-8859-1?q?J=FCrgen?= <j@example.de>, no-at-sign\n"
    b"Bcc: hidden@example.net\n"
    b"Sender: Assistant <assistant@example.com>\n"
    b"Subject: =?utf-8?b?SGVsbG8g?=\n =?utf-8?b?V29ybGQ=?= \xc3\xa9t\xc3\xa9\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0200\n"
    b"Message-ID: abc@host.example\n"
    b"In-Reply-To: <first@x> <second@y>\n"
    b"References: <a@b>\n <c@d>\n"
    b"Thread-Index: AdQ1Zm9vYmFy\n"
    b"Content-Type: text/plain; charset=bogus-charset\n"
    b"\n"
    b"Caf\xe9 <body> & more\n"
)


def test_headers_addresses_and_ids_are_decoded():
    msg = ParsedMessage.from_bytes(PLAIN, origin="plain.eml")
    assert msg.subject == "Hello World été"
    assert msg.from_address == "john.doe@example.com"
    assert msg.from_name == "Doe, John"  # the encoded comma did not split the address
    assert msg.sender_address == "assistant@example.com"
    assert msg.to == [("Smith, Ann", "ann@example.org"), ("", "bob@example.org")]
    assert msg.cc == [("Jürgen", "j@example.de")]
    assert msg.bcc == [("", "hidden@example.net")]
    assert msg.date == datetime(2024, 1, 2, 8, 0, tzinfo=UTC)
    assert msg.message_id == "<abc@host.example>"
    assert msg.effective_message_id == "<abc@host.example>"
    assert msg.in_reply_to == "<first@x>"
    assert msg.references == ["<a@b>", "<c@d>"]
    assert msg.thread_index == "AdQ1Zm9vYmFy"
    assert msg.header("X-Not-There") is None
    assert msg.content_type == "text/plain"
    assert msg.size == len(PLAIN)


def test_body_with_unknown_charset_falls_back_and_description_is_escaped_html():
    msg = ParsedMessage.from_bytes(PLAIN)
    assert msg.body_text == "Café <body> & more\n"
    assert msg.body_html is None
    assert msg.description.startswith("<pre")
    assert "Café &lt;body&gt; &amp; more" in msg.description
    assert msg.attachments == []
    assert msg.defects == []


def test_mbox_from_line_is_stripped():
    msg = ParsedMessage.from_bytes(b"From someone@example.com Mon Jan  1 00:00:00 2024\n" + PLAIN)
    assert msg.raw == PLAIN
    assert msg.from_address == "john.doe@example.com"


def test_missing_headers_give_empty_answers():
    msg = ParsedMessage.from_bytes(b"X-Only: one header\n\nbody\n")
    assert msg.subject == ""
    assert msg.from_address is None and msg.from_name is None
    assert msg.to == [] and msg.cc == [] and msg.bcc == []
    assert msg.date is None
    assert msg.message_id is None
    assert msg.in_reply_to is None and msg.references == []
    assert msg.thread_index is None
    assert msg.effective_message_id == msg.synthetic_message_id


@pytest.mark.parametrize("value", ["<>", "", "   ", "not an id"])
def test_unusable_message_ids_are_none(value):
    msg = ParsedMessage.from_bytes(f"From: a@b.example\nMessage-ID: {value}\n\nx\n".encode())
    assert msg.message_id is None
    assert msg.effective_message_id.endswith("@emailrouter.invalid>")


def test_synthetic_message_id_is_stable_and_distinguishes_messages():
    text = (
        b"From: a@example.com\nTo: b@example.com\nSubject: Hi\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n\nHello\n"
    )
    first = ParsedMessage.from_bytes(text).synthetic_message_id
    assert first == ParsedMessage.from_bytes(text).synthetic_message_id
    # the same message over POP3 (CRLF) and refolded by a transport keeps its identity
    crlf = text.replace(b"\n", b"\r\n")
    assert ParsedMessage.from_bytes(crlf).synthetic_message_id == first
    refolded = text.replace(b"Subject: Hi", b"Subject:\n Hi")
    assert ParsedMessage.from_bytes(refolded).synthetic_message_id == first
    # other bodies, subjects or senders differ
    assert ParsedMessage.from_bytes(text.replace(b"Hello", b"Hallo")).synthetic_message_id != first
    assert ParsedMessage.from_bytes(text.replace(b"Hi", b"Ho")).synthetic_message_id != first
    assert ParsedMessage.from_bytes(text.replace(b"a@ex", b"c@ex")).synthetic_message_id != first
    assert first.startswith("<") and first.endswith("@emailrouter.invalid>")


def _multipart() -> bytes:
    pdf = base64.encodebytes(b"%PDF-1.4 fake").decode()
    png = base64.encodebytes(b"\x89PNG fake").decode()
    return (
        "From: a@example.com\n"
        "To: b@example.com\n"
        "Subject: files\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n'
        "\n"
        "--outer\n"
        'Content-Type: multipart/related; boundary="rel"\n'
        "\n"
        "--rel\n"
        'Content-Type: multipart/alternative; boundary="alt"\n'
        "\n"
        "--alt\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "plain body\n"
        "--alt\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        '<p>html body <img src="cid:logo@x"></p>\n'
        "--alt--\n"
        "--rel\n"
        "Content-Type: image/png\n"
        "Content-ID: <logo@x>\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{png}"
        "--rel--\n"
        "--outer\n"
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20invoice.pdf\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{pdf}"
        "--outer\n"
        "Content-Type: text/plain; charset=utf-8\n"
        'Content-Disposition: attachment; filename="../../etc/notes.txt"\n'
        "\n"
        "attached text\n"
        "--outer\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "From: inner@example.com\n"
        "Subject: The original\n"
        "Message-ID: <inner@example.com>\n"
        "\n"
        "inner body\n"
        "--outer--\n"
    ).encode()


def test_bodies_and_attachments_come_from_one_walk():
    msg = ParsedMessage.from_bytes(_multipart())
    assert msg.body_text == "plain body"  # the line break before a boundary belongs to it
    assert msg.body_html.startswith("<p>html body")
    assert msg.description == msg.body_html
    names = [a.filename for a in msg.attachments]
    assert names == ["part-1.png", "€ invoice.pdf", "notes.txt", "The original.eml"]
    logo, pdf, notes, original = msg.attachments
    assert isinstance(logo, Attachment)
    assert logo.inline and logo.content_id == "logo@x" and logo.payload == b"\x89PNG fake"
    assert not pdf.inline and pdf.content_type == "application/pdf"
    assert pdf.payload == b"%PDF-1.4 fake" and pdf.size == len(b"%PDF-1.4 fake")
    assert notes.payload == b"attached text"
    assert original.content_type == "message/rfc822"
    assert b"Subject: The original" in original.payload
    assert msg.content_types[:3] == [
        "multipart/mixed",
        "multipart/related",
        "multipart/alternative",
    ]


def test_bad_mime_is_a_defect_not_an_exception():
    raw = (
        b"From: a@example.com\nSubject: broken\n"
        b'Content-Type: multipart/mixed; boundary="missing"\n\nno boundaries at all\n'
    )
    msg = ParsedMessage.from_bytes(raw)
    assert msg.defects, "the missing boundary must be reported"
    assert any("Boundary" in defect for defect in msg.defects)
    assert msg.body_text is not None and "no boundaries" in msg.body_text


def test_raw_8bit_and_odd_charset_headers_decode():
    raw = (
        b"From: \xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd <ivan@example.ru>\n"
        b"Subject: =?ks_c_5601-1987?B?x9GxuQ==?= and =?unknown-x?q?kept?= and =?utf-8?b?QQ?=\n"
        b"Content-Type: text/plain; charset=iso-2022-jp\n\n"
        b"\x82\xa0\x82\xa2\n"  # Shift_JIS mislabelled as iso-2022-jp
    )
    msg = ParsedMessage.from_bytes(raw)
    assert msg.from_name == "Иван"
    assert msg.subject == "한국 and kept and A"  # unknown charset: UTF-8 guess; unpadded base64
    assert msg.body_text == "あい\n"


def test_nul_bytes_are_removed_from_text():
    msg = ParsedMessage.from_bytes(b"From: a@example.com\n\nab\x00cd\n")
    assert msg.body_text == "abcd\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"  \r\n\n ", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "Outlook .msg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not an RFC 822 message"),
        (b"Apache License\nVersion 2.0\nhttp://www.apache.org/licenses/\n", "not an RFC 822"),
        (b"# Title\n\nSource: https://example.com\nLicense: MIT\n", "not an RFC 822"),
    ],
)
def test_input_that_is_not_a_message_raises_message_error_naming_it(data, words):
    with pytest.raises(MessageError) as caught:
        ParsedMessage.from_bytes(data, origin="inbox/42")
    assert words in str(caught.value)
    assert str(caught.value).startswith("inbox/42: ")


def test_parse_happens_once():
    msg = ParsedMessage.from_bytes(PLAIN)
    first = msg.message
    answers = (msg.subject, msg.body_text, msg.attachments, msg.to, msg.defects)
    assert all(answer is not None for answer in answers)
    assert msg.message is first
