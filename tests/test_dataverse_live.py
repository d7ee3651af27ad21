"""Opt-in tests against a real Dataverse / Dynamics 365 organisation, before going live.

They carry the ``live`` marker, which the project's pytest settings deselect (``-m "not live"``),
so a plain ``make test`` neither runs nor skips them. Select them with ``-m live`` and these
variables (without the URL they skip, saying what to set):

    EMAILROUTER_LIVE_DATAVERSE_URL    the CRM URL the router will use, credentials by reference:
        dataverse+https://contoso-trial.crm4.dynamics.com/?auth=client_credentials&tenant=TENANT-ID&client_id=APP-ID&client_secret=env:EMAILROUTER_LIVE_DATAVERSE_SECRET
        dataverse+https://crm.contoso.local/Contoso?api=v8.2&auth=ntlm&user=CONTOSO%5Csvc-crm&password=env:EMAILROUTER_LIVE_DATAVERSE_PASSWORD
                                      (``ca=PATH`` for an on-premises CA; any option of
                                      emailrouter_lib/crm/dataverse/settings.py)
    EMAILROUTER_LIVE_DATAVERSE_SECRET (or whatever ``client_secret=env:NAME`` or
                                      ``password=env:NAME`` names) the secret itself
    EMAILROUTER_LIVE_DATAVERSE_WRITE=1   also route ONE test message into the organisation and
                                      delete it afterwards (in a ``finally``)
    EMAILROUTER_LIVE_DATAVERSE_OWNER  the user or queue that test message is routed to
                                      (``queue:test-queue@contoso.com`` or ``user:…``); default:
                                      the first enabled, approved queue (then user) whose incoming
                                      delivery is Email Router / server-side sync and that
                                      accepts all email

    EMAILROUTER_LIVE_DATAVERSE_URL='dataverse+https://…' EMAILROUTER_LIVE_DATAVERSE_SECRET='…' \\
        .venv/bin/python -m pytest -m live tests/test_dataverse_live.py -v

Read-only without ``…_WRITE``: ``WhoAmI`` and ``RetrieveVersion``, the table definitions of
email, systemuser, queue and usersettings (``EntityDefinitions(LogicalName='…')`` with their
attributes: every column the router reads is there, under the entity-set name it uses), the
client's own metadata read (every entity it builds payloads for described), and Load Data's list
of users and queues. That is what the fake (tests/dataverse_server/README.md) cannot
prove: real credentials, the privileges of the router's account, the organisation's own schema.

With ``…_WRITE=1`` one message goes through the real routing code path (a Maildir owned by the
chosen user or queue, ``routing.run``), the created email is read back by its Message-ID, then
deleted; a contact the routing created for the test sender is deleted too. The Message-ID and
subject start with ``emailrouter-live-test``, so a run interrupted before the cleanup leaves
something an admin can find and delete by hand.

``test_the_live_tests_pass_against_the_fake`` runs this file in a child pytest against the fake
Web API, so the checks work where no organisation is configured and cannot rot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emailrouter_lib import routing
from emailrouter_lib.crm import open_crm
from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    DELIVERY_ROUTER,
    FILTER_ALL,
    Recipient,
)
from emailrouter_lib.crm.dataverse.metadata import SCHEMA_ENTITIES
from emailrouter_lib.crm.dataverse.recipients import (
    QUEUE_COLUMNS,
    USER_COLUMNS,
    USER_SETTINGS_COLUMNS,
)
from emailrouter_lib.crm.dataverse.settings import parse_dataverse_url
from emailrouter_lib.mailboxes.url import local_mailbox_url

URL_VARIABLE = "EMAILROUTER_LIVE_DATAVERSE_URL"
WRITE_VARIABLE = "EMAILROUTER_LIVE_DATAVERSE_WRITE"
OWNER_VARIABLE = "EMAILROUTER_LIVE_DATAVERSE_OWNER"
LIVE_URL = os.environ.get(URL_VARIABLE, "").strip()
WRITE = os.environ.get(WRITE_VARIABLE, "").strip() == "1"

TEST_SENDER = "emailrouter-live-test@example.invalid"  # .invalid: never a real mailbox (RFC 2606)
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

# The table definitions the router depends on: entity-set name and the columns it reads.
# Query form: "Query table definitions using the Web API",
# https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api
DEFINITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "email": (
        "emails",
        ("activityid", "messageid", "subject", "trackingtoken", "directioncode", "statecode",
         "statuscode", "regardingobjectid"),
    ),
    "systemuser": ("systemusers", USER_COLUMNS),
    "queue": ("queues", QUEUE_COLUMNS),
    "usersettings": ("usersettingscollection", USER_SETTINGS_COLUMNS),
}  # fmt: skip

_skip_without_dataverse = pytest.mark.skipif(
    not LIVE_URL,
    reason=(
        f"live Dataverse tests are opt-in: set {URL_VARIABLE} to a dataverse+https:// URL with "
        "its secret as client_secret=env:NAME or password=env:NAME, and NAME to the secret "
        "(see the top of tests/test_dataverse_live.py)"
    ),
)
_skip_without_write = pytest.mark.skipif(
    not WRITE,
    reason=f"routes and deletes one test message only with {WRITE_VARIABLE}=1",
)


# -- the checks (the live tests and the self-test against the fake run these) ------------------


def check_who_am_i(crm) -> dict[str, str]:
    """``WhoAmI`` answers the router's account, business unit and organisation ids;
    ``RetrieveVersion`` the server version (8.2 = CRM 2016, 9.x = Dynamics 365 / Dataverse)."""
    me = crm.session.json("GET", "WhoAmI()", what="WhoAmI")
    for key in ("UserId", "BusinessUnitId", "OrganizationId"):
        assert GUID.match(str(me.get(key) or "")), f"WhoAmI answered no {key}: {me}"
    version = crm.session.json("GET", "RetrieveVersion()", what="RetrieveVersion")["Version"]
    assert re.match(r"^\d+\.\d+", version), version
    return {"user": me["UserId"], "organization": me["OrganizationId"], "version": version}


def check_metadata(crm) -> dict[str, int | bool]:
    """Each table the router uses has the entity-set name it uses and every column it reads,
    and the client's own metadata read describes every entity it builds payloads for.
    Returns the number of attributes per table (and whether email has receivingmailboxid)."""
    found = {}
    for logical_name, (entity_set, columns) in DEFINITIONS.items():
        path = (
            f"EntityDefinitions(LogicalName='{logical_name}')?$select=LogicalName,EntitySetName"
            "&$expand=Attributes($select=LogicalName)"
        )
        definition = crm.session.json("GET", path, what=f"the definition of {logical_name}")
        assert definition["LogicalName"] == logical_name
        assert definition["EntitySetName"] == entity_set, (logical_name, definition)
        names = {a["LogicalName"] for a in definition["Attributes"]}
        missing = sorted(set(columns) - names)
        assert not missing, f"{logical_name} has no {', '.join(missing)} in this organisation"
        found[logical_name] = len(names)
    # The client's own metadata read (one $batch of EntityDefinitions, crm/dataverse/metadata.py):
    # an entity it cannot describe would get payloads built unchecked.
    crm.forget_schema()
    schema = crm.rules.schema
    missing = [e for e in SCHEMA_ENTITIES if schema.get(e) is None]
    assert not missing, f"the client could not read the definitions of {', '.join(missing)}"
    email = schema.get("email")
    found["email.receivingmailboxid"] = email.has("receivingmailboxid")  # online only
    return found


def check_recipients(crm) -> list[Recipient]:
    """Load Data's list: users and queues with sane ids, addresses and option values."""
    recipients = crm.recipients()
    assert len({(r.entity, r.id.lower()) for r in recipients}) == len(recipients)
    for r in recipients:
        assert r.entity in ("systemuser", "queue") and GUID.match(r.id), r
        assert "@" in r.emailaddress, r
        assert r.incomingemaildeliverymethod in (0, 1, 2, 3), r
        assert r.outgoingemaildeliverymethod in (0, 1, 2), r
        assert r.emailrouteraccessapproval in (0, 1, 2, 3), r
    return recipients


def routable(recipient: Recipient) -> bool:
    """A user or queue a test message can be routed to and kept: enabled, approved, delivered
    by the router (or server-side sync: the same option value), accepting all email."""
    return (
        not recipient.isdisabled
        and recipient.emailrouteraccessapproval == APPROVAL_APPROVED
        and recipient.incomingemaildeliverymethod == DELIVERY_ROUTER
        and recipient.incomingemailfilteringmethod == FILTER_ALL
    )


def pick_owner(recipients: list[Recipient], wanted: str = "") -> str | None:
    """``queue:ADDRESS`` / ``user:ADDRESS``: *wanted* as given, else the first routable queue,
    then user."""
    if wanted:
        return wanted
    for entity, prefix in (("queue", "queue:"), ("systemuser", "user:")):
        for r in recipients:
            if r.entity == entity and routable(r):
                return prefix + r.emailaddress
    return None


def route_one_test_message(crm_url: str, owner: str, work: Path) -> dict[str, object]:
    """Route one message to *owner* through ``routing.run``, read the email back, then delete it
    (and a contact created for the test sender) whatever happened. Returns what was seen."""
    token = uuid.uuid4().hex
    message_id = f"<emailrouter-live-test.{token}@example.invalid>"
    msg = EmailMessage()
    msg["From"] = TEST_SENDER
    msg["To"] = owner.split(":", 1)[1]
    msg["Subject"] = f"emailrouter-live-test {token}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id
    msg.set_content("A test message of the emailrouter live tests; it is deleted at once.\n")
    maildir = work / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "new" / f"{token}.live").write_bytes(msg.as_bytes())

    seen: dict[str, object] = {"message_id": message_id}
    with open_crm(crm_url) as crm:
        contacts_before = {p.id for p in crm.parties_by_address([TEST_SENDER]).get(TEST_SENDER, [])}
        try:
            result = routing.run(
                {
                    "mailboxes": [local_mailbox_url(maildir, "maildir", owner=owner)],
                    "crm": crm_url,
                    "ledger": str(work / "ledger.sqlite"),
                    "quarantine_dir": str(work / "quarantine"),
                    "progress": False,
                }
            )
            seen["counts"] = result.counts
            seen["failures"] = result.failures
            stored = crm.emails_by_message_id([message_id])
            seen["stored"] = sorted(ref.activityid for ref in stored.values())
        finally:
            seen["deleted"] = _delete_test_records(crm, message_id, contacts_before)
        seen["left"] = len(crm.emails_by_message_id([message_id]))
    return seen


def _delete_test_records(crm, message_id: str, contacts_before: set[str]) -> list[str]:
    deleted = []
    for ref in crm.emails_by_message_id([message_id]).values():
        # The queue item first: the platform removes it with the email (cascade), but an org
        # (or the fake) that does not would keep a queue item pointing at nothing.
        for item in _queue_items(crm, ref.activityid):
            _delete(crm, f"queueitems({item})")
            deleted.append(f"queueitem {item}")
        _delete(crm, f"emails({ref.activityid})")
        deleted.append(f"email {ref.activityid}")
    for party in crm.parties_by_address([TEST_SENDER]).get(TEST_SENDER, []):
        if party.entity == "contact" and party.id not in contacts_before:
            _delete(crm, f"contacts({party.id})")
            deleted.append(f"contact {party.id}")
    return deleted


def _queue_items(crm, activityid: str) -> list[str]:
    path = f"queueitems?$select=queueitemid&$filter=_objectid_value%20eq%20{activityid}"
    rows = crm.session.json("GET", path, what="the test email's queue items") or {}
    return [row["queueitemid"] for row in rows.get("value", [])]


def _delete(crm, path: str) -> None:
    response, _ = crm.session.send("DELETE", path, what=f"delete {path}")
    assert response.status_code in (204, 404), f"DELETE {path}: {response.status_code}"


# -- the live tests --------------------------------------------------------------------------------


@pytest.fixture(name="live", scope="module")
def live_fixture(tmp_path_factory):
    """The checked URL and an open backend; a wrongly set variable fails, it does not skip."""
    settings = parse_dataverse_url(LIVE_URL)  # refuses literal secrets
    host = urlsplit(settings.origin).hostname
    assert settings.origin.startswith("https://") or host in ("127.0.0.1", "localhost"), (
        f"{URL_VARIABLE} must be a dataverse+https:// URL"
    )
    for reference in (settings.password, settings.client_secret):
        if reference and reference.startswith("env:"):
            assert os.environ.get(reference[4:]), f"{URL_VARIABLE} refers to {reference}; set it"
    state = tmp_path_factory.mktemp("live-state")
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)  # the router's state file stays in tmp
    crm = open_crm(LIVE_URL)
    yield crm
    crm.close()
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.mark.live
@_skip_without_dataverse
def test_who_am_i(live):
    print(check_who_am_i(live))


@pytest.mark.live
@_skip_without_dataverse
def test_the_table_definitions_have_what_the_router_reads(live):
    print(check_metadata(live))


@pytest.mark.live
@_skip_without_dataverse
def test_load_data_lists_users_and_queues(live):
    recipients = check_recipients(live)
    kinds = Counter(
        (r.entity, r.incomingemaildeliverymethod, r.emailrouteraccessapproval) for r in recipients
    )
    print(f"{len(recipients)} user(s) and queue(s) with an address; (entity, incoming, approval): "
          f"{dict(kinds)}")  # fmt: skip


@pytest.mark.live
@_skip_without_dataverse
@_skip_without_write
def test_route_one_test_message_and_delete_it(live, tmp_path):
    owner = pick_owner(check_recipients(live), os.environ.get(OWNER_VARIABLE, "").strip())
    if owner is None:
        pytest.skip(
            f"no enabled, approved queue or user accepts all email; set {OWNER_VARIABLE}="
            "queue:ADDRESS (or user:ADDRESS) of a test queue"
        )
    seen = route_one_test_message(LIVE_URL, owner, tmp_path)
    print(seen)
    assert seen["counts"] == {"created": 1}, seen
    assert len(seen["stored"]) == 1, seen
    assert seen["left"] == 0, f"the test email was not deleted: {seen}"


# -- keeping the opt-in tests honest ---------------------------------------------------------------
FLAVOURS = ("online", "onprem", "crm2016")  # the strict fake's (tests/dataverse_server)


def _fake(tmp_path: Path, flavour: str):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fixtures_dataverse import start_fake

    return start_fake(tmp_path, flavour=flavour)


def _serves_definitions(crm) -> bool:
    """Whether the fake serves ``EntityDefinitions`` (the strict fake of issue 13 does)."""
    response, _ = crm.session.send(
        "GET", "EntityDefinitions(LogicalName='email')?$select=LogicalName"
    )
    return response.status_code == 200


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_metadata_check_against_the_fake(tmp_path, monkeypatch, flavour):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    server = _fake(tmp_path, flavour)
    try:
        with open_crm(server.crm_url()) as crm:
            if not _serves_definitions(crm):
                pytest.skip("the fake does not serve EntityDefinitions yet (README: not modelled)")
            found = check_metadata(crm)
        assert set(DEFINITIONS) <= set(found) and all(found[e] for e in DEFINITIONS)
        assert found["email.receivingmailboxid"] == (flavour == "online")
    finally:
        server.stop()


def _fake_queue_items(folder: Path) -> int:
    """Queue items in the fake's own table (the router's SQLite schema has none)."""
    import sqlite3

    with sqlite3.connect(folder / "dataverse.sqlite") as conn:
        found = conn.execute(
            "SELECT name FROM sqlite_master WHERE name = 'fake_queueitem'"
        ).fetchone()
        return conn.execute("SELECT count(*) FROM fake_queueitem").fetchone()[0] if found else 0


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_live_tests_pass_against_the_fake(tmp_path, flavour):
    """The tests above, in a child pytest pointed at the fake Web API with WRITE=1: they pass,
    and the organisation is as it was afterwards (the test email and its parties are gone)."""
    from emailrouter_lib.crm import SqliteCrm

    server = _fake(tmp_path, flavour)
    store = SqliteCrm(tmp_path / "dataverse.sqlite")
    try:
        tables = ("email", "activityparty", "contact")
        before = {table: store.count(table) for table in tables}
        before["queueitem"] = _fake_queue_items(tmp_path)
        env = {
            **os.environ,
            URL_VARIABLE: server.crm_url(),
            WRITE_VARIABLE: "1",
            OWNER_VARIABLE: "",  # the default choice: the demo's support queue
            "XDG_STATE_HOME": str(tmp_path / "xdg"),
        }
        with open_crm(server.crm_url()) as crm:
            # without EntityDefinitions in the fake, its check runs in the test above (skipped)
            options = [] if _serves_definitions(crm) else ["-k", "not table_definitions"]
        done = subprocess.run(
            [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
             "-p", "no:randomly", "-m", "live", "-rs", "-s", *options],
            cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        passed = "3 passed" if options else "4 passed"
        assert done.returncode == 0 and passed in done.stdout, done.stdout + done.stderr
        after = {table: store.count(table) for table in tables}
        assert {**after, "queueitem": _fake_queue_items(tmp_path)} == before
        if flavour == "online":  # routed to the support queue: a queue item was made, then deleted
            assert "queueitem " in done.stdout, done.stdout
        posts = [e for e in server.log if e.is_write]
        assert posts, "the write test sent nothing"
    finally:
        store.close()
        server.stop()


def test_the_live_tests_skip_and_say_why_without_the_url(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAILROUTER_LIVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", "-m", "live", "-rs"],
        cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "4 skipped" in done.stdout, done.stdout + done.stderr
    assert f"set {URL_VARIABLE}" in done.stdout
