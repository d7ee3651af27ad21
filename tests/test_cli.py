"""The ``emailrouter`` command, run as an installed console script the way cron runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from routing_helpers import drop, maildir_url, message

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("emailrouter")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "emailrouter_lib.cli"]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_crm_init_then_route_prints_a_summary_and_writes_the_run(tmp_path):
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    created = run("crm", "init", crm, "--demo")
    assert created.returncode == 0 and "with demo data" in created.stdout
    again = run("crm", "init", crm)
    assert again.returncode == 2 and "--force" in again.stderr  # never overwrites silently
    drop(tmp_path / "Maildir", message("hello"), message("world"))
    url = maildir_url(tmp_path / "Maildir", owner="queue:support@contoso.example")
    routed = run(
        "route", "--mailbox", url, "--crm", crm, "--run-dir", str(tmp_path / "run"), "--quiet"
    )
    assert routed.returncode == 0, routed.stderr
    assert "created" in routed.stdout and "2 message(s)" in routed.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["counts"] == {"created": 2}
    assert (tmp_path / "run" / "report.html").is_file() and (
        tmp_path / "run" / "results.csv"
    ).is_file()


def test_route_with_a_literal_password_is_refused_without_echoing_it(tmp_path):
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    run("crm", "init", crm, "--demo")
    result = run(
        "route", "--mailbox", "imap://crm:hunter2@127.0.0.1:1/INBOX", "--crm", crm, "--quiet"
    )
    assert result.returncode == 2  # a usage error, said before anything runs
    assert "hunter2" not in result.stdout + result.stderr
    assert "--mailbox" in result.stderr and "password=" in result.stderr


def test_missing_crm_says_how_to_create_it(tmp_path):
    result = run(
        "route", "--mailbox", "maildir:///nowhere", "--crm", f"sqlite:///{tmp_path / 'no.sqlite'}"
    )
    assert result.returncode == 2 and "emailrouter crm init" in result.stderr
    assert "Traceback" not in result.stderr


def test_classify_json_prints_one_object_per_file(tmp_path):
    good = tmp_path / "note.eml"
    good.write_bytes(message("hi").as_bytes())
    bad = tmp_path / "notes.txt"
    bad.write_text("just some words\n")
    result = run("classify", "--json", str(good), str(bad))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0] == {
        "file": str(good),
        "message_class": "IPM.Note",
        "tracked": True,
        "reason": rows[0]["reason"],
    }
    assert rows[1]["message_class"] is None and rows[1]["tracked"] is False and rows[1]["reason"]


def test_config_validate_reports_malformed_xml_with_file_and_line(tmp_path):
    broken = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    broken.write_text(
        "<Configuration>\n  <SystemConfiguration>\n"
        "    <MaxThreads>5</MaxThread>\n</Configuration>\n"
    )
    result = run("config", "validate", str(broken))
    assert result.returncode == 2
    assert f"{broken}:3:" in result.stdout + result.stderr


def test_config_validate_accepts_the_reference_sample(tmp_path):
    sample = ROOT.parent / "shared" / "reference" / "samples" / "Microsoft.Crm.Tools.EmailAgent.xml"
    if not sample.is_file():
        import pytest

        pytest.skip("../shared/reference is not beside the repository")
    copy = tmp_path / sample.name
    shutil.copyfile(sample, copy)
    result = run("config", "validate", str(copy))
    assert result.returncode == 0, result.stdout
    assert "0 errors" in result.stdout
