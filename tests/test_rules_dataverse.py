"""Rule targets on Dataverse, in all three flavours of the strict fake (issue 14).

The rules' targets come from the CRM's mailbox records through the declared
``MailboxSettingsStore`` role: over the Web API they must be the targets the embedded store with
the same data gives (the forward-mailbox users and queues, the forward mailbox itself, each with
its server kind), every request valid against Microsoft's schema.
"""

from __future__ import annotations

from fixtures_dataverse import state_url

from emailrouter_lib.crm import open_crm
from emailrouter_lib.rules.targets import targets_from_crm


def _targets(url: str) -> list:
    crm = open_crm(url)
    try:
        return sorted(targets_from_crm(crm), key=lambda t: t.address)
    finally:
        crm.close()


def test_rule_targets_over_dataverse_are_the_embedded_stores(flavoured_dataverse, tmp_path):
    over_web_api = _targets(state_url(flavoured_dataverse, tmp_path))
    embedded = _targets(f"sqlite:///{flavoured_dataverse.store.path}")
    assert over_web_api == embedded
    assert any(t.forward_to for t in over_web_api)  # a forward-mailbox user of the demo
    assert any(not t.wanted for t in over_web_api)  # the forward mailbox itself
    assert flavoured_dataverse.refusals == []
