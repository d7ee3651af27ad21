"""Fixtures for the Dataverse backend: the fake Web API over a fresh SQLite CRM.

``fake_dataverse`` serves the seeded Contoso demo; ``crm_pair`` gives, for each backend variant
of the contract suite, the backend under test and a SqliteCrm on the same data to seed and
inspect rows with. ``dataverse_flavour`` runs a test once per flavour of the strict fake
(``online`` v9.2, ``onprem`` v9.x, ``crm2016`` v8.2; tests/dataverse_server/README.md), and
``flavoured_dataverse`` is the demo served in that flavour.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataverse_server import FLAVOURS, FakeDataverse

from emailrouter_lib.crm import SqliteCrm, init_crm, open_crm, sqlite_path
from emailrouter_lib.crm.base import CrmBackend

NTLM_ACCOUNT = "CONTOSO\\svc-crm"
NTLM_PASSWORD = "Fake-Passw0rd!"  # a test server's own made-up account
NTLM_ENV = "EMAILROUTER_TEST_DATAVERSE_PW"

# Backend variants of the contract suite: (name, URL options, server options), one per flavour.
VARIANTS = {
    "dataverse": ({}, {"flavour": "online"}),
    "dataverse-onprem": ({}, {"flavour": "onprem"}),
    "dataverse-v8-paged": (
        {"pagesize": "5", "batch": "40"},
        {"flavour": "crm2016"},
    ),
}


def start_fake(
    folder: Path, *, demo: bool = True, flavour: str | None = None, **options
) -> FakeDataverse:
    """A fake Dataverse over a new SQLite CRM in *folder* (the Contoso demo when *demo*), in
    *flavour* (``online`` unless an ``api="v8.x"`` option implies ``crm2016``)."""
    url = f"sqlite:///{folder / 'dataverse.sqlite'}"
    init_crm(url, demo=demo, force=True)
    return FakeDataverse(sqlite_path(url), flavour=flavour, **options).start()


@pytest.fixture(params=FLAVOURS)
def dataverse_flavour(request) -> str:
    """``online``, ``onprem``, ``crm2016``: a test taking it runs in all three flavours."""
    return request.param


@pytest.fixture
def flavoured_dataverse(
    tmp_path: Path, dataverse_flavour: str, router_state_in_tmp
) -> Iterator[FakeDataverse]:
    """The Contoso demo served by the strict fake in ``dataverse_flavour``."""
    server = start_fake(tmp_path, flavour=dataverse_flavour)
    yield server
    server.stop()


def state_url(server: FakeDataverse, folder: Path, **options: str) -> str:
    """The server's CRM URL with the router's state file in *folder* (see crm/dataverse/state)."""
    return server.crm_url(state=str(folder / "dataverse-state.sqlite"), **options)


@pytest.fixture
def router_state_in_tmp(tmp_path: Path, monkeypatch) -> None:
    """A URL without ``state=`` puts the state file under $XDG_STATE_HOME: keep it in tmp."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def fake_dataverse(tmp_path: Path, router_state_in_tmp) -> Iterator[FakeDataverse]:
    server = start_fake(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def ntlm_dataverse(tmp_path: Path, monkeypatch, router_state_in_tmp) -> Iterator[FakeDataverse]:
    """The demo behind NTLM; the password is in an environment variable, by reference."""
    monkeypatch.setenv(NTLM_ENV, NTLM_PASSWORD)
    server = start_fake(tmp_path, ntlm_users={NTLM_ACCOUNT: NTLM_PASSWORD})
    yield server
    server.stop()


def ntlm_url(server: FakeDataverse, **options: str) -> str:
    return server.crm_url(auth="ntlm", user=NTLM_ACCOUNT, password=f"env:{NTLM_ENV}", **options)


@dataclass
class CrmPair:
    """The backend under test and the SQLite store holding its data."""

    name: str
    crm: CrmBackend
    store: SqliteCrm
    server: FakeDataverse | None = None


@pytest.fixture(params=["sqlite", *VARIANTS])
def crm_pair(request, tmp_path: Path, router_state_in_tmp) -> Iterator[CrmPair]:
    """An empty CRM (organisation only) behind each backend of the contract suite."""
    if request.param == "sqlite":
        url = init_crm(f"sqlite:///{tmp_path / 'empty.db'}")
        crm = open_crm(url)
        pair = CrmPair("sqlite", crm, crm)
        yield pair
        crm.close()
        return
    url_options, server_options = VARIANTS[request.param]
    server = start_fake(tmp_path, demo=False, **server_options)
    store = SqliteCrm(server.store.path)
    crm = open_crm(state_url(server, tmp_path, **url_options))
    yield CrmPair(request.param, crm, store, server)
    crm.close()
    store.close()
    server.stop()


__all__ = [
    "NTLM_ACCOUNT",
    "NTLM_ENV",
    "NTLM_PASSWORD",
    "CrmPair",
    "crm_pair",
    "dataverse_flavour",
    "fake_dataverse",
    "flavoured_dataverse",
    "ntlm_dataverse",
    "ntlm_url",
    "router_state_in_tmp",
    "start_fake",
    "state_url",
]
