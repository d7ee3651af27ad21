"""Notebook 04 as an admin first meets it in JupyterLab (issue 15.8): opened and run as it is, with
no parameters set, it runs the demo instead of failing; an interactive run's folder is the
project's `runs/`, not `notebooks/runs/` (JupyterLab starts the kernel in `notebooks/`)."""

from __future__ import annotations

import json
from pathlib import Path

from emailrouter_lib.demo.environment import wants_demo
from emailrouter_lib.runner import prepare_run_dir, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def test_an_interactive_run_in_notebooks_writes_to_the_projects_runs(tmp_path, monkeypatch):
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    folder = prepare_run_dir("", "")
    assert folder.parent == (tmp_path / "runs").resolve()
    monkeypatch.chdir(tmp_path)  # anywhere else: runs/ where the kernel runs
    assert prepare_run_dir("", "x").parent == (tmp_path / "runs").resolve()


def test_the_demo_is_the_default_only_when_nothing_is_given():
    assert wants_demo(None) and wants_demo(None, [], "", None)
    assert not wants_demo(None, ["maildir:///srv/mail"], "", None)
    assert not wants_demo(None, [], "sqlite:///crm.sqlite", None)
    assert not wants_demo(False) and wants_demo(True, ["imaps://x"], "sqlite:///y")


def test_notebook_04_run_as_it_is_routes_the_demo(tmp_path):
    run = run_notebook(
        ROOT / "notebooks" / "04_run_routing_batch.ipynb", run_root=tmp_path, run_id="as-is"
    )
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"].get("created", 0) > 0, summary
    assert (run.run_dir / "demo" / "crm.sqlite").is_file()  # nothing outside the run folder
