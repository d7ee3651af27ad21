"""Per-message decisions of an incoming batch: one outcome per message, with its reason.

A batch is decided in two passes: first every item is parsed and classified, then the CRM is asked
once for every Message-ID and every address in the batch, and each message is decided against those
answers. Outcomes (reference/email-router.md §3): ``created``, ``duplicate``, ``skipped:<class>``,
``filtered:<rule>``, ``invalid-forward``, ``quarantined:<error>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from emailrouter_lib.crm.base import (
    CrmBackend,
    EmailRef,
    NewAttachment,
    NewEmail,
    Organization,
    Party,
    Recipient,
)
from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail.classify import infer_message_class, is_tracked
from emailrouter_lib.mail.forward import unwrap_forward
from emailrouter_lib.mail.message import ParsedMessage
from emailrouter_lib.mailboxes.base import Owner
from emailrouter_lib.routing.storable import storable, storable_record
from emailrouter_lib.tracking.correlate import Correlation, correlate
from emailrouter_lib.tracking.filtering import filter_rule
from emailrouter_lib.tracking.resolve import resolve_parties
from emailrouter_lib.tracking.smartmatch import SmartMatcher
from emailrouter_lib.tracking.threadindex import conversation_hash
from emailrouter_lib.tracking.tokens import TrackingTokenFormat


@dataclass
class Decision:
    """What happens to one mailbox item, and the row it adds to the run's table."""

    key: str
    outcome: str
    reason: str
    message_id: str | None = None
    subject: str | None = None
    sender: str | None = None
    message_class: str | None = None
    email: NewEmail | None = None
    correlation: str | None = None
    regarding: str | None = None
    raw: bytes | None = field(default=None, repr=False)  # kept only for quarantine
    # the item's bytes while its batch is written: a CRM that refuses this one email quarantines it
    original: bytes | None = field(default=None, repr=False)

    @property
    def activityid(self) -> str | None:
        return self.email.activityid if self.email else None


@dataclass
class _Item:
    key: str
    raw: bytes
    wrapper: ParsedMessage | None = None  # the forward mailbox item, when unwrapped
    message: ParsedMessage | None = None
    message_class: str | None = None
    class_reason: str | None = None
    decision: Decision | None = None


class BatchDecider:
    """Decides the items of one mailbox, batch by batch, against one CRM."""

    def __init__(
        self,
        crm: CrmBackend,
        org: Organization,
        *,
        owner: Owner | None,
        is_forward_mailbox: bool,
        tracked_classes: Sequence[str],
        class_of: Callable[[str], str | None] | None = None,
    ):
        self.crm = crm
        # A server that knows the message class (EWS ItemClass) is believed over MIME inference;
        # not for forward mailboxes, where the wrapper's class says nothing about the original.
        self.class_of = None if is_forward_mailbox else class_of
        self.org = org
        self.owner = owner
        self.is_forward_mailbox = is_forward_mailbox
        self.tracked = tuple(tracked_classes)
        self.tokens = TrackingTokenFormat.from_organization(org)
        self.smart_matcher = (
            SmartMatcher(crm, org, self.tokens) if org.enablesmartmatching else None
        )
        self._owner_recipients: list[Recipient] | None = None

    # -- pass 1: parse, unwrap, classify ---------------------------------------------------------
    def _prepare(self, key: str, raw: bytes) -> _Item:
        item = _Item(key, raw)
        try:
            message = ParsedMessage.from_bytes(raw, origin=key)
            if self.is_forward_mailbox:
                item.wrapper = message
                message = unwrap_forward(message)
                if message is None:
                    item.decision = Decision(
                        key,
                        "invalid-forward",
                        "InvalidForwardMailItem: the item does not carry the original as a"
                        " message/rfc822 attachment; forward as attachment",
                        message_id=item.wrapper.effective_message_id,
                        subject=item.wrapper.subject,
                        sender=item.wrapper.from_address,
                        raw=raw,
                    )
                    return item
            item.message = message
            server_class = self.class_of(key) if self.class_of else None
            if server_class:
                item.message_class, item.class_reason = server_class, "ItemClass from the server"
            else:
                cls = infer_message_class(message)
                item.message_class, item.class_reason = cls.name, cls.reason
        except MessageError as exc:
            item.decision = Decision(key, "quarantined:unparseable", str(exc), raw=raw)
        except Exception as exc:  # a message must never stop the batch
            item.decision = _crashed(key, raw, exc)
        return item

    # -- pass 2: decide against batched CRM answers ----------------------------------------------
    def decide(self, fetched: Iterable[tuple[str, bytes]]) -> list[Decision]:
        """One decision per item, in order; one message's text never fails the others.

        Every step that reads a message (its row, the batched lookups' keys, the decision) runs
        per item, so whatever one message raises turns that message into ``quarantined:<error>``.
        What leaves this method is storable (:mod:`emailrouter_lib.routing.storable`).
        """
        items = [self._prepare(key, raw) for key, raw in fetched]
        routable: list[_Item] = []
        for item in items:
            if item.decision is not None:
                continue
            try:
                if is_tracked(item.message_class or "", self.tracked):
                    routable.append(item)
                else:
                    reason = item.class_reason
                    item.decision = self._row(item, f"skipped:{item.message_class}", reason)
            except Exception as exc:  # a bounce's Subject or From that cannot be read
                item.decision = _crashed(item.key, item.raw, exc)

        ids: set[str] = set()
        addresses: set[str] = set()
        forwarders: set[str] = set()
        for item in list(routable):
            try:
                item_ids, item_addresses, forwarder = _lookup_keys(item)
            except Exception as exc:
                item.decision = _crashed(item.key, item.raw, exc)
                routable.remove(item)
                continue
            ids |= item_ids
            addresses |= item_addresses
            if forwarder:
                forwarders.add(forwarder)
        known = self.crm.emails_by_message_id(ids) if ids else {}
        parties = self.crm.parties_by_address(addresses) if addresses else {}
        recipients = self._recipients(routable, forwarders)

        seen_in_batch: set[str] = set()
        for item in routable:
            try:
                item.decision = self._decide_one(item, known, parties, recipients, seen_in_batch)
            except Exception as exc:
                item.decision = _crashed(item.key, item.raw, exc)
        decisions = [_storable_decision(item.decision, item.message) for item in items]
        for item, decision in zip(items, decisions, strict=True):
            if decision.email is not None:
                decision.original = item.raw
        return decisions

    def _recipients(
        self, routable: list[_Item], forwarders: set[str]
    ) -> dict[str, list[Recipient]]:
        wanted = set(forwarders)
        if self.owner is None and not self.is_forward_mailbox:
            for item in routable:
                wanted.update(addr for _, addr in (*item.message.to, *item.message.cc))
        wanted = {storable(a) for a in wanted}
        found = self.crm.recipients_by_address(wanted) if wanted else {}
        if self.owner is not None and self._owner_recipients is None:
            self._owner_recipients = self.crm.recipients_by_address([self.owner.address]).get(
                self.owner.address, []
            )
        return found

    def _candidates(
        self, item: _Item, recipients: Mapping[str, list[Recipient]]
    ) -> list[Recipient]:
        if item.wrapper is not None:  # forward mailbox: on behalf of the forwarding user
            return [
                r
                for r in recipients.get(item.wrapper.from_address or "", [])
                if r.entity == "systemuser"
            ]
        if self.owner is not None:
            entity = "systemuser" if self.owner.kind == "user" else "queue"
            return [r for r in self._owner_recipients or [] if r.entity == entity]
        result: list[Recipient] = []
        for _, addr in (*item.message.to, *item.message.cc):
            result += [r for r in recipients.get(addr, []) if r not in result]
        return result

    def _decide_one(
        self,
        item: _Item,
        known: Mapping[str, EmailRef],
        parties: Mapping[str, list[Party]],
        recipients: Mapping[str, list[Recipient]],
        seen_in_batch: set[str],
    ) -> Decision:
        msg = item.message
        mid = storable(msg.effective_message_id)
        if mid in known or mid in seen_in_batch:
            where = "in the CRM" if mid in known else "earlier in this batch"
            return self._row(item, "duplicate", f"Duplicate: Message-ID {mid} is already {where}")
        candidates = self._candidates(item, recipients)
        if not candidates:
            who = (
                f"forwarding user {item.wrapper.from_address}"
                if item.wrapper is not None
                else str(self.owner)
                if self.owner
                else "none of the To/Cc addresses"
            )
            return self._row(item, "filtered:no-crm-recipient", f"{who} is not a CRM user or queue")
        correlation = correlate(
            msg,
            org=self.org,
            tokens=self.tokens,
            by_message_id=known,
            lookups=self.crm,
            smart_matcher=self.smart_matcher,
        )
        sender_parties = parties.get(msg.from_address or "", [])
        accepted, first_rule = None, None
        for recipient in candidates:
            rule = filter_rule(
                recipient,
                org=self.org,
                correlated=correlation.correlated,
                sender_parties=sender_parties,
            )
            if rule is None:
                accepted = recipient
                break
            first_rule = first_rule or f"{rule} ({recipient.emailaddress})"
        if accepted is None:
            rule_name = first_rule.split(" ", 1)[0]
            return self._row(
                item, f"filtered:{rule_name}", f"rejected by {first_rule}", correlation=correlation
            )
        if not sender_parties and msg.from_address and accepted.autocreatecontact:
            contact = self.crm.create_contact(storable(msg.from_address), storable(msg.from_name))
            parties = {**parties, msg.from_address: [contact]}
        seen_in_batch.add(mid)
        email = self._new_email(msg, mid, correlation, accepted, parties)
        reason = f"accepted by {accepted.entity} {accepted.emailaddress}; {correlation.explanation}"
        if email.notifications:
            reason += "; an attachment over maxuploadfilesize was not saved"
        return self._row(item, "created", reason, email=email, correlation=correlation)

    def _new_email(
        self,
        msg: ParsedMessage,
        mid: str,
        correlation: Correlation,
        accepted: Recipient,
        parties: Mapping[str, list[Party]],
    ) -> NewEmail:
        attachments, oversized = [], False
        for part in msg.attachments:
            if len(part.payload) > self.org.maxuploadfilesize:
                oversized = True
                continue
            attachments.append(
                NewAttachment(part.filename, part.content_type, part.payload, part.content_id)
            )
        ref = correlation.email
        return NewEmail(
            activityid=str(uuid.uuid4()),
            subject=msg.subject[:800],
            description=msg.description,
            messageid=mid,
            sender=msg.from_address,
            torecipients=";".join(addr for _, addr in msg.to)[:500] or None,
            inreplyto=msg.in_reply_to,
            conversationindex=msg.thread_index,
            baseconversationindexhash=conversation_hash(msg.thread_index),
            trackingtoken=correlation.token,
            correlationmethod=correlation.method,
            correlatedactivityid=ref.activityid if ref else None,
            regardingobjectid=ref.regardingobjectid if ref else None,
            regardingobjecttypecode=ref.regardingobjecttypecode if ref else None,
            acceptingentityid=accepted.id,
            acceptingentitytypecode=accepted.entity,
            senton=msg.date.isoformat() if msg.date else None,
            mimetype="message/rfc822",
            notifications=1 if oversized else 0,
            parties=resolve_parties(
                (msg.from_name, msg.from_address),
                msg.to,
                msg.cc,
                msg.bcc,
                parties=parties,
                org=self.org,
            ),
            attachments=attachments,
        )

    def _row(
        self,
        item: _Item,
        outcome: str,
        reason: str | None,
        *,
        email: NewEmail | None = None,
        correlation: Correlation | None = None,
    ) -> Decision:
        msg = item.message
        ref = correlation.email if correlation else None
        return Decision(
            key=item.key,
            outcome=outcome,
            reason=reason or "",
            message_id=msg.effective_message_id if msg else None,
            subject=msg.subject if msg else None,
            sender=msg.from_address if msg else None,
            message_class=item.message_class,
            email=email,
            correlation=correlation.method_name if correlation else None,
            regarding=(
                f"{ref.regardingobjecttypecode}:{ref.regardingobjectid}"
                if ref and ref.regardingobjectid
                else None
            ),
        )


def _lookup_keys(item: _Item) -> tuple[set[str], set[str], str | None]:
    """The Message-IDs and addresses the batched lookups ask the CRM for, for one item (storable,
    so one message's text cannot fail the batch's query)."""
    msg = item.message
    ids = {msg.effective_message_id, *msg.references}
    if msg.in_reply_to:
        ids.add(msg.in_reply_to)
    addresses = {addr for _, addr in (*msg.to, *msg.cc, *msg.bcc)}
    if msg.from_address:
        addresses.add(msg.from_address)
    forwarder = item.wrapper.from_address if item.wrapper is not None else None
    return {storable(i) for i in ids}, {storable(a) for a in addresses}, storable(forwarder)


def _storable_decision(decision: Decision, message: ParsedMessage | None) -> Decision:
    """*decision* with storable text; the row says when characters had to be replaced, here or
    already by the mail layer (its defects say where)."""
    clean, replaced = storable_record(decision)
    defects = message.defects if message else ()
    repaired = [d for d in defects if any(mark in d for mark in _REPAIRED)]
    if replaced or repaired:
        where = f" ({'; '.join(repaired[:3])})" if repaired else ""
        clean.reason += (
            "; characters that cannot be stored (a lone surrogate or NUL) were replaced by"
            f" U+FFFD{where}"
        )
    return clean


# How the mail layer's defects name a repair of unstorable text (ParsedMessage._storable).
_REPAIRED = ("cannot be stored", "NUL characters removed")


def _crashed(key: str, raw: bytes, exc: Exception) -> Decision:
    return Decision(
        key,
        f"quarantined:{exc.__class__.__name__}",
        f"unexpected {exc.__class__.__name__}: {exc}"[:500],
        raw=raw,
    )
