"""The command starts without the heavy libraries only some commands use.

Speed itself is measured by ``benchmarks/startup.py`` (``make bench``); what this keeps true, on
any machine, is the cause of a slow start: ``emailrouter --help``, the import of the command and a
routing batch from a Maildir into SQLite must not import pandas, matplotlib, openpyxl, exchangelib
or msal. A new top-level import of one of them in a module the command reaches fails here, naming
the module that pulled it in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "matplotlib", "openpyxl", "exchangelib", "msal", "numpy")
ROOT = Path(__file__).resolve().parents[1]

# Runs the code, then says which heavy modules are loaded and which of our modules came first
# before each (the importer), so a failure names the culprit.
PROBE = """
import builtins, json, sys
heavy = {heavy!r}
first = {{}}
real_import = builtins.__import__
def watching(name, globals=None, *args, **kwargs):
    top = name.split(".")[0]
    if top in heavy and top not in sys.modules and top not in first:
        first[top] = (globals or {{}}).get("__name__", "?")
    return real_import(name, globals, *args, **kwargs)
builtins.__import__ = watching
{code}
print("PROBE" + json.dumps({{m: first.get(m, "?") for m in heavy if m in sys.modules}}))
"""


def _heavy_imports(code: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, code=code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("PROBE")]
    assert line, f"probe failed (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(line[-1][len("PROBE") :])


def test_importing_the_command_loads_no_heavy_library():
    assert _heavy_imports("import emailrouter_lib.cli") == {}


def test_help_loads_no_heavy_library():
    code = (
        "import emailrouter_lib.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "for sub in ('route', 'audit', 'rules', 'migrate', 'config'):\n"
        "    try:\n        c.main([sub, '--help'])\n    except SystemExit:\n        pass\n"
    )
    assert _heavy_imports(code) == {}


def test_routing_a_maildir_into_sqlite_loads_no_heavy_library(tmp_path):
    maildir = tmp_path / "inbox"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(
        b"From: carol@fabrikam.example\r\nTo: support@contoso.example\r\n"
        b"Subject: hello\r\nMessage-ID: <startup-1@test>\r\n\r\nbody\r\n"
    )
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    code = (
        "import emailrouter_lib.cli as c\n"
        f"assert c.main(['crm', 'init', {crm!r}, '--demo']) == 0\n"
        f"code = c.main(['route', '--mailbox', 'maildir://{maildir}"
        "?owner=queue:support@contoso.example', "
        f"'--crm', {crm!r}, '--quiet'])\n"
        "assert code == 0, code\n"
    )
    assert _heavy_imports(code) == {}


@pytest.mark.parametrize("package", ["audit", "rules", "migration", "routing"])
def test_flow_packages_still_offer_their_names(package):
    """The lazy ``__init__`` keeps every public name reachable (and listed by ``dir``)."""
    import importlib

    module = importlib.import_module(f"emailrouter_lib.{package}")
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
