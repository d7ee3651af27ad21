"""The requests that create one routed email in a change set, built from the org's schema.

How incoming email is created on Dataverse: ``POST emails`` (deep insert of the parties), then
its attachments, then ``AddToQueue`` when a queue accepted it, then the state PATCH — all in one
change set. Not ``DeliverIncomingEmail``, although the Microsoft Email Router used it: that
action takes the addresses as strings and resolves parties, correlation and tracking tokens on
the server (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/deliverincomingemail;
mt607515(v=crm.8) for CRM 2016), so the routing result row could no longer say how a message was
correlated and why, the router's filtering, party resolution and smart matching would be
bypassed, the string format of ``From``/``To`` is not documented, and the server picks the
activity id: a change set resent after a timeout could not be recognised as committed by the ids
the router chose. ``AddToQueue`` (bound to ``queue``, parameter ``Target``: the email; Dataverse
and CRM 2016, mt607880(v=crm.8), https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/addtoqueue)
gives what a plain create lacks: the ``queueitem`` that makes the email show up in the queue.

Order inside the change set: Received (statecode 1) closes the activity, and the platform refuses
updates of other columns on a closed activity, so everything that touches the email comes before
the state PATCH.
"""

from __future__ import annotations

import base64
from typing import Any

from emailrouter_lib.crm.base import (
    CORRELATION_CONVERSATIONINDEX,
    CORRELATION_INREPLYTO,
    STATE_OPEN,
    STATUS_DRAFT,
    NewEmail,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.crm.dataverse.batch import BatchRequest
from emailrouter_lib.crm.dataverse.payload import PayloadRules

# Stands for "the email this change set creates" until its Content-ID is known ($n).
THIS_EMAIL = "$email"

# Conventional navigation names, used only when the org's metadata records no relationship of
# the attribute (an incomplete definition); the org's own names win (metadata.py).
DEFAULT_NAV = {
    "correlatedactivityid": "CorrelatedActivityId_Email",
    "receivingmailboxid": "ReceivingMailboxId_Email",
    "parentactivityid": "parentactivityid",
    "ownerid": "ownerid",
}


def email_requests(
    email: NewEmail,
    mailboxid: str | None,
    rules: PayloadRules,
    url: Any,
    entity_set: Any,
    notes: list[str],
) -> list[BatchRequest]:
    """The change-set requests creating *email*; *url* makes a request URL of a path,
    *entity_set* names an entity's set; what was cut goes to *notes*."""

    def bind_path(logical_name: str, record_id: str) -> str:
        return f"/{entity_set(logical_name)}({record_id})"

    body = email_body(email, rules, bind_path, notes)
    if mailboxid:
        key = rules.bind(
            "email", "receivingmailboxid", "mailbox", DEFAULT_NAV["receivingmailboxid"]
        )
        if key:
            body[key] = bind_path("mailbox", mailboxid)
    requests_ = [BatchRequest("POST", url("emails"), body)]
    for number, attachment in enumerate(email.attachments):
        values = rules.values(
            "activitymimeattachment",
            {
                "objecttypecode": "email",
                "filename": attachment.filename,
                "mimetype": attachment.mimetype,
                "body": base64.b64encode(attachment.body).decode("ascii"),
                "attachmentnumber": number,
                **(
                    {"attachmentcontentid": attachment.attachmentcontentid}
                    if attachment.attachmentcontentid
                    else {}
                ),
            },
            create=True,
            notes=notes,
        )
        key = rules.bind("activitymimeattachment", "objectid", "email", "objectid_email")
        values[key or "objectid_email@odata.bind"] = THIS_EMAIL
        requests_.append(BatchRequest("POST", url("activitymimeattachments"), values))
    if email.acceptingentityid and email.acceptingentitytypecode == "queue":
        requests_.append(
            BatchRequest(
                "POST",
                url(f"queues({email.acceptingentityid})/Microsoft.Dynamics.CRM.AddToQueue"),
                {
                    "Target": {
                        "@odata.type": "Microsoft.Dynamics.CRM.email",
                        "activityid": email.activityid,
                    }
                },
            )
        )
    if (email.statecode, email.statuscode) != (STATE_OPEN, STATUS_DRAFT):
        # Create first, then set the state (SetState is a PATCH of statecode/statuscode), last.
        requests_.append(
            BatchRequest(
                "PATCH", THIS_EMAIL, {"statecode": email.statecode, "statuscode": email.statuscode}
            )
        )
    return requests_


def email_body(
    email: NewEmail, rules: PayloadRules, bind_path: Any, notes: list[str]
) -> dict[str, Any]:
    """The ``POST emails`` body: the values, the lookups and the parties (deep insert)."""
    hashed = email.baseconversationindexhash
    if hashed is None:
        hashed = base_conversation_index_hash(email.conversationindex)
    values: dict[str, Any] = {
        "activityid": email.activityid,
        "subject": email.subject,
        "description": email.description,
        "directioncode": bool(email.directioncode),
        "notifications": email.notifications,
        "sender": email.sender,
        "torecipients": email.torecipients,
        "messageid": email.messageid,
        "trackingtoken": email.trackingtoken,
        "baseconversationindexhash": hashed,
        "mimetype": email.mimetype,
        # Read-only in every flavour (email.md): left out by the rules unless readonly=send.
        "inreplyto": email.inreplyto,
        "conversationindex": email.conversationindex,
        "correlationmethod": email.correlationmethod or None,
        "senton": email.senton,
    }
    body = rules.values(
        "email", {k: v for k, v in values.items() if v is not None}, create=True, notes=notes
    )

    def bind(attribute: str, target: str | None, record_id: str, default: str) -> None:
        if not target:
            return
        key = rules.bind("email", attribute, target, default)
        if key:
            body[key] = bind_path(target, record_id)

    if email.regardingobjectid and email.regardingobjecttypecode:
        kind = email.regardingobjecttypecode
        bind("regardingobjectid", kind, email.regardingobjectid, f"regardingobjectid_{kind}_email")
    if email.correlatedactivityid:
        bind(
            "correlatedactivityid",
            "email",
            email.correlatedactivityid,
            DEFAULT_NAV["correlatedactivityid"],
        )
        if email.correlationmethod in (CORRELATION_INREPLYTO, CORRELATION_CONVERSATIONINDEX):
            bind(
                "parentactivityid",
                "email",
                email.correlatedactivityid,
                DEFAULT_NAV["parentactivityid"],
            )
    if email.acceptingentityid and email.acceptingentitytypecode:
        kind = email.acceptingentitytypecode
        bind("acceptingentityid", kind, email.acceptingentityid, f"acceptingentityid_{kind}")
        if kind == "systemuser":  # a queue cannot own a record
            bind("ownerid", "systemuser", email.acceptingentityid, DEFAULT_NAV["ownerid"])
    parties = []
    for party in email.parties:
        plain = {
            "participationtypemask": party.participationtypemask,
            "addressused": party.addressused or None,
            "unresolvedpartyname": party.unresolvedpartyname or None,
        }
        values = rules.values(
            "activityparty",
            {k: v for k, v in plain.items() if v is not None},
            create=True,
            notes=notes,
        )
        if party.partyid and party.partyobjecttypecode:
            kind = party.partyobjecttypecode
            key = rules.bind("activityparty", "partyid", kind, f"partyid_{kind}")
            if key:
                values[key] = bind_path(kind, party.partyid)
        parties.append(values)
    if parties:
        body["email_activity_parties"] = parties
    return body


def point_at(request: BatchRequest, reference: str) -> None:
    """Aim a follow-up request (state PATCH, attachment POST) at the email created as $n."""
    if request.url == THIS_EMAIL:
        request.url = reference
    if isinstance(request.body, dict):
        for key, value in request.body.items():
            if value == THIS_EMAIL:
                request.body[key] = reference


__all__ = ["THIS_EMAIL", "email_body", "email_requests", "point_at"]
