"""Message-class inference on hand-written messages, one per row of the §5 table."""

from __future__ import annotations

import pytest

from emailrouter_lib.mail import (
    TRACKED_CLASSES,
    MessageClass,
    ParsedMessage,
    infer_message_class,
    is_tracked,
)


def _message(headers: str, body: str = "Hello\n") -> ParsedMessage:
    base = "From: Ann <ann@example.com>\nTo: bob@example.org\nMessage-ID: <m1@example.com>\n"
    return ParsedMessage.from_bytes((base + headers + "\n" + body).encode("utf-8"))


def _calendar(method: str, attendee: str = "") -> ParsedMessage:
    ical = (
        "BEGIN:VCALENDAR\r\n"
        f"METHOD:{method}\r\n"
        "PRODID:Microsoft Exchange Server 2010\r\n"
        "VERSION:2.0\r\n"
        "BEGIN:VEVENT\r\n"
        "ORGANIZER;CN=Ann:mailto:ann@example.com\r\n"
        f"{attendee}"
        "SUMMARY:Quarterly review\r\n"
        "DTSTART:20240105T100000Z\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    return _message(
        "Subject: Quarterly review\n"
        "Content-Class: urn:content-classes:calendarmessage\n"
        'Content-Type: multipart/alternative; boundary="b"\n',
        "--b\nContent-Type: text/plain\n\nWhen: Friday\n"
        f"--b\nContent-Type: text/calendar; charset=utf-8; method={method}\n\n{ical}--b--\n",
    )


def _dsn(action: str, *, extra: str = "") -> ParsedMessage:
    return _message(
        "Subject: Delivery Status Notification\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n' + extra,
        "--r\nContent-Type: text/plain\n\nReport.\n"
        "--r\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        "Final-Recipient: rfc822; bob@example.org\n"
        f"Action: {action}\n"
        "Status: 4.4.7\n\n"
        "--r\nContent-Type: text/rfc822-headers\n\nSubject: original\n\n--r--\n",
    )


@pytest.mark.parametrize(
    ("attendee", "expected"),
    [
        ("ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@example.org\r\n", "Resp.Pos"),
        ("ATTENDEE;CN=Bob;PARTSTAT=DECLINED:mailto:bob@example.org\r\n", "Resp.Neg"),
        ("ATTENDEE;PARTSTAT=TENTATIVE\r\n ;CN=Bob:mailto:bob@example.org\r\n", "Resp.Tent"),
    ],
)
def test_meeting_responses(attendee, expected):
    found = infer_message_class(_calendar("REPLY", attendee))
    assert found.name == f"IPM.Schedule.Meeting.{expected}"
    assert "METHOD:REPLY" in found.reason and "PARTSTAT" in found.reason


@pytest.mark.parametrize(
    ("method", "expected"),
    [("REQUEST", "IPM.Schedule.Meeting.Request"), ("CANCEL", "IPM.Schedule.Meeting.Canceled")],
)
def test_meeting_request_and_cancellation(method, expected):
    found = infer_message_class(_calendar(method))
    assert found == MessageClass(expected, f"text/calendar part with METHOD:{method}")
    assert not is_tracked(found.name)


def test_calendar_file_attached_to_a_note_is_not_a_meeting():
    msg = _message(
        'Subject: the invite file\nContent-Type: multipart/mixed; boundary="b"\n',
        "--b\nContent-Type: text/plain\n\nsee attached\n"
        "--b\nContent-Type: text/calendar\nContent-Disposition: attachment; filename=x.ics\n\n"
        "BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR\n--b--\n",
    )
    assert infer_message_class(msg).name == "IPM.Note"


@pytest.mark.parametrize(
    ("content_class", "expected"),
    [
        ("voice-ca", "IPM.Note.Microsoft.Voicemail.UM.CA"),
        ("voice-uc", "IPM.Note.Microsoft.Conversation.Voice"),
        ("missedcall", "IPM.Note.Microsoft.Missed.Voice"),
        ("fax", "IPM.Note.Microsoft.Fax"),
        ("Voice-CA", "IPM.Note.Microsoft.Voicemail.UM.CA"),
    ],
)
def test_unified_messaging_content_classes(content_class, expected):
    found = infer_message_class(_message(f"Subject: Voice Mail\nContent-Class: {content_class}\n"))
    assert found.name == expected
    assert found.reason == f"Content-Class: {content_class}"


def test_ordinary_content_class_is_a_note():
    found = infer_message_class(
        _message("Subject: x\nContent-Class: urn:content-classes:message\n")
    )
    assert found.name == "IPM.Note"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("failed", "REPORT.IPM.Note.NDR"),
        ("delayed", "REPORT.IPM.Note.Delayed.DR"),
        ("relayed", "REPORT.IPM.Note.DR"),
        ("delivered", "REPORT.IPM.Note.DR"),
        ("expanded", "REPORT.IPM.Note.DR"),
    ],
)
def test_delivery_status_notifications_by_action(action, expected):
    found = infer_message_class(_dsn(action))
    assert found.name == expected
    assert found.reason == f"multipart/report; report-type=delivery-status, Action: {action}"


def test_dsn_wins_over_auto_submitted():
    found = infer_message_class(_dsn("failed", extra="Auto-Submitted: auto-replied\n"))
    assert found.name == "REPORT.IPM.Note.NDR"


def test_failed_recipient_decides_a_mixed_report():
    msg = _dsn("delayed\n\nFinal-Recipient: rfc822; c@example.org\nAction: failed")
    assert infer_message_class(msg).name == "REPORT.IPM.Note.NDR"


def test_exchange_ndr_header_and_classic_bounces():
    exchange = _message("Subject: Undeliverable: hi\nX-MS-Exchange-Message-Is-Ndr:\n")
    assert infer_message_class(exchange).name == "REPORT.IPM.Note.NDR"
    classic = ParsedMessage.from_bytes(
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"Auto-Submitted: auto-replied\n\nThis message was created automatically.\n"
    )
    found = infer_message_class(classic)
    assert found.name == "REPORT.IPM.Note.NDR"
    assert "mailer-daemon@mx.example.org" in found.reason
    delay = ParsedMessage.from_bytes(
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"Subject: Warning: message 1abc delayed 24 hours\n\nStill trying.\n"
    )
    assert infer_message_class(delay).name == "REPORT.IPM.Note.Delayed.DR"


def test_a_person_writing_about_a_failed_delivery_is_a_note():
    msg = _message("Subject: Delivery failure of my order #123\n")
    assert infer_message_class(msg).name == "IPM.Note"
    reply = _message("Subject: Re: Undeliverable: hello\nReturn-Path: <ann@example.com>\n")
    assert infer_message_class(reply).name == "IPM.Note"


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ("manual-action/MDN-sent-manually; displayed", "REPORT.IPM.Note.IPNRN"),
        ("automatic-action/MDN-sent-automatically; deleted", "REPORT.IPM.Note.IPNNRN"),
    ],
)
def test_read_receipts(disposition, expected):
    msg = _message(
        "Subject: Read: hi\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\n',
        "--r\nContent-Type: text/plain\n\nYour message was read.\n"
        "--r\nContent-Type: message/disposition-notification\n\n"
        "Reporting-UA: mail.example.org\nFinal-Recipient: rfc822; bob@example.org\n"
        f"Disposition: {disposition}\n\n--r--\n",
    )
    found = infer_message_class(msg)
    assert found.name == expected
    assert disposition in found.reason


def test_smime():
    signed = _message(
        "Subject: signed\n"
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        'micalg=sha-256; boundary="s"\n',
        "--s\nContent-Type: text/plain\n\nHi\n"
        "--s\nContent-Type: application/pkcs7-signature; name=smime.p7s\n\nMIIB\n--s--\n",
    )
    assert infer_message_class(signed).name == "IPM.Note.SMIME.MultipartSigned"
    opaque = _message(
        "Subject: secret\n"
        "Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n"
        "Content-Transfer-Encoding: base64\n",
        "MIIB\n",
    )
    found = infer_message_class(opaque)
    assert found.name == "IPM.Note.SMIME"
    assert "enveloped-data" in found.reason
    pgp = _message(
        'Subject: pgp\nContent-Type: multipart/signed; protocol="application/pgp-signature"; '
        'boundary="s"\n',
        "--s\nContent-Type: text/plain\n\nHi\n"
        "--s\nContent-Type: application/pgp-signature\n\nx\n--s--\n",
    )
    assert infer_message_class(pgp).name == "IPM.Note"


@pytest.mark.parametrize(
    "headers",
    [
        "Subject: Out of office\nAuto-Submitted: auto-replied (vacation)\n",
        "Subject: Away\nX-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: ann@x\n",
        "Subject: Away\nX-Autoreply: yes\n",
        "Subject: Away\nPrecedence: auto_reply\n",
        "Subject: Automatic reply: Quarterly review\n",
        "Subject: Automatische Antwort: Angebot\n",
        "Subject: =?utf-8?q?R=C3=A9ponse_automatique=C2=A0:?= devis\n",
        "Subject: AUTO: Ann Smith is out of the office (returning 05/01)\n",
        "Subject: Thank you\nReturn-Path: <>\nPrecedence: bulk\n",
    ],
)
def test_auto_replies(headers):
    found = infer_message_class(_message(headers))
    assert found.name == "IPM.Note.Rules.OofTemplate.Microsoft"
    assert found.reason
    assert is_tracked(found.name)


@pytest.mark.parametrize(
    "headers",
    [
        "Subject: Incident INC001 updated\nAuto-Submitted: auto-generated\nPrecedence: bulk\n",
        "Subject: Auto: Angebot für Ihren Wagen\n",
        "Subject: Newsletter\nPrecedence: bulk\nReturn-Path: <>\nList-Id: <news.example.com>\n",
        "Subject: Re: Automatic reply: Quarterly review\n",
    ],
)
def test_business_mail_that_merely_looks_automatic_is_a_note(headers):
    assert infer_message_class(_message(headers)).name == "IPM.Note"


def test_plain_note_has_a_reason():
    found = infer_message_class(_message("Subject: Hello\n"))
    assert found.name == "IPM.Note"
    assert "text/plain" in found.reason
    assert str(found) == "IPM.Note"


def test_tracked_classes_compare_case_insensitively():
    assert TRACKED_CLASSES == ("IPM.Note", "IPM.Note.Rules.OofTemplate.Microsoft")
    assert is_tracked("ipm.note")
    assert is_tracked("IPM.NOTE.Rules.OofTemplate.Microsoft")
    assert not is_tracked("REPORT.IPM.Note.NDR")
    assert not is_tracked(None)
    assert is_tracked("IPM.Note.SMIME", allow=["IPM.Note", "ipm.note.smime"])
    assert not is_tracked("IPM.Note", allow=[])
