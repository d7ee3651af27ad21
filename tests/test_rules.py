"""Rule deployment without a server: deciding rows, finding targets, manual artifacts, the CLI,
and the notebook in dry-run mode (demo) and apply mode (against the fake Exchange)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from fixtures_ews import FORWARD_BOX, PASSWORD
from fixtures_rules import (
    RULE_NAME,
    add_mailboxes,
    rule_names,
    rules_url,
)
from routing_helpers import demo_crm

from emailrouter_lib import rules
from emailrouter_lib.crm import demo
from emailrouter_lib.demo.rules import prepare_rules_demo
from emailrouter_lib.errors import ConfigError, ParameterError
from emailrouter_lib.mailboxes.ews_rules import InboxRule, MailboxRules
from emailrouter_lib.rules.cli import register
from emailrouter_lib.rules.manual import ems_script, instructions
from emailrouter_lib.rules.targets import Target, merge, select, with_forward_mailbox
from emailrouter_lib.runner import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_deploy_rules.ipynb"
FWD = "crm-forward@contoso.example"
TARGET = Target("frank@contoso.example", "user Frank", "crm", FWD)


def ours(**changes) -> InboxRule:
    values = dict(id="r1", name=RULE_NAME, forward_as_attachment_to=(FWD,), except_from=(FWD,))
    return InboxRule(**{**values, **changes})


def decide(*found: InboxRule, mode: str = "deploy"):
    return rules.decide(TARGET, RULE_NAME, mode, MailboxRules(TARGET.address, list(found)))


# -- deciding one mailbox ------------------------------------------------------------------------
def test_no_rule_plans_a_create_of_exactly_our_rule():
    row = decide(InboxRule("u1", "Newsletters", actions=("move_to_folder",)))
    assert row.action == "create" and row.own_rules == 1
    (change,) = row.changes
    assert change.op == "create"
    assert change.rule == InboxRule(None, RULE_NAME, 1, True, (FWD,), (FWD,))


def test_our_rule_as_deployed_is_unchanged_whatever_its_priority_or_name_case():
    assert decide(ours(priority=4, name=RULE_NAME.upper())).action == "unchanged"


@pytest.mark.parametrize(
    ("altered", "words"),
    [
        (dict(enabled=False), "disabled"),
        (dict(forward_as_attachment_to=("x@y.example",)), "forwards to x@y.example"),
        (dict(except_from=()), "exception"),
        (dict(conditions=("contains_subject_strings",)), "has conditions"),
        (dict(actions=("mark_as_read",)), "other actions"),
    ],
)
def test_an_altered_rule_of_ours_is_set_back_keeping_its_id_and_priority(altered, words):
    row = decide(ours(priority=3, **altered))
    assert row.action == "update" and words in row.reason
    (change,) = row.changes
    assert change.op == "set" and change.rule.id == "r1" and change.rule.priority == 3


def test_duplicates_of_our_rule_are_deleted_in_the_same_request():
    row = decide(ours(), ours(id="r2"), ours(id="r3", enabled=False))
    assert row.action == "update" and [(c.op, c.rule.id) for c in row.changes] == [
        ("delete", "r2"),
        ("delete", "r3"),
    ]


def test_a_same_named_rule_that_does_not_forward_as_attachment_is_not_ours():
    mine = InboxRule("u1", RULE_NAME, actions=("move_to_folder",))
    assert decide(mine).action == "skip"
    assert decide(mine, mode="remove").action == "unchanged"


def test_remove_deletes_every_rule_of_ours_and_nothing_else():
    row = decide(
        ours(), InboxRule("u1", "Mine", forward_as_attachment_to=("me@x.example",)), mode="remove"
    )
    assert row.action == "remove" and [c.rule.id for c in row.changes] == ["r1"]


# -- targets -------------------------------------------------------------------------------------
def test_demo_targets_from_the_crm_and_the_configuration(tmp_path):
    env = prepare_rules_demo(tmp_path)
    result = rules.run({"crm": env.crm_url, "config": str(env.config)})
    rows = {r.mailbox: r for r in result.plan.rows}
    assert rows[demo.FRANK.address].action == "create"
    assert rows[demo.FRANK.address].forward_to == FWD and not result.plan.read
    assert rows[demo.SALES.address].action == "skip" and "POP3" in rows[demo.SALES.address].reason
    assert "Exchange Online" in rows[demo.BOB.address].reason
    assert "forward mailbox itself" in rows[FWD].reason
    assert rows[demo.FRANK.address].source == "config"  # the configuration wins, same mailbox once
    assert demo.ALICE.address not in rows  # Email Router, not Forward Mailbox


def test_config_users_need_the_crm_for_their_addresses(tmp_path):
    env = prepare_rules_demo(tmp_path)
    result = rules.run({"config": str(env.config)})
    skipped = [r for r in result.plan.rows if r.mailbox.startswith("(")]
    assert skipped and all("no CRM" in r.reason for r in skipped)


def test_filter_and_forward_mailbox_override():
    targets = merge([TARGET, Target("bob@contoso.example", "user Bob", "crm", FWD)])
    assert [t.address for t in select(targets, ["BOB@*"])] == ["bob@contoso.example"]
    moved = with_forward_mailbox(targets, "sink@contoso.example")
    assert {t.forward_to for t in moved} == {"sink@contoso.example"}


def test_bad_parameters_say_what_to_give():
    with pytest.raises(ParameterError, match="no source of mailboxes"):
        rules.run({})
    with pytest.raises(ParameterError, match="no ews= URL"):
        rules.run({"crm": "sqlite:///x.sqlite", "dry_run": False})
    with pytest.raises(ParameterError, match="unknown rules parameter"):
        rules.run({"crm": "sqlite:///x.sqlite", "dryrun": True})
    with pytest.raises(ConfigError, match="leave mailbox= out"):
        rules.run({"crm": "sqlite:///x.sqlite", "ews": "ews://svc@h/EWS?mailbox=a@b.c"})


# -- manual artifacts ----------------------------------------------------------------------------
def test_manual_script_and_instructions(tmp_path):
    env = prepare_rules_demo(tmp_path)
    plan = rules.run(
        {"crm": env.crm_url, "config": str(env.config), "rule_name": "CRM's rule"}
    ).plan
    script = ems_script(plan)
    assert "$RuleName = 'CRM''s rule'" in script  # PowerShell quoting
    assert "New-InboxRule -Mailbox 'bob@contoso.example' -Name $RuleName" in script
    assert f"-ForwardAsAttachmentTo '{FWD}' -ExceptIfFrom '{FWD}'" in script
    assert "sales@" not in script  # POP3: no Exchange shell, instructions only
    text = instructions(plan)
    assert "## sales@contoso.example" in text and "as an attachment" in text
    assert "## bob@contoso.example" in text


# -- the CLI and the notebook --------------------------------------------------------------------
def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="emailrouter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_plan_apply_verify_remove(rules_ews, tmp_path, capsys):
    server = rules_ews
    crm_url = demo_crm(tmp_path)
    add_mailboxes(server, [demo.FRANK.address])
    url = rules_url(server, auth="basic")
    assert cli("rules", "plan", "--crm", crm_url, "--ews", url) == 0
    assert "create    frank@contoso.example" in capsys.readouterr().out
    assert cli("rules", "verify", "--crm", crm_url, "--ews", url) == 1  # not deployed yet
    run_dir = tmp_path / "run"
    assert cli("rules", "apply", "--crm", crm_url, "--ews", url, "--run-dir", str(run_dir)) == 0
    assert rule_names(server, demo.FRANK.address) == [RULE_NAME]
    assert (run_dir / "report.html").is_file() and (run_dir / "verified.csv").is_file()
    assert cli("rules", "verify", "--crm", crm_url, "--ews", url) == 0
    assert cli("rules", "remove", "--crm", crm_url, "--ews", url) == 0
    assert rule_names(server, demo.FRANK.address) == []


def test_notebook_applies_against_the_fake_exchange(rules_ews, tmp_path):
    server = rules_ews
    crm_url = demo_crm(tmp_path)
    add_mailboxes(server, [demo.FRANK.address])
    run = run_notebook(
        NOTEBOOK,
        {"crm": crm_url, "ews": rules_url(server, auth="basic"), "dry_run": False},
        run_root=tmp_path / "runs",
        run_id="apply",
    )
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["details"]["applied"] == {"created": 1, "skipped": 1}
    assert summary["details"]["verified"] == {"ok": 1, "skipped": 1}
    assert rule_names(server, demo.FRANK.address) == [RULE_NAME]
    assert server.rules(FORWARD_BOX) == []
    for path in (run.executed_notebook, run.run_dir / "report.html"):
        assert PASSWORD not in path.read_text(encoding="utf-8")


def test_notebook_dry_run_demo_writes_the_plan_and_the_manual_files(tmp_path):
    params = ROOT / "params" / "03_deploy_rules.demo.yaml"
    run = run_notebook(NOTEBOOK, params_file=params, run_root=tmp_path, run_id="demo")
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"] == {"create": 1, "skip": 3} and summary["dry_run"] is True
    assert (run.run_dir / "manual-rules.ps1").is_file()
    assert (run.run_dir / "manual-rules.md").is_file()
    assert "applied" not in summary
