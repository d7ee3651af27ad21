"""Forward-mailbox items: the original comes out of its message/rfc822 attachment."""

from __future__ import annotations

from pathlib import Path

from emailrouter_lib.mail import ParsedMessage, infer_message_class, unwrap_forward

CORPUS = Path(__file__).resolve().parents[1] / "emailrouter_lib" / "demo" / "data" / "corpus"

ORIGINAL = (
    "From: Customer <customer@example.net>\r\n"
    "To: Ann <ann@example.com>\r\n"
    "Subject: =?utf-8?q?Bestellung_f=C3=BCr_Q3?= CRM:0001001\r\n"
    "Date: Wed, 03 Jan 2024 09:30:00 +0100\r\n"
    "Message-ID: <original-1@example.net>\r\n"
    "In-Reply-To: <crm-7@example.com>\r\n"
    "X-Long: " + "word " * 30 + "\r\n"
    "\r\n"
    "Please send the offer.\r\n"
)


def _wrapper(attachment_headers: str, attachment_body: str) -> bytes:
    return (
        "From: Ann <ann@example.com>\r\n"
        "To: forward@example.com\r\n"
        "Subject: FW: Bestellung\r\n"
        "Message-ID: <wrapper-1@example.com>\r\n"
        'Content-Type: multipart/mixed; boundary="fw"\r\n'
        "\r\n"
        "--fw\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "forwarded by rule\r\n"
        "--fw\r\n"
        f"{attachment_headers}"
        "\r\n"
        f"{attachment_body}"
        "--fw--\r\n"
    ).encode()


def test_original_attached_as_message_rfc822_is_unwrapped():
    wrapper = ParsedMessage.from_bytes(
        _wrapper("Content-Type: message/rfc822\r\n", ORIGINAL), origin="forward/17"
    )
    original = unwrap_forward(wrapper)
    assert original is not None
    assert original.message_id == "<original-1@example.net>"
    assert original.in_reply_to == "<crm-7@example.com>"
    assert original.subject == "Bestellung für Q3 CRM:0001001"
    assert original.from_address == "customer@example.net"
    assert original.body_text == "Please send the offer."
    assert original.origin == "forward/17 > Bestellung für Q3 CRM_0001001.eml"
    # headers come back as they were written: long lines are not refolded
    assert ORIGINAL.split("\r\n\r\n")[0].encode() in original.raw
    assert infer_message_class(original).name == "IPM.Note"


def test_base64_encoded_attached_message_is_decoded():
    import base64

    encoded = base64.encodebytes(ORIGINAL.encode()).decode().replace("\n", "\r\n")
    wrapper = ParsedMessage.from_bytes(
        _wrapper("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n", encoded)
    )
    original = unwrap_forward(wrapper)
    assert original is not None and original.message_id == "<original-1@example.net>"


def test_eml_file_attached_as_octet_stream_is_accepted():
    wrapper = ParsedMessage.from_bytes(
        _wrapper(
            "Content-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="original.eml"\r\n',
            ORIGINAL,
        )
    )
    original = unwrap_forward(wrapper)
    assert original is not None and original.message_id == "<original-1@example.net>"


def test_inline_forward_is_an_invalid_forward_item():
    inline = ParsedMessage.from_bytes(
        b"From: ann@example.com\nTo: forward@example.com\nSubject: FW: Bestellung\n\n"
        b"-----Original Message-----\nFrom: customer@example.net\nSubject: Bestellung\n\nHi\n"
    )
    assert unwrap_forward(inline) is None
    other_attachment = ParsedMessage.from_bytes(
        _wrapper("Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n", "x\r\n")
    )
    assert unwrap_forward(other_attachment) is None


def test_vendored_forwards_unwrap():
    for relative in [
        "mimekit-testdata/UnitTests/TestData/messages/simple-embedded-message.eml",
        "sisimai-set-of-emails/maildir/not/is-not-bounce-02.eml",
    ]:
        wrapper = ParsedMessage.from_bytes((CORPUS / relative).read_bytes(), origin=relative)
        original = unwrap_forward(wrapper)
        assert original is not None, relative
        assert original.raw and original.header("From"), relative
        assert infer_message_class(original).reason
