"""Turn a CRM email into the MIME message the transport sends.

HTML and plain-text bodies (``multipart/alternative``; the text is derived from the HTML when the
CRM holds only HTML), attachments from ``activitymimeattachment``, the tracking token already in
the subject, a Message-ID under the organisation's domain, ``In-Reply-To`` / ``References`` when
the email answers a tracked one, and ``Sender:`` when the profile sends on behalf (delegate).

Built with the compat32 MIME classes rather than ``EmailMessage``: the modern header registry
parses every header it is given again, which made building a message cost more than sending it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import encoders
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, formatdate

from emailrouter_lib.crm.base import (
    PARTICIPATION_BCC,
    PARTICIPATION_CC,
    PARTICIPATION_TO,
    NewAttachment,
    OutgoingEmail,
)

_POLICY = compat32.clone(linesep="\r\n")
_QP_UTF8 = Charset("utf-8")
_QP_UTF8.body_encoding = QP

_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/tr|/h[1-6])\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")
_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>")


def html_to_text(markup: str) -> str:
    """A readable plain-text version of an HTML body (line breaks kept, tags dropped)."""
    text = _DROP.sub("", markup)
    text = _BLOCK_END.sub("\n", text)
    text = html.unescape(_TAG.sub("", text)).replace("\xa0", " ")
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def message_id_for(activityid: str, domain: str) -> str:
    """The email's Message-ID: derived from its activity id, so every attempt uses the same one
    (a receiver that sees it twice can tell, and the CRM can find replies by it)."""
    return f"<crm.{activityid.replace('-', '').lower()}@{domain}>"


def subject_with_token(subject: str, token: str | None) -> str:
    if not token or token.lower() in subject.lower():
        return subject
    return f"{subject} {token}".strip()


@dataclass(frozen=True)
class BuiltMessage:
    raw: bytes
    envelope_from: str
    recipients: list[str]


def build_message(
    email: OutgoingEmail,
    *,
    subject: str,
    message_id: str,
    attachments: Sequence[NewAttachment] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    delegate_sender: str | None = None,
) -> BuiltMessage:
    """The bytes to send and the SMTP envelope (Bcc recipients only in the envelope)."""
    sender = email.sender
    if sender is None or not sender.emailaddress:
        raise ValueError("the email has no sending user or queue with an address")
    body = email.description or ""
    if (email.mimetype or "text/html").lower() == "text/plain":
        content: Message = _text(body if body.endswith("\n") else body + "\n", "plain")
    else:
        content = MIMEMultipart("alternative")
        content.attach(_text(html_to_text(body), "plain"))
        content.attach(_text(_html_document(body), "html"))
    if attachments:
        msg: Message = MIMEMultipart("mixed")
        msg.attach(content)
        for attachment in attachments:
            msg.attach(_attachment(attachment))
    else:
        msg = content
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # on the top-level header only (RFC 2045 §4)

    headers: list[tuple[str, str]] = [("From", _address(sender.name, sender.emailaddress))]
    if delegate_sender and delegate_sender.lower() != sender.emailaddress.lower():
        headers.append(("Sender", delegate_sender))
    recipients: list[str] = []
    for mask, header in ((PARTICIPATION_TO, "To"), (PARTICIPATION_CC, "Cc")):
        shown = [
            _address(p.name, p.addressused)
            for p in email.parties
            if p.participationtypemask == mask and p.addressused
        ]
        if shown:
            headers.append((header, ", ".join(shown)))
    seen: set[str] = set()
    for p in email.parties:
        if p.participationtypemask in (PARTICIPATION_TO, PARTICIPATION_CC, PARTICIPATION_BCC):
            address = (p.addressused or "").strip()
            if address and address.lower() not in seen:
                seen.add(address.lower())
                recipients.append(address)
    headers += [
        ("Subject", _header(subject)),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    refs = [r for r in dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])]) if r]
    if refs:
        headers.append(("References", " ".join(refs)))
    mime = list(msg.items())  # MIME-Version, Content-Type, ...: after the addressing headers
    for name in {name for name, _ in mime}:
        del msg[name]
    for name, value in [*headers, *mime]:
        msg[name] = value
    envelope_from = delegate_sender or sender.emailaddress
    return BuiltMessage(msg.as_bytes(policy=_POLICY), envelope_from, recipients)


def _address(name: str | None, address: str) -> str:
    return formataddr((name or "", address.strip()), charset="utf-8")


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _text(text: str, subtype: str) -> MIMEText:
    if text.isascii():
        return MIMEText(text, subtype, "us-ascii")
    return MIMEText(text, subtype, _QP_UTF8)


def _attachment(attachment: NewAttachment) -> MIMEBase:
    maintype, _, subtype = (attachment.mimetype or "application/octet-stream").partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(attachment.body)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    if attachment.attachmentcontentid:
        part["Content-ID"] = f"<{attachment.attachmentcontentid}>"
    return part


def _html_document(body: str) -> str:
    if re.search(r"(?i)<html\b", body):
        return body
    return f'<html><head><meta charset="utf-8"></head><body>{body}</body></html>\n'


__all__ = [
    "BuiltMessage",
    "build_message",
    "html_to_text",
    "message_id_for",
    "subject_with_token",
]
