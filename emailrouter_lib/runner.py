"""Run a notebook in batch: parameters checked, kernel pinned, one folder per run.

The input notebook is never changed; each run writes ``runs/<run-id>/``, holding the executed
notebook (the audit record: parameters, outputs, tracebacks), an HTML export of it without code,
and whatever artifacts the notebook itself writes into ``run_dir`` (``report.html``,
``summary.json``, CSV tables). Cron, Airflow or a person all call :func:`run_notebook`, or::

    python -m emailrouter_lib.runner notebooks/04_run_routing_batch.ipynb \\
        -f params/04_run_routing_batch.example.yaml [-p NAME VALUE]... [-r NAME TEXT]...

papermill alone only warns about an unknown parameter and runs on with the default, so a typo
would silently route the wrong mailbox; here it is an error. papermill also copies parameters
into the executed notebook, so a parameter that looks like a secret must be a reference
(``env:``, ``file:``, ``keyring:``), never the value.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emailrouter_lib import exit_codes
from emailrouter_lib.errors import (
    ConfigError,
    EmailRouterError,
    NotebookError,
    NotebookParameterError,
    SecretError,
)
from emailrouter_lib.reports.display import BATCH_ENV
from emailrouter_lib.run_summary import closing_line, new_run_id
from emailrouter_lib.secrets import literal_secrets

__all__ = [
    "NotebookRun",
    "check_parameters",
    "literal_secrets",
    "load_params_file",
    "main",
    "new_run_id",
    "notebook_parameters",
    "prepare_run_dir",
    "run_notebook",
]

KERNEL_NAME = "python3"
RUNNER_PARAMETERS = ("run_id", "run_dir")

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class NotebookRun:
    """Where one executed run left its files."""

    notebook: Path  # the input notebook, unchanged
    run_id: str
    run_dir: Path
    executed_notebook: Path  # runs/<run-id>/<notebook name>, the audit record
    notebook_html: Path  # the executed notebook as HTML, outputs only
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    # What the notebook's own summary.json says; without one the run counts as ok.
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """False when the notebook ran to the end but its result says something failed."""
        return self.summary.get("ok") is not False

    @property
    def status(self) -> str:
        """run.json's status: ``succeeded``, or ``partial`` when some mailbox or message failed."""
        return "succeeded" if self.ok else "partial"

    @property
    def exit_code(self) -> int:
        return exit_codes.for_result(self.ok)

    @property
    def failures(self) -> list[str]:
        """What failed, one line each (which mailbox and why), from the notebook's summary."""
        if self.ok:
            return []
        listed = self.summary.get("failures")
        if isinstance(listed, list) and listed:
            return [str(line) for line in listed]
        return [f"the result is not ok; see {self.report}"]

    @property
    def report(self) -> Path:
        """The notebook's own report when it wrote one, else the HTML export of the notebook."""
        own = self.run_dir / "report.html"
        return own if own.exists() else self.notebook_html

    @property
    def artifacts(self) -> list[Path]:
        """Every file in the run folder."""
        return sorted(p for p in self.run_dir.rglob("*") if p.is_file())

    def __str__(self) -> str:
        ended = "finished" if self.ok else "finished WITH FAILURES"
        lines = [f"run {self.run_id} of {self.notebook.name} {ended} in {self.seconds:.1f} s"]
        lines += [f"  failed: {line}" for line in self.failures]
        lines += [
            f"  report:            {self.report}",
            f"  executed notebook: {self.executed_notebook}",
            f"  notebook as HTML:  {self.notebook_html}",
            f"  run folder:        {self.run_dir}",
            closing_line(self.summary, ok=self.ok),
        ]
        return "\n".join(lines)


def run_notebook(
    notebook: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    params_file: Path | None = None,
    run_root: Path = Path("runs"),
    run_id: str | None = None,
    timeout: int = 1800,
) -> NotebookRun:
    """Execute *notebook* with the parameters of *params_file* updated by *parameters*.

    *timeout* bounds each cell, in seconds. Raises :class:`ConfigError` for unknown parameters,
    :class:`SecretError` for a literal secret, and :class:`NotebookError` when the notebook
    fails; the executed notebook, with the traceback, is written in every case.
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ConfigError("no such notebook; give the path of an .ipynb file", file=str(notebook))
    merged: dict[str, Any] = {}
    if params_file is not None:
        merged.update(load_params_file(params_file))
    merged.update(parameters or {})

    known = notebook_parameters(notebook)
    check_parameters(notebook, merged, known)

    run_id = run_id or new_run_id()
    if not _RUN_ID.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} must be letters, digits, '.', '_' or '-' (at most 100), "
            "since it names the run folder"
        )
    run_dir = Path(run_root).resolve() / run_id
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"run folder {run_dir} already holds a run; runs are never overwritten, "
            "choose another run id"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    merged.update(run_id=run_id, run_dir=str(run_dir))

    executed = run_dir / notebook.name
    exported = executed.with_suffix(".html")
    started = time.monotonic()
    _write_run_record(run_dir, notebook, merged, params_file, status="running")
    failure: EmailRouterError | None = None
    try:
        with _batch_environment():
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=merged,
                kernel_name=KERNEL_NAME,
                language="python",
                progress_bar=False,
                log_output=False,
                start_timeout=120,
                execution_timeout=timeout,
                config=_kernel_config(),
            )
    except Exception as exc:  # papermill, nbclient and jupyter_client each raise their own
        failure = _explain_failure(exc, notebook, executed, timeout)
        if failure is not exc:
            failure.__cause__ = exc
    seconds = time.monotonic() - started
    if executed.exists():
        _export_html(executed, exported)
    run = NotebookRun(
        notebook, run_id, run_dir, executed, exported, merged, seconds, _read_summary(run_dir)
    )
    _write_run_record(
        run_dir,
        notebook,
        merged,
        params_file,
        status="failed" if failure else run.status,
        seconds=seconds,
        error=str(failure) if failure else None,
        exit_code=exit_codes.for_error(failure) if failure else run.exit_code,
        failures=[] if failure else run.failures,
    )
    if failure is not None:
        raise failure
    return run


def _read_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` the notebook wrote into its run folder ({} when it wrote none)."""
    try:
        data = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _kernel_config() -> Any:
    """Talk to the kernel over local sockets (IPC), not TCP on localhost.

    Over TCP ipykernel warns on every run that the traffic is unencrypted, which is noise in every
    cron mail; IPC sockets live in Jupyter's private runtime folder and need no encryption. Windows
    has no IPC transport, so it keeps TCP.
    """
    from traitlets.config import Config

    if os.name == "nt":
        return Config()
    return Config({"KernelManager": {"transport": "ipc"}})


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The names and default values assigned in the notebook's cell tagged ``parameters``."""
    import nbformat

    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(
            f"expected exactly one cell tagged 'parameters', found {len(cells)}", file=str(path)
        )
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(
            f"parameters cell is not valid Python: {exc.msg}", file=str(path)
        ) from None
    names: dict[str, Any] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
                try:
                    names[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    names[target.id] = ast.get_source_segment(source, node.value)
    return names


def check_parameters(
    notebook: Path, parameters: Mapping[str, Any], known: Mapping[str, Any]
) -> None:
    """Refuse unknown names, parameters the runner sets, and literal secrets."""
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"this notebook takes: {', '.join(sorted(known))}",
            file=str(notebook),
        )
    missing = [name for name in RUNNER_PARAMETERS if name not in known]
    if missing:
        raise ConfigError(
            f"the parameters cell must define {' and '.join(missing)} "
            '(e.g. run_dir = ""); the runner fills them in',
            file=str(notebook),
        )
    preset = [name for name in RUNNER_PARAMETERS if name in parameters]
    if preset:
        raise ConfigError(
            f"{' and '.join(preset)} are set by the runner; use --run-id / --run-root "
            "(run_id= / run_root= in Python) instead",
            file=str(notebook),
        )
    offenders = literal_secrets(parameters)
    if offenders:
        raise SecretError(
            f"{notebook}: literal secret in parameter {'; '.join(offenders)}; papermill copies "
            "parameters into the executed notebook, so pass a reference instead: "
            "env:NAME, file:PATH or keyring:SERVICE/USER"
        )


class _NoDatesLoader(yaml.SafeLoader):
    """YAML without date parsing, as papermill reads it: a date stays the string it was."""


_NoDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a papermill parameters YAML file (a mapping of parameter names to values)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read parameters file: {exc.strerror}", file=str(path)) from None
    try:
        data = yaml.load(text, Loader=_NoDatesLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path), line=line
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of parameter names to values", file=str(path))
    return {str(k): v for k, v in data.items()}


def prepare_run_dir(run_dir: str | Path | None = "", run_id: str | None = "") -> Path:
    """The folder a notebook writes its artifacts to, created if needed.

    Under the runner both are given; run interactively (both empty) a fresh ``runs/<run-id>``
    is used, so an interactive run never overwrites a batch run: the project's ``runs/`` when
    JupyterLab runs the notebook in the project's ``notebooks/`` folder (where it starts the
    kernel), else ``runs/`` in the current directory.
    """
    path = Path(run_dir) if run_dir else _runs_root() / (run_id or new_run_id())
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _runs_root(cwd: Path | None = None) -> Path:
    """``runs/`` of the project when *cwd* is its ``notebooks/`` folder, else ``cwd/runs``."""
    cwd = Path.cwd() if cwd is None else cwd
    project = cwd.parent
    if cwd.name == "notebooks" and (project / "params").is_dir():
        return project / "runs"
    return cwd / "runs"


@contextlib.contextmanager
def _batch_environment() -> Iterator[None]:
    """Tell the kernel (which inherits our environment) that nobody is watching it."""
    saved = {name: os.environ.get(name) for name in (BATCH_ENV, "TQDM_DISABLE")}
    os.environ[BATCH_ENV] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _explain_failure(
    exc: Exception, notebook: Path, executed: Path, timeout: int
) -> EmailRouterError:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    see = f"the executed notebook is {executed}" if executed.exists() else "no notebook was written"
    if isinstance(exc, PapermillExecutionError) and _is_usage_error(exc.ename):
        return NotebookParameterError(
            f"{notebook.name} refused its parameters: {exc.ename}: {exc.evalue}; "
            f"fix the parameters file or -p values ({see})"
        )
    if isinstance(exc, PapermillExecutionError):
        return NotebookError(
            f"{notebook.name} failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue}; "
            f"{see} (the traceback is in it)"
        )
    if isinstance(exc, CellTimeoutError):
        return NotebookError(
            f"{notebook.name}: a cell ran longer than {timeout} s and was stopped; {see}. "
            "Raise the timeout (--timeout) or route fewer messages per run (batch_size)"
        )
    if isinstance(exc, DeadKernelError):
        return NotebookError(f"{notebook.name}: the Python kernel died (out of memory?); {see}")
    if isinstance(exc, EmailRouterError):
        return exc
    return NotebookError(
        f"{notebook.name} could not be run: {exc.__class__.__name__}: {exc}; {see}. "
        f"Is the '{KERNEL_NAME}' kernel of this environment installed "
        "(jupyter kernelspec list)?"
    )


# JupyterLab's page template with the blocks that load scripts from a CDN left empty (require.js,
# MathJax, Mermaid, the widget manager): the notebook's HTML is read offline, from a share or an
# attachment, and our outputs need none of them (tables and inline images only).
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _is_usage_error(ename: str) -> bool:
    """Whether the exception a cell raised (known only by its class name) is a usage error."""
    from emailrouter_lib import errors

    raised = getattr(errors, ename, None)
    return isinstance(raised, type) and issubclass(raised, exit_codes.USAGE_ERRORS)


def _export_html(executed: Path, exported: Path) -> None:
    """The executed notebook as HTML without code cells' input, for people who don't read code;
    it loads nothing from the network."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="offline.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    exported.write_text(body, encoding="utf-8")


def _write_run_record(
    run_dir: Path,
    notebook: Path,
    parameters: Mapping[str, Any],
    params_file: Path | None,
    *,
    status: str,
    seconds: float | None = None,
    error: str | None = None,
    exit_code: int | None = None,
    failures: Sequence[str] = (),
) -> None:
    """``run.json``: what ran, with which parameters, and how it ended (for run indexes)."""
    from emailrouter_lib import __version__

    record = {
        "run_id": parameters.get("run_id"),
        "notebook": str(notebook),
        "params_file": str(params_file) if params_file else None,
        "parameters": dict(parameters),
        "status": status,  # running, succeeded, partial (exit 1) or failed (exit 2 or 3)
        "exit_code": exit_code,
        "seconds": round(seconds, 3) if seconds is not None else None,
        "error": error,
        "failures": list(failures),
        "emailrouter": __version__,
        "python": sys.version.split()[0],
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (run_dir / "run.json").write_text(
        json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
    )


def _cli_value(text: str) -> Any:
    """``-p`` values: JSON literals (numbers, true/false/null, lists) or Python's True/False/None;
    anything else, including ``00123``, stays a string."""
    python_literals = {"True": True, "False": False, "None": None}
    if text in python_literals:
        return python_literals[text]
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emailrouter_lib.runner``: the exit codes of :mod:`emailrouter_lib.exit_codes`
    (0 ok, 1 some mailbox or message failed, 2 bad parameters, 3 the notebook failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m emailrouter_lib.runner",
        description="Run an emailrouter notebook in batch into runs/<run-id>/.",
        epilog="exit status: 0 ok, 1 some mailbox or message failed, 2 bad parameters, "
        "3 the notebook itself failed",
    )
    parser.add_argument("notebook", type=Path, help="the .ipynb file to run")
    parser.add_argument("-f", "--parameters-file", type=Path, help="a params/*.yaml file")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help='set a parameter; VALUE is read as JSON (200, true, ["a"]) or else as text',
    )
    parser.add_argument(
        "-r",
        "--raw",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "TEXT"),
        help="set a parameter to TEXT exactly, as a string",
    )
    parser.add_argument("--run-root", type=Path, default=Path("runs"), help="default: runs")
    parser.add_argument("--run-id", help="default: UTC time plus a random suffix")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = parser.parse_args(argv)

    parameters = {name: _cli_value(value) for name, value in args.parameter}
    parameters.update(dict(args.raw))
    try:
        run = run_notebook(
            args.notebook,
            parameters,
            params_file=args.parameters_file,
            run_root=args.run_root,
            run_id=args.run_id,
            timeout=args.timeout,
        )
    except EmailRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.for_error(exc)
    print(run)
    for line in run.summary.get("warnings") or []:
        print(f"warning: {line}", file=sys.stderr)
    return run.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
