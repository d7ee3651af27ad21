"""Correlation: link an incoming message to an email already in the CRM.

The order is fixed (reference/email-router.md §3 step 5) and the first hit wins: In-Reply-To and
References → tracking token in the subject → conversation index → smart matching. Each result says
why it linked, so an admin can see it in the run's table ("explainable correlation").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from emailrouter_lib.crm.base import (
    CORRELATION_CONVERSATIONINDEX,
    CORRELATION_INREPLYTO,
    CORRELATION_NONE,
    CORRELATION_TRACKINGTOKEN,
    EmailRef,
    Organization,
)
from emailrouter_lib.tracking.threadindex import conversation_base, conversation_hash
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

METHOD_NAMES = {
    CORRELATION_NONE: "none",
    CORRELATION_INREPLYTO: "in-reply-to",
    CORRELATION_TRACKINGTOKEN: "tracking-token",
    CORRELATION_CONVERSATIONINDEX: "conversation-index",
    6: "smart-matching",
}


class CorrelatableMessage(Protocol):
    in_reply_to: str | None
    references: list[str]
    subject: str
    thread_index: str | None


@dataclass(frozen=True)
class Correlation:
    method: int
    email: EmailRef | None
    token: str | None  # the tracking token found in the subject, linked or not
    explanation: str

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, str(self.method))

    @property
    def correlated(self) -> bool:
        return self.email is not None


class CorrelationLookups(Protocol):
    def email_by_tracking_token(self, token: str) -> EmailRef | None: ...

    def email_by_conversation(self, baseconversationindexhash: int) -> EmailRef | None: ...


SmartMatcher = Callable[[CorrelatableMessage], EmailRef | None]


def correlate(
    message: CorrelatableMessage,
    *,
    org: Organization,
    tokens: TrackingTokenFormat,
    by_message_id: Mapping[str, EmailRef],
    lookups: CorrelationLookups,
    smart_matcher: SmartMatcher | None = None,
) -> Correlation:
    """Find the CRM email this message continues, in the documented order.

    *by_message_id* holds the batch's prefetched In-Reply-To/References answers, so this function
    makes at most two single look-ups (token, conversation) per message.
    """
    token = tokens.find(message.subject)
    if org.emailcorrelationenabled:
        if message.in_reply_to and message.in_reply_to in by_message_id:
            return Correlation(
                CORRELATION_INREPLYTO,
                by_message_id[message.in_reply_to],
                token,
                f"In-Reply-To {message.in_reply_to}",
            )
        for reference in reversed(message.references):  # the newest reference is last
            if reference in by_message_id:
                return Correlation(
                    CORRELATION_INREPLYTO,
                    by_message_id[reference],
                    token,
                    f"References {reference}",
                )
    if token:
        found = lookups.email_by_tracking_token(token)
        if found is not None:
            return Correlation(CORRELATION_TRACKINGTOKEN, found, token, f"tracking token {token}")
    if org.emailcorrelationenabled:
        base_hash = conversation_hash(message.thread_index)
        if base_hash is not None:
            found = lookups.email_by_conversation(base_hash)
            if found is not None and conversation_base(
                found.conversationindex
            ) == conversation_base(message.thread_index):
                return Correlation(
                    CORRELATION_CONVERSATIONINDEX, found, token, "same Thread-Index conversation"
                )
    if org.enablesmartmatching and smart_matcher is not None:
        found = smart_matcher(message)
        if found is not None:
            return Correlation(6, found, token, "smart matching (subject and addresses)")
    return Correlation(CORRELATION_NONE, None, token, "no correlation")
