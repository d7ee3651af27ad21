"""The five demo reports (routing, audit, rules, migration, configure) in a real headless Chromium.

Each demo flow is run through the library, as its notebook runs it, and its ``report.html`` is
opened from disk with every request outside the file intercepted: a report that reached for a
CDN, a font or a tracking pixel would fail here, not on an admin's offline machine. A routing run
with a mailbox that cannot be read must show a red banner and its "failed mailboxes" count before
anything else. Screenshots go to ``runs/test-artifacts/<flow>.png`` for people to look at (the
README's picture is one of them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_audit import ROOT, audit_demo

SHOTS = ROOT / "runs" / "test-artifacts"
FLOWS = ("routing", "audit", "rules", "migration", "configure")


def run_demo(flow: str, run_dir: Path) -> Path:
    """Run *flow*'s demo into *run_dir* as its notebook does; return its report.html."""
    run_dir.mkdir(parents=True)
    if flow in ("routing", "routing-failed"):
        from emailrouter_lib import routing
        from emailrouter_lib.demo.environment import prepare_demo_environment

        env = prepare_demo_environment(run_dir / "demo")
        mailboxes = list(env.mailbox_urls)
        if flow == "routing-failed":  # a mailbox whose folder is gone, beside two that work
            gone = run_dir / "demo" / "mail" / "moved-away"
            mailboxes.append(f"maildir://{gone}?owner=queue:sales@contoso.example")
        result = routing.run(
            {
                "mailboxes": mailboxes,
                "crm": env.crm_url,
                "run_id": "demo" if flow == "routing" else "demo-failing",
                "run_dir": str(run_dir),
                "directions": ["incoming", "outgoing"],
                "progress": False,
            }
        )
    elif flow == "audit":
        result = audit_demo(run_dir / "demo", max_concurrency=4, run_id="demo")
    elif flow == "rules":
        from emailrouter_lib import rules
        from emailrouter_lib.demo.rules import prepare_rules_demo

        env = prepare_rules_demo(run_dir / "demo")
        result = rules.run({"crm": env.crm_url, "config": str(env.config), "dry_run": True})
    elif flow == "migration":
        from emailrouter_lib import migration
        from emailrouter_lib.demo.migration import prepare_migration_demo

        env = prepare_migration_demo(run_dir / "demo")
        result = migration.run(
            {
                "config": [str(env.config)],
                "crm": env.crm_url,
                "dry_run": False,
                "schedule_start": "2024-03-08T18:00:00Z",
                "run_dir": str(run_dir),
            }
        )
    elif flow == "configure":
        import yaml

        from emailrouter_lib import configure

        params = yaml.safe_load((ROOT / "params" / "01_configure_router.demo.yaml").read_text())
        result = configure.run({**params, "run_dir": str(run_dir)})
    else:
        raise AssertionError(flow)
    return result.write_artifacts(run_dir)["report.html"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    return {flow: run_demo(flow, root / flow) for flow in (*FLOWS, "routing-failed")}


def open_offline(browser, report: Path, *, height: int = 900):
    """Open *report* with every request but the file itself and data: URLs refused."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    own = report.resolve().as_uri()
    seen = {"outside": [], "errors": [], "console": []}

    def guard(route):
        url = route.request.url
        if url == own or url.startswith("data:"):
            route.continue_()
        else:
            seen["outside"].append(url)
            route.abort()

    page.route("**/*", guard)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: m.type in ("error", "warning") and seen["console"].append(m.text))
    page.goto(own, wait_until="load", timeout=30_000)
    page.wait_for_selector("html[data-report-ready='1']", timeout=10_000)
    return page, seen


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("flow", FLOWS)
def test_demo_report_is_offline_readable_and_screenshotted(chromium, reports, flow):
    page, seen = open_offline(chromium, reports[flow], height=1400)
    try:
        assert seen["outside"] == [], f"{flow} report asked the network for {seen['outside']}"
        assert seen["errors"] == [] and seen["console"] == []
        # The same look everywhere: a title, the summary's cards, a chart, compact tables.
        assert page.locator("header h1").count() == 1
        assert page.locator("section.summary .card").count() >= 2
        assert page.locator("figure img[src^='data:image/png']").count() >= 1
        # Nothing scrolls sideways: every table fits the page.
        too_wide = page.eval_on_selector_all(
            ".table-wrap", "ws => ws.filter(w => w.scrollWidth > w.clientWidth + 1).length"
        )
        assert too_wide == 0
        body = page.inner_text("body")
        for raw in ('{"', "NaN", "<NA>", "servertype 0", "seconds\n"):
            assert raw not in body, f"{raw!r} shown in the {flow} report"
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"{flow}.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 20_000
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_routing_report_speaks_plain_language_and_sorts_on_the_whole_heading(
    chromium,
    reports,
):
    page, seen = open_offline(chromium, reports["routing"])
    try:
        assert seen["outside"] == []
        cards = page.locator("section.summary .card .label").all_inner_texts()
        assert cards[:3] == ["failed mailboxes", "messages", "activities created"]
        body = page.inner_text("body")
        assert "Skipped: non-delivery report (REPORT.IPM.Note.NDR)" in body
        assert "Filtered: not a response to CRM email" in body
        assert "skipped:REPORT" not in body and "filtered:not-a-response" not in body
        # Details on demand: the item key is not in the row, a click shows it.
        table = page.locator("section.table", has_text="messages").locator("table")
        first = table.locator("tbody tr.has-detail").first
        detail = first.locator("xpath=following-sibling::tr[1]")
        assert detail.is_hidden()
        first.locator("td").nth(1).click()
        assert detail.is_visible() and "item key" in detail.inner_text()
        # Clicking the heading cell's padding, not its label, sorts too.
        heading = table.locator("thead th", has_text="sender")
        box = heading.bounding_box()
        page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2)
        assert heading.get_attribute("aria-sort") == "ascending"
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_failed_mailbox_comes_first_in_a_red_banner(chromium, reports):
    page, seen = open_offline(chromium, reports["routing-failed"])
    try:
        assert seen["outside"] == []
        first = page.locator("main > section").first
        assert first.get_attribute("class") == "alert" and first.get_attribute("role") == "alert"
        assert "1 mailbox failed" in first.inner_text() and "moved-away" in first.inner_text()
        colour = first.evaluate("e => getComputedStyle(e).borderLeftColor")
        assert colour == "rgb(207, 34, 46)"  # the stylesheet's --bad red
        card = page.locator("section.summary .card").first
        assert card.locator(".label").inner_text() == "failed mailboxes"
        assert card.locator(".value").inner_text() == "1"
        assert "bad" in card.get_attribute("class")
        # The failed mailbox is the mailboxes table's first row.
        mailboxes = page.locator("section.table", has_text="mailboxes").first
        assert mailboxes.locator("tbody tr").first.locator("td").first.inner_text() == "error"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "routing-failed.png"))
    finally:
        page.close()


def test_runs_folder_is_not_committed():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "runs/" in ignored
