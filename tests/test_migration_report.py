"""Notebook 05 under papermill, and its migration audit report in a real headless Chromium.

The notebook runs with its demo parameters (the reference sample configuration against a fresh
demo CRM, applied there); the report must open offline with its tables and chart, with no
console errors, and a screenshot is kept in the test's folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_migration import assert_no_secret, chromium_available, inspect_in_chromium
from openpyxl import load_workbook

from emailrouter_lib.runner import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_migrate_to_server_side_sync.ipynb"
DEMO = ROOT / "params" / "05_migrate_to_server_side_sync.demo.yaml"
TABLES = (
    "profiles",
    "mailboxes",
    "not_migrated",
    "warnings",
    "schedule",
    "batches",
    "applied",
    "test_and_enable",
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return run_notebook(
        NOTEBOOK, params_file=DEMO, run_root=tmp_path_factory.mktemp("runs"), run_id="m1"
    )


def test_notebook_runs_the_demo_and_applies_it(demo_run):
    run_dir = demo_run.run_dir
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["profiles"] == 3 and summary["counts"]["mailboxes"] == 6
    assert summary["details"]["apply_status"] == "applied" and summary["dry_run"] is False
    record = json.loads((run_dir / "apply-record.json").read_text(encoding="utf-8"))
    assert record["status"] == "applied" and record["transaction"] is True
    assert {c["table"] for c in record["changes"]} >= {"mailbox", "systemuser", "queue"}
    enabled = json.loads((run_dir / "test-and-enable-record.json").read_text(encoding="utf-8"))
    assert enabled["status"] == "applied" and enabled["kind"] == "test-and-enable"
    # the demo's 6 mailboxes fit in batch 1
    assert summary["details"]["test_and_enable_scheduled"] == 6
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    assert {w["code"] for w in plan["warnings"]} >= {"non-ssl", "not-approved", "not-in-config"}
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".html", ".ipynb"):
            assert_no_secret(path.read_text(encoding="utf-8"), str(path))


def test_workbook_has_one_sheet_per_table(demo_run):
    book = load_workbook(demo_run.run_dir / "migration.xlsx")
    assert book.sheetnames == list(TABLES)
    cells = "\n".join(str(c.value) for ws in book for row in ws.iter_rows() for c in row)
    assert_no_secret(cells, "migration.xlsx")
    assert "Exchange 2010 incoming + SMTP outgoing" in cells


def test_report_html_has_no_code(demo_run):
    html = (demo_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert "migration.run(" not in html and "import " not in html
    assert "data:image/png;base64," in html  # the chart, inline


@pytest.mark.skipif(bool(chromium_available()), reason=chromium_available() or "ok")
def test_audit_report_in_headless_chromium(demo_run, tmp_path):
    def look(page) -> dict:
        page.wait_for_selector("html[data-report-ready='1']", timeout=10_000)
        image = page.locator("figure img")
        return {
            "title": page.title(),
            "sections": page.locator("section.table").count(),
            "tables": page.locator("table.sortable").count(),
            "empty": page.locator("section.table .empty-table").count(),
            "headings": [h.lower() for h in page.locator("section.table h2").all_inner_texts()],
            "rows": page.locator("table tbody tr").count(),
            "images": image.count(),
            "image_width": page.evaluate("(img) => img.naturalWidth", image.element_handle()),
        }

    screenshot = tmp_path / "migration-report.png"
    seen = inspect_in_chromium(demo_run.run_dir / "report.html", screenshot, look)
    assert seen["title"] == "Migration to server-side synchronization"
    # planned beside applied first, then one section per table; an empty one (nothing
    # unmigratable here) says "No rows."
    assert seen["sections"] == len(TABLES) + 1
    assert (seen["tables"], seen["empty"]) == (len(TABLES), 1)
    assert seen["headings"][0] == "planned and applied"
    for name in ("profiles", "mailboxes", "warnings", "schedule", "applied"):
        assert any(name in h for h in seen["headings"]), seen["headings"]
    assert seen["rows"] > 10
    assert seen["images"] == 1 and seen["image_width"] > 100  # the chart decoded
    assert screenshot.stat().st_size > 10_000
    assert seen["errors"] == []
    assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"]), seen["requests"]


def test_planned_and_applied_counts_reconcile_row_by_row(tmp_path):
    """ "planned 4 create, 5 update" beside "applied 4 created, 6 updated, 5 unchanged" added up
    to nothing; per CRM table they must, and option values read as words."""
    from emailrouter_lib import migration
    from emailrouter_lib.demo.migration import prepare_migration_demo
    from emailrouter_lib.migration.report import reconcile_table, report_tables

    env = prepare_migration_demo(tmp_path / "demo")
    params = {"config": [str(env.config)], "crm": env.crm_url, "dry_run": False}
    result = migration.run({**params, "run_dir": str(tmp_path)})
    table = reconcile_table(result).set_index("rows")
    for rows in ("email server profiles", "mailboxes"):
        row = table.loc[rows]
        assert row["planned: create"] == row["applied: created"], row
        assert row["planned: update"] == row["applied: updated"], row
        assert row["planned: unchanged"] == row["applied: unchanged"], row
    assert table.loc["users' delivery methods", "note"].startswith("written with each mailbox")
    changed = table[["applied: created", "applied: updated"]].sum().sum()
    assert changed == result.record.changed  # every written row is in one line of the table
    profiles = report_tables(result)["profiles"]
    assert set(profiles["server type"]) == {"Exchange Server", "Other (POP3/SMTP)"}
    assert "995" in profiles["incoming port"].astype(str).tolist()
    warnings = " ".join(report_tables(result)["warnings"]["message"])
    assert "approval is pending approval, not approved" in warnings and "is 2" not in warnings
