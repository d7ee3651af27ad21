"""Sending through an Exchange mailbox over EWS, with a copy in its Sent Items.

``send`` is one CreateItem with ``MessageDisposition=SendAndSaveCopy``: Exchange sends the MIME as
given and files a copy in the mailbox's Sent Items. That copy is what makes a crash between
"sent" and "marked sent in the CRM" recoverable: :meth:`EwsSender.was_sent` looks the Message-ID
up in Sent Items, so an email left in *Sending* is reconciled instead of sent twice.

The URL is a mailbox URL (``ews://`` / ``ewss://``, see :mod:`emailrouter_lib.mailboxes.ews_url`);
``mailbox=`` is the mailbox that sends. Envelope recipients not in the To/Cc headers are added as
Bcc; the envelope sender is the mailbox itself (Exchange does not take another one: sending as a
different From needs Send As / Send on Behalf rights on the server).
"""

from __future__ import annotations

from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from exchangelib import Account, Mailbox, Message
from exchangelib import errors as ews

from emailrouter_lib.errors import MailboxError, MailboxSendError, MailboxURLError, SecretError
from emailrouter_lib.mailboxes.ews_account import connect, ews_errors
from emailrouter_lib.mailboxes.ews_url import (
    EWS_SCHEMES,
    EwsMailboxURL,
    parse_ews_url,
    redact_ews_url,
)
from emailrouter_lib.secrets import resolve_secret

# EWS answers that will not change on a retry: the message or its recipients are wrong
PERMANENT = (
    ews.ErrorInvalidRecipients,
    ews.ErrorMessageSizeExceeded,
    ews.ErrorSendAsDenied,
    ews.ErrorMailRecipientNotFound,
)


class EwsSender:
    """A :class:`~emailrouter_lib.mailboxes.base.MailSender` for one Exchange mailbox."""

    def __init__(self, settings: EwsMailboxURL):
        self.settings = settings
        self.sender_id = f"ews://{settings.mailbox}"
        self._account: Account | None = None

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float | None = None, ca_file: str | None = None
    ) -> EwsSender:
        if url.partition(":")[0].lower() not in EWS_SCHEMES:
            raise MailboxURLError(
                "an Exchange sender needs an ews:// or ewss:// URL", mailbox=redact_ews_url(url)
            )
        return cls(parse_ews_url(url, timeout=timeout, ca_file=ca_file))

    def __repr__(self) -> str:
        return f"EwsSender({self.sender_id!r})"

    def __enter__(self) -> EwsSender:
        try:
            secret = resolve_secret(self.settings.password_ref or "")
        except SecretError as exc:
            raise SecretError(f"{self.sender_id}: {exc}") from None
        with ews_errors(self.settings, "connecting"):
            account = connect(self.settings, secret)
            _ = account.sent  # GetFolder once: the SavedItemFolderId of every send
        self._account = account
        return self

    def __exit__(self, *exc: object) -> None:
        self._account = None

    def send(self, message: bytes, *, envelope_from: str, recipients: Sequence[str]) -> None:
        account = self._open()
        headers = BytesHeaderParser().parsebytes(message)
        shown = {
            a.lower()
            for _, a in getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []))
            if a
        }
        bcc = [
            Mailbox(email_address=r) for r in dict.fromkeys(recipients) if r.lower() not in shown
        ]
        item = Message(
            account=account, folder=account.sent, mime_content=message, bcc_recipients=bcc or None
        )
        with ews_errors(self.settings, "sending a message"):  # connection, auth: MailboxError
            try:
                item.send(save_copy=True, copy_to_folder=account.sent)
            except PERMANENT as exc:
                raise MailboxSendError(
                    f"Exchange refused the message ({type(exc).__name__}: {exc})",
                    mailbox=self.sender_id,
                    permanent=True,
                ) from exc
            except ews.ResponseMessageError as exc:
                if isinstance(
                    exc, ews.ErrorServerBusy | ews.ErrorTimeoutExpired | ews.ErrorAccessDenied
                ):
                    raise  # ews_errors makes these connection / auth errors
                raise MailboxSendError(
                    f"Exchange did not send the message ({type(exc).__name__}: {exc}); "
                    "it may be retried",
                    mailbox=self.sender_id,
                    permanent=False,
                ) from exc

    def was_sent(self, message_id: str) -> bool:
        """True when Sent Items holds a message with this Message-ID (reconciling *Sending*)."""
        account = self._open()
        with ews_errors(self.settings, "looking in Sent Items"):
            return account.sent.filter(message_id=message_id).only("item_class").exists()

    def _open(self) -> Account:
        if self._account is None:
            raise MailboxError(
                "not connected; use the sender in a with-block", mailbox=self.sender_id
            )
        return self._account


def open_ews_sender(
    url: str, *, timeout: float | None = None, ca_file: str | None = None
) -> EwsSender:
    """The (not yet connected) Exchange sender for an ``ews(s)://`` URL."""
    return EwsSender.from_url(url, timeout=timeout, ca_file=ca_file)


__all__ = ["EwsSender", "open_ews_sender"]
