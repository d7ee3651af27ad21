"""Sending through Exchange over EWS: SendAndSaveCopy, Sent Items reconciliation, error kinds."""

from __future__ import annotations

import pytest
from fixtures_ews import SUPPORT_BOX, ews_url
from routing_helpers import message

from emailrouter_lib.errors import MailboxAuthError, MailboxConnectError, MailboxSendError
from emailrouter_lib.mailboxes.base import MailSender
from emailrouter_lib.mailboxes.ews_sender import open_ews_sender


def test_sender_conforms_to_the_protocol_and_names_no_secret(ews):
    sender = open_ews_sender(ews_url(ews))
    assert isinstance(sender, MailSender)
    assert sender.sender_id == "ews://support@contoso.example"
    assert "EWS_PASSWORD" not in repr(sender) and "Ews-Secret" not in repr(sender)


def test_send_and_save_copy_delivers_and_files_a_copy_for_reconciliation(ews):
    msg = message("Your case", sender=SUPPORT_BOX, to="carol@fabrikam.example")
    with open_ews_sender(ews_url(ews)) as sender:
        sender.send(
            msg.as_bytes(),
            envelope_from=SUPPORT_BOX,
            recipients=["carol@fabrikam.example", "bob@contoso.example"],  # bob only as Bcc
        )
        assert sender.was_sent(msg["Message-ID"])
        assert not sender.was_sent("<never-sent@test.example>")
    (sent,) = ews.sent
    assert sent["disposition"] == "SendAndSaveCopy" and sent["saved_in"] == SUPPORT_BOX
    assert set(sent["recipients"]) == {"carol@fabrikam.example", "bob@contoso.example"}
    assert [i.message_id for i in ews.items(SUPPORT_BOX, "sentitems")] == [msg["Message-ID"]]
    assert [i.message_id for i in ews.items("bob@contoso.example")] == [msg["Message-ID"]]
    create = ews.requests("CreateItem")[0]
    assert create.impersonated == SUPPORT_BOX and b"SendAndSaveCopy" in create.body


def test_refused_message_is_a_permanent_send_error(ews):
    msg = message("nobody", sender=SUPPORT_BOX)
    del msg["To"]
    with open_ews_sender(ews_url(ews)) as sender, pytest.raises(MailboxSendError) as info:
        sender.send(msg.as_bytes(), envelope_from=SUPPORT_BOX, recipients=[])
    assert info.value.permanent and "ErrorInvalidRecipients" in str(info.value)


def test_connection_and_auth_failures_are_mailbox_errors_not_send_errors(ews, monkeypatch):
    msg = message("x", sender=SUPPORT_BOX)
    with open_ews_sender(ews_url(ews)) as sender:
        ews.inject("drop", op="CreateItem")
        with pytest.raises(MailboxConnectError):
            sender.send(msg.as_bytes(), envelope_from=SUPPORT_BOX, recipients=["a@b.example"])
    monkeypatch.setenv("EWS_PASSWORD", "wrong")
    with pytest.raises(MailboxAuthError), open_ews_sender(ews_url(ews)):
        pass


def test_open_sender_knows_ews_urls(ews):
    from emailrouter_lib.mailboxes.ews_sender import EwsSender
    from emailrouter_lib.mailboxes.schemes import open_sender

    assert isinstance(open_sender(ews_url(ews)), EwsSender)
