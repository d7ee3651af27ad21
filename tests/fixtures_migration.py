"""Fixtures for the migration tests: config variants, a fresh demo CRM, headless Chromium."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from servers import CHROMIUM as CHROMIUM_PATH
from servers import CHROMIUM_ARGS

from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.errors import CrmError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "migration"
SAMPLE = ROOT.parent / "shared" / "reference" / "samples" / "Microsoft.Crm.Tools.EmailAgent.xml"
CHROMIUM = Path(CHROMIUM_PATH)
# Every fake "encrypted" password in the inputs carries one of these; no output may.
SECRET_MARKERS = ("NOTAREALSECRET", "AQAAANCMnd8BFdERjHoAwE")


def variant(name: str) -> Path:
    return DATA / name


@pytest.fixture
def sample() -> Path:
    if not SAMPLE.is_file():
        pytest.skip(f"the reference sample is missing ({SAMPLE}); ../shared is not checked out")
    return SAMPLE


@pytest.fixture
def demo_crm(tmp_path):
    """A fresh, seeded demo CRM (open) in the test's folder."""
    url = init_crm(f"sqlite:///{tmp_path / 'crm.sqlite'}", demo=True)
    crm = open_crm(url)
    yield crm
    crm.close()


def chromium_available() -> str:
    """Why headless Chromium cannot run here ("" when it can)."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed: {exc}"
    return ""


def inspect_in_chromium(
    path: Path, screenshot: Path, script: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """Open *path* in Debian's headless Chromium (never a downloaded browser), run *script*
    on the page, save a full-page screenshot, and return what *script* found plus the console
    messages, page errors and requested URLs.

    Playwright's sync API runs its own event loop, and another test module may hold one open in
    this thread for the whole session; a worker thread keeps the two apart.
    """

    def work() -> dict[str, Any]:
        from playwright.sync_api import sync_playwright

        seen: dict[str, Any] = {"console": [], "errors": [], "requests": []}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("console", lambda m: seen["console"].append((m.type, m.text)))
                page.on("pageerror", lambda e: seen["errors"].append(str(e)))
                page.on("request", lambda r: seen["requests"].append(r.url))
                page.goto(path.as_uri())
                seen.update(script(page))
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
        return seen

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=120)


# Every table a migration or a Test & Enable step may write.
TOUCHED_TABLES = ("emailserverprofile", "mailbox", "systemuser", "queue", "organization")


def snapshot(crm) -> dict[str, list[dict]]:
    """The rows a migration may touch, exactly (every column)."""
    return {table: crm.rows(table) for table in TOUCHED_TABLES}


def set_delivery_methods(crm, table: str, record_id: str, incoming: int, outgoing: int) -> None:
    """Give a demo user or queue other delivery methods than the plan's (written with SQL, as
    an admin's earlier change would be), so that apply has to change them."""
    with crm.transaction() as conn:
        conn.execute(
            f"UPDATE {table} SET incomingemaildeliverymethod = ?, outgoingemaildeliverymethod = ? "
            f"WHERE {table}id = ?",
            (incoming, outgoing, record_id),
        )


class FaultyStore:
    """The real SQLite CRM with a fault injected: the *after*+1-th call of *method* raises.

    ``transactions=False`` hides the store's transaction (``atomic()`` yields False), as a
    backend without one would behave; ``on_fault`` runs just before the fault is raised.
    """

    def __init__(self, crm, method: str, *, after: int, transactions: bool = True, on_fault=None):
        self.crm, self.method, self.left = crm, method, after
        self.transactions, self.on_fault = transactions, on_fault

    def __getattr__(self, name):
        target = getattr(self.crm, name)
        if name == "atomic" and not self.transactions:
            return lambda: nullcontext(False)
        if name != self.method:
            return target

        def faulty(*args, **kwargs):
            self.left -= 1
            if self.left < 0:
                if self.on_fault is not None:
                    self.on_fault()
                raise CrmError(f"injected failure in {name}: the connection dropped")
            return target(*args, **kwargs)

        return faulty


def assert_no_secret(text: str, where: str) -> None:
    for marker in SECRET_MARKERS:
        assert marker not in text, f"{marker!r} leaked into {where}"
