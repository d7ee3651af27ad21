"""One Configuration Manager run: the steps, their parameters and their result."""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from emailrouter_lib.config import load_config, validate_config
from emailrouter_lib.config.edit import SAMPLE_CONFIG, ConfigEditor, apply_params
from emailrouter_lib.config.load_data import LoadDataPlan, apply_load_data, plan_load_data
from emailrouter_lib.config.publish import PublishPlan, PublishResult, apply_publish, plan_publish
from emailrouter_lib.config.validation import ValidationReport
from emailrouter_lib.crm.base import require
from emailrouter_lib.errors import ParameterError
from emailrouter_lib.mailboxes import access
from emailrouter_lib.parameters import (
    FlowParameters,
    ca_file_param,
    param,
    run_dir_param,
    run_id_param,
)
from emailrouter_lib.run_summary import RunRecord, run_summary

REPORT_ORDER = ("access", "findings", "load_data", "entries", "profiles", "deployments")


@dataclass(eq=False)
class ConfigureParams(FlowParameters):
    """The Configuration Manager's edits, Load Data, Test Access and Publish, in one mapping."""

    FLOW: ClassVar[str] = "configure"

    config: str | Path = param("", help="the Microsoft.Crm.Tools.EmailAgent.xml to edit")
    demo: bool = param(
        False, help="a copy of the sample configuration and a fresh demo CRM in the run folder"
    )
    profiles: list[dict] = param(factory=list, help="profiles to add or change")
    deployments: list[dict] = param(factory=list, help="deployments to add or change")
    forward_mailboxes: list[dict] = param(factory=list, help="forward mailboxes to add")
    entries: list[dict] = param(factory=list, help="users and queues to route")
    crm: str = param("", help='CRM URL for Load Data; "" skips Load Data', flags="--crm")
    deployment: str | None = param(
        None, help="CRM server URL that Load Data fills; None: the only one", flags="--deployment"
    )
    remove_gone: bool = param(
        True,
        help="Load Data removes users and queues the CRM no longer routes",
        flags="--keep-gone",
    )
    remove_profiles: bool = param(
        False,
        help="... and a profile whose last user or queue is gone",
        flags="--remove-profiles",
    )
    check_access: bool = param(True, help="run Test Access")
    access_password: str | None = param(
        None,
        help='secret reference template for Test Access, e.g. "env:MAILBOX_PW_{local}"',
        secret=True,
        flags="--password",
    )
    access_overrides: dict[str, str] = param(
        factory=dict,
        help="address -> mailbox URL to test instead of the profile's server",
        flags="--mailbox",
    )
    access_only: list[str] = param(
        factory=list,
        help="addresses to test (or incoming:ADDRESS); [] tests every enabled entry",
        flags="--only",
    )
    access_timeout: float = param(10, help="seconds per connection", flags="--timeout")
    max_concurrency: int = param(
        4, help="Test Access connections at a time", flags=("--max-concurrency", "--workers")
    )
    ca_file: str | None = ca_file_param()
    publish_to: str | Path = param(
        "", help='the file to publish; "" publishes over config', flags="--to"
    )
    dry_run: bool = param(
        True,
        help="True: show the publish diff only; False: write the file (after a backup)",
        flags="--apply",
    )
    run_id: str | None = run_id_param()
    run_dir: str | Path = run_dir_param(flags=(), default="")


@dataclass
class ConfigureResult:
    params: ConfigureParams
    config_path: Path
    publish_to: Path
    editor: ConfigEditor
    load_plan: LoadDataPlan | None
    access_report: access.AccessReport
    validation: ValidationReport
    publish_plan: PublishPlan
    published: PublishResult | None
    run: RunRecord = field(default_factory=lambda: RunRecord("configure"))

    @property
    def ok(self) -> bool:
        """A mailbox that failed Test Access fails the run (exit 1), as in every notebook."""
        return self.access_report.ok

    @property
    def summary(self) -> dict[str, Any]:
        """The one summary schema (``run_summary``); the Configuration Manager's own keys under
        ``details``."""
        load = self.load_plan.counts() if self.load_plan else {}
        return run_summary(
            self.run,
            counts={
                "profiles": len(self.editor.profiles),
                "entries": len(self.editor.entries()),
                **{f"load_data_{k}": v for k, v in load.items()},
                **{f"access_{k}": v for k, v in self.access_report.counts().items()},
                "findings": len(self.validation.findings),
                "published": int(bool(self.published and self.published.written)),
            },
            ok=self.ok,
            dry_run=self.params.dry_run,
            failures=[
                f"{r.entry} ({r.target}): {r.outcome}: {r.message}"
                for r in self.access_report.failures
            ],
            details={
                "config": str(self.config_path),
                "published_to": str(self.publish_to),
                "backup": str(self.published.backup)
                if self.published and self.published.backup
                else None,
            },
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "profiles": pd.DataFrame(self.editor.profile_records()),
            "deployments": pd.DataFrame(self.editor.deployment_records()),
            "entries": pd.DataFrame(self.editor.entry_records()),
            "load_data": pd.DataFrame(self.load_plan.to_records() if self.load_plan else []),
            "access": pd.DataFrame(self.access_report.to_records()),
            "findings": pd.DataFrame(self.validation.to_records()),
        }

    def write_artifacts(self, run_dir: str | Path) -> dict[str, Path]:
        """report.html, summary.json, one CSV per table, and the publish diff."""
        # The renderer sits in the reports layer; the result hands it plain tables.
        from emailrouter_lib.reports.artifacts import write_run_artifacts

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        diff = run_dir / "publish.diff"
        diff.write_text(self.publish_plan.diff, encoding="utf-8")
        tables = self.tables()
        written = write_run_artifacts(
            run_dir,
            summary=self.summary,
            report_summary=self.report_summary(),
            tables=tables,
            # Problems first: what Test Access could not reach, then what the file gets wrong.
            report_tables={name: tables[name] for name in REPORT_ORDER},
            title="Router configuration",
            subtitle=self.publish_plan.summary(),
            figures=self.figures(),
            alerts=self.alerts(),
            alert_title=f"{len(self.alerts())} problem(s) to fix before publishing"
            if self.alerts()
            else None,
            links={"The change to the file (publish.diff)": "publish.diff"},
            main_columns={
                "access": ["outcome", "entry", "kind", "direction", "message"],
                "load_data": ["action", "kind", "name", "email_address", "incoming", "reason"],
                "entries": ["kind", "name", "email_address", "incoming", "outgoing", "enabled"],
                "findings": ["severity", "message", "line"],
            },
        )
        return {**written, "publish.diff": diff}

    def alerts(self) -> list[str]:
        """Mailboxes Test Access could not reach and errors in the file: the report's banner."""
        lines = [
            f"{r.entry} ({r.direction}): {r.outcome}: {r.message}"
            for r in self.access_report.results
            if not r.ok
        ]
        lines += [f"line {f.line}: {f.message}" for f in self.validation.errors]
        return lines

    def report_summary(self) -> dict[str, Any]:
        """What a person reads first: problems, then the configuration and what changed."""
        load = self.load_plan.counts() if self.load_plan else {}
        access = self.access_report.counts()
        summary: dict[str, Any] = {
            "failed_mailboxes": sum(n for o, n in access.items() if o not in ("ok", "skipped")),
            "profiles": len(self.editor.profiles),
            "users_and_queues": len(self.editor.entries()),
            "mailboxes_tested_ok": access.get("ok", 0),
            "findings": len(self.validation.findings),
        }
        if load:
            summary["load_data"] = {k: v for k, v in load.items() if v}
        summary["file"] = str(self.config_path)
        if self.published and self.published.written:
            summary["published"] = f"yes, to {self.publish_to}"
            if self.published.backup:
                summary["backup_of_the_old_file"] = str(self.published.backup)
        else:
            summary["published"] = "no (apply is false: the diff shows what would change)"
        return summary

    def figures(self) -> dict[str, str]:
        from emailrouter_lib.reports.charts import ACCENT, BAD, GOOD, NEUTRAL, WARN, bar_chart

        figures = {}
        if self.load_plan:
            load = {k: v for k, v in self.load_plan.counts().items() if v}
            colour = {"new": ACCENT, "changed": ACCENT, "unchanged": GOOD, "gone": WARN}
            figures["Load Data: users and queues from the CRM"] = bar_chart(
                load,
                title="Load Data: users and queues",
                xlabel="users and queues",
                colors=[colour.get(a, NEUTRAL) for a in sorted(load, key=lambda a: -load[a])],
            )
        access = self.access_report.counts()
        if access:
            figures["Test Access: mailbox connections"] = bar_chart(
                access,
                title="Test Access",
                xlabel="connections",
                colors=lambda o: GOOD if o == "ok" else (NEUTRAL if o == "skipped" else BAD),
            )
        return figures

    def form(self, *, forward_mailbox: dict | None = None):
        """The ipywidgets form over this run's editor (JupyterLab only)."""
        from emailrouter_lib.config.widgets import ConfigForm

        p = self.params
        return ConfigForm(
            self.editor,
            publish_to=self.publish_to,
            forward_mailbox=forward_mailbox,
            load_data=(lambda: self.load_plan) if self.load_plan is not None else None,
            test_access=lambda: _test_access(self.editor, p),
        )

    def __str__(self) -> str:
        return "\n".join(
            [
                f"configuration {self.config_path}",
                f"  {self.load_plan.summary() if self.load_plan else 'Load Data: no CRM given'}",
                f"  {self.access_report.summary()}",
                f"  {len(self.validation.findings)} finding(s)",
                f"  {self.publish_plan.summary()}",
                f"  {self.published or 'dry run: set dry_run = False to write the file'}",
            ]
        )

    def _repr_html_(self) -> str:
        lines = "".join(f"<li>{html.escape(line.strip())}</li>" for line in str(self).splitlines())
        return f"<ul>{lines}</ul>"


def _test_access(editor: ConfigEditor, p: ConfigureParams) -> access.AccessReport:
    targets = access.access_targets(
        editor, password=p.access_password, overrides=p.access_overrides, only=p.access_only or None
    )
    return access.test_access(
        targets, workers=p.max_concurrency, timeout=p.access_timeout, ca_file=p.ca_file
    )


def _demo(p: ConfigureParams) -> None:
    """The embedded default: the sample configuration, a demo CRM and Maildirs in the run folder."""
    from emailrouter_lib.demo.environment import prepare_demo_environment

    run_dir = Path(p.run_dir or ".")
    env = prepare_demo_environment(run_dir / "demo")
    p.config = run_dir / "Microsoft.Crm.Tools.EmailAgent.xml"
    shutil.copyfile(SAMPLE_CONFIG, p.config)
    p.crm = env.crm_url
    support, scenarios = env.mailbox_urls
    p.access_overrides = {
        "support@contoso.example": support,
        **{fm["email_address"]: scenarios for fm in p.forward_mailboxes},
    }
    # Only the demo's own Maildirs are tested, so an offline demo makes no DNS look-ups.
    p.access_only = [f"incoming:{address}" for address in p.access_overrides]


def run(params: dict[str, Any] | ConfigureParams) -> ConfigureResult:
    """Edit, Load Data, Test Access, validate and plan the publish; write only when ``apply``."""
    p = ConfigureParams.from_mapping(params)
    run = RunRecord.begin("configure", p)
    if p.demo:
        _demo(p)
    if not p.config:
        raise ParameterError("set config to the router's Microsoft.Crm.Tools.EmailAgent.xml")
    config_path = Path(p.config)
    publish_to = Path(p.publish_to) if p.publish_to else config_path
    config = load_config(config_path)
    editor = apply_params(
        ConfigEditor(config),
        profiles=p.profiles,
        deployments=p.deployments,
        forward_mailboxes=p.forward_mailboxes,
        entries=p.entries,
    )
    load_plan = None
    if p.crm:
        from emailrouter_lib.crm import open_crm

        crm = open_crm(p.crm)
        try:
            records = require(crm, "list its users and queues").recipients()
        finally:
            crm.close()
        load_plan = plan_load_data(
            editor,
            records,
            deployment=p.deployment,
            remove_gone=p.remove_gone,
            remove_profiles=p.remove_profiles,
        )
        apply_load_data(editor, load_plan, records)
    access_report = _test_access(editor, p) if p.check_access else access.AccessReport()
    validation = validate_config(config)
    validation.findings += access_report.findings()
    publish_plan = plan_publish(config, publish_to)
    published = None if p.dry_run else apply_publish(publish_plan)
    return ConfigureResult(
        p,
        config_path,
        publish_to,
        editor,
        load_plan,
        access_report,
        validation,
        publish_plan,
        published,
        run.finish(),
    )
