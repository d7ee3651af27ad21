"""The audit on Dataverse, in all three flavours of the strict fake (issues 13 and 14).

The audit reads the CRM through two declared roles: ``RecipientDirectory`` (users and queues with
their delivery methods) and ``MailboxSettingsStore`` (their mailbox records and statuses). Over
the Web API it must tell an admin exactly what it tells from the embedded store holding the same
data, with every request valid against Microsoft's schema (the fake refuses it otherwise), and a
backend without a role is refused up front, naming what it cannot do.
"""

from __future__ import annotations

import pytest
from fixtures_dataverse import (
    state_url,
)

from emailrouter_lib import audit
from emailrouter_lib.crm.base import require
from emailrouter_lib.errors import CrmError

CRM_COLUMNS = [
    "mailbox",
    "kind",
    "name",
    "incoming_delivery",
    "outgoing_delivery",
    "approval",
    "incoming_status",
    "outgoing_status",
    "disabled",
]


def _crm_rows(result) -> list[dict]:
    table = result.table[CRM_COLUMNS].sort_values("mailbox")
    return table.fillna("").to_dict("records")


def test_the_audit_over_dataverse_reads_what_the_embedded_store_holds(
    flavoured_dataverse,
    tmp_path,
):
    over_web_api = audit.run({"crm": state_url(flavoured_dataverse, tmp_path), "since": None})
    embedded = audit.run({"crm": f"sqlite:///{flavoured_dataverse.store.path}", "since": None})
    assert over_web_api.limits == embedded.limits == []
    rows = _crm_rows(over_web_api)
    assert rows == _crm_rows(embedded)
    support = next(r for r in rows if r["mailbox"] == "support@contoso.example")
    assert support["kind"] == "queue" and support["approval"] == "approved"
    assert any(r["kind"] == "forward" for r in rows)
    assert flavoured_dataverse.refusals == []  # nothing the audit asked was refused


def test_a_backend_without_a_role_is_refused_naming_it():
    class RoutingOnly:
        url = "custom://crm"

        def organization(self):
            return None

    with pytest.raises(CrmError, match="custom://crm: this CRM backend cannot list its users"):
        require(RoutingOnly(), "list its users and queues")
