"""The strict Dataverse fake, over raw HTTP: what it refuses, ignores and does, per flavour.

Every expectation comes from Microsoft's documentation or the vendored entity metadata
(tests/dataverse_server/README.md gives the source of each, and which are assumptions), never
from what emailrouter sends. No emailrouter client code is used here.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from xml.etree import ElementTree as ET

import pytest
import requests
from dataverse_server import FakeDataverse
from fixtures_dataverse import (
    start_fake,
)

from emailrouter_lib.crm import SqliteCrm, demo

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
# Codes as web-api-client-errors.md shows them (README.md): an unknown property, an undeclared
# navigation property, an unknown resource; BAD is the fake's assumed code for other refusals.
UNKNOWN, NAV, SEGMENT, BAD = "0x0", "0x80048d19", "0x8006088a", "0x80060888"
ONPREM = ("onprem", "crm2016")


class Api:
    """Plain requests against one fake."""

    def __init__(self, server: FakeDataverse):
        self.server = server
        self.base = server.base
        self.http = requests.Session()

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.http.get(self.base + path, headers={**JSON, **headers}, timeout=10)

    def post(self, path: str, body: object, **headers: str) -> requests.Response:
        return self.http.post(
            self.base + path, data=json.dumps(body), headers={**JSON, **headers}, timeout=10
        )

    def patch(self, path: str, body: object, **headers: str) -> requests.Response:
        return self.http.patch(
            self.base + path, data=json.dumps(body), headers={**JSON, **headers}, timeout=10
        )

    def create(self, entity_set: str, body: dict) -> str:
        response = self.post(entity_set, body)
        assert response.status_code == 204, response.text
        return re.search(r"\(([^()]+)\)$", response.headers["OData-EntityId"]).group(1)

    def batch(self, parts: list[str], changeset: bool, **headers: str) -> requests.Response:
        inner = "changeset_x" if changeset else "batch_x"
        body = "".join(
            f"--{inner}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {n}\r\n\r\n{part}\r\n"
            for n, part in enumerate(parts, 1)
        )
        if changeset:
            body = (
                "--batch_x\r\nContent-Type: multipart/mixed; boundary=changeset_x\r\n\r\n"
                f"{body}--changeset_x--\r\n"
            )
        body += "--batch_x--\r\n"
        return self.http.post(
            self.base + "$batch",
            data=body.encode(),
            headers={"Content-Type": "multipart/mixed; boundary=batch_x", **headers},
            timeout=10,
        )


def refused(response: requests.Response, status: int, code: str, *names: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    for name in names:
        assert f"'{name}'" in error["message"], error["message"]
    return error


@pytest.fixture
def api(flavoured_dataverse) -> Api:
    return Api(flavoured_dataverse)


@pytest.fixture
def online(tmp_path, router_state_in_tmp):
    server = start_fake(tmp_path / "online", flavour="online")
    yield Api(server)
    server.stop()


@pytest.fixture
def onprem(tmp_path, router_state_in_tmp):
    server = start_fake(tmp_path / "onprem", flavour="onprem")
    yield Api(server)
    server.stop()


@pytest.fixture
def crm2016(tmp_path, router_state_in_tmp):
    server = start_fake(tmp_path / "crm2016", flavour="crm2016")
    yield Api(server)
    server.stop()


def new_email(api: Api, **values) -> str:
    return api.create("emails", {"subject": "Hello", "directioncode": False, **values})


def mailbox_of(api: Api, record: demo.DemoRecord) -> str:
    rows = api.get(
        f"mailboxes?$select=mailboxid&$filter=_regardingobjectid_value eq {record.id}"
    ).json()["value"]
    return rows[0]["mailboxid"]


def test_seed_and_inspect_through_sqlitecrm_on_the_same_file(api):
    """Tests seed rows with SqliteCrm and inspect what the API wrote, in every flavour."""
    store = SqliteCrm(api.server.store.path)
    try:
        seeded = store.create_contact("seeded@fabrikam.example", "Seeded Person")
        row = api.get(f"contacts({seeded.id})?$select=fullname,emailaddress1").json()
        assert (row["fullname"], row["emailaddress1"]) == (
            "Seeded Person",
            "seeded@fabrikam.example",
        )
        party = {
            "participationtypemask": 1,
            "partyid_contact@odata.bind": f"/contacts({seeded.id})",
            "addressused": "seeded@fabrikam.example",
        }
        email = new_email(api, messageid="<seeded@x.example>", email_activity_parties=[party])
        assert store.email(email)["messageid"] == "<seeded@x.example>"
        parties = store.email_parties(email)
        assert [(p["partyid"], p["partyobjecttypecode"]) for p in parties] == [
            (seeded.id, "contact")
        ]
    finally:
        store.close()


# -- names: attributes, lookups, navigation properties ----------------------------------------


def test_an_unknown_attribute_is_refused_everywhere_it_can_appear(api):
    refused(api.post("emails", {"nosuch": 1}), 400, UNKNOWN, "nosuch")
    refused(api.get("emails?$select=subject,nosuch"), 400, UNKNOWN, "nosuch")
    refused(api.get("emails?$filter=nosuch eq 1"), 400, UNKNOWN, "nosuch")
    refused(api.get("emails?$orderby=nosuch desc"), 400, UNKNOWN, "nosuch")
    email = new_email(api)
    refused(api.patch(f"emails({email})", {"nosuch": 1}), 400, UNKNOWN, "nosuch")


def test_the_routers_own_columns_are_not_dataverse_attributes(api):
    for column in ("emailrouter_attemptid", "emailrouter_lasterror"):
        refused(api.get(f"emails?$select={column}"), 400, UNKNOWN, column)
    refused(api.get("systemusers?$select=trackingusernumber"), 400, UNKNOWN)
    # On systemuser the filtering method is not an attribute: it lives on usersettings.
    refused(api.get("systemusers?$select=incomingemailfilteringmethod"), 400, UNKNOWN)
    rows = api.get(
        f"usersettingscollection?$select=incomingemailfilteringmethod"
        f"&$filter=systemuserid eq {demo.ALICE.id}"
    ).json()["value"]
    assert rows[0]["incomingemailfilteringmethod"] == 0


def test_reading_an_attribute_nothing_stored_is_null_and_adds_no_column(api):
    email = new_email(api)
    row = api.get(f"emails({email})?$select=lastopenedtime").json()
    assert row["lastopenedtime"] is None
    found = api.get("emails?$select=subject&$filter=lastopenedtime eq null&$orderby=lastopenedtime")
    assert email in [r["activityid"] for r in found.json()["value"]]
    with sqlite3.connect(api.server.store.path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(email)")}
    assert "lastopenedtime" not in columns


def test_lookups_read_as_value_properties_only(api):
    email = new_email(api, **{"parentactivityid@odata.bind": f"/emails({new_email(api)})"})
    refused(api.get(f"emails({email})?$select=parentactivityid"), 400, UNKNOWN)
    row = api.get(
        f"emails({email})?$select=_parentactivityid_value",
        Prefer='odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"',
    ).json()
    assert row["_parentactivityid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "email"
    refused(api.get("emails?$filter=parentactivityid eq null"), 400, UNKNOWN)
    assert api.get("emails?$filter=_parentactivityid_value ne null").status_code == 200


def test_navigation_names_are_the_documented_case_sensitive_ones(online):
    mailbox = mailbox_of(online, demo.SUPPORT)
    email = new_email(online, **{"ReceivingMailboxId_Email@odata.bind": f"/mailboxes({mailbox})"})
    row = online.get(f"emails({email})?$select=_receivingmailboxid_value").json()
    assert row["_receivingmailboxid_value"] == mailbox
    for wrong in ("receivingmailboxid", "receivingmailboxid_email", "RECEIVINGMAILBOXID_EMAIL"):
        body = {"subject": "x", f"{wrong}@odata.bind": f"/mailboxes({mailbox})"}
        refused(online.post("emails", body), 400, NAV, wrong)
    refused(
        online.post("emails", {"correlatedactivityid@odata.bind": f"/emails({email})"}),
        400,
        NAV,
        "correlatedactivityid",
    )
    new_email(online, **{"CorrelatedActivityId_Email@odata.bind": f"/emails({email})"})


def test_the_documented_examples_of_client_errors(api):
    """The requests and answers of web-api-client-errors.md, verbatim where it gives them."""
    refused(api.get("Account"), 404, SEGMENT, "Account")
    refused(api.get("accounts?$select=Name"), 400, UNKNOWN, "Name")
    error = refused(api.post("accounts", {"Name": "Account name"}), 400, UNKNOWN, "Name")
    assert error["message"].startswith("An error occurred while validating input parameters")
    bind = f"accounts({demo.FABRIKAM.id})"
    contact = {"firstname": "test", "lastname": "contact", "parentcustomerid@odata.bind": bind}
    error = refused(api.post("contacts", contact), 400, NAV, "parentcustomerid")
    assert "Entity :'contacts'" in error["message"]
    del contact["parentcustomerid@odata.bind"]
    contact["parentcustomerid_account@odata.bind"] = bind
    created = api.create("contacts", contact)
    row = api.get(f"contacts({created})?$select=fullname,_parentcustomerid_value").json()
    assert row == {**row, "fullname": "test contact", "_parentcustomerid_value": demo.FABRIKAM.id}
    answer = api.http.post(api.base + "WhoAmI", headers=JSON, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == ""
    assert "No HTTP resource was found" in answer.json()["error"]["message"]


def test_a_bind_must_reach_the_lookups_target(api):
    refused(
        api.post("emails", {"parentactivityid@odata.bind": f"/contacts({demo.CAROL.id})"}),
        400,
        BAD,
        "parentactivityid",
    )


def test_onprem_has_no_receiving_mailbox_accepting_entity_or_unresolved_party_name(api):
    if api.server.flavour == "online":
        assert api.get("emails?$select=_receivingmailboxid_value").status_code == 200
        assert api.get("activityparties?$select=unresolvedpartyname").status_code == 200
        return
    mailbox = mailbox_of(api, demo.SUPPORT)
    body = {"ReceivingMailboxId_Email@odata.bind": f"/mailboxes({mailbox})"}
    refused(api.post("emails", body), 400, NAV, "ReceivingMailboxId_Email")
    body = {"acceptingentityid_queue@odata.bind": f"/queues({demo.SUPPORT.id})"}
    refused(api.post("emails", body), 400, NAV, "acceptingentityid_queue")
    for select in ("_receivingmailboxid_value", "_correlatedactivityid_value"):
        refused(api.get(f"emails?$select={select}"), 400, UNKNOWN, select)
    refused(api.get("activityparties?$select=unresolvedpartyname"), 400, UNKNOWN)
    party = {"participationtypemask": 1, "addressused": "x@y.example", "unresolvedpartyname": "X"}
    refused(
        api.post("emails", {"email_activity_parties": [party]}),
        400,
        UNKNOWN,
        "unresolvedpartyname",
    )


# -- values: read-only, MaxLength, closed activities ------------------------------------------


def test_read_only_attributes_are_accepted_and_ignored(api):
    email = new_email(
        api,
        inreplyto="<parent@x.example>",
        conversationindex="AdpJiu2DMDEyMzQ1Njc4OWFiY2RlZg==",
        correlationmethod=3,
        senton="2024-03-01T09:00:00Z",
        messageid="<kept@x.example>",
    )
    row = api.get(
        f"emails({email})?$select=inreplyto,conversationindex,correlationmethod,senton,messageid"
    ).json()
    assert row["inreplyto"] is None and row["conversationindex"] is None
    assert row["senton"] is None and row["correlationmethod"] in (None, 0)
    assert row["messageid"] == "<kept@x.example>"


def test_mailbox_forward_flag_and_regarding_are_read_only(online):
    mailbox = online.create(
        "mailboxes",
        {"name": "m", "emailaddress": "m@contoso.example", "isforwardmailbox": False,
         "regardingobjectid@odata.bind": f"/systemusers({demo.ALICE.id})"},
    )  # fmt: skip
    row = online.get(f"mailboxes({mailbox})?$select=isforwardmailbox,_regardingobjectid_value")
    assert row.json()["_regardingobjectid_value"] is None
    assert row.json()["isforwardmailbox"] in (None, True)  # the platform's default, not ours


def test_max_length_is_the_flavours(api):
    online = api.server.flavour == "online"
    limit = 320 if online else 200  # activityparty.addressused
    party = {"participationtypemask": 2, "addressused": "a" * (limit - 12) + "@x.example"}
    assert len(party["addressused"]) == limit - 2
    new_email(api, email_activity_parties=[party])
    party["addressused"] = "a" * (limit - 9) + "@x.example"
    error = refused(
        api.post("emails", {"email_activity_parties": [party]}), 400, "0x80044331", "addressused"
    )
    assert f"'{limit}'" in error["message"]
    subject_limit = 800 if online else 200
    refused(api.post("emails", {"subject": "s" * (subject_limit + 1)}), 400, "0x80044331")
    new_email(api, subject="s" * subject_limit)
    refused(api.post("emails", {"messageid": "m" * 321}), 400, "0x80044331", "messageid")
    refused(api.post("emails", {"sender": "s" * 251}), 400, "0x80044331", "sender")


def test_a_closed_activity_takes_only_state_changes(api):
    email = new_email(api, directioncode=True)
    assert api.patch(f"emails({email})", {"statecode": 1, "statuscode": 6}).status_code == 204
    error = refused(
        api.patch(f"emails({email})", {"subject": "late", "statuscode": 7}), 400, "0x80040203"
    )
    assert "subject" in error["message"]
    assert api.patch(f"emails({email})", {"statecode": 1, "statuscode": 7}).status_code == 204
    assert api.patch(f"emails({email})", {"statuscode": 3, "statecode": 1}).status_code == 204
    regarding = {"regardingobjectid_contact_email@odata.bind": f"/contacts({demo.CAROL.id})"}
    assert api.patch(f"emails({email})", regarding).status_code == 204  # Set Regarding
    reopened = api.patch(f"emails({email})", {"statecode": 0, "statuscode": 8, "subject": "again"})
    assert reopened.status_code == 204  # Failed (8) is Open: the activity is open again


def test_a_status_must_belong_to_its_state(api):
    email = new_email(api)
    error = refused(api.patch(f"emails({email})", {"statuscode": 4}), 400, "0x80048408")
    assert "4 is not a valid status code for state code EmailState.Open" in error["message"]
    assert api.patch(f"emails({email})", {"statecode": 2}).status_code == 204
    row = api.get(f"emails({email})?$select=statecode,statuscode").json()
    assert (row["statecode"], row["statuscode"]) == (2, 5)  # Canceled's default status
    onprem = api.server.flavour != "online"
    created = api.post("emails", {"subject": "x", "statecode": 1, "statuscode": 4})
    if onprem:  # statecode is not valid for create there: ignored, and 4 is not an Open status
        refused(created, 400, "0x80048408")
    else:
        assert created.status_code == 204


# -- queries ----------------------------------------------------------------------------------


def test_top_is_ignored_beside_maxpagesize_and_pages_follow_next_links(api):
    for n in range(5):
        new_email(api, subject=f"page {n}")
    query = "emails?$select=subject&$filter=startswith(subject,'page')&$top=1"
    assert len(api.get(query).json()["value"]) == 1
    page = api.get(query, Prefer="odata.maxpagesize=2").json()
    seen = [r["subject"] for r in page["value"]]
    while "@odata.nextLink" in page:
        page = api.http.get(
            page["@odata.nextLink"], headers={**JSON, "Prefer": "odata.maxpagesize=2"}, timeout=10
        ).json()
        seen += [r["subject"] for r in page["value"]]
    assert sorted(seen) == [f"page {n}" for n in range(5)]


def test_in_values_are_a_json_array(api):
    new_email(api, messageid="<o'brien.1@x.example>")
    path = "emails?$select=messageid&$filter=Microsoft.Dynamics.CRM.In(PropertyName='messageid',"
    found = api.get(path + 'PropertyValues=["<o\'brien.1@x.example>","other"])').json()["value"]
    assert [r["messageid"] for r in found] == ["<o'brien.1@x.example>"]
    assert api.get(path + "PropertyValues=['a','b'])").status_code == 200
    response = api.get(path + "PropertyValues=['<o''brien.1@x.example>'])")
    assert response.status_code == 400
    assert (
        "A comma character ',' was expected in scope 'Array'" in response.json()["error"]["message"]
    )
    # eq literals keep OData's doubled quote
    assert len(api.get("emails?$filter=messageid eq '<o''brien.1@x.example>'").json()["value"]) == 1


# -- $batch -----------------------------------------------------------------------------------


def failing_changeset(api: Api) -> list[str]:
    good = json.dumps({"subject": "kept?"})
    bad = json.dumps({"subject": "x", "nosuch": 1})
    url = f"{api.base}emails"
    return [
        f"POST {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{good}",
        f"POST {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{bad}",
    ]


def test_a_failed_change_set_answers_the_failing_status_with_a_multipart_body(api):
    response = api.batch(failing_changeset(api), changeset=True)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert "HTTP/1.1 400 Bad Request" in response.text
    inner = json.loads(response.text[response.text.index("{") : response.text.rindex("}") + 1])
    assert inner["error"]["code"] == UNKNOWN and "'nosuch'" in inner["error"]["message"]
    kept = api.get("emails?$filter=subject eq 'kept?'").json()["value"]
    assert kept == []  # the change set rolled back


def test_continue_on_error_answers_200_except_on_v8(api):
    url = f"{api.base}emails"
    parts = [
        f"POST {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        + json.dumps({"nosuch": 1}),
        f"POST {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        + json.dumps({"subject": "after the failure"}),
    ]
    stopped = api.batch(parts, changeset=False)
    assert stopped.status_code == 400 and stopped.text.count("HTTP/1.1 ") == 1
    going = api.batch(parts, changeset=False, Prefer="odata.continue-on-error")
    if api.server.flavour == "crm2016":
        assert going.status_code == 400 and going.text.count("HTTP/1.1 ") == 1
    else:
        assert going.status_code == 200 and "HTTP/1.1 204" in going.text


# -- $metadata and EntityDefinitions ------------------------------------------------------------


def test_metadata_lists_the_flavours_properties_and_navigation(api):
    response = api.get("$metadata", Accept="application/xml")
    assert response.status_code == 200
    ns = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
    root = ET.fromstring(response.content)
    email = root.find(".//edm:EntityType[@Name='email']", ns)
    navigation = {n.get("Name") for n in email.findall("edm:NavigationProperty", ns)}
    properties = {p.get("Name") for p in email.findall("edm:Property", ns)}
    assert {"parentactivityid", "email_activity_parties", "regardingobjectid_account_email"} <= (
        navigation
    )
    assert "subject" in properties and "_regardingobjectid_value" in properties
    assert "emailrouter_attemptid" not in properties
    online = api.server.flavour == "online"
    assert ("ReceivingMailboxId_Email" in navigation) is online
    assert ("_receivingmailboxid_value" in properties) is online
    actions = {a.get("Name") for a in root.findall(".//edm:Action", ns)}
    assert {"DeliverIncomingEmail", "AddToQueue", "GetTrackingTokenEmail"} <= actions


def test_entity_definitions_with_select_and_expand(api):
    path = (
        "EntityDefinitions(LogicalName='activityparty')?$select=LogicalName,EntitySetName"
        "&$expand=Attributes($select=LogicalName,IsValidForCreate,IsValidForUpdate,MaxLength),"
        "ManyToOneRelationships($select=ReferencingAttribute,ReferencingEntityNavigationPropertyName)"
    )
    data = api.get(path).json()
    assert data["EntitySetName"] == "activityparties" and "PrimaryIdAttribute" not in data
    attributes = {a["LogicalName"]: a for a in data["Attributes"]}
    online = api.server.flavour == "online"
    assert attributes["addressused"]["MaxLength"] == (320 if online else 200)
    assert ("unresolvedpartyname" in attributes) is online
    navs = {r["ReferencingEntityNavigationPropertyName"] for r in data["ManyToOneRelationships"]}
    assert {"partyid_contact", "partyid_queue", "partyid_systemuser"} <= navs
    email = api.get(
        "EntityDefinitions(LogicalName='email')?$expand=Attributes($select=LogicalName,"
        "IsValidForCreate,IsValidForUpdate)"
    ).json()
    writable = {a["LogicalName"]: a["IsValidForCreate"] for a in email["Attributes"]}
    assert writable["inreplyto"] is False and writable["messageid"] is True
    refused(api.get("EntityDefinitions(LogicalName='email')?$select=Nosuch"), 400, UNKNOWN)
    strings = api.get(
        "EntityDefinitions(LogicalName='email')/Attributes/"
        "Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength"
    ).json()["value"]
    lengths = {a["LogicalName"]: a["MaxLength"] for a in strings}
    assert lengths["messageid"] == 320 and lengths["subject"] == (800 if online else 200)
    navs = api.get(
        "EntityDefinitions(LogicalName='email')/ManyToOneRelationships"
        "?$select=ReferencingEntityNavigationPropertyName"
    ).json()["value"]
    names = {n["ReferencingEntityNavigationPropertyName"] for n in navs}
    assert ("ReceivingMailboxId_Email" in names) is online and "parentactivityid" in names
    assert api.get("EntityDefinitions(LogicalName='nosuch')").status_code == 404


# -- functions and actions --------------------------------------------------------------------


def test_whoami_and_version_per_flavour(api):
    who = api.get("WhoAmI()").json()
    assert who["OrganizationId"] == demo.ORG_ID
    assert who["UserId"]
    version = api.get("RetrieveVersion()").json()["Version"]
    expected = {"online": "9.2", "onprem": "9.1", "crm2016": "8.2"}[api.server.flavour]
    assert version.startswith(expected)


def deliver_args(message_id: str, to: str) -> dict:
    return {
        "MessageId": message_id,
        "Subject": "Need help",
        "From": demo.CAROL.address,
        "To": to,
        "Cc": "",
        "Bcc": "",
        "ReceivedOn": "2024-03-01T09:00:00Z",
        "SubmittedBy": "",
        "Importance": "normal",
        "Body": "<p>help</p>",
        "Attachments": [
            {
                "@odata.type": "Microsoft.Dynamics.CRM.activitymimeattachment",
                "filename": "a.txt",
                "mimetype": "text/plain",
                "body": "aGVsbG8=",
            }
        ],
    }


def check_incoming(api: Api, message_id: str) -> dict:
    return api.get(
        "CheckIncomingEmail(MessageId=@p1,Subject=@p2,From=@p3,To=@p4,Cc=@p5,Bcc=@p6)"
        f"?@p1='{message_id}'&@p2='Need help'&@p3='{demo.CAROL.address}'"
        f"&@p4='{demo.SUPPORT.address}'&@p5=''&@p6=''"
    ).json()


def test_deliver_incoming_email_to_a_queue_puts_it_in_the_queue(api, tmp_path):
    message_id = f"<{uuid.uuid4()}@fabrikam.example>"
    assert check_incoming(api, message_id)["ShouldDeliver"] is True
    response = api.post(
        "emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail",
        deliver_args(message_id, f"Support <{demo.SUPPORT.address}>"),
    )
    assert response.status_code == 200, response.text
    email = response.json()["EmailId"]
    items = api.get(
        f"queueitems?$select=_queueid_value,_objectid_value&$filter=_objectid_value eq {email}"
    ).json()["value"]
    assert [i["_queueid_value"] for i in items] == [demo.SUPPORT.id]
    assert check_incoming(api, message_id) == {
        "@odata.context": check_incoming(api, message_id)["@odata.context"],
        "ShouldDeliver": False,
        "ReasonCode": 1,
    }
    refused(
        api.post(
            "emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail",
            deliver_args(message_id, demo.SUPPORT.address),
        ),
        400,
        "0x80040203",
    )
    # What the platform wrote, seen in the SQLite file a test would inspect.
    with sqlite3.connect(api.server.store.path) as conn:
        row = conn.execute(
            "SELECT statecode, statuscode, directioncode, messageid FROM email "
            "WHERE activityid = ?",
            (email,),
        ).fetchone()
        assert tuple(row) == (1, 4, 0, message_id)
        parties = conn.execute(
            "SELECT participationtypemask, partyid FROM activityparty WHERE activityid = ? "
            "ORDER BY participationtypemask",
            (email,),
        ).fetchall()
        assert [tuple(p) for p in parties] == [(1, demo.CAROL.id), (2, demo.SUPPORT.id)]
        attachments = conn.execute(
            "SELECT filename FROM activitymimeattachment WHERE objectid = ?", (email,)
        ).fetchall()
        assert [a[0] for a in attachments] == ["a.txt"]


def test_operations_check_their_binding_and_parameters(api):
    args = deliver_args("<p@x.example>", demo.SUPPORT.address)
    refused(api.post("DeliverIncomingEmail", args), 404, SEGMENT)
    refused(
        api.post("emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail", {**args, "Nosuch": 1}),
        400,
        BAD,
        "Nosuch",
    )
    missing = {k: v for k, v in args.items() if k != "MessageId"}
    refused(
        api.post("emails/Microsoft.Dynamics.CRM.DeliverIncomingEmail", missing),
        400,
        BAD,
        "MessageId",
    )
    refused(api.post("GetTrackingTokenEmail", {"subject": "lowercase"}), 400, BAD)
    target = {"Target": {"activityid": str(uuid.uuid4())}}
    refused(api.post("queues/Microsoft.Dynamics.CRM.AddToQueue", target), 404, SEGMENT)


def test_add_to_queue_creates_then_moves_the_queue_item(api):
    email = new_email(api)
    target = {"activityid": email, "@odata.type": "Microsoft.Dynamics.CRM.email"}
    first = api.post(
        f"queues({demo.SUPPORT.id})/Microsoft.Dynamics.CRM.AddToQueue", {"Target": target}
    )
    assert first.status_code == 200, first.text
    moved = api.post(
        f"queues({demo.SALES.id})/Microsoft.Dynamics.CRM.AddToQueue", {"Target": target}
    )
    assert moved.json()["QueueItemId"] == first.json()["QueueItemId"]
    item = api.get(
        f"queueitems({first.json()['QueueItemId']})?$select=_queueid_value,_objectid_value",
        Prefer='odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"',
    ).json()
    assert item["_queueid_value"] == demo.SALES.id
    assert item["_objectid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "email"
    refused(
        api.post(f"queues({uuid.uuid4()})/Microsoft.Dynamics.CRM.AddToQueue", {"Target": target}),
        404,
        "0x80040217",
    )


def test_tracking_tokens_come_from_the_org_and_the_users_settings(api):
    first = api.post("GetTrackingTokenEmail", {"Subject": "Hello"}).json()["TrackingToken"]
    second = api.post("GetTrackingTokenEmail", {"Subject": "Hello"}).json()["TrackingToken"]
    assert first.startswith(f"{demo.TRACKING_PREFIX}:") and first != second
    user = api.get("WhoAmI()").json()["UserId"]
    settings = api.get(
        f"usersettingscollection({user})?$select=trackingtokenid,nexttrackingnumber"
    ).json()
    assert settings["trackingtokenid"] == 1 and settings["nexttrackingnumber"] == 3


def test_send_email_is_bound_to_the_email(api):
    email = new_email(api, directioncode=True)
    refused(api.post("SendEmail", {"IssueSend": True}), 404, SEGMENT)
    send = f"emails({email})/Microsoft.Dynamics.CRM.SendEmail"
    refused(api.post(send, {"EmailId": email, "IssueSend": True}), 400, BAD, "EmailId")
    response = api.post(send, {"IssueSend": True, "TrackingToken": "CRM:0001001"})
    assert response.status_code == 200 and response.json()["Subject"] == "Hello"
    row = api.get(f"emails({email})?$select=statecode,statuscode,trackingtoken").json()
    assert (row["statecode"], row["statuscode"], row["trackingtoken"]) == (1, 6, "CRM:0001001")
    refused(api.post(send, {"IssueSend": True, "TrackingToken": "x"}), 400, "0x80040203")
    other = f"emails({new_email(api)})/Microsoft.Dynamics.CRM.SendEmail"
    without_token = api.post(other, {"IssueSend": False})
    if api.server.flavour == "crm2016":  # the v8 page marks TrackingToken Nullable=false
        refused(without_token, 400, BAD, "TrackingToken")
    else:
        assert without_token.status_code == 200


def test_queue_items_cannot_be_created_twice_for_one_object(online):
    email = new_email(online)
    target = {"activityid": email, "@odata.type": "Microsoft.Dynamics.CRM.email"}
    online.post(f"queues({demo.SUPPORT.id})/Microsoft.Dynamics.CRM.AddToQueue", {"Target": target})
    rows = online.get(f"queueitems?$filter=_objectid_value eq {email}").json()["value"]
    assert len(rows) == 1
