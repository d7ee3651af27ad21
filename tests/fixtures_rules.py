"""Rules on the protocol-level fake Exchange (tests/ews_server), and what it does not do alone.

The fake stores inbox rules per mailbox but does not run them. :func:`deliver_through_rules` is the
small extension the rule tests need: it delivers a message and then does what Exchange's transport
does for an enabled forward-as-attachment rule (unless an exception's ``FromAddresses`` matches
the sender): it sends, from the mailbox owner, a wrapper with the original attached as
``message/rfc822`` to each recipient, delivered to local mailboxes. Conditions are not evaluated
(our rule has none; a rule with conditions is treated as not matching).

Candidates to move into the fake itself: running rules on delivery, and ``OutlookRuleBlobExists``
per mailbox (the fake always answers false).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from ews_server import FakeEws
from ews_server.soap import find, findall, text
from fixtures_ews import FORWARD_BOX, PASSWORD, SERVICE, SERVICE_LOGON

from emailrouter_lib.mailboxes.ews_http import close_ews_connections

T = "http://schemas.microsoft.com/exchange/services/2006/types"
RULE_NAME = "Dynamics CRM Email Router"


def rules_url(server: FakeEws, **params: str) -> str:
    """The service account's ``ews://`` URL without ``mailbox=`` (the rules code adds it)."""
    query = {"password": "env:EWS_PASSWORD", **params}
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ews://CONTOSO%5Csvc@{server.host}:{server.port}/EWS/Exchange.asmx?{tail}"


def _address_xml(address: str) -> str:
    return (
        f"<t:Address><t:EmailAddress>{address}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Address>"
    )


def rule_xml(
    name: str = RULE_NAME,
    *,
    forward_to: str | None = FORWARD_BOX,
    except_from: str | None = FORWARD_BOX,
    enabled: bool = True,
    priority: int = 1,
    move_to_junk: bool = False,
    contains_subject: str | None = None,
) -> str:
    """A ``t:Rule`` element as Outlook or this tool would have stored it."""
    parts = [
        f'<t:Rule xmlns:t="{T}"><t:DisplayName>{name}</t:DisplayName>',
        f"<t:Priority>{priority}</t:Priority><t:IsEnabled>{str(enabled).lower()}</t:IsEnabled>",
    ]
    if contains_subject:
        parts.append(
            f"<t:Conditions><t:ContainsSubjectStrings><t:String>{contains_subject}</t:String>"
            "</t:ContainsSubjectStrings></t:Conditions>"
        )
    if except_from:
        parts.append(
            f"<t:Exceptions><t:FromAddresses>{_address_xml(except_from)}</t:FromAddresses></t:Exceptions>"
        )
    actions = []
    if forward_to:
        actions.append(
            f"<t:ForwardAsAttachmentToRecipients>{_address_xml(forward_to)}</t:ForwardAsAttachmentToRecipients>"
        )
    if move_to_junk:
        actions.append('<t:MoveToFolder><t:DistinguishedFolderId Id="junkemail"/></t:MoveToFolder>')
    parts.append(f"<t:Actions>{''.join(actions)}</t:Actions></t:Rule>")
    return "".join(parts)


def rule_names(server: FakeEws, mailbox: str) -> list[str]:
    return [text(r, "t:DisplayName") for r in server.rules(mailbox)]


def deliver_through_rules(server: FakeEws, mailbox: str, message: EmailMessage) -> list[str]:
    """Deliver *message* to *mailbox* and run its forward-as-attachment rules; the addresses that
    received a wrapper."""
    server.deliver(mailbox, message)
    sender = email.utils.parseaddr(str(message.get("From", "")))[1].lower()
    reached = []
    for rule in server.rules(mailbox):
        if text(rule, "t:IsEnabled") not in ("true", "1") or find(rule, "t:Conditions") is not None:
            continue
        excepted = {
            (a.text or "").lower()
            for a in findall(rule, "t:Exceptions/t:FromAddresses/t:Address/t:EmailAddress")
        }
        if sender in excepted:
            continue
        for node in findall(
            rule, "t:Actions/t:ForwardAsAttachmentToRecipients/t:Address/t:EmailAddress"
        ):
            recipient = (node.text or "").lower()
            wrapper = EmailMessage()
            wrapper["From"] = mailbox
            wrapper["To"] = recipient
            wrapper["Subject"] = f"FW: {message.get('Subject', '')}"
            wrapper["Message-ID"] = email.utils.make_msgid(domain="rules.fake-ews.test")
            wrapper.set_content("")
            wrapper.add_attachment(message)
            if recipient in server.store.users:
                server.deliver(recipient, wrapper)
            reached.append(recipient)
    return reached


def user_address(n: int) -> str:
    return f"user{n:04d}@contoso.example"


@pytest.fixture(name="rules_ews")
def rules_ews_fixture(monkeypatch) -> Iterator[FakeEws]:
    """A fake Exchange with the service account (impersonation, and FullAccess on every mailbox
    added through :func:`add_mailboxes`) and the forward mailbox."""
    monkeypatch.setenv("EWS_PASSWORD", PASSWORD)
    with FakeEws(auth=("Basic",)) as server:
        server.add_user(SERVICE, PASSWORD, logons=(SERVICE_LOGON,), impersonation=True)
        server.add_user(FORWARD_BOX)
        yield server
    close_ews_connections()


def add_mailboxes(server: FakeEws, addresses) -> None:
    """Mailboxes the service account may open as a delegate, too (FullAccess)."""
    service = server.store.users[SERVICE]
    for address in addresses:
        server.add_user(address)
        service.full_access.add(address.lower())


__all__ = [
    "RULE_NAME",
    "add_mailboxes",
    "deliver_through_rules",
    "rule_names",
    "rule_xml",
    "rules_ews_fixture",
    "rules_url",
    "user_address",
]
