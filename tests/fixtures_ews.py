"""Fixtures for tests over EWS: a fresh protocol-level fake Exchange per test (tests/ews_server).

The organisation: ``CONTOSO\\svc`` (svc@contoso.example) holds ApplicationImpersonation and
FullAccess on the support queue; mailboxes for the demo CRM's support queue, a forward mailbox and
two users. The service account's password is in ``$EWS_PASSWORD`` for URLs to refer to.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ews_server import FakeEws

from emailrouter_lib.mailboxes.ews_http import close_ews_connections

SERVICE = "svc@contoso.example"
SERVICE_LOGON = "CONTOSO\\svc"
PASSWORD = "Ews-Secret-1"
SUPPORT_BOX = "support@contoso.example"
FORWARD_BOX = "crm-forward@contoso.example"
USERS = ("alice@contoso.example", "frank@contoso.example", "bob@contoso.example")


@pytest.fixture(name="ews")
def ews_fixture(monkeypatch) -> Iterator[FakeEws]:
    """A started fake EWS server with the organisation above."""
    monkeypatch.setenv("EWS_PASSWORD", PASSWORD)
    with FakeEws() as server:
        server.add_user(
            SERVICE,
            PASSWORD,
            logons=(SERVICE_LOGON,),
            impersonation=True,
            full_access=(SUPPORT_BOX,),
        )
        for address in (SUPPORT_BOX, FORWARD_BOX, *USERS):
            server.add_user(address)
        yield server
    close_ews_connections()


def ews_url(server: FakeEws, mailbox: str = SUPPORT_BOX, **params: str) -> str:
    """An ``ews://`` URL for *mailbox* on *server*, logging on as the service account."""
    query = {"mailbox": mailbox, "password": "env:EWS_PASSWORD", **params}
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return f"ews://CONTOSO%5Csvc@{server.host}:{server.port}/EWS/Exchange.asmx?{text}"


__all__ = ["FORWARD_BOX", "PASSWORD", "SERVICE", "SUPPORT_BOX", "USERS", "ews_fixture", "ews_url"]
