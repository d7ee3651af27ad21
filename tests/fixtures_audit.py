"""Fixtures for the audit tests: a demo audit salted with hostile values, and a headless Chromium.

The hostile audit puts ``<script>alert(1)</script>`` and ``"><img src=x onerror=alert(1)>`` where
mail and admins put text: in subjects, in a CRM user's name and address (the mailbox column), and
in error texts (a Maildir path that does not exist is quoted in its error).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from routing_helpers import crm_store, drop, message
from servers import CHROMIUM, CHROMIUM_ARGS

from emailrouter_lib import audit
from emailrouter_lib.crm.sqlite import insert_rows
from emailrouter_lib.demo.environment import prepare_audit_demo
from emailrouter_lib.mailboxes.url import local_mailbox_url

SCRIPT_TAG = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'
PAYLOADS = (SCRIPT_TAG, ATTRIBUTE_BREAK)
HOSTILE_ADDRESS = f"{ATTRIBUTE_BREAK}@evil.example".lower()
ROOT = Path(__file__).resolve().parents[1]


def audit_demo(folder: Path, **params):
    """The audit of the demo (notebook 02's parameters) made fresh in *folder*."""
    env = prepare_audit_demo(folder)
    return audit.run(
        {
            "mailboxes": env.mailbox_urls,
            "crm": env.crm_url,
            "config": [str(env.config_path)],
            "config_password": env.config_password,
            "since": None,
            "progress": False,
            **params,
        }
    )


def hostile_audit(folder: Path):
    """Run the demo audit plus hostile mailboxes; returns (result, artifacts)."""
    demo = prepare_audit_demo(folder / "demo")
    with crm_store(demo.crm_url) as crm, crm.transaction() as conn:
        insert_rows(
            conn,
            "systemuser",
            [
                {
                    "systemuserid": "0badc0de-0000-4000-8000-000000000001",
                    "fullname": SCRIPT_TAG,
                    "internalemailaddress": HOSTILE_ADDRESS,
                    "createdon": "2024-03-01T08:00:00Z",
                }
            ],
        )
    inbox = folder / "hostile"
    drop(inbox, message(SCRIPT_TAG), message(ATTRIBUTE_BREAK, sender="x@evil.example"))
    urls = [
        local_mailbox_url(inbox, owner=f"user:{HOSTILE_ADDRESS}"),
        local_mailbox_url(folder / SCRIPT_TAG),  # not there: the path is quoted in the error
        local_mailbox_url(folder / ATTRIBUTE_BREAK),
    ]
    result = audit.run(
        {
            "mailboxes": [*demo.mailbox_urls, *urls],
            "crm": demo.crm_url,
            "config": [str(demo.config_path)],
            "config_password": demo.config_password,
            "since": None,
            "migration_plan": "../migration/report.html",
        }
    )
    return result, result.write_artifacts(folder / "run")


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-audit")
    return hostile_audit(folder)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A headless Debian Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: a sync Playwright left running would break the next module that starts one.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed; apt-get install chromium (make test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed; pip install -e .[dev]")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(name: str) -> Path:
    """Where browser tests leave screenshots for people (runs/ is not committed)."""
    path = ROOT / "runs" / "test-artifacts" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
