"""The demo lines up for a command-line user (issue 15.6): `emailrouter crm init --demo` creates
the users and queues the bundled sample `EmailAgent.xml` names, by the same GUIDs, so `migrate
plan`, `rules plan` and `audit` on "the demo" find every mailbox the file lists."""

from __future__ import annotations

import json
import subprocess
import sys

from emailrouter_lib.config import load_config
from emailrouter_lib.config.edit import SAMPLE_CONFIG
from emailrouter_lib.crm import demo


def emailrouter(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emailrouter_lib.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
    )


def test_every_id_the_sample_names_is_a_demo_record():
    config = load_config(SAMPLE_CONFIG)
    named = {i.lower() for p in config.providers for i in (*p.user_ids, *p.queue_ids)}
    assert named == set(demo.SAMPLE_CONFIG_IDS.values())
    records = {demo.ALICE.id, demo.GINA.id, demo.FRANK.id, demo.SUPPORT.id, demo.SALES.id}
    assert records == named


def test_the_commands_on_the_demo_find_every_configured_mailbox(tmp_path):
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    assert emailrouter("crm", "init", crm, "--demo", cwd=tmp_path).returncode == 0
    config = str(SAMPLE_CONFIG)

    plan = emailrouter("migrate", "plan", "--config", config, "--crm", crm, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    mailboxes = json.loads(plan.stdout)["mailboxes"]
    assert [m for m in mailboxes if m["action"] == "skip"] == []
    assert "not in the CRM" not in plan.stdout + plan.stderr

    rules = emailrouter(
        "rules", "plan", "--crm", crm, "--config", config, "--run-dir", "rules", cwd=tmp_path
    )
    assert rules.returncode == 0, rules.stderr
    assert f"create    {demo.FRANK.address}" in rules.stdout
    assert "not in the CRM" not in rules.stdout

    audit = emailrouter(
        "audit", "--crm", crm, "--config", config, "--run-dir", "audit", cwd=tmp_path
    )
    assert audit.returncode in (0, 1), audit.stderr  # the sample's servers do not exist here
    findings = (tmp_path / "audit" / "findings.csv").read_text()
    assert "config-id-not-in-crm" not in findings and "not in the CRM" not in findings
    assert "config-id-not-in-crm" not in audit.stdout
