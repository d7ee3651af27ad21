"""Hostile configuration files are refused with one line each: what held in issue 12 must keep
holding.

``hostile_config.py`` generates the family (entity bombs, external entities and DTDs, internal
subsets, deep nesting, huge attributes, wrong encodings, BOM mix-ups, truncation, bytes XML
forbids, not XML at all) in the encodings an admin's file may have. ``emailrouter config
validate`` must refuse each: exit 2, exactly one line naming the file, no traceback, and never
the text of a file an entity points at. The command's own code is called in-process for all of
them (a process each would cost minutes) and run as its own process for one.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest
from hostile_config import SECRET_TEXT, harmless_files, hostile_files

from emailrouter_lib.cli import main


def validate(path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["config", "validate", str(path)])
    return code, out.getvalue() + err.getvalue()


def refusal_problem(path, code: int, output: str) -> str | None:
    lines = output.splitlines()
    if code != 2:
        return f"exit {code}, not 2: {output[:300]!r}"
    if len(lines) != 1:
        return f"{len(lines)} lines, not one: {output[:300]!r}"
    if not lines[0].startswith(f"{path}:") or " error [" not in lines[0]:
        return f"not 'FILE:LINE: error [code] ...': {lines[0][:300]!r}"
    if SECRET_TEXT in output or "Traceback" in output:
        return f"leaks a file's text or a traceback: {output[:300]!r}"
    return None


@pytest.mark.timeout(120)
def test_every_hostile_file_is_refused_with_one_line(tmp_path):
    problems, checked = {}, 0
    for name, path in hostile_files(tmp_path):
        checked += 1
        problem = refusal_problem(path, *validate(path))
        if problem:
            problems[name] = problem
    assert checked >= 117  # the count, and then some
    assert problems == {}


def test_xinclude_is_read_as_an_element_and_never_followed(tmp_path):
    for name, path in harmless_files(tmp_path):
        code, output = validate(path)
        assert code in (0, 1), (name, output)
        assert SECRET_TEXT not in output and "Traceback" not in output
        assert "unexpected-structure" in output  # the include is reported, not expanded


def test_the_command_refuses_one_as_its_own_process(tmp_path):
    name = "parameter-entity-exfiltration.utf16-bom"
    path = next(path for found, path in hostile_files(tmp_path) if found == name)
    done = subprocess.run(
        [sys.executable, "-m", "emailrouter_lib.cli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refusal_problem(path, done.returncode, done.stdout + done.stderr) is None
