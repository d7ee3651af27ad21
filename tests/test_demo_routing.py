"""The demo, end to end: every scenario message comes out as the scenario says it should."""

from __future__ import annotations

from routing_helpers import crm_store, route

from emailrouter_lib.demo.environment import prepare_demo_environment
from emailrouter_lib.demo.scenarios import SCENARIOS


def test_each_scenario_gets_its_expected_outcome_correlation_and_regarding(tmp_path):
    env = prepare_demo_environment(tmp_path / "demo")
    result = route(env.crm_url, *env.mailbox_urls)
    assert result.ok
    store = crm_store(env.crm_url)
    rows = {row.item_key: row for row in result.rows}
    for scenario in SCENARIOS:
        [row] = [r for key, r in rows.items() if scenario.slug in key]
        assert (scenario.slug, row.outcome) == (scenario.slug, scenario.expected), row.reason
        if scenario.expected == "created":
            assert row.correlation == (scenario.correlation or "none"), scenario.slug
            email = store.email(row.activityid)
            assert email["regardingobjectid"] == scenario.regarding, scenario.slug


def test_rerunning_the_demo_routes_nothing_twice(tmp_path):
    env = prepare_demo_environment(tmp_path / "demo")
    first = route(env.crm_url, *env.mailbox_urls)
    second = route(env.crm_url, *env.mailbox_urls)
    assert first.counts["created"] > 20
    assert second.rows == []
