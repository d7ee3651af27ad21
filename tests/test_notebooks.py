"""Notebooks run through the runner, in-process via papermill, as `make demo` and cron run them.

The runner's own rules (unknown parameters, secrets, failures, the run folder) are checked on a
tiny notebook written here, so they hold whatever state the library is in; then every committed
notebook is run with its demo parameters and must leave a report with something in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from emailrouter_lib.errors import ConfigError, EmailRouterError, NotebookError, SecretError
from emailrouter_lib.run_summary import SUMMARY_KEYS
from emailrouter_lib.runner import (
    _cli_value,
    check_parameters,
    main,
    notebook_parameters,
    run_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

CODE_MARKER = "THIS_SOURCE_LINE_IS_CODE"


def write_notebook(path: Path, *body: str) -> Path:
    parameters = new_code_cell(
        'x = 1\nlabel = ""\npassword = None\nrun_id = ""\nrun_dir = ""',
        metadata={"tags": ["parameters"]},
    )
    nb = new_notebook(
        cells=[parameters, *(new_code_cell(code) for code in body)],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nb")
    return write_notebook(
        folder / "tiny.ipynb",
        f"# {CODE_MARKER}\nfrom pathlib import Path\n"
        'Path(run_dir, "out.txt").write_text(f"{x!r} {label!r} {run_id}")\n'
        'print("x is", x)',
    )


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return run_notebook(tiny, {"x": 7, "label": "00123"}, run_root=root, run_id="t1")


def test_run_writes_the_executed_notebook_and_an_html_without_code(tiny_run, tiny):
    assert tiny_run.run_dir.name == "t1"
    assert tiny_run.executed_notebook == tiny_run.run_dir / "tiny.ipynb"
    executed = nbformat.read(tiny_run.executed_notebook, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 7" in injected[0].source
    assert (tiny_run.run_dir / "out.txt").read_text() == "7 '00123' t1"
    html = tiny_run.notebook_html.read_text(encoding="utf-8")
    assert "x is 7" in html
    assert CODE_MARKER not in html
    assert tiny_run.report == tiny_run.notebook_html  # this notebook writes no report.html
    record = json.loads((tiny_run.run_dir / "run.json").read_text())
    assert record["status"] == "succeeded" and record["parameters"]["run_dir"] == str(
        tiny_run.run_dir
    )
    assert nbformat.read(tiny, as_version=4).cells[1].outputs == []  # the input is untouched


def test_a_run_folder_is_never_reused(tiny, tiny_run):
    with pytest.raises(ConfigError, match="already holds a run"):
        run_notebook(tiny, run_root=tiny_run.run_dir.parent, run_id="t1")


def test_an_unknown_parameter_is_named_with_the_known_ones(tiny, tmp_path):
    with pytest.raises(ConfigError) as caught:
        run_notebook(tiny, {"mailbx": ["maildir:///x"]}, run_root=tmp_path)
    message = str(caught.value)
    assert "mailbx" in message
    assert "label, password, run_dir, run_id, x" in message
    assert not any(tmp_path.iterdir())  # refused before anything ran


def test_run_id_and_run_dir_belong_to_the_runner(tiny, tmp_path):
    with pytest.raises(ConfigError, match="set by the runner"):
        run_notebook(tiny, {"run_dir": "/tmp/elsewhere"}, run_root=tmp_path)


def test_a_literal_secret_is_refused_without_being_repeated(tiny, tmp_path):
    with pytest.raises(SecretError) as caught:
        run_notebook(tiny, {"password": "hunter2"}, run_root=tmp_path)
    assert "password" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    known = notebook_parameters(tiny)
    for reference in ("env:MAILBOX_PW", "file:/etc/emailrouter/pw", "keyring:emailrouter/crm"):
        check_parameters(tiny, {"password": reference}, known)


def test_a_literal_password_inside_a_mailbox_url_is_refused(tiny):
    known = {"mailboxes": [], "run_id": "", "run_dir": ""}
    url = "imaps://crm@mail.contoso.example/INBOX?owner=queue:s@contoso.example&password=hunter2"
    with pytest.raises(SecretError) as caught:
        check_parameters(tiny, {"mailboxes": [url]}, known)
    assert "mailboxes[0]" in str(caught.value) and "hunter2" not in str(caught.value)
    check_parameters(tiny, {"mailboxes": [url.replace("hunter2", "env:PW")]}, known)


def test_a_failing_notebook_raises_and_keeps_the_traceback(tmp_path):
    failing = write_notebook(tmp_path / "failing.ipynb", 'raise RuntimeError("mailbox on fire")')
    with pytest.raises(NotebookError) as caught:
        run_notebook(failing, run_root=tmp_path / "runs", run_id="f1")
    assert isinstance(caught.value, EmailRouterError)  # what cron wrappers and the CLI catch
    message = str(caught.value)
    assert "RuntimeError: mailbox on fire" in message
    executed = tmp_path / "runs" / "f1" / "failing.ipynb"
    assert str(executed) in message
    assert "mailbox on fire" in executed.read_text(encoding="utf-8")
    assert (tmp_path / "runs" / "f1" / "failing.html").exists()
    assert json.loads((tmp_path / "runs" / "f1" / "run.json").read_text())["status"] == "failed"


def test_a_cell_past_the_timeout_is_stopped_with_advice(tmp_path):
    slow = write_notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(30)")
    with pytest.raises(NotebookError, match="ran longer than 1 s") as caught:
        run_notebook(slow, run_root=tmp_path / "runs", run_id="t1", timeout=1)
    assert "--timeout" in str(caught.value)
    assert json.loads((tmp_path / "runs" / "t1" / "run.json").read_text())["status"] == "failed"


def test_command_line(tiny, tmp_path, capsys):
    params = tmp_path / "tiny.yaml"
    params.write_text("x: 3\nlabel: 2024-01-01\n", encoding="utf-8")
    argv = [
        str(tiny),
        "-f",
        str(params),
        "-p",
        "x",
        "5",
        "--run-root",
        str(tmp_path),
        "--run-id",
        "c1",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "executed notebook:" in out and str(tmp_path / "c1" / "tiny.ipynb") in out
    assert (tmp_path / "c1" / "out.txt").read_text() == "5 '2024-01-01' c1"  # -p beats -f; no dates
    assert main([str(tiny), "-p", "nope", "1", "--run-root", str(tmp_path)]) == 2
    assert "unknown parameter nope" in capsys.readouterr().err


def test_command_line_values():
    assert _cli_value("200") == 200
    assert _cli_value("true") is True and _cli_value("False") is False
    assert _cli_value("None") is None
    assert _cli_value('["a", "b"]') == ["a", "b"]
    assert _cli_value("00123") == "00123"  # an id stays an id (papermill's -p would make 123)
    assert _cli_value("sqlite:///crm.db") == "sqlite:///crm.db"


# --- the committed notebooks, with their demo parameters ---------------------------------------


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_its_demo_parameters(notebook, tmp_path):
    demo = ROOT / "params" / f"{notebook.stem}.demo.yaml"
    run = run_notebook(notebook, params_file=demo, run_root=tmp_path, run_id="demo")
    assert run.executed_notebook.is_file()
    assert run.notebook_html.is_file()
    assert run.report == run.run_dir / "report.html" and run.report.is_file()
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    # one schema for every flow: the same top-level keys, in the same order (run_summary)
    assert tuple(summary) == SUMMARY_KEYS, f"{notebook.name}: {list(summary)}"
    assert summary["flow"] and summary["run_id"] and summary["parameters_hash"]
    counts = summary.get("counts", {})
    assert counts and sum(counts.values()) > 0, f"nothing happened in the demo: {summary}"
    # The notebook's HTML is read offline: no script or style from a CDN (require.js, MathJax);
    # and it reads like a report, not like raw pandas.
    page = run.notebook_html.read_text(encoding="utf-8")
    assert re.findall(r'<(?:script|link)[^>]+(?:src|href)="(?:https?:)?//[^"]*"', page) == []
    assert "mathjax" not in page.lower() and "require.min.js" not in page
    text = re.sub(r"<style.*?</style>|<script.*?</script>|<[^>]+>", " ", page, flags=re.S)
    for raw in ("NaN", "&lt;NA&gt;", "995.0", "{'", "dry run True"):
        assert raw not in text, f"{raw!r} in {run.notebook_html.name}"
