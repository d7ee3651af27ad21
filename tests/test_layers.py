"""The package's layers as the README documents them, and no import cycles.

Layers, bottom to top (a module may import its own package and anything in a lower layer, never a
higher one or a sibling of its own layer):

    0  errors, known_secrets, secrets, exit_codes, lazy_exports, files, run_summary, parameters,
       findings
                                   the core (and the package root), which every module may import
    1  mail, config
    2  mailboxes, crm
    3  tracking
    4  reports                     rendering: tables, HTML, Excel, charts, run artifacts
    5  routing, rules, migration   the flows that change something
    6  demo                        demo data and environments, built with the flows below
    7  audit, configure            the flows that look at (or configure) the others
    8  cli, runner                 the fronts

Every ``import`` statement counts, at the top of a module or inside a function: a function-level
import hides a dependency from a reader, not from this test. Imports under ``if TYPE_CHECKING:``
are annotations only and do not count. The cycle test is over modules, with the same imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "emailrouter_lib"
LAYERS = {
    "": 0,
    "errors": 0,
    "known_secrets": 0,
    "secrets": 0,
    "exit_codes": 0,
    "lazy_exports": 0,
    "files": 0,
    "run_summary": 0,
    "parameters": 0,
    "findings": 0,
    "mail": 1,
    "config": 1,
    "mailboxes": 2,
    "crm": 2,
    "tracking": 3,
    "reports": 4,
    "routing": 5,
    "rules": 5,
    "migration": 5,
    "demo": 6,
    "audit": 7,
    "configure": 7,
    "cli": 8,
    "runner": 8,
}
# Known exceptions, each a debt with the reason; the test fails when one is paid, so the list
# only shrinks.
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every emailrouter_lib import in *path* outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    annotation_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in annotation_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "emailrouter_lib":
                found += [(node.lineno, f"emailrouter_lib.{alias.name}") for alias in node.names]
            elif node.module.startswith("emailrouter_lib."):
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.startswith("emailrouter_lib.")
            ]
    return found


def _layer_of(module: str) -> tuple[str, int]:
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYERS:
        raise AssertionError(f"{module}: no layer; add its package to LAYERS and to the README")
    return top, LAYERS[top]


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(target: str, modules: dict[str, Path]) -> str:
    """The module an import names: ``a.b.name`` is module ``a.b`` unless ``a.b.name`` is one."""
    return target if target in modules else target.rpartition(".")[0]


def test_no_module_imports_upward_or_sideways():
    modules = _modules()
    problems, used_allowances = [], set()
    for name, path in sorted(modules.items()):
        source_top, source_layer = _layer_of(name)
        where = str(path.relative_to(PACKAGE))
        for line, target in _imports(path):
            target_top, target_layer = _layer_of(_resolve(target, modules))
            if target_top == source_top or target_layer < source_layer or target_layer == 0:
                continue  # its own package, a lower layer, or the core every module may use
            if (where, target_top) in ALLOWED:
                used_allowances.add((where, target_top))
                continue
            problems.append(
                f"{where}:{line} imports {target} (layer {target_layer} {target_top}) from "
                f"layer {source_layer} {source_top}"
            )
    assert not problems, "imports against the documented layers:\n" + "\n".join(problems)
    assert used_allowances == ALLOWED, (
        f"paid debts, remove from ALLOWED: {ALLOWED - used_allowances}"
    )


def test_no_import_cycles():
    modules = _modules()
    graph = {
        name: {_resolve(t, modules) for _, t in _imports(path)} & modules.keys() - {name}
        for name, path in modules.items()
    }
    # A package imports its own submodules when it is imported; a submodule importing its own
    # package's __init__ is what Python does anyway, so that edge is not a cycle of ours.
    for name in graph:
        graph[name] -= {p for p in graph[name] if name.startswith(p + ".")}
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles (move the shared part down, or split the module):\n" + (
        "\n".join(" <-> ".join(sorted(c)) for c in cycles)
    )


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) != []
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
