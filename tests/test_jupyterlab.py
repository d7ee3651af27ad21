"""The configuration notebook in a REAL JupyterLab, driven by headless Chromium.

A JupyterLab server is started on loopback (random port, token auth, ``--no-browser``) with a
temporary root holding a copy of ``notebooks/01_configure_router.ipynb`` whose parameters cell
says ``demo = True``. Chromium opens it, runs all cells through the Run menu, and waits for the
ipywidgets form to render; a screenshot is written under the test's tmp dir. The server is
stopped (and waited for) at the end. Skips, saying why, when jupyter-lab, Chromium or Playwright
is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from servers import CHROMIUM, CHROMIUM_ARGS, HOST, free_ports

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_configure_router.ipynb"
START_TIMEOUT = 90  # seconds for the server to answer
# milliseconds for the notebook to run and the form to appear
RUN_TIMEOUT = int(os.environ.get("EMAILROUTER_LAB_TIMEOUT_MS", "180000"))

pytestmark = pytest.mark.slow


def _jupyter_lab() -> str | None:
    beside = Path(sys.executable).parent / "jupyter-lab"
    return str(beside) if beside.exists() else shutil.which("jupyter-lab")


def _missing() -> str:
    if _jupyter_lab() is None:
        return "jupyter-lab is not installed (pip install -e .[dev])"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev]; never `playwright install`)"
    return ""


MISSING = _missing()


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab: (base URL, token, root dir); stopped afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "demo = False" in cell.source
    cell.source = cell.source.replace("demo = False", "demo = True")
    nbformat.write(nb, root / NOTEBOOK.name)

    # no "get notified about Jupyter news?" toast over the screenshot (and no fetch of the news)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = free_ports(1)[0], secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("EMAILROUTER_BATCH", "TQDM_DISABLE")}
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
    )
    log = (tmp_path / "jupyterlab.log").open("wb")
    server = subprocess.Popen(
        [
            _jupyter_lab(),
            "--no-browser",
            f"--ServerApp.ip={HOST}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.allow_root=True",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://{HOST}:{port}"
    try:
        _wait_for(server, f"{base}/api/status?token={token}", tmp_path / "jupyterlab.log")
        yield base, token, root
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # the server shuts its kernels down
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        log.close()


def _wait_for(server: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter-lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter-lab did not answer within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@pytest.mark.skipif(bool(MISSING), reason=MISSING)
def test_the_form_renders_in_a_real_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    screenshot = tmp_path / "jupyterlab-config-form.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait_kernel_idle(page)
            # the toolbar's "Restart the kernel and run all cells", then confirm in the dialog
            page.locator("[data-command='notebook:restart-run-all']").first.click()
            page.locator(".jp-Dialog-button.jp-mod-accept").first.click()
            try:
                form = page.wait_for_selector(".emailrouter-config-form", timeout=RUN_TIMEOUT)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
                pytest.fail(
                    "the form did not render; screenshot in "
                    f"{tmp_path / 'failure.png'}; cell outputs:\n" + "\n---\n".join(outputs)[-4000:]
                )
            form.scroll_into_view_if_needed()
            assert "Email Router Configuration Manager" in (form.text_content() or "")
            tabs = page.locator(".lm-TabBar-tabLabel", has_text="Configuration profiles")
            assert tabs.count() >= 1
            assert page.locator("button", has_text="Test Access").count() >= 1
            # the form is live: Show diff asks the kernel and renders the plan
            page.locator("button", has_text="Show diff").first.click()
            page.wait_for_selector("text=line(s) added", timeout=60_000)
            page.screenshot(path=str(screenshot), full_page=False)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    assert (root / "runs").is_dir()  # the interactive run wrote its artifacts beside the notebook


def _wait_kernel_idle(page) -> None:
    """The kernel is up when the status bar reads "Python 3 (ipykernel) | Idle"."""
    page.wait_for_selector(".jp-StatusBar-Widget >> text=/Idle/", timeout=120_000)
