"""The README's promise for errors, run through the installed ``emailrouter`` command: malformed
input is one line on stderr naming the flag, exit 2, before anything runs; messages speak the
command's flags and give an admin's advice, not a developer's; a closed pipe ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message

from emailrouter_lib.crm import init_crm
from emailrouter_lib.mailboxes.cleartext import cleartext_warning

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("emailrouter")
SUPPORT = "queue:support@contoso.example"


def emailrouter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "emailrouter_lib.cli"]
    return subprocess.run(
        [*command, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The usage-error contract: exit 2, nothing on stdout, exactly one line on stderr."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == "", result.stdout  # nothing ran: no "routing run ..." block
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("emailrouter"), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://crm@mail.example/INBOX", "unknown mailbox type foo://"),
        ("maildir://relative/path", "absolute path"),
        ("imaps://crm@mail.example/INBOX?password=hunter2", "must be a reference"),
        ("imap://crm:hunter2@mail.example/INBOX", "a password written into the URL is refused"),
        (
            "imaps://crm@mail.example/INBOX?password=env:EMAILROUTER_SURELY_UNSET",
            "environment variable 'EMAILROUTER_SURELY_UNSET'",
        ),
    ],
    ids=["scheme", "relative-maildir", "literal-password", "password-in-userinfo", "unset-env"],
)
def test_a_malformed_mailbox_is_a_usage_error_before_anything_runs(tmp_path, url, expected):
    crm = demo_crm(tmp_path)
    drop(tmp_path / "Maildir", message("must not be routed"))
    good = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    result = emailrouter("route", "--mailbox", good, "--mailbox", url, "--crm", crm, "--quiet")
    line = one_error_line(result)
    assert line.startswith("emailrouter: error: --mailbox ") and expected in line
    assert "hunter2" not in line
    assert line.count(str(urlsplit(url).hostname)) == 1  # the URL is named once, not twice
    store = crm_store(crm)
    try:  # nothing was routed: the good mailbox was not touched either
        subjects = {row["subject"] for row in store.rows("email")}
    finally:
        store.close()
    assert "must not be routed" not in subjects


def test_a_malformed_transport_is_a_usage_error(tmp_path):
    crm = demo_crm(tmp_path)
    line = one_error_line(emailrouter("route", "--crm", crm, "--transport", "fax://x@y"))
    assert line.startswith("emailrouter: error: --transport ") and "unknown sender type" in line


def test_a_literal_password_template_names_the_flag(tmp_path):
    crm = demo_crm(tmp_path)
    result = emailrouter(
        "route", "--crm", crm, "--config", str(tmp_path / "x.xml"), "--config-password", "hunter2"
    )
    line = one_error_line(result)
    assert "--config-password" in line and "config_password" not in line and "hunter2" not in line


def test_a_bad_batch_size_names_the_flag(tmp_path):
    result = emailrouter("route", "--crm", demo_crm(tmp_path), "--batch-size", "0")
    assert result.returncode == 2 and "--batch-size" in result.stderr
    assert "batch_size" not in result.stderr


def test_a_mistyped_crm_path_is_not_answered_with_a_demo(tmp_path):
    typo = tmp_path / "crm.sqlitee"
    drop(tmp_path / "Maildir", message("x"))
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    line = one_error_line(emailrouter("route", "--mailbox", url, "--crm", f"sqlite:///{typo}"))
    assert f"no CRM database at {typo}; check the path" in line
    assert f"emailrouter crm init sqlite:///{typo}" in line and "--demo" not in line


def test_no_developer_advice_in_messages(tmp_path):
    crm = demo_crm(tmp_path)
    missing = maildir_url(tmp_path / "not-a-maildir", owner=SUPPORT)
    routed = emailrouter("route", "--mailbox", missing, "--crm", crm, "--quiet")
    assert routed.returncode == 1 and "is not a Maildir" in routed.stdout
    assert "mailbox.Maildir" not in routed.stdout + routed.stderr
    unknown = ROOT / "tests" / "data" / "config" / "unknown-elements.xml"
    checked = emailrouter("config", "validate", str(unknown))
    assert "unknown element" in checked.stdout
    assert "vocabulary.py" not in checked.stdout + checked.stderr


def test_piping_into_head_ends_quietly(tmp_path):
    note = tmp_path / "note.eml"
    note.write_bytes(message("hi").as_bytes())
    command = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "emailrouter_lib.cli"]
    # ~200 kB of output, more than a pipe holds, so the writer meets the closed pipe
    process = subprocess.Popen(
        [*command, "classify", "--json", *[str(note)] * 1500],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()  # what `head -1` reads, then it exits
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_help_texts_for_every_flag():
    route = emailrouter("route", "--help").stdout
    assert "--batch-size N" in route and "committed together" in route
    validate = emailrouter("config", "validate", "--help").stdout
    assert "the Microsoft.Crm.Tools.EmailAgent.xml to check" in validate
    rollback = emailrouter("migrate", "rollback", "--help").stdout
    assert "apply-record.json" in rollback and "applied to" in rollback
    assert "exit status: 0 ok" in emailrouter("--help").stdout


def test_a_second_rollback_deletes_nothing(tmp_path):
    crm = demo_crm(tmp_path)
    config = ROOT / "tests" / "data" / "migration" / "minimal.xml"
    plan = tmp_path / "plan.json"
    planned = emailrouter(
        "migrate", "plan", "--config", str(config), "--crm", crm, "--output", str(plan)
    )
    assert planned.returncode == 0, planned.stderr
    applied = emailrouter("migrate", "apply", "--plan", str(plan), "--crm", crm)
    assert applied.returncode == 0 and "created" in applied.stdout, applied.stderr
    record = str(tmp_path / "apply-record.json")
    first = emailrouter("migrate", "rollback", "--record", record, "--crm", crm)
    assert first.returncode == 0 and "'deleted'" in first.stdout, first.stdout
    second = emailrouter("migrate", "rollback", "--record", record, "--crm", crm)
    assert second.returncode == 0 and "deleted" not in second.stdout, second.stdout
    assert "nothing to undo" in second.stdout


def test_a_reused_run_dir_keeps_no_stale_outgoing_csv(tmp_path):
    crm = demo_crm(tmp_path)
    run_dir = tmp_path / "run"
    pickup = f"pickup://{tmp_path / 'pickup'}"
    sent = emailrouter("route", "--crm", crm, "--transport", pickup, "--run-dir", str(run_dir))
    assert sent.returncode == 0 and (run_dir / "outgoing.csv").is_file(), sent.stderr
    drop(tmp_path / "Maildir", message("incoming only"))
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    again = emailrouter("route", "--mailbox", url, "--crm", crm, "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert not (run_dir / "outgoing.csv").exists()


def test_a_cleartext_login_is_warned_about(tmp_path):
    crm = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    init_crm(crm)  # no pending email: nothing is sent, so nothing connects
    transport = "smtp://crm@mail.example:25?password=env:SMTP_PW&insecure_auth=1"
    result = emailrouter("route", "--crm", crm, "--transport", transport, env={"SMTP_PW": "x"})
    assert result.returncode == 0, result.stderr
    assert "emailrouter: warning: smtp://crm@mail.example:25" in result.stderr
    assert "clear text" in result.stderr
    imap = "imap://crm@mail.example/INBOX?password=env:PW"
    assert "clear text" in (cleartext_warning(imap) or "")
    assert "pop3s://" in (cleartext_warning("pop3://crm@mail.example?password=env:PW") or "")
    for quiet in (
        imap + "&starttls=1",
        "imaps://crm@mail.example/INBOX?password=env:PW",
        "imap://crm@127.0.0.1/INBOX?password=env:PW",  # loopback: nothing crosses a network
        "smtp://mail.example:25",  # an anonymous relay sends no password
    ):
        assert cleartext_warning(quiet) is None, quiet


def test_a_keyring_without_backend_says_what_to_do():
    code = (
        "from emailrouter_lib.secrets import resolve_secret\n"
        "resolve_secret('keyring:emailrouter/crm')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SecretError" in result.stderr
    assert "no keyring backend" in result.stderr and "env:NAME or file:PATH" in result.stderr


def test_the_audit_lists_a_cleartext_login_among_its_findings(tmp_path, free_port):
    # 0.0.0.0 is no loopback address by name, but Linux connects it to this machine: refused
    url = f"imap://crm@0.0.0.0:{free_port}/INBOX?password=env:PW"
    result = emailrouter(
        "audit", "--mailbox", url, "--run-dir", str(tmp_path / "a"), "--quiet", env={"PW": "x"}
    )
    assert result.returncode == 1, result.stderr
    assert "[cleartext-login]" in result.stdout
    assert "cleartext-login" in (tmp_path / "a" / "findings.csv").read_text()
