"""Each flow's parameters are declared once (emailrouter_lib.parameters); the notebook, its
params files and the command are held against that declaration here (issue 14).

A parameter added to a flow and not to its notebook's parameters cell, a notebook default that
drifted from the declared one, a params file or a command-line flag naming something the flow
does not declare: each fails here, naming the flow and the parameter.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import nbformat
import pytest

from emailrouter_lib.audit.params import AuditParams
from emailrouter_lib.cli import build_parser
from emailrouter_lib.configure.flow import ConfigureParams
from emailrouter_lib.errors import EmailRouterError, ParameterError
from emailrouter_lib.migration.flow import MigrationParams
from emailrouter_lib.parameters import FlowParameters
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.rules.flow import RulesParams
from emailrouter_lib.runner import load_params_file

ROOT = Path(__file__).resolve().parents[1]

# notebook -> its flow's parameters, and the command(s) that run the same flow
FLOWS: dict[str, tuple[type[FlowParameters], list[tuple[str, ...]]]] = {
    "01_configure_router": (
        ConfigureParams,
        [("config", "load-data"), ("config", "test-access"), ("config", "publish")],
    ),
    "02_audit_mailboxes": (AuditParams, [("audit",)]),
    "03_deploy_rules": (
        RulesParams,
        [("rules", "plan"), ("rules", "apply"), ("rules", "verify"), ("rules", "remove")],
    ),
    "04_run_routing_batch": (RoutingParams, [("route",)]),
    "05_migrate_to_server_side_sync": (
        MigrationParams,
        [("migrate", "plan"), ("migrate", "apply"), ("migrate", "schedule", "plan")],
    ),
}
# What only the notebook has: the demo switch, and the Configuration Manager's form.
NOTEBOOK_ONLY = {"demo", "show_form"}
# Where a notebook's default differs from the library's on purpose, and why.
NOTEBOOK_DEFAULTS = {
    # the notebook runs a whole batch, reading and sending, as the Email Router service did; the
    # library and `emailrouter route --mailbox` read only unless told to send (--outgoing)
    ("04_run_routing_batch", "directions"),
}
# What only a command has: where it reads a plan or writes its output, and --no-backup.
COMMAND_ONLY = {"--format", "--output", "--plan", "--record", "--batch-plan", "--no-backup"}
COMMAND_ONLY |= {"--no-crm-on-premises", "--outgoing", "--demo", "--force"}


def _cell_values(notebook: str) -> dict[str, object]:
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                values[target.id] = ast.literal_eval(node.value)
    return values


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o not in ("-h", "--help")}


@pytest.mark.parametrize("notebook", FLOWS)
def test_the_parameters_cell_is_the_declaration(notebook):
    params, _ = FLOWS[notebook]
    cell = _cell_values(notebook)
    declared = {p.name: p for p in params.declared()}
    own = NOTEBOOK_ONLY - set(declared)
    assert set(cell) - own == set(declared), (
        f"{notebook}: in the cell only {sorted(set(cell) - own - set(declared))}, "
        f"declared only {sorted(set(declared) - set(cell))}"
    )
    drifted = {
        name: (cell[name], p.default)
        for name, p in declared.items()
        if cell[name] not in (p.default, None, "")
        and not (cell[name] == [] and not p.default)
        and (notebook, name) not in NOTEBOOK_DEFAULTS
    }
    assert not drifted, f"{notebook}: cell default != declared default: {drifted}"


@pytest.mark.parametrize("notebook", FLOWS)
def test_params_files_name_only_declared_parameters(notebook):
    params, _ = FLOWS[notebook]
    for kind in ("demo", "example"):
        names = set(load_params_file(ROOT / "params" / f"{notebook}.{kind}.yaml"))
        assert names - NOTEBOOK_ONLY <= set(params.names()), (notebook, kind)


@pytest.mark.parametrize("notebook", FLOWS)
def test_every_flag_sets_a_declared_parameter_and_every_declared_flag_exists(notebook):
    params, commands = FLOWS[notebook]
    by_flag = {flag: p.name for p in params.declared() for flag in p.flags}
    seen: set[str] = set()
    for path in commands:
        flags = _flags(_subparser(path))
        seen |= flags
        stray = sorted(f for f in flags - by_flag.keys() - COMMAND_ONLY if f != "--crm")
        assert not stray, f"emailrouter {' '.join(path)}: flags no parameter declares: {stray}"
    missing = sorted(set(by_flag) - seen)
    assert not missing, f"{notebook}: declared flags no command has: {missing}"


def test_one_name_for_one_idea_in_every_flow():
    """The names the flows once spelt five ways (issue 14), now spelt one way."""
    retired = {"concurrency", "workers", "access_workers", "configs", "config_path", "cafile"}
    retired |= {"ca", "apply"}
    for params, _ in FLOWS.values():
        names = set(params.names())
        assert not names & retired, (params.FLOW, names & retired)
        assert "dry_run" in names or params is AuditParams, params.FLOW  # the audit changes nothing
        assert "run_dir" in names and "run_id" in names, params.FLOW


@pytest.mark.parametrize("params", [flow for flow, _ in FLOWS.values()], ids=lambda p: p.FLOW)
def test_an_unknown_parameter_is_a_parameter_error_naming_the_known_ones(params):
    with pytest.raises(ParameterError, match=rf"unknown {params.FLOW} parameter\(s\) mailbx"):
        params.from_mapping({"mailbx": []})


# otherwise valid parameters, so that the refusal seen is the secret's
VALID = {
    "routing": {"crm": "sqlite:///x.sqlite", "mailboxes": ["maildir:///x"]},
    "audit": {"mailboxes": ["maildir:///x"]},
    "rules": {"crm": "sqlite:///x.sqlite"},
    "migration": {},
    "configure": {},
}


def test_a_literal_secret_is_refused_in_every_declared_secret():
    checked = 0
    for params, _ in FLOWS.values():
        for p in params.declared():
            if p.secret:
                with pytest.raises(EmailRouterError) as caught:
                    params.from_mapping({**VALID[params.FLOW], p.name: "hunter2"})
                message = str(caught.value)
                assert "hunter2" not in message, (params.FLOW, p.name)
                assert p.name in message or "secret" in message or "reference" in message
                checked += 1
    assert checked >= 5


def test_every_flows_result_has_the_same_methods():
    """One result shape: ``ok``, ``summary``, ``tables()``, ``_repr_html_``,
    ``write_artifacts(run_dir)`` on each flow's result class."""
    from emailrouter_lib.audit.result import AuditResult
    from emailrouter_lib.configure.flow import ConfigureResult
    from emailrouter_lib.migration.flow import MigrationResult
    from emailrouter_lib.routing.result import RoutingResult
    from emailrouter_lib.rules.flow import RulesResult

    for result in (RoutingResult, AuditResult, RulesResult, MigrationResult, ConfigureResult):
        for name in ("ok", "summary"):
            assert isinstance(getattr(result, name, None), property), (result.__name__, name)
        for name in ("tables", "_repr_html_", "write_artifacts"):
            assert callable(getattr(result, name, None)), (result.__name__, name)
