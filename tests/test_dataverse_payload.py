"""Payloads built from an org's metadata (crm/dataverse/metadata.py, payload.py, incoming.py).

The metadata here is Microsoft's published entity reference (tests/contracts/dataverse, CC BY
4.0; see its README), shaped as the Web API's ``EntityDefinitions`` answer, so these tests show
what the client sends to an org described by those pages, without a server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emailrouter_lib.crm.base import CORRELATION_INREPLYTO, NewAttachment, NewEmail, NewParty
from emailrouter_lib.crm.dataverse.incoming import THIS_EMAIL, email_requests
from emailrouter_lib.crm.dataverse.metadata import known_columns, schema_from, trimmed
from emailrouter_lib.crm.dataverse.payload import PayloadRules

CONTRACTS = Path(__file__).resolve().parent / "contracts" / "dataverse"


def definition(flavour: str, entity: str) -> dict:
    """A contract JSON as the ``EntityDefinitions(LogicalName=...)`` answer would carry it."""
    raw = json.loads((CONTRACTS / flavour / f"{entity}.json").read_text(encoding="utf-8"))
    attributes = []
    for name, attr in raw["attributes"].items():
        item = {
            "LogicalName": name,
            "AttributeType": attr.get("type"),
            "IsValidForCreate": bool(attr.get("writable")),
            "IsValidForUpdate": bool(attr.get("writable")),
        }
        if attr.get("max_length"):
            item["MaxLength"] = attr["max_length"]
        attributes.append(item)
    relationships = [
        {
            "ReferencingAttribute": rel["referencing_attribute"],
            "ReferencedEntity": rel["referenced_entity"],
            "ReferencingEntityNavigationPropertyName": rel["navigation_property"],
        }
        for rel in raw["many_to_one"]
        if rel.get("referencing_attribute") and rel.get("navigation_property")
    ]
    return trimmed(
        {
            "LogicalName": raw["logical_name"],
            "EntitySetName": raw["entity_set"],
            "PrimaryIdAttribute": raw["primary_id"],
            "Attributes": attributes,
            "ManyToOneRelationships": relationships,
        }
    )


def rules(flavour: str) -> PayloadRules:
    entities = ("email", "activityparty", "activitymimeattachment", "mailbox")
    return PayloadRules(schema_from(definition(flavour, e) for e in entities))


def new_email(**changes) -> NewEmail:
    values = dict(
        activityid="11111111-1111-1111-1111-111111111111",
        subject="RE: printer",
        description="<p>hi</p>",
        messageid="<o'brien.1@test.example>",
        inreplyto="<parent@test.example>",
        conversationindex="AQHZ",
        correlationmethod=CORRELATION_INREPLYTO,
        correlatedactivityid="22222222-2222-2222-2222-222222222222",
        acceptingentityid="33333333-3333-3333-3333-333333333333",
        acceptingentitytypecode="queue",
        parties=[
            NewParty(participationtypemask=1, addressused="x" * 321),
            NewParty(
                participationtypemask=2,
                addressused="support@contoso.example",
                partyid="33333333-3333-3333-3333-333333333333",
                partyobjecttypecode="queue",
            ),
            NewParty(participationtypemask=3, addressused="u@x.example", unresolvedpartyname="U"),
        ],
        attachments=[NewAttachment("a.pdf", "application/pdf", b"%PDF")],
    )
    values.update(changes)
    return NewEmail(**values)


def build(flavour: str, email: NewEmail | None = None, payload_rules: PayloadRules | None = None):
    notes: list[str] = []
    requests_ = email_requests(
        email or new_email(),
        "44444444-4444-4444-4444-444444444444",
        payload_rules or rules(flavour),
        lambda path: f"https://org.example/api/data/v9.2/{path}",
        lambda name: {"mailbox": "mailboxes", "queue": "queues"}.get(name, f"{name}s"),
        notes,
    )
    return requests_, notes


def test_online_binds_the_documented_navigation_names_and_drops_read_only_columns():
    requests_, notes = build("online")
    body = requests_[0].body
    assert body["ReceivingMailboxId_Email@odata.bind"] == (
        "/mailboxes(44444444-4444-4444-4444-444444444444)"
    )
    assert body["CorrelatedActivityId_Email@odata.bind"].startswith("/emails(")
    assert "receivingmailboxid@odata.bind" not in body
    assert not {"inreplyto", "conversationindex", "correlationmethod", "senton"} & set(body)
    assert body["email_activity_parties"][2]["unresolvedpartyname"] == "U"
    assert len(body["email_activity_parties"][0]["addressused"]) == 320
    assert notes == [
        "activityparty.addressused cut from 321 to 320 characters (the org's MaxLength)"
    ]


def test_what_is_left_out_is_noted_once_for_the_org():
    online = rules("online")
    build("online", payload_rules=online)
    build("online", payload_rules=online)
    assert {"email.inreplyto: read-only", "email.conversationindex: read-only"} <= online.skipped
    onprem = rules("onprem")
    build("onprem", payload_rules=onprem)
    assert "activityparty.unresolvedpartyname: not in this org" in onprem.skipped
    assert "email.receivingmailboxid: not in this org" in onprem.skipped


def test_on_premises_sends_only_what_the_org_has():
    requests_, notes = build("onprem")
    body = requests_[0].body
    assert not [k for k in body if k.lower().startswith(("receivingmailbox", "correlatedactivity"))]
    assert not [k for k in body if k.lower().startswith("acceptingentityid")]
    assert "unresolvedpartyname" not in body["email_activity_parties"][2]
    assert len(body["email_activity_parties"][0]["addressused"]) == 200
    assert "cut from 321 to 200" in notes[0]


@pytest.mark.parametrize("flavour", ["online", "onprem"])
def test_attachments_and_the_queue_come_before_the_state_patch(flavour):
    requests_, _ = build(flavour)
    kinds = [(r.method, r.url.rsplit("/", 1)[-1]) for r in requests_]
    assert kinds == [
        ("POST", "emails"),
        ("POST", "activitymimeattachments"),
        ("POST", "Microsoft.Dynamics.CRM.AddToQueue"),
        ("PATCH", THIS_EMAIL),
    ]
    assert requests_[2].body["Target"]["activityid"] == new_email().activityid


def test_selects_keep_only_columns_the_org_has():
    onprem = rules("onprem").schema.get("activityparty")
    columns = ("_activityid_value", "addressused", "unresolvedpartyname", "_partyid_value")
    assert known_columns(onprem, columns) == ("_activityid_value", "addressused", "_partyid_value")
    assert known_columns(None, columns) == columns
