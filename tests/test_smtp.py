"""The SMTP and pickup senders against a real aiosmtpd: exactly what goes over the wire.

Envelope, headers, bodies and attachments of the demo CRM's Pending Send emails; AUTH PLAIN and
LOGIN; STARTTLS and implicit TLS with certificate verification on by default; connection reuse.
"""

from __future__ import annotations

import os
from email import message_from_bytes, policy

import pytest
from fixtures_smtp import (
    PASSWORD_ENV,
    parse,
    send_pending,
)
from routing_helpers import crm_store, demo_crm

from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.sqlite import insert_rows, new_id
from emailrouter_lib.errors import MailboxAuthError, MailboxTLSError, MailboxURLError
from emailrouter_lib.mailboxes import open_sender
from emailrouter_lib.mailboxes.smtp import SmtpSettings

RAW = b"From: a@contoso.example\r\nTo: b@fabrikam.example\r\nSubject: hi\r\n\r\nhello\r\n"


def by_subject(sink) -> dict[str, object]:
    return {parse(m)["Subject"].split(" CRM:")[0]: m for m in sink.messages}


def test_the_sink_receives_exactly_the_crm_email(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    result = send_pending(crm_url, smtp_sink.url(None))
    assert result.outgoing_counts == {"sent": 3}
    assert len(smtp_sink.messages) == 3
    got = by_subject(smtp_sink)["Litware pilot: pricing sheet"]
    assert got.mail_from == seed.BOB_ADDRESS and got.rcpt_tos == [seed.GRACE_ADDRESS]
    msg = parse(got)
    assert msg["From"] == "Bob Sales <bob@contoso.example>"
    assert msg["To"] == "Grace Prospect <grace@litware.example>"
    assert msg["Subject"] == "Litware pilot: pricing sheet CRM:0002002"  # Bob's next counter
    assert msg["Sender"] is None  # Send As by default
    stored = crm_store(crm_url).email(seed.PENDING_PRICING.activityid)
    assert msg["Message-ID"] == stored["messageid"]
    assert msg["Message-ID"].endswith("@contoso.example>")  # under the organisation's domain
    assert (stored["statuscode"], stored["statecode"]) == (3, 1)
    assert stored["trackingtoken"] == "CRM:0002002" and stored["subject"] == msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.strip() == "The pricing sheet is attached."
    assert "<p>The pricing sheet is attached.</p>" in html
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "pricing.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == seed.PENDING_PRICING.attachment[2]


def test_cc_and_bcc_parties_reach_the_envelope_but_bcc_no_header(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    crm = crm_store(crm_url)
    email = seed.PENDING_SHIPPING.activityid
    with crm.transaction() as conn:
        insert_rows(
            conn,
            "activityparty",
            [
                {"activitypartyid": new_id(), "activityid": email, "participationtypemask": 3,
                 "partyid": seed.DAN.id, "partyobjecttypecode": "contact",
                 "addressused": seed.DAN_ADDRESS},
                {"activitypartyid": new_id(), "activityid": email, "participationtypemask": 4,
                 "partyid": None, "partyobjecttypecode": None,
                 "addressused": "audit@contoso.example"},
            ],
        )  # fmt: skip
    send_pending(crm_url, smtp_sink.url(None))
    got = by_subject(smtp_sink)["Your replacement printer ships today"]
    assert got.rcpt_tos == [seed.CAROL_ADDRESS, seed.DAN_ADDRESS, "audit@contoso.example"]
    msg = parse(got)
    assert msg["Cc"] == "Dan Buyer <dan.buyer@fabrikam.example>"
    assert msg["Bcc"] is None and b"audit@contoso.example" not in got.data


@pytest.mark.parametrize("mechanism", ["plain", "login"])
def test_auth_mechanism_can_be_forced(tmp_path, smtp_sink_auth, mechanism):
    crm_url = demo_crm(tmp_path)
    result = send_pending(crm_url, smtp_sink_auth.url("crm", auth=mechanism))
    assert result.outgoing_counts == {"sent": 3}
    assert {(m.login, m.mechanism) for m in smtp_sink_auth.messages} == {("crm", mechanism.upper())}


def test_wrong_password_is_an_auth_error_without_the_password(smtp_sink_auth, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    sender = open_sender(smtp_sink_auth.url("crm"))
    with pytest.raises(MailboxAuthError) as caught:
        sender.__enter__()
    assert "535" in str(caught.value) and "not-the-password" not in str(caught.value)


def test_starttls_verifies_the_certificate(smtp_sink_starttls):
    with open_sender(smtp_sink_starttls.url("crm")) as sender:
        sender.send(RAW, envelope_from="a@contoso.example", recipients=["b@fabrikam.example"])
    assert len(smtp_sink_starttls.messages) == 1
    assert smtp_sink_starttls.messages[0].login == "crm"
    with pytest.raises(MailboxTLSError, match="not trusted"):  # no cafile: system CAs only
        open_sender(smtp_sink_starttls.url("crm", cafile=False)).__enter__()


def test_implicit_tls_verifies_the_certificate(smtp_sink_tls):
    assert smtp_sink_tls.url("crm").startswith("smtps://")
    with open_sender(smtp_sink_tls.url("crm")) as sender:
        sender.send(RAW, envelope_from="a@contoso.example", recipients=["b@fabrikam.example"])
    assert message_from_bytes(smtp_sink_tls.messages[0].data, policy=policy.default)["To"]
    with pytest.raises(MailboxTLSError, match="not trusted"):
        open_sender(smtp_sink_tls.url("crm", cafile=False)).__enter__()


def test_starttls_required_but_not_offered_fails(smtp_sink):
    with pytest.raises(MailboxTLSError, match="does not offer STARTTLS"):
        open_sender(smtp_sink.url(None, starttls="1")).__enter__()


def test_one_connection_is_reused_unless_told_otherwise(smtp_sink):
    for per_connection, sessions in ((None, 1), ("1", 5)):
        before = smtp_sink.sessions
        extra = {"per_connection": per_connection} if per_connection else {}
        with open_sender(smtp_sink.url(None, **extra)) as sender:
            for _ in range(5):
                sender.send(RAW, envelope_from="a@contoso.example", recipients=["b@x.example"])
        assert smtp_sink.sessions - before == sessions


def test_delegate_access_adds_a_sender_header(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    send_pending(crm_url, smtp_sink.url(None, access="delegate", sender="svc-crm@contoso.example"))
    got = by_subject(smtp_sink)["Case 4711: portal access restored"]
    msg = parse(got)
    assert msg["From"] == "Support <support@contoso.example>"
    assert msg["Sender"] == "svc-crm@contoso.example"
    assert got.mail_from == "svc-crm@contoso.example"


def test_sender_urls_refuse_literal_and_cleartext_passwords():
    with pytest.raises(MailboxURLError, match="refused"):
        SmtpSettings.from_url("smtp://crm:hunter2@127.0.0.1:25")
    with pytest.raises(MailboxURLError, match="clear text"):
        SmtpSettings.from_url("smtp://crm@mail.contoso.example:25?password=env:X")
    settings = SmtpSettings.from_url("smtp://crm@mail.contoso.example?starttls=1&password=env:X")
    assert (
        settings.port == 587
        and settings.sender_id == "smtp://crm@mail.contoso.example:587?starttls=1"
    )
    assert SmtpSettings.from_url("smtps://mail.contoso.example").port == 465
    with pytest.raises(MailboxURLError, match="unknown sender type"):
        open_sender("ftp://example")


def test_pickup_directory_writes_one_eml_per_message_with_the_envelope(tmp_path):
    sender = open_sender(f"pickup://{tmp_path / 'out'}")
    with sender:
        sender.send(
            RAW, envelope_from="a@contoso.example", recipients=["b@x.example", "c@y.example"]
        )
    (written,) = list((tmp_path / "out").glob("*.eml"))
    data = written.read_bytes()
    assert data.startswith(b"X-Sender: a@contoso.example\r\nX-Receiver: b@x.example\r\n")
    assert data.endswith(RAW) and not list((tmp_path / "out").glob(".*"))


def test_demo_run_sends_to_the_pickup_directory_by_default(tmp_path):
    crm_url = demo_crm(tmp_path)
    result = send_pending(crm_url)
    assert result.outgoing_counts == {"sent": 3}
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3
    assert os.path.getsize(files[0]) > 200


def test_non_ascii_names_subjects_and_bodies_survive_the_wire(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    crm = crm_store(crm_url)
    with crm.transaction() as conn:
        conn.execute(
            "UPDATE email SET subject = ?, description = ?, mimetype = 'text/plain' "
            "WHERE activityid = ?",
            ("Überweisung für Zoë", "Grüße aus Köln – 5 €\n", seed.PENDING_SHIPPING.activityid),
        )
        conn.execute("UPDATE systemuser SET fullname = 'Älice Ådmin' WHERE systemuserid = ?",
                     (seed.ALICE.id,))  # fmt: skip
    send_pending(crm_url, smtp_sink.url(None))
    (got,) = [m for m in smtp_sink.messages if m.mail_from == seed.ALICE_ADDRESS]
    assert got.data.isascii()  # 7-bit on the wire: encoded words and quoted-printable
    msg = parse(got)
    assert msg["Subject"].startswith("Überweisung für Zoë CRM:")
    assert msg["From"] == "Älice Ådmin <alice@contoso.example>"
    assert msg.get_content().replace("\r\n", "\n") == "Grüße aus Köln – 5 €\n"
