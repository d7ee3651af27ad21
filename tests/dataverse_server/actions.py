"""The Web API functions and actions the router uses, with their documented parameters and the
server-side effects a test can observe.

Sources (Web API reference, v9.2 pages under power-apps/developer/data-platform/webapi/reference/
and the CRM 2016 v8 pages under previous-versions/dynamicscrm-2016/developers-guide/):

* ``WhoAmI()``, ``RetrieveVersion()``: unbound functions.
* ``CheckIncomingEmail(MessageId=..,Subject=..,From=..,To=..,Cc=..,Bcc=..)``: unbound function
  (mt683529); answers ``ShouldDeliver`` and ``ReasonCode`` (CheckIncomingEmailResponse).
* ``POST emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail``: action bound to the email
  collection (mt607515); MessageId, Subject, From, To, Cc, Bcc, ReceivedOn, SubmittedBy,
  Importance, Body, Attachments; answers ``EmailId``.
* ``POST GetTrackingTokenEmail`` {Subject}: unbound action (mt593007); ``TrackingToken``.
* ``POST emails(<id>)/Microsoft.Dynamics.CRM.SendEmail`` {IssueSend, TrackingToken}: action
  bound to an email (mt608061); ``Subject``.
* ``POST queues(<id>)/Microsoft.Dynamics.CRM.AddToQueue`` {Target, SourceQueue,
  QueueItemProperties}: action bound to a queue (mt607880); ``QueueItemId``.

What the fake does beyond the pages (duplicate handling, ReasonCode values, the tracking-token
layout, party resolution order) is listed as an assumption in README.md.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

from .gate import BAD_REQUEST, ODataError, check_length, no_resource, not_found, segment_not_found

NAMESPACE = "Microsoft.Dynamics.CRM."

# name -> (binding, parameters, non-nullable parameters). Binding: None (unbound),
# "collection:<set>" or "entity:<set>". Non-nullable as the v9.2 pages mark them; V8_NON_NULLABLE
# adds what the CRM 2016 (v=crm.8) pages also mark Nullable=false.
SIGNATURES: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...]]] = {
    "CheckIncomingEmail": (
        None,
        ("MessageId", "Subject", "From", "To", "Cc", "Bcc", "ExtraProperties"),
        ("MessageId", "From", "To", "Cc", "Bcc"),
    ),
    "DeliverIncomingEmail": (
        "collection:emails",
        (
            "MessageId",
            "Subject",
            "From",
            "To",
            "Cc",
            "Bcc",
            "ReceivedOn",
            "SubmittedBy",
            "Importance",
            "Body",
            "Attachments",
            "ExtraProperties",
            "ValidateBeforeCreate",
        ),
        (
            "MessageId",
            "From",
            "To",
            "Cc",
            "Bcc",
            "ReceivedOn",
            "SubmittedBy",
            "Importance",
            "Body",
            "Attachments",
        ),
    ),
    "GetTrackingTokenEmail": (None, ("Subject",), ()),
    "SendEmail": ("entity:emails", ("IssueSend", "TrackingToken"), ("IssueSend",)),
    "AddToQueue": ("entity:queues", ("Target", "SourceQueue", "QueueItemProperties"), ("Target",)),
}
V8_NON_NULLABLE = {
    "DeliverIncomingEmail": ("Subject",),
    "GetTrackingTokenEmail": ("Subject",),
    "SendEmail": ("TrackingToken",),
}  # fmt: skip
FUNCTIONS = frozenset({"WhoAmI", "RetrieveVersion", "CheckIncomingEmail"})

# CheckIncomingEmail ReasonCode values (assumed; the pages give the type, not the values).
DELIVER, DUPLICATE = 0, 1
QUEUEITEM_EMAIL = 4202  # objecttypecode of an email in queueitem (email ObjectTypeCode)
IMPORTANCE = {"low": 0, "normal": 1, "high": 2}
PARTY_MASKS = (("From", 1), ("To", 2), ("Cc", 3), ("Bcc", 4))
# Who an address resolves to, in this order (assumed: users and queues before contacts).
RESOLVE = (
    ("systemuser", "internalemailaddress"),
    ("queue", "emailaddress"),
    ("contact", "emailaddress1"),
    ("account", "emailaddress1"),
    ("lead", "emailaddress1"),
)
CALL = re.compile(r"^(?P<name>[A-Za-z.]+)\((?P<args>.*)\)$")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_parameter(name: str, operation: str) -> ODataError:
    return ODataError(
        400,
        BAD_REQUEST,
        f"The parameter '{name}' in the request payload is not a valid parameter for the "
        f"operation '{operation}'.",
    )


def check_parameters(operation: str, given: dict[str, Any], v8: bool) -> None:
    _, allowed, required = SIGNATURES[operation]
    if v8:
        required = (*required, *V8_NON_NULLABLE.get(operation, ()))
    for name in given:
        if name not in allowed and not name.startswith("@"):
            raise bad_parameter(name, operation)
    for name in required:
        if name not in given:
            raise ODataError(
                400,
                BAD_REQUEST,
                f"The non-nullable parameter '{name}' of the operation '{operation}' is missing.",
            )


def function_arguments(text: str, query: dict[str, str]) -> dict[str, Any]:
    """``A=@p1,B='x'`` with aliases from the query string (``@p1='...'``)."""
    values: dict[str, Any] = {}
    for piece in re.findall(r"(\w+)=('(?:[^']|'')*'|[^,]*)", text):
        name, raw = piece
        if raw.startswith("@"):
            raw = query.get(raw, "null")
        values[name] = _literal(raw)
    return values


def _bound_to(binding: str, segment: str) -> bool:
    """Whether *segment* is what the operation binds to: ``emails`` or ``queues(<id>)``."""
    kind, _, entity_set = binding.partition(":")
    if kind == "collection":
        return segment == entity_set
    return re.fullmatch(rf"{entity_set}\([^()]+\)", segment) is not None


def _literal(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith("'") and raw.endswith("'"):
        return raw[1:-1].replace("''", "'")
    if raw == "null":
        return None
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Operations:
    """Runs one function or action against the fake's store, inside its transaction."""

    def __init__(self, server: Any):
        self.server = server

    @property
    def store(self):
        return self.server.store

    def es(self, logical: str):
        return self.store.by_logical[logical]

    def route(
        self, method: str, rest: str, query: dict[str, str], body: bytes, base: str, version: str
    ) -> dict[str, Any] | None:
        """The JSON answer when *rest* names an operation, else None."""
        segments = rest.split("/")
        last = segments[-1]
        bound = len(segments) == 2
        call = CALL.match(last)
        name = call.group("name") if call else last
        qualified = name.startswith(NAMESPACE)
        short = name.removeprefix(NAMESPACE)
        if short not in SIGNATURES and short not in FUNCTIONS:
            return None
        binding = SIGNATURES.get(short, (None,))[0]
        if bool(binding) != bound or (bound and not qualified) or (not bound and qualified):
            raise segment_not_found(last)
        if binding and not _bound_to(binding, segments[0]):
            raise segment_not_found(last)
        if short in FUNCTIONS:
            if method != "GET" or call is None:
                raise no_resource(base + rest)
            arguments = function_arguments(call.group("args"), query)
        else:
            if method != "POST" or call is not None:
                raise no_resource(base + rest)
            arguments = json.loads(body) if body.strip() else {}
            if not isinstance(arguments, dict):
                raise ODataError(400, BAD_REQUEST, "The action body must be a JSON object.")
        if short in SIGNATURES:
            check_parameters(short, arguments, self.server.v8(version))
        handler: Callable[..., dict[str, Any]] = getattr(self, f"do_{short}")
        answer = handler(arguments, segments[0] if bound else None, version)
        context = f"{base}$metadata#{NAMESPACE}{short}Response"
        return {"@odata.context": context, **answer}

    # -- functions ------------------------------------------------------------------------------

    def caller(self) -> str:
        """The calling user: ``server.caller`` or the first systemuser of the org."""
        if self.server.caller:
            return self.server.caller
        row = self.store.conn.execute(
            "SELECT systemuserid FROM systemuser ORDER BY rowid LIMIT 1"
        ).fetchone()
        return row[0] if row else str(uuid.UUID(int=1))

    def do_WhoAmI(self, arguments, bound, version) -> dict[str, Any]:
        org = self.store.conn.execute("SELECT organizationid FROM organization LIMIT 1").fetchone()
        return {
            "UserId": self.caller(),
            "BusinessUnitId": str(uuid.UUID(int=2)),
            "OrganizationId": org[0] if org else None,
        }

    def do_RetrieveVersion(self, arguments, bound, version) -> dict[str, Any]:
        return {"Version": self.server.version_number(version)}

    def duplicate(self, message_id: str | None) -> str | None:
        if not message_id:
            return None
        row = self.store.conn.execute(
            "SELECT activityid FROM email WHERE messageid = ? COLLATE NOCASE "
            "AND directioncode = 0 ORDER BY rowid LIMIT 1",
            (message_id,),
        ).fetchone()
        return row[0] if row else None

    def do_CheckIncomingEmail(self, arguments, bound, version) -> dict[str, Any]:
        if self.duplicate(arguments.get("MessageId")):
            return {"ShouldDeliver": False, "ReasonCode": DUPLICATE}
        return {"ShouldDeliver": True, "ReasonCode": DELIVER}

    # -- actions --------------------------------------------------------------------------------

    def resolve(self, address: str) -> tuple[str, str] | None:
        for logical, column in RESOLVE:
            es = self.store.by_logical.get(logical)
            if es is None or column not in self.store.columns[es.table]:
                continue
            row = self.store.conn.execute(
                f"SELECT {es.key} FROM {es.table} WHERE {column} = ? COLLATE NOCASE "
                "ORDER BY rowid LIMIT 1",
                (address,),
            ).fetchone()
            if row:
                return logical, row[0]
        return None

    def do_DeliverIncomingEmail(self, arguments, bound, version) -> dict[str, Any]:
        message_id = arguments.get("MessageId")
        if self.duplicate(message_id):
            raise ODataError(
                400,
                "0x80040203",
                f"An email with Message-ID {message_id} has already been delivered.",
            )
        email = self.es("email")
        values: dict[str, Any] = {
            "messageid": message_id,
            "subject": arguments.get("Subject"),
            "description": arguments.get("Body"),
            "sender": arguments.get("From"),
            "torecipients": arguments.get("To"),
            "submittedby": arguments.get("SubmittedBy"),
            "prioritycode": IMPORTANCE.get(str(arguments.get("Importance") or "").lower(), 1),
            "directioncode": 0,
            "statecode": 1,
            "statuscode": 4,  # Completed / Received
            "actualend": arguments.get("ReceivedOn"),
        }
        values = {k: v for k, v in values.items() if k in email.schema.attributes}
        for name, value in values.items():
            check_length(email, email.schema.attributes[name], value)
        email_id = str(uuid.uuid4())
        stamp = now()
        self.store.insert(
            email, {**values, "activityid": email_id, "createdon": stamp, "modifiedon": stamp}
        )
        party = self.es("activityparty")
        queues = []
        for parameter, mask in PARTY_MASKS:
            for _, address in getaddresses([arguments.get(parameter) or ""]):
                if not address:
                    continue
                found = self.resolve(address)
                row = {
                    "activitypartyid": str(uuid.uuid4()),
                    "activityid": email_id,
                    "participationtypemask": mask,
                    "addressused": address[: party.schema.attributes["addressused"].max_length],
                }
                if found:
                    row["partyid"], row["partyobjecttypecode"] = found[1], found[0]
                    if found[0] == "queue" and mask != 1:
                        queues.append(found[1])
                self.store.insert(party, row)
        attachment = self.es("activitymimeattachment")
        for item in arguments.get("Attachments") or ():
            if not isinstance(item, dict):
                raise ODataError(400, BAD_REQUEST, "Attachments must be activitymimeattachment")
            self.store.create(
                attachment, {**item, "__fk__": ("objectid", email_id, "email")}, {}, deep=True
            )
        for queue_id in dict.fromkeys(queues):
            self.enqueue(queue_id, email_id, arguments.get("Subject"))
        return {"EmailId": email_id}

    def enqueue(
        self, queue_id: str, object_id: str, title: str | None, logical: str = "email"
    ) -> str:
        """The queue item of *object_id* in *queue_id*: moved there if it is in another queue."""
        items = self.store.by_logical.get("queueitem")
        if items is None:
            raise ODataError(400, "0x80040800", "queueitem is not modelled in this flavour")
        for column in ("queueid", "objectid", "statecode"):
            self.store.ensure_column(items, column)
        found = self.store.conn.execute(
            "SELECT queueitemid, queueid FROM fake_queueitem WHERE objectid = ? COLLATE NOCASE "
            "AND coalesce(statecode, 0) = 0",
            (object_id,),
        ).fetchone()
        if found:
            if found[1] != queue_id:
                self.store.write(items, found[0], {"queueid": queue_id})
            return found[0]
        item_id = str(uuid.uuid4())
        stamp = now()
        values: dict[str, Any] = {
            "queueitemid": item_id,
            "queueid": queue_id,
            "objectid": object_id,
            "objecttypecode": QUEUEITEM_EMAIL if logical == "email" else None,
            "title": (title or "")[:300],
            "statecode": 0,
            "statuscode": 1,
            "enteredon": stamp,
            "createdon": stamp,
            "modifiedon": stamp,
        }
        values = {k: v for k, v in values.items() if k in items.schema.attributes}
        lookup = items.lookup("objectid")
        if lookup and lookup.typecolumn:  # the target of a polymorphic objectid
            values[lookup.typecolumn] = logical
        self.store.insert(items, {**values, items.key: item_id})
        return item_id

    def do_AddToQueue(self, arguments, bound, version) -> dict[str, Any]:
        record = re.match(r"^queues\(([^()]+)\)$", bound or "")
        queues = self.es("queue")
        queue_id = record.group(1).strip("'") if record else ""
        if self.store.get(queues, queue_id) is None:
            raise not_found(queues, queue_id)
        target = arguments.get("Target")
        if not isinstance(target, dict) or not str(target.get("@odata.type", "")).startswith(
            "Microsoft.Dynamics.CRM."
        ):
            raise ODataError(
                400,
                BAD_REQUEST,
                "Target must be an entity with its @odata.type "
                "(for example Microsoft.Dynamics.CRM.email).",
            )
        logical = target["@odata.type"].removeprefix("Microsoft.Dynamics.CRM.")
        es = self.store.by_logical.get(logical)
        if es is None:
            raise ODataError(400, BAD_REQUEST, f"AddToQueue of a {logical} is not modelled")
        object_id = str(target.get(es.key) or "")
        row = self.store.get(es, object_id)
        if row is None:
            raise not_found(es, object_id)
        title = row["subject"] if "subject" in set(row.keys()) else None
        return {"QueueItemId": self.enqueue(queue_id, object_id, title, logical)}

    def do_GetTrackingTokenEmail(self, arguments, bound, version) -> dict[str, Any]:
        """A token from the org's settings and the caller's usersettings numbers."""
        conn = self.store.conn
        org = conn.execute(
            "SELECT trackingprefix, trackingtokenidbase, trackingtokeniddigits, "
            "maximumtrackingnumber FROM organization LIMIT 1"
        ).fetchone()
        if org is None:
            raise ODataError(400, "0x80040203", "the organization row is missing")
        settings = self.es("usersettings")
        for column in ("trackingtokenid", "nexttrackingnumber"):
            self.store.ensure_column(settings, column)
        user_id = self.caller()
        row = self.store.get(settings, user_id)
        if row is None:
            raise not_found(settings, user_id)
        number = row["trackingtokenid"]
        if number is None:  # the platform numbers each user once
            highest = conn.execute("SELECT max(trackingtokenid) FROM systemuser").fetchone()[0]
            number = 1 + (highest or 0)
        counter = row["nexttrackingnumber"] or 1
        maximum = org["maximumtrackingnumber"] or 999
        following = counter + 1 if counter < maximum else 1
        self.store.write(
            settings, user_id, {"trackingtokenid": number, "nexttrackingnumber": following}
        )
        digits = org["trackingtokeniddigits"] or 3
        token = (
            f"{org['trackingprefix'] or 'CRM'}:{org['trackingtokenidbase'] or 0}"
            f"{number:0{digits}d}{counter:0{len(str(maximum))}d}"
        )
        return {"TrackingToken": token}

    def do_SendEmail(self, arguments, bound, version) -> dict[str, Any]:
        """Bound to the email: IssueSend true queues it (Pending Send), false marks it Sent."""
        emails = self.es("email")
        record = re.match(r"^emails\(([^()]+)\)$", bound or "")
        email_id = record.group(1).strip("'") if record else ""
        row = self.store.get(emails, email_id)
        if row is None:
            raise not_found(emails, email_id)
        if row["statecode"] != 0:
            raise ODataError(
                400,
                "0x80040203",
                f"email {email_id} is not a draft (statecode {row['statecode']})",
            )
        values: dict[str, Any] = {"statecode": 1, "statuscode": 6 if arguments["IssueSend"] else 3}
        if arguments.get("TrackingToken"):
            values["trackingtoken"] = arguments["TrackingToken"]
        self.store.write(emails, email_id, values)
        return {"Subject": row["subject"]}
