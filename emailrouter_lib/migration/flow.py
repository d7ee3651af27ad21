"""``migration.run(params)``: load, plan, schedule and (unless ``dry_run``) apply, in one call.

The notebook, the CLI and the tests all go through here, so each shows the same plan for the
same files. The result renders itself in Jupyter and writes the migration audit report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from emailrouter_lib.config import load_config, load_system_state, system_state_path
from emailrouter_lib.errors import ConfigError
from emailrouter_lib.migration.apply import ApplyRecord, apply_plan
from emailrouter_lib.migration.enable import (
    EnablePlan,
    apply_test_and_enable,
    plan_test_and_enable,
)
from emailrouter_lib.migration.mapping import SERVERTYPE_LABELS
from emailrouter_lib.migration.model import MigrationPlan
from emailrouter_lib.migration.planner import PlanOptions, RouterInput, build_plan
from emailrouter_lib.migration.profiles import DEFAULT_PASSWORD_REFERENCE
from emailrouter_lib.migration.schedule import (
    BATCH_HOURS,
    BATCH_SIZE,
    LOOKBACK_HOURS,
    ScheduleRow,
    batches_table,
    build_schedule,
    schedule_table,
)
from emailrouter_lib.parameters import (
    FlowParameters,
    param,
    run_id_param,
)
from emailrouter_lib.run_summary import RunRecord, run_summary

APPLY_RECORD = "apply-record.json"
ENABLE_PLAN = "test-and-enable-plan.json"
ENABLE_RECORD = "test-and-enable-record.json"


@dataclass(eq=False)
class MigrationParams(FlowParameters):
    """Which routers to migrate, into which CRM, and how the Test & Enable schedule runs."""

    FLOW: ClassVar[str] = "migration"

    config: list[str] = param(
        factory=list,
        help="each router's Microsoft.Crm.Tools.EmailAgent.xml; the first listing a user decides",
        flags="--config",
    )
    states: list[str] | None = param(
        None,
        help="each configuration's SystemState.xml, same order; default: the one beside it",
        flags="--state",
    )
    crm: str | None = param(None, help="CRM URL: what it has now, where to apply", flags="--crm")
    dry_run: bool = param(True, help="plan only; False applies (apply-record.json undoes it)")
    crm_on_premises: bool | None = param(
        None,
        help="None: decided from the CRM URL; True/False: where profiles' servers are seen from",
        flags="--crm-on-premises",
    )
    password_reference: str = param(
        DEFAULT_PASSWORD_REFERENCE,
        help="how the plan names each profile's password (a reference, never a value)",
        secret=True,
    )
    switch_channel: bool = param(
        True,
        help="set the organisation to server-side synchronization when applying",
        flags="--keep-channel",
    )
    schedule_start: str | None = param(
        None, help="first Test & Enable batch (ISO time); None: now", flags="--start"
    )
    batch_size: int = param(
        BATCH_SIZE, help="mailboxes per Test & Enable batch", flags="--batch-size"
    )
    batch_hours: float = param(BATCH_HOURS, help="hours between Test & Enable batches")
    lookback_hours: float = param(
        LOOKBACK_HOURS, help="Process Email From: this many hours back", flags="--lookback-hours"
    )
    test_and_enable_batch: int = param(
        0, help="schedule this batch's Test & Enable in the CRM; 0: none", flags="--batch"
    )
    run_id: str | None = run_id_param()
    run_dir: str | None = param(None, help="where the artifacts (and the apply record) go")

    @classmethod
    def normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        for name in ("config", "states"):
            if isinstance(data.get(name), str | Path):
                data[name] = [str(data[name])]
        return data


# The declared defaults, for callers that merge a mapping over them.
DEFAULTS: dict[str, Any] = {p.name: p.default for p in MigrationParams.declared()}


@dataclass
class MigrationResult:
    """A plan, its Test & Enable schedule and, when applied, the apply record."""

    plan: MigrationPlan
    schedule: list[ScheduleRow] = field(default_factory=list)
    record: ApplyRecord | None = None
    dry_run: bool = True
    enable: EnablePlan | None = None  # the Test & Enable batch, when one was asked for
    enable_record: ApplyRecord | None = None  # ... and what scheduling it did
    run: RunRecord = field(default_factory=lambda: RunRecord("migration"))

    @property
    def failures(self) -> list[str]:
        """An apply that did not finish (its record says how far it got)."""
        if self.record is not None and self.record.status != "applied":
            return [f"apply: {self.record.status}"]
        return []

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def summary(self) -> dict[str, Any]:
        """The one summary schema (``run_summary``); the migration's own keys under
        ``details``."""
        details: dict[str, Any] = {
            "planned_actions": self.plan.actions(),
            "routers": ", ".join(s.config for s in self.plan.sources),
            "crm": self.plan.crm or "(none)",
            "test_and_enable_batches": len({r.batch for r in self.schedule}),
        }
        if self.record is not None:
            details["applied_changes"] = self.record.counts
            details["apply_status"] = self.record.status
        if self.enable is not None:
            details["test_and_enable_batch"] = {"batch": self.enable.batch, **self.enable.counts}
        if self.enable_record is not None:
            details["test_and_enable_scheduled"] = self.enable_record.changed
        return run_summary(
            self.run,
            counts=dict(self.plan.counts),
            ok=self.ok,
            dry_run=self.dry_run,
            failures=self.failures,
            details=details,
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = self.plan.tables()
        tables["schedule"] = schedule_table(self.schedule)
        tables["batches"] = batches_table(self.schedule)
        if self.record is not None:
            tables["applied"] = pd.DataFrame(
                [
                    {
                        "table": c.table,
                        "key": c.key,
                        "action": c.action,
                        "columns": ", ".join(c.before) if c.action == "updated" else "",
                        "id": c.id,
                    }
                    for c in self.record.changes
                ],
                columns=["table", "key", "action", "columns", "id"],
            )
        if self.enable is not None:
            tables["test_and_enable"] = self.enable.table()
        return tables

    def write_artifacts(self, run_dir: str | Path) -> dict[str, Path]:
        """The migration audit report: report.html (with a chart), migration.xlsx (a sheet per
        table), plan.json, summary.json and one CSV per table."""
        from emailrouter_lib.migration.report import write_audit_report

        return write_audit_report(self, Path(run_dir))

    def chart(self) -> _Html:
        """The profiles × mailboxes × warnings chart, shown inline in Jupyter."""
        from emailrouter_lib.migration.report import chart_html

        return _Html(chart_html(self.plan))

    def __str__(self) -> str:
        lines = [
            "migration plan: "
            + ", ".join(f"{n} {name}" for name, n in self.plan.counts.items())
            + ("  (dry run)" if self.dry_run else "")
        ]
        for profile in self.plan.profiles:
            lines.append(
                f"  profile {profile.name!r}: "
                f"{SERVERTYPE_LABELS.get(profile.servertype, profile.servertype)}, "
                f"{profile.mailbox_count} mailbox(es), {profile.action}"
            )
        for item in self.plan.not_migrated:
            lines.append(f"  not migrated {item.profile!r}: {item.reason}")
        for warning in self.plan.warnings:
            lines.append(f"  {warning.severity} [{warning.code}] {warning.message}")
        if self.record is not None:
            lines.append(f"  applied: {self.record.counts} ({self.record.status})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from emailrouter_lib.migration.report import report_summary, report_tables
        from emailrouter_lib.reports.display import result_html

        title = "Migration plan" + (", applied" if self.record is not None else "")
        tables = report_tables(self)
        shown = {"planned_and_applied": tables["planned_and_applied"]}  # the rest: below
        return result_html(title, report_summary(self), shown)


def load_routers(
    configs: Sequence[str | Path], states: Sequence[str | Path | None] | None = None
) -> list[RouterInput]:
    """Each configuration with its state file: the one given at the same position, else the
    ``…SystemState.xml`` beside it when there is one."""
    if not configs:
        raise ConfigError(
            "no router configuration given; pass the Microsoft.Crm.Tools.EmailAgent.xml of "
            "each router (config=[...] or --config FILE)"
        )
    states = list(states or [])
    if len(states) > len(configs):
        raise ConfigError(
            f"{len(states)} state files for {len(configs)} configurations; give at most one per "
            "configuration, in the same order"
        )
    routers = []
    for index, path in enumerate(configs):
        given = states[index] if index < len(states) else None
        state_path = Path(given) if given else system_state_path(path)
        state = load_system_state(state_path)
        if given and state is None:
            raise ConfigError("no such state file; check the path", file=str(state_path))
        routers.append(RouterInput(load_config(path), state))
    return routers


def run(params: Mapping[str, Any], crm: Any | None = None) -> MigrationResult:
    """Plan (and, when ``dry_run`` is false, apply) the migration of ``params["config"]``.

    *crm*, when given, is used instead of opening ``params["crm"]`` (tests and notebooks that
    already hold one).
    """
    p = MigrationParams.from_mapping(params)
    routers = load_routers(p["config"], p["states"])
    opened = None
    if crm is None and p["crm"]:
        from emailrouter_lib.crm import open_crm

        crm = opened = open_crm(p["crm"])
    try:
        options = PlanOptions(
            crm_on_premises=p["crm_on_premises"], password_reference=p["password_reference"]
        )
        plan = build_plan(routers, crm, options)
        schedule = build_schedule(
            plan,
            start=p["schedule_start"],
            batch_size=int(p["batch_size"]),
            batch_hours=float(p["batch_hours"]),
            lookback_hours=float(p["lookback_hours"]),
        )
        run = RunRecord.begin("migration", p, run_id=p.run_id)
        result = MigrationResult(plan, schedule, run=run)
        if not p["dry_run"]:
            if crm is None:
                raise ConfigError("dry_run is false but no crm is given; name the CRM to apply to")
            result = apply_result(
                result, crm, run_dir=p["run_dir"], switch_channel=bool(p["switch_channel"])
            )
        if p["test_and_enable_batch"]:
            if crm is None:
                raise ConfigError(
                    "test_and_enable_batch is set but no crm is given; name the CRM to schedule in"
                )
            result = enable_result(result, crm, p, run_dir=p["run_dir"])
        result.run.finish()
        return result
    finally:
        if opened is not None:
            opened.close()


def apply_result(
    result: MigrationResult,
    crm: Any,
    *,
    run_dir: str | Path | None = None,
    switch_channel: bool = True,
) -> MigrationResult:
    """Apply a reviewed result's plan to *crm* (a backend or a CRM URL); the record goes to
    ``run_dir/apply-record.json`` when a run folder is given."""
    opened = None
    if isinstance(crm, str):
        from emailrouter_lib.crm import open_crm

        crm = opened = open_crm(crm)
    try:
        record_path = Path(run_dir) / APPLY_RECORD if run_dir else None
        record = apply_plan(
            result.plan, crm, switch_channel=switch_channel, record_path=record_path
        )
    finally:
        if opened is not None:
            opened.close()
    return MigrationResult(result.plan, result.schedule, record, dry_run=False, run=result.run)


def enable_result(
    result: MigrationResult,
    crm: Any,
    params: Mapping[str, Any],
    *,
    run_dir: str | Path | None = None,
) -> MigrationResult:
    """Plan Test & Enable batch ``params["test_and_enable_batch"]`` and, unless
    ``params["dry_run"]``, schedule it in *crm*; the batch plan and its record go to the run
    folder when one is given."""
    p = {**DEFAULTS, **params}
    opened = None
    if isinstance(crm, str):
        from emailrouter_lib.crm import open_crm

        crm = opened = open_crm(crm)
    try:
        enable = plan_test_and_enable(
            result.plan,
            crm,
            batch=int(p["test_and_enable_batch"]),
            start=p["schedule_start"],
            batch_size=int(p["batch_size"]),
            batch_hours=float(p["batch_hours"]),
            lookback_hours=float(p["lookback_hours"]),
        )
        if run_dir:
            enable.write(Path(run_dir) / ENABLE_PLAN)
        record = None
        if not p["dry_run"]:
            record_path = Path(run_dir) / ENABLE_RECORD if run_dir else None
            record = apply_test_and_enable(enable, crm, record_path=record_path)
    finally:
        if opened is not None:
            opened.close()
    return replace(result, enable=enable, enable_record=record)


class _Html(str):
    """A string Jupyter shows as HTML."""

    def _repr_html_(self) -> str:
        return str(self)
