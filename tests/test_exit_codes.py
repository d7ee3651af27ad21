"""The README's exit codes, run as cron runs them: the installed ``emailrouter`` command and the
runner, each as its own process, against real Maildirs, a real SQLite CRM and a loopback port
nothing listens on.

    0 all ok · 1 some mailbox or message failed · 2 bad parameters · 3 the notebook failed
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from routing_helpers import demo_crm, drop, maildir_url, message
from test_notebooks import write_notebook

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("emailrouter")
NOTEBOOK_04 = ROOT / "notebooks" / "04_run_routing_batch.ipynb"
SUPPORT = "queue:support@contoso.example"
ENV = {**os.environ, "EMAILROUTER_TEST_PW": "not-used"}


def emailrouter(*args: str) -> subprocess.CompletedProcess:
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "emailrouter_lib.cli"]
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
    )


def runner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emailrouter_lib.runner", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )


def unreachable(port: int) -> str:
    return f"imaps://crm@127.0.0.1:{port}/INBOX?owner={SUPPORT}&password=env:EMAILROUTER_TEST_PW"


def good_maildir(tmp_path: Path, *subjects: str) -> str:
    drop(tmp_path / "Maildir", *(message(s) for s in subjects))
    return maildir_url(tmp_path / "Maildir", owner=SUPPORT)


# -- emailrouter route --------------------------------------------------------------------------


def test_route_all_ok_exits_0_and_ends_with_the_counts(tmp_path):
    crm = demo_crm(tmp_path)
    result = emailrouter("route", "--mailbox", good_maildir(tmp_path, "a", "b"), "--crm", crm)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ok:") and "2 created" in last and "0 failed mailboxes" in last


def test_route_with_an_unreachable_mailbox_exits_1_and_names_it(tmp_path, free_port):
    crm = demo_crm(tmp_path)
    good = good_maildir(tmp_path, "routed anyway")
    result = emailrouter(
        "route", "--mailbox", good, "--mailbox", unreachable(free_port), "--crm", crm, "--quiet"
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    named = f"127.0.0.1:{free_port}"
    failed = [line for line in result.stdout.splitlines() if named in line]
    assert failed and "refused" in failed[0]  # which mailbox, and why
    assert failed[0].count(f"imaps://crm@{named}") == 1  # the URL once, not twice
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("FAILED:") and "1 created" in last and "1 failed mailboxes" in last
    assert f"failed: mailbox imaps://crm@{named}" in result.stderr  # cron mails stderr too


def test_route_with_a_quarantined_message_exits_1(tmp_path):
    crm = demo_crm(tmp_path)
    drop(tmp_path / "Maildir", message("fine"), b"\x00\x01\x02 not a message at all")
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    result = emailrouter("route", "--mailbox", url, "--crm", crm, "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "1 quarantined" in result.stdout.strip().splitlines()[-1]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["ok"] is False and summary["totals"]["quarantined"] == 1
    assert summary["failures"] == ["1 message(s) quarantined:unparseable"]


def test_route_a_crm_that_breaks_off_exits_3(tmp_path, free_port):
    """Not the caller's fault (the CRM's Web API does not answer): the command failed, exit 3."""
    crm = f"dataverse+http://127.0.0.1:{free_port}/org?api=v9.2&max_wait=1&retries=0&timeout=2"
    ledger = str(tmp_path / "ledger.sqlite")
    mailbox = good_maildir(tmp_path, "x")
    result = emailrouter("route", "--mailbox", mailbox, "--crm", crm, "--ledger", ledger)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith("emailrouter: error:") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


# -- the other commands -------------------------------------------------------------------------


def test_audit_with_an_unreachable_mailbox_exits_1(tmp_path, free_port):
    result = emailrouter(
        "audit", "--mailbox", unreachable(free_port), "--run-dir", str(tmp_path / "a"), "--quiet"
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["ok"] is False and f"127.0.0.1:{free_port}" in summary["failures"][0]


def test_config_validate_exits_0_1_2(tmp_path):
    ok = tmp_path / "ok.xml"
    ok.write_text("<Configuration><SystemConfiguration/></Configuration>\n")
    bad = ROOT / "tests" / "data" / "config" / "problems.xml"  # three errors, four warnings
    broken = tmp_path / "broken.xml"
    broken.write_text("<Configuration>\n  <SystemConfiguration>\n</Configuration>\n")
    assert emailrouter("config", "validate", str(ok)).returncode == 0
    assert emailrouter("config", "validate", str(bad)).returncode == 1
    malformed = emailrouter("config", "validate", str(broken))
    assert malformed.returncode == 2
    assert f"{broken}:" in malformed.stderr and malformed.stdout == ""  # errors on stderr


def test_classify_exits_1_when_a_file_is_no_message(tmp_path):
    note = tmp_path / "note.eml"
    note.write_bytes(message("hi").as_bytes())
    words = tmp_path / "words.txt"
    words.write_text("just words\n")
    assert emailrouter("classify", str(note)).returncode == 0
    assert emailrouter("classify", str(note), str(words)).returncode == 1


def test_crm_init_over_an_existing_database_exits_2(tmp_path):
    crm = demo_crm(tmp_path)
    again = emailrouter("crm", "init", crm)
    assert again.returncode == 2 and "--force" in again.stderr


def test_a_bad_command_line_exits_2():
    assert emailrouter("route").returncode == 2  # --crm is required
    assert emailrouter("no-such-command").returncode == 2


# -- the runner ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_runner_on_notebook_04_with_an_unreachable_mailbox_exits_1(tmp_path, free_port):
    crm = demo_crm(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"crm: {crm}\nmailboxes:\n  - {good_maildir(tmp_path, 'one')}\n"
        f"  - {unreachable(free_port)}\ndirections: [incoming]\n"
    )
    result = runner(str(NOTEBOOK_04), "-f", str(params), "--run-root", str(tmp_path / "runs"))
    assert result.returncode == 1, (result.stdout, result.stderr)
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "partial" and record["exit_code"] == 1
    assert any(f"127.0.0.1:{free_port}" in line for line in record["failures"])
    assert f"127.0.0.1:{free_port}" in result.stdout and "refused" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert "1 created" in last and "1 failed mailboxes" in last
    assert "Kernel is running over TCP" not in result.stderr  # the kernel talks over IPC


def test_runner_on_a_good_batch_exits_0_with_status_succeeded(tmp_path):
    crm = demo_crm(tmp_path)
    result = runner(
        str(NOTEBOOK_04),
        *("-p", "crm", crm, "-r", "mailboxes", good_maildir(tmp_path, "a", "b")),
        *("-p", "directions", '["incoming"]', "--run-root", str(tmp_path / "runs")),
        *("--run-id", "good"),
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    record = json.loads((tmp_path / "runs" / "good" / "run.json").read_text())
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert result.stdout.strip().splitlines()[-1].startswith("ok: 2 created")


def test_runner_on_a_notebook_that_raises_exits_3(tmp_path):
    failing = write_notebook(tmp_path / "failing.ipynb", 'raise RuntimeError("disk on fire")')
    result = runner(str(failing), "--run-root", str(tmp_path / "runs"), "--run-id", "f")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "RuntimeError: disk on fire" in result.stderr
    record = json.loads((tmp_path / "runs" / "f" / "run.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 3


def test_runner_with_bad_parameters_exits_2(tmp_path):
    tiny = write_notebook(tmp_path / "tiny.ipynb", "print(x)")
    unknown = runner(str(tiny), "-p", "mailbx", "[]", "--run-root", str(tmp_path / "runs"))
    assert unknown.returncode == 2 and "unknown parameter mailbx" in unknown.stderr
    literal = runner(str(tiny), "-p", "password", "hunter2", "--run-root", str(tmp_path / "runs"))
    assert literal.returncode == 2 and "hunter2" not in literal.stderr


def test_runner_exits_2_when_the_notebook_refuses_its_parameters(tmp_path):
    """A mistyped CRM path is found by the notebook, but it is still a bad parameter."""
    missing = f"sqlite:///{tmp_path / 'typo.sqlite'}"
    result = runner(
        str(NOTEBOOK_04),
        *("-p", "crm", missing, "-r", "mailboxes", good_maildir(tmp_path, "a")),
        *("--run-root", str(tmp_path / "runs"), "--run-id", "typo"),
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "no CRM database at" in result.stderr and "--demo" not in result.stderr
    record = json.loads((tmp_path / "runs" / "typo" / "run.json").read_text())
    assert record["status"] == "failed" and record["exit_code"] == 2
