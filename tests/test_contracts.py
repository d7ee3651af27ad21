"""The vendored Dataverse contract (tests/contracts/dataverse): shape, the facts the fakes rely
on, that every committed JSON is what the extractor builds from its capture, and attribution.

No network, no server: it reads files only.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).parent / "contracts"
DATAVERSE = CONTRACTS / "dataverse"
TOOLS = DATAVERSE / "tools"
CAPTURES = TOOLS / "captures"
FLAVOUR_DIRS = ("online", "onprem", "v9.0-2018")
BUILT_FROM_CAPTURES = ("online", "onprem")

ENTITY_KEYS = {
    "source",
    "flavour",
    "entity_set",
    "logical_name",
    "schema_name",
    "primary_id",
    "completeness",
    "writable_attributes",
    "read_only_attributes",
    "attributes",
    "many_to_one",
    "one_to_many",
    "many_to_many",
    "messages",
}
ATTRIBUTE_KEYS = {"schema_name", "type", "writable", "required_level"}
REQUIRED_LEVELS = {"None", "SystemRequired", "ApplicationRequired", "Recommended"}


def _entity_files() -> list[Path]:
    return sorted(p for d in FLAVOUR_DIRS for p in (DATAVERSE / d).glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _entity(flavour: str, name: str) -> dict:
    return _load(DATAVERSE / flavour / f"{name}.json")


def _attr(flavour: str, entity: str, attribute: str) -> dict:
    return _entity(flavour, entity)["attributes"][attribute]


def _extractor():
    spec = importlib.util.spec_from_file_location(
        "extract_dataverse_under_test", TOOLS / "extract_dataverse.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_flavour_folder_has_entities():
    counts = {d: len(list((DATAVERSE / d).glob("*.json"))) for d in FLAVOUR_DIRS}
    assert counts["online"] >= 15
    assert counts["onprem"] >= 8
    assert counts["v9.0-2018"] >= 16


@pytest.mark.parametrize("path", _entity_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_entity_shape(path: Path):
    doc = _load(path)
    missing = ENTITY_KEYS - set(doc)
    assert not missing, f"{path}: missing {sorted(missing)}"
    assert doc["logical_name"] == path.stem
    # The 2018 stand-in calls its flavour "v9.0-docs-2018".
    assert doc["flavour"] == {"v9.0-2018": "v9.0-docs-2018"}.get(path.parent.name, path.parent.name)
    assert {"repo", "path"} <= set(doc["source"])
    assert doc["source"]["repo"].startswith("MicrosoftDocs/")
    assert isinstance(doc["entity_set"], str) and doc["entity_set"]
    assert doc["primary_id"] in doc["attributes"]
    assert doc["completeness"] == "complete" or doc["completeness"].startswith(
        ("complete ", "partial")
    )
    assert "consistency_problems" not in doc, doc.get("consistency_problems")
    for name, attr in doc["attributes"].items():
        assert name == name.lower(), name
        assert set(attr) >= ATTRIBUTE_KEYS, f"{path}: {name} lacks {ATTRIBUTE_KEYS - set(attr)}"
        assert attr["schema_name"].lower() == name, (name, attr["schema_name"])
        assert isinstance(attr["writable"], bool)
        assert attr["required_level"] in REQUIRED_LEVELS, (name, attr["required_level"])
        if "max_length" in attr:
            assert isinstance(attr["max_length"], int) and attr["max_length"] > 0
        for key in ("valid_for_create", "valid_for_update"):
            if key in attr:
                assert isinstance(attr[key], bool)
                if attr[key]:
                    assert attr["writable"], (name, key)
        if attr["type"] in ("Lookup", "Owner", "Customer"):
            for nav in attr.get("navigation_properties", []):
                assert {"target", "navigation_property", "relationship"} <= set(nav)
                # Owner lookups navigate to the "owner" entity; activity lookups (targets
                # "activitypointer") also have one navigation property per activity type.
                allowed = set(attr.get("targets", []))
                if attr["type"] == "Owner":
                    allowed.add("owner")
                assert nav["target"] in allowed or "activitypointer" in allowed, (name, nav)
    writable = {a.lower() for a in doc["writable_attributes"]}
    read_only = {a.lower() for a in doc["read_only_attributes"]}
    assert not writable & read_only, sorted(writable & read_only)
    for name, attr in doc["attributes"].items():
        if name in writable:
            assert attr["writable"], name
        if name in read_only:
            assert not attr["writable"], name
    for rel in doc["many_to_one"]:
        assert {"schema_name", "referenced_entity", "referencing_attribute"} <= set(rel)
        assert "navigation_property" in rel
    for rel in doc["one_to_many"]:
        assert {"schema_name", "referencing_entity", "referencing_attribute"} <= set(rel)
    for msg in doc["messages"]:
        assert {"name", "web_api"} <= set(msg)


@pytest.mark.parametrize("path", _entity_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_partial_entities_say_what_they_cover(path: Path):
    doc = _load(path)
    if not doc["completeness"].startswith("partial"):
        return
    covered = re.search(r"attributes covered: ([a-z0-9_,]+)", doc["completeness"])
    if covered:
        for name in covered.group(1).split(","):
            assert name in doc["attributes"], f"{path}: says it covers {name}"
    # A partial entity still lists every writable/read-only attribute it is sure of.
    assert doc["writable_attributes"]


# --- the facts the issue names -----------------------------------------------------------------


def test_online_email_lookup_navigation_properties():
    navs = {
        a: {n["navigation_property"] for n in _attr("online", "email", a)["navigation_properties"]}
        for a in ("receivingmailboxid", "correlatedactivityid")
    }
    assert navs == {
        "receivingmailboxid": {"ReceivingMailboxId_Email"},
        "correlatedactivityid": {"CorrelatedActivityId_Email"},
    }
    assert _attr("online", "email", "receivingmailboxid")["targets"] == ["mailbox"]
    assert _attr("online", "email", "correlatedactivityid")["targets"] == ["email"]


@pytest.mark.parametrize("flavour", FLAVOUR_DIRS)
@pytest.mark.parametrize(
    "attribute", ["inreplyto", "conversationindex", "correlationmethod", "senton"]
)
def test_email_threading_attributes_are_read_only(flavour: str, attribute: str):
    assert _attr(flavour, "email", attribute)["writable"] is False
    assert attribute not in {a.lower() for a in _entity(flavour, "email")["writable_attributes"]}


@pytest.mark.parametrize("flavour", ["onprem", "v9.0-2018"])
def test_onprem_email_lacks_online_only_lookups(flavour: str):
    email = _entity(flavour, "email")
    names = set(email["attributes"]) | {
        a.lower() for a in email["writable_attributes"] + email["read_only_attributes"]
    }
    for attribute in ("acceptingentityid", "receivingmailboxid", "correlatedactivityid"):
        assert attribute not in names
    party = _entity(flavour, "activityparty")
    assert "unresolvedpartyname" not in party["attributes"]
    assert "unresolvedpartyname" not in {a.lower() for a in party["writable_attributes"]}


def test_online_has_what_onprem_lacks():
    for attribute in ("acceptingentityid", "receivingmailboxid", "correlatedactivityid"):
        assert _attr("online", "email", attribute)["writable"] is True
    assert _attr("online", "activityparty", "unresolvedpartyname")["writable"] is True


@pytest.mark.parametrize(
    ("entity", "attribute", "online", "onprem"),
    [
        ("activityparty", "addressused", 320, 200),
        ("email", "messageid", 320, 320),
        ("email", "sender", 250, 250),
        ("email", "subject", 800, 200),
        ("email", "inreplyto", 320, 320),
        ("email", "trackingtoken", 50, 50),
        ("email", "torecipients", 500, 500),
        ("email", "conversationindex", 2048, 2048),
        ("systemuser", "firstname", 256, 64),
        ("systemuser", "lastname", 256, 64),
    ],
)
def test_max_lengths(entity: str, attribute: str, online: int, onprem: int):
    assert _attr("online", entity, attribute)["max_length"] == online
    assert _attr("onprem", entity, attribute)["max_length"] == onprem


# --- the entities added for the router ---------------------------------------------------------


@pytest.mark.parametrize("flavour", BUILT_FROM_CAPTURES)
def test_usersettings(flavour: str):
    doc = _entity(flavour, "usersettings")
    assert doc["entity_set"] == "usersettingscollection"
    assert doc["primary_id"] == "systemuserid"
    assert "trackingtokenid" in doc["attributes"]
    if flavour == "onprem":
        assert doc["ownership_type"] == "BusinessOwned"
        assert "ownerid" not in doc["attributes"]


@pytest.mark.parametrize("flavour", BUILT_FROM_CAPTURES)
def test_router_columns_exist(flavour: str):
    wanted = {
        "systemuser": (
            "systemuserid fullname internalemailaddress personalemailaddress isdisabled "
            "emailrouteraccessapproval incomingemaildeliverymethod outgoingemaildeliverymethod"
        ),
        "queue": (
            "queueid name emailaddress incomingemailfilteringmethod emailrouteraccessapproval "
            "incomingemaildeliverymethod outgoingemaildeliverymethod statecode"
        ),
        "queueitem": "queueitemid objectid queueid objecttypecode statecode",
        "mailbox": "mailboxid emailaddress",
    }
    if flavour == "online":
        wanted["organization"] = (
            "organizationid trackingprefix trackingtokenidbase trackingtokeniddigits "
            "maximumtrackingnumber blockedattachments maxuploadfilesize emailconnectionchannel"
        )
        wanted["contact"] = "contactid fullname emailaddress1 emailaddress2 emailaddress3 statecode"
        wanted["account"] = "accountid name emailaddress1 emailaddress2 emailaddress3 statecode"
    for entity, columns in wanted.items():
        attributes = _entity(flavour, entity)["attributes"]
        missing = [c for c in columns.split() if c not in attributes]
        assert not missing, f"{flavour}/{entity}: {missing}"


@pytest.mark.parametrize("flavour", BUILT_FROM_CAPTURES)
def test_queueitem_object_and_queue_cannot_be_updated(flavour: str):
    for attribute in ("objectid", "queueid"):
        attr = _attr(flavour, "queueitem", attribute)
        assert attr.get("valid_for_update") is False, (flavour, attribute, attr)


def test_onprem_approval_is_not_valid_for_create():
    assert _attr("onprem", "queue", "emailrouteraccessapproval")["valid_for_create"] is False
    assert _attr("onprem", "systemuser", "emailrouteraccessapproval")["valid_for_create"] is False
    assert _attr("onprem", "systemuser", "isdisabled")["valid_for_create"] is False
    options = _attr("onprem", "queue", "incomingemailfilteringmethod")["options"]
    assert "4" not in options
    assert "4" in _attr("online", "queue", "incomingemailfilteringmethod")["options"]


def test_onprem_mailbox_read_only_columns():
    for attribute in ("isforwardmailbox", "regardingobjectid"):
        assert _attr("onprem", "mailbox", attribute)["writable"] is False


def test_contact_parentcustomer_navigation_properties():
    attr = _attr("online", "contact", "parentcustomerid")
    navs = {n["target"]: n["navigation_property"] for n in attr["navigation_properties"]}
    assert navs == {"account": "parentcustomerid_account", "contact": "parentcustomerid_contact"}
    assert _attr("online", "contact", "fullname")["writable"] is False


# --- actions.json and errors.json --------------------------------------------------------------

ROUTER_ACTIONS = {
    "DeliverIncomingEmail",
    "CheckIncomingEmail",
    "GetTrackingTokenEmail",
    "AddToQueue",
    "WhoAmI",
    "RetrieveVersion",
    "SendEmail",
    "BackgroundSendEmail",
}


def test_actions():
    doc = _load(DATAVERSE / "actions.json")
    assert doc["attribution"] and doc["how_v8_is_known"]
    actions = {a["name"]: a for a in doc["actions"]}
    assert set(actions) == ROUTER_ACTIONS
    for name, action in actions.items():
        assert action["kind"] in {"action", "function"}, name
        assert isinstance(action["bound"], bool), name
        assert set(action["flavours"]) == {"online", "onprem", "crm2016"}, name
        for value in action["flavours"].values():
            assert value in (True, False, "unconfirmed"), name
        assert action["sources"] and all(s["url"].startswith("https://") for s in action["sources"])
        for parameter in action["parameters"]:
            assert {"name", "type", "nullable", "required"} <= set(parameter), (name, parameter)
        assert "type" in action["returns"], name
    assert actions["WhoAmI"]["kind"] == "function"
    assert actions["RetrieveVersion"]["kind"] == "function"
    assert actions["DeliverIncomingEmail"]["kind"] == "action"
    assert actions["BackgroundSendEmail"]["flavours"]["crm2016"] == "unconfirmed"
    assert actions["AddToQueue"]["bound"] is True
    params = {p["name"] for p in actions["DeliverIncomingEmail"]["parameters"]}
    assert {"MessageId", "Subject", "From", "To", "Body", "ReceivedOn"} <= params


BEHAVIOURS = {"batch_stops_at_first_error"}


def test_errors():
    doc = _load(DATAVERSE / "errors.json")
    assert doc["attribution"]
    errors = {e["id"]: e for e in doc["errors"]}
    assert len(errors) == len(doc["errors"])
    for eid, err in errors.items():
        assert {"when", "http_status", "hex", "message_pattern", "source", "source_kind"} <= set(
            err
        ), eid
        assert err["source_kind"] in {"doc", "assumption", "doc+assumption"}, eid
        if "assumption" in err["source_kind"]:
            assert err.get("why"), eid
        if eid in BEHAVIOURS:  # describes how other errors surface; its fields are prose
            assert isinstance(err["http_status"], str) and isinstance(err["hex"], str), eid
            continue
        assert isinstance(err["http_status"], int) and 400 <= err["http_status"] <= 599, eid
        # None = no code found (an assumption entry); "" = the answer carries no hex code.
        assert err["hex"] in (None, "") or re.fullmatch(r"0x[0-9a-f]{1,8}", err["hex"]), eid
    assert errors["max_length_exceeded"]["hex"] == "0x80044331"
    assert errors["duplicate_key"]["hex"] == "0x80040237"
    assert errors["record_not_found"]["hex"] == "0x80040217"
    assert errors["record_not_found"]["http_status"] == 404
    assert errors["throttling_request_count"]["http_status"] == 429
    assert errors["throttling_request_count"]["hex"] == "0x80072322"
    for eid in ("unknown_property_in_select", "unknown_property_in_payload"):
        assert errors[eid]["http_status"] == 400


def test_crm2016_notes_cover_the_named_gaps():
    text = (DATAVERSE / "crm2016.md").read_text(encoding="utf-8")
    for word in (
        "receivingmailboxid",
        "correlatedactivityid",
        "acceptingentityid",
        "unresolvedpartyname",
        "addressused",
        "continue-on-error",
        "BackgroundSendEmail",
    ):
        assert word in text, word
    assert "assumption" in text


# --- rebuild and attribution -------------------------------------------------------------------


def _captures(flavour: str) -> list[Path]:
    return sorted((CAPTURES / flavour).glob("*.cap"))


@pytest.mark.parametrize(
    "capture",
    [c for f in BUILT_FROM_CAPTURES for c in _captures(f)],
    ids=lambda c: f"{c.parent.name}/{c.stem}",
)
def test_capture_rebuilds_to_committed_json(capture: Path, tmp_path: Path):
    extractor = _extractor()
    flavour = capture.parent.name
    doc = extractor.build_json(extractor.load_any(str(capture)), flavour)
    out = tmp_path / f"{capture.stem}.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    committed = DATAVERSE / flavour / f"{capture.stem}.json"
    assert out.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
        f"{committed} is not what {capture} builds: run tools/extract_dataverse.py build"
    )


def test_every_built_json_has_a_capture():
    for flavour in BUILT_FROM_CAPTURES:
        built = {p.stem for p in (DATAVERSE / flavour).glob("*.json")}
        captured = {p.stem for p in _captures(flavour)}
        assert built == captured, flavour


def test_older_captures_still_parse():
    extractor = _extractor()
    for capture in sorted((CAPTURES / "onprem-2019-versions").glob("*.cap")):
        doc = extractor.build_json(extractor.load_any(str(capture)), "onprem")
        assert doc["attributes"], capture


def test_completeness_lists_every_entity_file():
    text = (DATAVERSE / "COMPLETENESS.md").read_text(encoding="utf-8")
    for flavour in BUILT_FROM_CAPTURES:
        section = text.split(f"## {flavour}/", 1)[1].split("\n## ", 1)[0]
        for path in (DATAVERSE / flavour).glob("*.json"):
            status = _load(path)["completeness"].split()[0].rstrip(":")
            assert f"| {path.stem} | {status}" in section, (flavour, path.stem, status)


def test_readme_attribution():
    text = (CONTRACTS / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in text
    assert "https://creativecommons.org/licenses/by/4.0/" in text
    assert "https://github.com/MicrosoftDocs/powerapps-docs" in text
    assert "https://github.com/MicrosoftDocs/dynamics-365-customer-engagement" in text
    assert "© Microsoft Corporation" in text
