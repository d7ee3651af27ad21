"""Reading Microsoft.Crm.Tools.EmailAgent.SystemState.xml: optional, structure unknown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from emailrouter_lib.config import (
    SYSTEM_STATE_NAME,
    load_system_state,
    system_state_path,
)
from emailrouter_lib.errors import ConfigSyntaxError

DATA = Path(__file__).parent / "data" / "config"


def test_records_in_document_order_with_secrets_hidden():
    state = load_system_state(DATA / "SystemState.xml")
    assert state is not None
    assert [(r.tag, r.path) for r in state.records] == [
        ("SystemState", "SystemState"),
        ("Provider", "SystemState/Providers[1]/Provider[1]"),
        ("Provider", "SystemState/Providers[1]/Provider[2]"),
    ]
    root, first, second = state.records
    assert root.fields == {"version": "1", "LastConfigUpdate": "2019-05-02T10:15:00Z"}
    assert first.get("PROFILE") == "Fabrikam Exchange in"
    assert first.get("lasterror") == "" and first.get("MessagesProcessed") == "1832"
    assert second.get("LastError").endswith("(401) Unauthorized.")
    assert second.get("IdentityHash") == "(hidden)" and second.get("CredentialKey") == "(hidden)"
    assert first.line == 6
    assert state.find("provider") == [first, second]
    assert "NOTAREALSECRET" not in repr(state)


def test_missing_state_file_is_none(tmp_path):
    assert load_system_state(tmp_path / SYSTEM_STATE_NAME) is None


def test_state_path_is_beside_the_config(tmp_path):
    config = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    assert system_state_path(config) == tmp_path / SYSTEM_STATE_NAME
    shutil.copyfile(DATA / "SystemState.xml", system_state_path(config))
    assert load_system_state(system_state_path(config)) is not None


def test_malformed_state_file_says_the_router_recreates_it():
    with pytest.raises(ConfigSyntaxError, match="recreates this file") as caught:
        load_system_state(DATA / "SystemState-malformed.xml")
    assert caught.value.line == 4


def test_state_file_gets_the_same_xml_defences(tmp_path):
    path = tmp_path / SYSTEM_STATE_NAME
    shutil.copyfile(DATA / "xxe-file.xml", path)
    with pytest.raises(ConfigSyntaxError, match="entities"):
        load_system_state(path)
