"""S/MIME-signed mail is skipped by default, as the Email Router did, and tracked when asked with
`emailrouter route --track CLASS` (the README's promise, issue 15.8)."""

from __future__ import annotations

from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from routing_helpers import crm_store, demo_crm, drop, route_in_subprocess

from emailrouter_lib.crm import demo


def signed_message() -> bytes:
    msg = MIMEMultipart("signed", protocol="application/pkcs7-signature", micalg="sha-256")
    msg["From"], msg["To"] = demo.CAROL_ADDRESS, demo.SUPPORT_ADDRESS
    msg["Subject"], msg["Message-ID"] = "Signed order", "<signed-order@test.example>"
    msg.attach(MIMEText("Please ship the order.\n"))
    signature = MIMEApplication(b"0\x82\x01\x00fake-signature", "pkcs7-signature")
    signature.add_header("Content-Disposition", "attachment", filename="smime.p7s")
    msg.attach(signature)
    return msg.as_bytes()


def test_signed_mail_is_skipped_by_default_and_tracked_with_track(tmp_path):
    crm_url = demo_crm(tmp_path)
    drop(tmp_path / "box", signed_message())
    url = f"maildir://{tmp_path / 'box'}?owner=queue:{demo.SUPPORT_ADDRESS}"
    first = route_in_subprocess(crm_url, url)
    assert first.returncode == 0, first.stderr
    assert "skipped:IPM.Note.SMIME.MultipartSigned" in first.stdout
    assert not crm_store(crm_url).emails_with_message_id("<signed-order@test.example>")

    other = tmp_path / "again"
    other.mkdir()
    crm_url = demo_crm(other)
    tracked = route_in_subprocess(crm_url, url, extra=("--track", "IPM.Note.SMIME.MultipartSigned"))
    assert tracked.returncode == 0, tracked.stderr
    assert crm_store(crm_url).emails_with_message_id("<signed-order@test.example>")
