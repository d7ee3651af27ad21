"""Whether a user or queue accepts a message: approval, internal mail, the five filtering methods.

Returns the rule that filtered the message, or None when it is accepted; the routing engine turns
the rule into the outcome ``filtered:<rule>`` (reference/email-router.md §3 step 6).
"""

from __future__ import annotations

from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    FILTER_ALL,
    FILTER_EMAIL_ENABLED,
    FILTER_LEADS_CONTACTS_ACCOUNTS,
    FILTER_NONE,
    FILTER_RESPONSES,
    Organization,
    Party,
    Recipient,
)

INTERNAL_ENTITIES = frozenset({"systemuser", "queue"})
CUSTOMER_ENTITIES = frozenset({"contact", "account", "lead"})


def filter_rule(
    recipient: Recipient,
    *,
    org: Organization,
    correlated: bool,
    sender_parties: list[Party],
) -> str | None:
    """The name of the rule that rejects the message for *recipient*, or None to accept it."""
    if recipient.isdisabled:
        return "recipient-disabled"
    needs_approval = (
        org.requireapprovalforuseremail
        if recipient.entity == "systemuser"
        else org.requireapprovalforqueueemail
    )
    if needs_approval and recipient.emailrouteraccessapproval != APPROVAL_APPROVED:
        return "not-approved"
    sender_entities = {party.entity for party in sender_parties}
    if org.ignoreinternalemail and sender_entities & INTERNAL_ENTITIES:
        return "internal-email"
    method = recipient.incomingemailfilteringmethod
    if method == FILTER_ALL:
        return None
    if method == FILTER_NONE:
        return "no-email-tracked"
    if method == FILTER_RESPONSES:
        return None if correlated else "not-a-response"
    if method == FILTER_LEADS_CONTACTS_ACCOUNTS:
        return None if sender_entities & CUSTOMER_ENTITIES else "sender-not-lead-contact-account"
    if method == FILTER_EMAIL_ENABLED:
        return None if sender_entities else "sender-not-in-crm"
    return f"unknown-filtering-method-{method}"
