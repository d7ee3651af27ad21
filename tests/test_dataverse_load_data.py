"""Load Data on Dataverse: ``DataverseCrm.recipients()`` lists what ``SqliteCrm.recipients()``
lists, so the configure flow (notebook 01) and ``emailrouter config load-data`` make the same plan
on either backend.

The fake Web API serves the same SQLite file a ``SqliteCrm`` reads, so the SQLite list is the
expected answer. Every test runs against the strict fake in its three flavours (online v9.2,
on-premises v9, CRM 2016 v8.2), which refuses any attribute its vendored schema lacks.

The demo holds a disabled user (Dana), an address pending approval (Gina) and a forward-mailbox
user (Frank); the tests add a rejected queue, an inactive queue, a user without an address and
enough users to need several pages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote

import pytest
from dataverse_server import FLAVOURS
from fixtures_dataverse import start_fake

from emailrouter_lib.config import load_config
from emailrouter_lib.config.edit import SAMPLE_CONFIG, ConfigEditor
from emailrouter_lib.config.load_data import plan_load_data
from emailrouter_lib.configure import flow
from emailrouter_lib.configure.cli import register
from emailrouter_lib.crm import SqliteCrm, open_crm
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.base import APPROVAL_PENDING, APPROVAL_REJECTED, DELIVERY_ROUTER
from emailrouter_lib.crm.dataverse.recipients import load_data_queries
from emailrouter_lib.crm.sqlite import insert_rows

CONTRACTS = Path(__file__).resolve().parent / "contracts" / "dataverse"
NOW = "2026-01-05T09:00:00Z"
EXTRA_USERS = 12  # with pagesize=5: the users come in 4 pages


def gid() -> str:
    return str(uuid.uuid4())


@pytest.fixture(params=FLAVOURS)
def server(request, tmp_path, router_state_in_tmp):
    """The strict fake over the demo, once per flavour (online, onprem, crm2016)."""
    fake = start_fake(tmp_path, flavour=request.param)
    yield fake
    fake.stop()


@pytest.fixture
def store(server, tmp_path) -> SqliteCrm:
    """The SQLite file the fake serves (``start_fake`` puts it there), to seed and compare."""
    crm = SqliteCrm(tmp_path / "dataverse.sqlite")
    yield crm
    crm.close()


def _seed_more(store: SqliteCrm) -> dict[str, str]:
    """Users and queues beyond the demo: many users, a rejected queue, an inactive queue, a user
    with no address (not listed: the router cannot serve it)."""
    ids = {"rejected": gid(), "inactive": gid(), "noaddress": gid()}
    users = [
        {
            "systemuserid": gid(),
            "fullname": f"Paged User {n:02}",
            "internalemailaddress": f"paged{n:02}@contoso.example",
            "emailrouteraccessapproval": 1,
            "incomingemaildeliverymethod": DELIVERY_ROUTER,
            "outgoingemaildeliverymethod": 0,
            "createdon": NOW,
        }
        for n in range(EXTRA_USERS)
    ]
    users.append(
        {
            "systemuserid": ids["noaddress"],
            "fullname": "No Address",
            "internalemailaddress": None,
            "emailrouteraccessapproval": 0,
            "incomingemaildeliverymethod": DELIVERY_ROUTER,
            "outgoingemaildeliverymethod": DELIVERY_ROUTER,
            "createdon": NOW,
        }
    )
    queues = [
        {
            "queueid": ids["rejected"],
            "name": "Rejected",
            "emailaddress": "rejected@contoso.example",
            "emailrouteraccessapproval": APPROVAL_REJECTED,
            "statecode": 0,
            "statuscode": 1,
            "createdon": NOW,
        },
        {
            "queueid": ids["inactive"],
            "name": "Old Queue",
            "emailaddress": "old-queue@contoso.example",
            "emailrouteraccessapproval": 1,
            "statecode": 1,
            "statuscode": 2,
            "createdon": NOW,
        },
    ]
    with store.transaction() as conn:
        insert_rows(conn, "systemuser", users)
        insert_rows(conn, "queue", queues)
    return ids


def _sample(tmp_path: Path) -> Path:
    target = tmp_path / "config" / "Microsoft.Crm.Tools.EmailAgent.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE_CONFIG, target)
    return target


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="emailrouter config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dataverse.sqlite'}"


# --- the list ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"pagesize": "5"}], ids=["one-page", "paged"])
def test_dataverse_lists_the_users_and_queues_sqlite_lists(server, store, options):
    ids = _seed_more(store)
    expected = store.recipients()
    with open_crm(server.crm_url(**options)) as crm:
        got = crm.recipients()
    assert got == expected
    by_id = {r.id: r for r in got}
    assert ids["noaddress"] not in by_id
    assert by_id[seed.DANA.id].isdisabled  # a disabled user is listed, marked disabled
    assert by_id[seed.GINA.id].emailrouteraccessapproval == APPROVAL_PENDING
    assert by_id[ids["rejected"]].emailrouteraccessapproval == APPROVAL_REJECTED
    assert by_id[ids["inactive"]].isdisabled  # statecode 1: an inactive queue
    assert by_id[seed.FRANK.id].incomingemaildeliverymethod == 3  # forward mailbox
    alice = by_id[seed.ALICE.id]
    assert (alice.incomingemailfilteringmethod, alice.autocreatecontact) == (
        store.recipients_by_id([seed.ALICE.id])[seed.ALICE.id].incomingemailfilteringmethod,
        store.recipients_by_id([seed.ALICE.id])[seed.ALICE.id].autocreatecontact,
    )


def test_paging_follows_next_links_after_one_batch(server, store):
    _seed_more(store)
    with open_crm(server.crm_url(pagesize="5")) as crm:
        got = crm.recipients()
    assert len([r for r in got if r.emailaddress.startswith("paged")]) == EXTRA_USERS
    batches = [e for e in server.log if e.is_batch]
    pages = [e for e in server.log if not e.is_batch]
    assert len(batches) == 1 and [m for m, _, _ in batches[0].parts] == ["GET"] * 3
    assert not any(e.is_write for e in server.log)
    # 17 users with an address (5 demo + 12) in pages of 5: 3 more user pages; the settings of
    # all 18 users: 3 more pages; the 4 queues fit in the first.
    assert len(pages) == 6 and all("$skiptoken=" in e.query for e in pages)
    assert {e.path.rsplit("/", 1)[-1] for e in pages} == {"systemusers", "usersettingscollection"}


def test_the_queries_use_only_documented_attributes():
    """Every $select and $filter name is an attribute of the entity in Microsoft's reference
    (vendored under tests/contracts/dataverse/): what a real organisation accepts."""
    entities = {"systemusers": "systemuser", "queues": "queue"}
    for path in load_data_queries():
        entity_set, _, query = path.partition("?")
        entity = entities.get(entity_set, "usersettings")
        contract = json.loads(_contract(entity).read_text(encoding="utf-8"))
        assert contract["entity_set"] == entity_set
        known = _attribute_names(contract)
        options = parse_qs(query)
        names = set(options["$select"][0].split(","))
        for text in options.get("$filter", []):
            names.add(unquote(text).split(" ", 1)[0])
        assert names <= known, (entity_set, names - known)


def _contract(entity: str) -> Path:
    """The online page's extraction when vendored, else the labelled v9.0 (2018) stand-in."""
    online = CONTRACTS / "online" / f"{entity}.json"
    return online if online.is_file() else CONTRACTS / "v9.0-2018" / f"{entity}.json"


def _attribute_names(contract: dict) -> set[str]:
    attributes = contract.get("attributes")
    if isinstance(attributes, dict):
        return set(attributes)
    return {a.get("logical_name") or a.get("LogicalName") for a in attributes}


# --- Load Data through the configure flow and the CLI ----------------------------------------


def test_configure_flow_loads_the_same_plan_from_dataverse(server, tmp_path):
    plans = {}
    for name, url in (("sqlite", _sqlite_url(tmp_path)), ("dataverse", server.crm_url())):
        config = _sample(tmp_path / name)
        result = flow.run({"config": str(config), "crm": url, "check_access": False})
        plans[name] = result.load_plan
    assert plans["dataverse"].rows == plans["sqlite"].rows
    rows = {r.id: r for r in plans["dataverse"].rows}
    assert rows[seed.GINA.id].action == "gone" and "not approved" in rows[seed.GINA.id].reason
    assert seed.DANA.id not in rows  # disabled, delivery none: not the router's
    assert plans["dataverse"].counts() == plans["sqlite"].counts()


def test_cli_load_data_on_dataverse(server, store, tmp_path, capsys):
    ids = _seed_more(store)
    written = {}
    for name, url in (("sqlite", _sqlite_url(tmp_path)), ("dataverse", server.crm_url())):
        config = _sample(tmp_path / name)
        assert _cli("load-data", str(config), "--crm", url) == 0
        out = capsys.readouterr().out
        assert "cannot list users and queues" not in out
        assert _cli("load-data", str(config), "--crm", url, "--apply") == 0
        written[name] = (out.replace(str(config), "CONFIG"), config.read_bytes())
        capsys.readouterr()
    assert written["dataverse"] == written["sqlite"]
    out, _ = written["dataverse"]
    assert "Load Data for https://crm.contoso.local/Contoso:" in out
    assert "rejected@contoso.example" in out and "not approved" in out
    applied = ConfigEditor(load_config(tmp_path / "dataverse" / "config" / SAMPLE_CONFIG.name))
    assert applied.entry(ids["rejected"]) is None
    assert applied.entry(seed.ALICE.id) is not None
    with open_crm(server.crm_url()) as crm:
        assert plan_load_data(applied, crm.recipients()).changes == []
