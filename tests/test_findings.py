"""One finding shape for every flow (issue 14): severity, code, message, where."""

from __future__ import annotations

import pytest

from emailrouter_lib.audit.findings import finding
from emailrouter_lib.config.findings import Finding as ConfigFinding
from emailrouter_lib.findings import Finding
from emailrouter_lib.migration.warnings import warning as make_warning


def test_every_flows_findings_are_the_one_shape():
    config = ConfigFinding("error", "bad-guid", "not a GUID", file="EmailAgent.xml", line=12)
    audit = finding("warning", "two-routers", "support@contoso.example", "listed twice")
    migration = make_warning("non-ssl", "the profile does not use SSL", profile="POP3")
    for found in (config, audit, migration):
        assert isinstance(found, Finding)
        assert found.severity in ("error", "warning", "info") and found.code and found.message
    assert config.where == "EmailAgent.xml:12"
    assert str(config) == "EmailAgent.xml:12: error [bad-guid] not a GUID"
    assert audit.where == "support@contoso.example"
    assert migration.where == "POP3"


def test_a_severity_outside_the_three_is_refused():
    with pytest.raises(ValueError, match="severity"):
        Finding("fatal", "x", "y")
