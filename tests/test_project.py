"""The repository keeps its promises: one source of dependencies, clean notebooks, safe params.

These are the checks a reviewer would otherwise do by eye on every change: that environment.yml
still delegates to pyproject.toml, that no notebook is committed with outputs or an odd kernel,
that every notebook has demo and example parameters naming real parameters and no secret, and that
the README only points at files and make targets that exist.
"""

from __future__ import annotations

import ast
import re
import stat
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from emailrouter_lib.runner import RUNNER_PARAMETERS, literal_secrets, load_params_file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMS = sorted((ROOT / "params").glob("*.yaml"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def version_floor(spec: str) -> tuple[int, ...]:
    match = re.search(r">=\s*([0-9]+(?:\.[0-9]+)*)", spec)
    assert match, f"no >= floor in {spec!r}"
    return tuple(int(part) for part in match.group(1).split("."))


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


# --- environment.yml delegates to pyproject.toml -----------------------------------------------


def test_environment_yml_delegates_to_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    python = [d for d in conda if requirement_name(d) == "python"]
    assert len(python) == 1, "environment.yml must pin python"
    assert version_floor(python[0]) == version_floor(PYPROJECT["project"]["requires-python"])
    assert "pip" in conda
    assert len(pip) == 1 and "-e .[dev]" in pip[0]["pip"], "pip must install -e .[dev]"
    declared = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    declared |= {
        requirement_name(r)
        for extra in PYPROJECT["project"].get("optional-dependencies", {}).values()
        for r in extra
    }
    extra_conda = {requirement_name(d) for d in conda} - {"python", "pip"}
    assert extra_conda <= declared, (
        f"conda-only packages not in pyproject: {extra_conda - declared}"
    )


# --- committed notebooks -----------------------------------------------------------------------


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.display_name == "Python 3"
    assert nb.metadata.language_info.name == "python"
    assert "papermill" not in nb.metadata, "this is an executed notebook; commit the input"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} has outputs"
            assert cell.execution_count is None, f"cell {index} has an execution count"
        assert "injected-parameters" not in cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_parameters_cell_holds_only_literals_and_the_runner_names(path):
    cell = parameters_cell(nbformat.read(path, as_version=4))
    names = set()
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign | ast.AnnAssign), f"{path.name}: only assignments"
        value = node.value
        assert value is not None
        ast.literal_eval(value)  # derived values would not follow papermill's overrides
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    assert set(RUNNER_PARAMETERS) <= names
    # papermill's own reading (papermill --help-notebook) must see the same names.
    import papermill

    assert set(papermill.inspect_notebook(str(path))) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_demo_and_example_params_naming_its_parameters(path):
    cell = parameters_cell(nbformat.read(path, as_version=4))
    known = {
        t.id
        for node in ast.parse(cell.source).body
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }
    for kind in ("demo", "example"):
        params_file = ROOT / "params" / f"{path.stem}.{kind}.yaml"
        assert params_file.is_file(), f"missing {params_file.relative_to(ROOT)}"
        params = load_params_file(params_file)
        assert set(params) <= known, f"{params_file.name}: not parameters: {set(params) - known}"
        assert not set(params) & set(RUNNER_PARAMETERS), f"{params_file.name}: runner sets those"


def test_every_params_file_belongs_to_a_notebook():
    stems = {p.stem for p in NOTEBOOKS}
    for params_file in PARAMS:
        notebook, _, kind = params_file.stem.rpartition(".")
        assert notebook in stems, f"{params_file.name} names no notebook"
        assert kind in ("demo", "example"), f"{params_file.name}: use <notebook>.demo/.example.yaml"


@pytest.mark.parametrize("params_file", PARAMS, ids=[p.name for p in PARAMS])
def test_no_params_file_holds_a_literal_secret(params_file):
    assert literal_secrets(load_params_file(params_file)) == []
    # Belt and braces, on the raw text: every password= is a reference.
    for value in re.findall(r"password=([^&\s\"']+)", params_file.read_text(encoding="utf-8")):
        assert value.startswith(("env:", "file:", "keyring:")), f"{params_file.name}"


@pytest.mark.parametrize("params_file", PARAMS, ids=[p.name for p in PARAMS])
def test_params_files_name_valid_mailbox_and_crm_urls(params_file):
    parse_mailbox_url, sqlite_path = url_parsers()
    params = load_params_file(params_file)
    for url in params.get("mailboxes") or []:
        parse_mailbox_url(url)
    if params.get("crm"):
        sqlite_path(params["crm"])


def test_readme_mailbox_urls_are_valid():
    parse_mailbox_url, _ = url_parsers()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    urls = re.findall(r"^(?:imaps?|pop3s?|ewss?|maildir|eml)://\S+$", readme, re.MULTILINE)
    assert len(urls) >= 4
    for url in urls:
        parse_mailbox_url(url)


def url_parsers():
    """The library's own URL parsers: the params and README must say what the code accepts."""
    try:
        from emailrouter_lib.crm.url import sqlite_path
        from emailrouter_lib.mailboxes.schemes import parse_mailbox_url
    except ImportError as exc:
        pytest.skip(f"the URL parsers are not importable yet: {exc}")
    return parse_mailbox_url, sqlite_path


# --- README, Makefile, CI ----------------------------------------------------------------------


def test_readme_points_only_at_things_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for mentioned in set(re.findall(r"(?:notebooks|params)/\d\d_[\w.-]+\.(?:ipynb|yaml)", readme)):
        assert (ROOT / mentioned).is_file(), f"README mentions missing {mentioned}"
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for target in set(re.findall(r"\bmake ([a-z][\w-]*)", readme)):
        assert target in targets, f"README mentions `make {target}`, which the Makefile lacks"
    assert "make demo" in readme and "make test" in readme


def test_ci_entry_point_is_strict_bash():
    ci = ROOT / ".ci" / "run"
    assert ci.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"
    text = ci.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/bash") or text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    assert re.search(r"\bmake\b", text) and re.search(r"\btest\b", text), "CI must run make test"
