"""notebooks/01_configure_router.ipynb under papermill, and ``emailrouter config …`` commands."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from emailrouter_lib.config import load_config
from emailrouter_lib.config.edit import SAMPLE_CONFIG, ConfigEditor
from emailrouter_lib.configure.cli import register
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm import init_crm
from emailrouter_lib.runner import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_configure_router.ipynb"
DEMO = ROOT / "params" / "01_configure_router.demo.yaml"


def test_the_demo_run_adds_loads_tests_and_publishes(tmp_path):
    run = run_notebook(NOTEBOOK, params_file=DEMO, run_root=tmp_path, run_id="demo")
    folder = run.run_dir
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    counts = summary["counts"]
    assert counts["published"] == 1 and counts["access_ok"] == 2
    # the demo CRM holds the sample's own users and queues (the same GUIDs): only Bob changes
    # (routed outgoing now) and Gina goes (her address is not approved)
    assert (counts.get("load_data_new", 0), counts["load_data_changed"]) == (0, 1)
    assert (counts["load_data_unchanged"], counts["load_data_gone"]) == (4, 1)
    assert "access_auth-failed" not in counts and "access_unreachable" not in counts

    published = folder / "Microsoft.Crm.Tools.EmailAgent.xml"
    assert Path(summary["details"]["published_to"]) == published
    backup = Path(summary["details"]["backup"])
    assert backup.parent == folder and backup.read_bytes() == SAMPLE_CONFIG.read_bytes()
    editor = ConfigEditor(load_config(published))
    assert ("Contoso POP3 incoming", "incoming") in editor.profiles
    assert "crm-forward@contoso.example" in editor.forward_mailboxes()
    assert editor.entry(seed.FRANK.id).forward_mailbox == "crm-forward@contoso.example"
    assert editor.entry(seed.ALICE.id).incoming == "Exchange 2010 incoming"

    access = pd.read_csv(folder / "access.csv")
    tested = access[access.outcome == "ok"]
    assert set(tested.protocol) == {"maildir"}
    assert set(tested.entry) == {"support@contoso.example", "crm-forward@contoso.example"}
    assert (
        "+    <ForwardMailboxName>Contoso forward mailbox" in (folder / "publish.diff").read_text()
    )
    assert (folder / "report.html").is_file() and (folder / "load_data.csv").is_file()


# --- the CLI ----------------------------------------------------------------------------------


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="emailrouter config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def sample(tmp_path) -> Path:
    target = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    shutil.copyfile(SAMPLE_CONFIG, target)
    return target


@pytest.fixture
def crm_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    init_crm(url, demo=True)
    return url


def test_cli_load_data_is_a_dry_run_until_apply(sample, crm_url, capsys):
    before = sample.read_bytes()
    assert cli("load-data", str(sample), "--crm", crm_url) == 0
    out = capsys.readouterr().out
    plan = "Load Data for https://crm.contoso.local/Contoso: 1 new, 1 changed, 3 unchanged, 1 gone"
    assert plan in out
    assert "(dry run: add --apply to write it)" in out and sample.read_bytes() == before
    assert cli("load-data", str(sample), "--crm", crm_url, "--apply") == 0
    assert "the old file is kept as" in capsys.readouterr().out
    assert cli("load-data", str(sample), "--crm", crm_url, "--apply") == 0
    out = capsys.readouterr().out
    assert "already up to date" in out and "nothing written" in out
    assert len(list(sample.parent.glob("*.bak"))) == 1


def test_cli_test_access_and_publish(sample, crm_url, tmp_path, capsys):
    maildir = tmp_path / "support"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    cli("load-data", str(sample), "--crm", crm_url, "--apply")
    capsys.readouterr()
    code = cli(
        "test-access", str(sample), "--crm", crm_url,
        "--mailbox", f"support@contoso.example=maildir://{maildir}",
        "--only", "incoming:support@contoso.example",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "1 ok" in out and "opened; 0 item(s)" in out
    target = tmp_path / "service" / "Microsoft.Crm.Tools.EmailAgent.xml"
    target.parent.mkdir()
    assert cli("publish", str(sample), "--to", str(target)) == 0
    assert not target.exists() and "new file" in capsys.readouterr().out
    assert cli("publish", str(sample), "--to", str(target), "--apply") == 0
    assert target.read_bytes() == sample.read_bytes()
