"""The HTML report and run artifacts: escaped, self-contained, sortable, complete.

Values from mail are hostile by assumption. The checks read the generated page as text and, where
Chromium is installed, load it in a real headless browser.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from emailrouter_lib.reports import (
    frame_preview_html,
    is_interactive,
    render_html_report,
    want_progress,
    write_run_artifacts,
)
from emailrouter_lib.reports.display import BATCH_ENV

SCRIPT_TAG = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT_TAG, ATTRIBUTE_BREAK)


def hostile_results() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mailbox": ["maildir:///srv/mail/support"] * 4,
            "subject": [SCRIPT_TAG, ATTRIBUTE_BREAK, '=HYPERLINK("http://x.test","open")', None],
            "sender": ["a@contoso.example", ATTRIBUTE_BREAK, "-2+3", "@SUM(A1)"],
            "outcome": [
                "created",
                "skipped:IPM.Schedule.Meeting.Request",
                "quarantined:bad",
                "duplicate",
            ],
            "reason": [SCRIPT_TAG, "", "broken MIME", "Message-ID already in the CRM"],
            "size": [1200, 80, None, 15],
        }
    )


def hostile_page() -> str:
    return render_html_report(
        f"Routing {SCRIPT_TAG}",
        {
            "run_id": ATTRIBUTE_BREAK,
            "messages": 4,
            "counts": {"created": 1, SCRIPT_TAG: 2},
            "mailboxes": [{"mailbox": ATTRIBUTE_BREAK, "status": "ok"}],
            ATTRIBUTE_BREAK: SCRIPT_TAG,
        },
        {"results": hostile_results(), SCRIPT_TAG: pd.DataFrame({ATTRIBUTE_BREAK: [1, 2]})},
        subtitle=ATTRIBUTE_BREAK,
        notes=[SCRIPT_TAG],
    )


def test_mail_values_never_become_markup():
    page = hostile_page()
    for payload in PAYLOADS:
        assert payload not in page
    assert page.count("<script") == 1  # the report's own sorting script, nothing else
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


def test_page_loads_nothing_from_anywhere():
    page = hostile_page()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"https?://(?!x\.test)", page)  # only the escaped hostile subject
    assert "<link" not in page
    assert "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)


def test_content_security_policy_admits_exactly_the_page_own_style_and_script():
    page = hostile_page()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    policy = policy.replace("&#x27;", "'")
    assert "default-src 'none'" in policy
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    for directive, text in (("style-src", style), ("script-src", script)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in policy


def test_summary_comes_first_as_cards_then_sortable_tables():
    page = render_html_report(
        "Routing batch r1",
        {"messages": 1234, "counts": {"created": 1000, "duplicate": 0}, "crm": "sqlite:///crm.db"},
        {"results": hostile_results()},
        subtitle="two mailboxes",
    )
    assert page.index("Summary") < page.index('<table class="sortable"')
    assert '<span class="value">1,234</span><span class="label">messages</span>' in page
    assert 'class="card zero"' in page  # duplicate: 0 is shown, greyed
    assert "<dt>crm</dt><dd>sqlite:///crm.db</dd>" in page
    assert '<th scope="col" class="num" data-type="num"><button type="button">size' in page
    assert '<th scope="col" data-type="text"><button type="button">subject' in page
    assert 'data-sort="1200.0"' in page
    assert '<td data-outcome="quarantined">quarantined:bad</td>' in page
    assert '<td class="empty"></td>' in page  # a missing subject
    assert "4 rows" in page


def test_long_tables_are_cut_and_say_so():
    frame = pd.DataFrame({"n": range(30)})
    page = render_html_report("t", {}, {"results": frame}, max_rows=10)
    assert page.count("<tr>") == 11  # heading row + 10
    assert "Showing the first 10 of 30 rows" in page


def test_empty_table_says_no_rows():
    page = render_html_report("t", {"messages": 0}, {"results": pd.DataFrame(columns=["a"])})
    assert "No rows." in page
    assert '<table class="sortable"' not in page


def test_run_artifacts_are_written(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    summary = {"run_id": "r1", "messages": 4, "counts": {"created": 1}, "ok": True}
    written = write_run_artifacts(
        run_dir,
        summary=summary,
        tables={"results": hostile_results(), "mailboxes": pd.DataFrame({"mailbox": ["m"]})},
        title="Routing batch r1",
    )
    assert set(written) == {"summary.json", "results.csv", "mailboxes.csv", "report.html"}
    assert all(path.parent == run_dir and path.is_file() for path in written.values())
    assert not list(run_dir.glob(".*.tmp"))

    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8")) == summary

    with (run_dir / "results.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert rows[0]["subject"] == SCRIPT_TAG  # CSV keeps the text as it was
    # Cells a spreadsheet would run as formulas are kept as text.
    assert rows[2]["subject"].startswith("'=HYPERLINK")
    assert rows[2]["sender"] == "'-2+3"
    assert rows[3]["sender"] == "'@SUM(A1)"
    assert rows[0]["size"] == "1200.0"

    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<title>Routing batch r1</title>" in page
    assert SCRIPT_TAG not in page


def test_artifacts_keep_two_tables_with_one_slug_apart(tmp_path):
    written = write_run_artifacts(
        tmp_path,
        summary={},
        tables={"Mail boxes": pd.DataFrame({"a": [1]}), "mail boxes": pd.DataFrame({"a": [2]})},
        title="t",
    )
    assert {"mail_boxes.csv", "mail_boxes_2.csv"} <= set(written)


def test_frame_preview_shows_the_first_rows_and_the_total():
    frame = pd.DataFrame({"subject": [SCRIPT_TAG] + [f"m{i}" for i in range(11)]})
    preview = frame_preview_html(frame)
    assert "showing 5 of 12 rows" in preview
    assert preview.count("<td>") == 5
    assert SCRIPT_TAG not in preview
    assert frame_preview_html(frame.head(1), n=5).endswith("showing 1 of 1 row</em></p>")
    assert "no rows" in frame_preview_html(frame.head(0))


def test_quiet_outside_a_kernel_and_in_batch(monkeypatch):
    assert not is_interactive()  # pytest is no IPython kernel
    assert want_progress(None) is False
    assert want_progress(True) is True
    monkeypatch.setenv(BATCH_ENV, "1")
    assert not is_interactive()


# --- in a real browser -------------------------------------------------------------------------

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make test installs it via .ci/)"
)


def dump_dom(page: Path) -> str:
    """The DOM after the page's scripts ran, as headless Chromium serialises it."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    return done.stdout


@needs_chromium
def test_browser_runs_the_report_script_and_no_injected_markup(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(hostile_page(), encoding="utf-8")
    dom = dump_dom(page)
    assert 'data-report-ready="1"' in dom  # the script ran: the policy admits it
    assert dom.count("<script") == 1
    assert "<img" not in dom


@needs_chromium
def test_browser_sorts_and_filters_on_click(tmp_path):
    frame = pd.DataFrame(
        {
            "name": ["alpha", "beta", "gamma", "delta"],
            "size": [10, 9, 100, None],
            "label": ["item 10", "item 9", "Item 100", "item 1"],
        }
    )
    page = render_html_report("sorting", {}, {"results": frame})
    # A test script clicks like a person would; the policy that keeps foreign scripts out goes.
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe = """<script>
    var t = document.getElementById("t0");
    function names() {
      return Array.prototype.filter.call(t.tBodies[0].rows, function (r) { return !r.hidden; })
        .map(function (r) { return r.cells[0].textContent; }).join(",");
    }
    function click(col) { t.tHead.rows[0].cells[col].querySelector("button").click(); }
    click(1); document.body.setAttribute("data-size-up", names());
    click(1); document.body.setAttribute("data-size-down", names());
    click(2); document.body.setAttribute("data-label-up", names());
    var box = document.querySelector("input[data-filter]");
    box.value = "ETA"; box.dispatchEvent(new Event("input"));
    document.body.setAttribute("data-filtered", names());
    document.body.setAttribute("data-count", document.getElementById("t0-count").textContent);
    </script>"""
    page = page.replace("</body>", probe + "</body>")
    path = tmp_path / "sorting.html"
    path.write_text(page, encoding="utf-8")
    dom = dump_dom(path)
    assert 'data-size-up="beta,alpha,gamma,delta"' in dom  # numbers as numbers; empty last
    assert 'data-size-down="gamma,alpha,beta,delta"' in dom  # empty still last
    assert 'data-label-up="delta,beta,alpha,gamma"' in dom  # item 1 < item 9 < item 10 < Item 100
    assert 'data-filtered="beta"' in dom
    assert 'data-count="1 of 4 rows"' in dom


# -- what a manager reads: words, failures first, details on demand ----------------------------


def test_outcomes_in_plain_language_with_the_class_or_rule_beside_them():
    from emailrouter_lib.reports.labels import outcome_label

    assert outcome_label("created") == "Created"
    assert (
        outcome_label("skipped:REPORT.IPM.Note.NDR")
        == "Skipped: non-delivery report (REPORT.IPM.Note.NDR)"
    )
    assert outcome_label("filtered:not-a-response") == "Filtered: not a response to CRM email"
    assert outcome_label("skipped:REPORT.IPM.Note.Custom") == (
        "Skipped: delivery report (REPORT.IPM.Note.Custom)"
    )
    assert outcome_label("skipped:IPM.Note.Custom") == "Skipped: IPM.Note.Custom"  # no guess
    assert outcome_label("quarantined:CrmError") == "Quarantined: CrmError"


def test_alerts_come_before_the_summary_and_long_values_go_to_the_details():
    long_url = "maildir:///srv/mail/" + "x" * 80 + "/support"
    frame = pd.DataFrame(
        [{"outcome": "created", "subject": "Hi", "mailbox": long_url, "item_key": "k" * 60}]
    )
    page = render_html_report(
        "t",
        {"failed_mailboxes": 1, "messages": 1},
        {"results": frame},
        alerts=["imaps://mail.example/INBOX: error: login refused"],
        alert_title="1 mailbox failed",
        main_columns={"results": ["outcome", "subject", "mailbox"]},
    )
    assert page.index('class="alert" role="alert"') < page.index('class="summary"')
    assert "1 mailbox failed" in page and "login refused" in page
    assert '<li class="card bad">' in page  # a non-zero failure count is red
    # The row shows three columns; item_key is only in the details row, the URL is shortened
    # there with the whole value in its tooltip and in the details.
    head = re.search(r"<thead>(.*?)</thead>", page, re.S).group(1)
    assert "item key" not in head and head.count("<th") == 3
    assert f'title="{long_url}"' in page and f"<dd>{long_url}</dd>" in page
    assert '<tr class="detail" hidden>' in page and "<dd>" + "k" * 60 + "</dd>" in page


def test_no_alert_section_when_nothing_failed():
    page = render_html_report("t", {"messages": 0}, {}, alerts=[])
    assert 'role="alert"' not in page
