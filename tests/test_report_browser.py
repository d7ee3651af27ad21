"""The audit report in a real headless Chromium: it loads offline with no console errors and no
request beyond the file, shows the summary and every table, sorts on click, runs no injected
markup, and leaves a screenshot in runs/test-artifacts/report-browser/."""

from __future__ import annotations

from pathlib import Path

from fixtures_audit import (
    ATTRIBUTE_BREAK,
    PAYLOADS,
    SCRIPT_TAG,
    artifacts_dir,
)


def open_report(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"requests": [], "console": [], "errors": [], "dialogs": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=30_000)
    page.wait_for_selector("html[data-report-ready='1']", timeout=10_000)
    return page, seen


def column_values(page, table_id: str, column: str) -> list[str]:
    return page.eval_on_selector(
        f"#{table_id}",
        """(table, name) => {
            const heads = Array.from(table.tHead.rows[0].cells).map(c => c.textContent.trim());
            const at = heads.indexOf(name);
            return Array.from(table.tBodies[0].rows)
                .filter(r => !r.classList.contains("detail"))
                .map(r => r.cells[at].textContent.trim());
        }""",
        column,
    )


def test_report_in_headless_chromium(chromium, hostile_report):
    result, artifacts = hostile_report
    report = artifacts["report.html"]
    page, seen = open_report(chromium, report)
    try:
        # Offline and clean: nothing requested but the file (figures are inline data: URLs).
        url = report.resolve().as_uri()
        assert [r for r in seen["requests"] if r != url and not r.startswith("data:")] == []
        assert [m for m in seen["console"] if m[0] in ("error", "warning")] == []
        assert seen["errors"] == [] and seen["dialogs"] == []

        # The summary first, then plots, then every table, each with its rows.
        assert page.locator("section.summary").is_visible()
        assert page.locator("section.summary h2").inner_text() == "Summary"
        body = page.inner_text("body")
        assert "mailboxes by state" in body and "message class mix" in body
        images = page.eval_on_selector_all(
            "figure img", "imgs => imgs.map(i => [i.src.slice(0, 22), i.naturalWidth])"
        )
        assert len(images) == 3 and all(
            src == "data:image/png;base64," and width > 100 for src, width in images
        )
        headings = page.eval_on_selector_all("section.table h2", "hs => hs.map(h => h.textContent)")
        assert headings == [name.replace("_", " ") for name in result.tables()]
        for index, (name, frame) in enumerate(result.tables().items()):
            assert len(frame) > 0, f"{name} is empty in this scenario"
            assert page.locator(f"#t{index} tbody tr:not(.detail)").count() == len(frame)
        link = page.locator("nav.links a", has_text="Migration plan")
        assert link.get_attribute("href") == "../migration/report.html"
        assert page.locator("nav.links a", has_text="Excel").get_attribute("href") == "audit.xlsx"

        shots = artifacts_dir("report-browser")
        page.screenshot(path=str(shots / "audit-report.png"), full_page=True)
        assert (shots / "audit-report.png").stat().st_size > 20_000

        # Click a numeric heading: ascending, then descending; blanks stay last.
        def items() -> list[int]:
            return [int(v.replace(",", "")) for v in column_values(page, "t0", "items") if v]

        page.locator("#t0 thead th", has_text="items").locator("button").click()
        ascending = items()
        assert ascending == sorted(ascending) and len(set(ascending)) > 1
        assert page.locator("#t0 thead th", has_text="items").get_attribute("aria-sort") == (
            "ascending"
        )
        page.locator("#t0 thead th", has_text="items").locator("button").click()
        assert items() == sorted(ascending, reverse=True)
        assert column_values(page, "t0", "items")[-1] == ""  # unknown counts sort last

        # Hostile text is shown as text: no extra script, no injected image, no dialog.
        assert page.locator("script").count() == 1
        assert page.locator("img[src='x']").count() == 0
        for payload in PAYLOADS:
            assert payload in body
        page.locator("input[data-filter='t0']").fill("evil.example")
        assert page.locator("#t0 tbody tr:not([hidden])").count() >= 1
        assert seen["dialogs"] == [] and seen["errors"] == []
    finally:
        page.close()


def test_report_page_text_is_escaped(hostile_report):
    result, artifacts = hostile_report
    page = artifacts["report.html"].read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in page
    assert page.count("<script") == 1 and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # Where each payload went in: a subject, a CRM name, an address, an error text.
    table = result.table
    assert SCRIPT_TAG in set(table["oldest_unprocessed_subject"].dropna())
    assert SCRIPT_TAG in set(table["name"].dropna())
    assert any(ATTRIBUTE_BREAK in str(m) for m in table["mailbox"])
    errors = " ".join(table["error"].dropna())
    assert SCRIPT_TAG in errors and ATTRIBUTE_BREAK in errors
