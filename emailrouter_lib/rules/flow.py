"""``rules.run(params)``: targets, plan, and (unless ``dry_run``) apply and verify, in one call.

The notebook, the CLI and the tests all go through here. Without ``ews`` the plan lists the
mailboxes without reading them (the demo does that); with it, each mailbox's rules are read once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from emailrouter_lib.errors import ConfigError, ParameterError
from emailrouter_lib.parameters import (
    FlowParameters,
    param,
    run_dir_param,
    run_id_param,
)
from emailrouter_lib.rules.apply import (
    AppliedRow,
    VerifiedRow,
    applied_table,
    apply_plan,
    verified_table,
    verify,
)
from emailrouter_lib.rules.model import DEFAULT_RULE_NAME
from emailrouter_lib.rules.plan import OUTLOOK_NOTE, RulePlan, build_plan
from emailrouter_lib.rules.targets import (
    Target,
    merge,
    select,
    targets_from_config,
    targets_from_crm,
    with_forward_mailbox,
)
from emailrouter_lib.run_summary import RunRecord, run_summary


@dataclass(eq=False)
class RulesParams(FlowParameters):
    """Where the forward-mailbox users and queues come from, and what to do with their rules."""

    FLOW: ClassVar[str] = "rules"

    crm: str | None = param(
        None,
        help="CRM URL: mailbox records (and addresses for the configuration's GUIDs)",
        flags="--crm",
    )
    config: str | None = param(
        None, help="a router's Microsoft.Crm.Tools.EmailAgent.xml", flags="--config"
    )
    ews: str | None = param(
        None,
        help="service account URL, ews(s)://USER@HOST/EWS/Exchange.asmx?password=env:NAME",
        flags="--ews",
    )
    dry_run: bool = param(True, help="plan only; False applies and verifies", flags="--dry-run")
    mode: str = param("deploy", help='"deploy", or "remove": take our rules away')
    mailboxes: list[str] = param(
        factory=list,
        help="only these addresses (shell patterns allowed); [] = all",
        flags="--mailbox",
    )
    rule_name: str = param(DEFAULT_RULE_NAME, help="the rule's name", flags="--rule-name")
    forward_mailbox: str | None = param(
        None, help="overrides the forward mailbox both sources name", flags="--forward-mailbox"
    )
    max_concurrency: int = param(
        4, help="mailboxes read or changed at once", flags=("--max-concurrency", "--concurrency")
    )
    verify: bool = param(True, help="after apply, read every mailbox again and report drift")
    run_id: str | None = run_id_param()
    run_dir: str | None = run_dir_param()

    @classmethod
    def normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("mailboxes"), str):
            data["mailboxes"] = [data["mailboxes"]]
        return data

    def check(self) -> None:
        super().check()
        if self.mode not in ("deploy", "remove"):
            raise ParameterError(f"mode must be 'deploy' or 'remove', not {self.mode!r}")
        if not str(self.rule_name or "").strip():
            raise ParameterError("rule_name must not be empty")
        try:
            self.max_concurrency = max(1, int(self.max_concurrency))
        except (TypeError, ValueError):
            raise ParameterError("max_concurrency must be a whole number of mailboxes") from None
        if not self.dry_run and not self.ews:
            raise ParameterError("dry_run is false but no ews= URL is given to reach the mailboxes")


# The declared defaults, for callers that merge a mapping over them.
DEFAULTS: dict[str, Any] = {p.name: p.default for p in RulesParams.declared()}


@dataclass
class RulesResult:
    """The plan and, when applied, what happened and what verification found."""

    plan: RulePlan
    applied: list[AppliedRow] | None = None
    verified: list[VerifiedRow] | None = None
    dry_run: bool = True
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    run: RunRecord = field(default_factory=lambda: RunRecord("rules"))

    @property
    def counts(self) -> dict[str, int]:
        return self.plan.counts

    @property
    def drift(self) -> list[VerifiedRow]:
        return [v for v in self.verified or [] if v.status == "drift"]

    @property
    def ok(self) -> bool:
        errors = any(r.outcome == "error" for r in self.applied or [])
        return not errors and not self.drift and "error" not in self.plan.counts

    @property
    def summary(self) -> dict[str, Any]:
        """The one summary schema (``run_summary``); the rules' own keys under ``details``."""
        details: dict[str, Any] = {
            "rule_name": self.plan.rule_name,
            "mode": self.plan.mode,
            "mailboxes_read": self.plan.read,
            "outlook_client_only_rules_at_risk": sum(
                1 for r in self.plan.changing if r.outlook_rules
            ),
            "manual": len(self.plan.manual),
        }
        if self.applied is not None:
            details["applied"] = _tally(r.outcome for r in self.applied)
        if self.verified is not None:
            details["verified"] = _tally(v.status for v in self.verified)
        failures = [
            f"mailbox {r.mailbox}: {r.outcome}: {r.detail}"
            for r in self.applied or []
            if r.outcome == "error"
        ]
        failures += [f"mailbox {v.mailbox}: drift: {v.detail}" for v in self.drift]
        # ok False: a rule failed or drifted (the runner exits 1)
        return run_summary(
            self.run,
            counts=self.counts,
            ok=self.ok,
            dry_run=self.dry_run,
            failures=failures,
            details=details,
        )

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"plan": self.plan.table()}
        if self.applied is not None:
            tables["applied"] = applied_table(self.applied)
        if self.verified is not None:
            tables["verified"] = verified_table(self.verified)
        return tables

    def write_artifacts(self, run_dir: str | Path) -> dict[str, Path]:
        """report.html, summary.json, plan.csv (applied.csv, verified.csv), and for mailboxes
        that need a person: manual-rules.ps1 and manual-rules.md."""
        from emailrouter_lib.reports.artifacts import write_run_artifacts
        from emailrouter_lib.rules.manual import write_manual

        run_dir = Path(run_dir)
        manual = write_manual(self.plan, run_dir)
        notes = [OUTLOOK_NOTE]
        if not self.plan.read:
            notes.append("Mailboxes were not read (no ews= given): Exchange rows say create.")
        title = "Inbox rules: " + ("plan (dry run)" if self.dry_run else "applied")
        written = write_run_artifacts(
            run_dir,
            summary=self.summary,
            report_summary=self.report_summary(),
            tables=self.tables(),
            title=title,
            subtitle=f"rule {self.plan.rule_name!r}, mode {self.plan.mode}",
            notes=notes,
            links={name: name for name in manual},
            figures=self.figures(),
            alerts=self.alerts(),
            main_columns={"plan": ["action", "mailbox", "owner", "reason", "forward_to"]},
        )
        return {**written, **manual}

    def alerts(self) -> list[str]:
        """Mailboxes whose rule could not be read, written or verified: the report's banner."""
        lines = [
            f"{r.mailbox}: could not be read: {r.reason}"
            for r in self.plan.rows
            if r.action == "error"
        ]
        lines += [
            f"{r.mailbox}: {r.outcome}: {r.detail}"
            for r in self.applied or []
            if r.outcome == "error"
        ]
        lines += [f"{v.mailbox}: drift after apply: {v.detail}" for v in self.drift]
        return lines

    def report_summary(self) -> dict[str, Any]:
        """What a person reads first: problems, then what the plan does, in words."""
        counts = self.counts
        summary: dict[str, Any] = {
            "mailboxes_with_errors": len(self.alerts()),
            "mailboxes": sum(counts.values()),
            **{f"to_{action}": n for action, n in counts.items()},
            "manual_steps": len(self.plan.manual),
            "outlook_client_rules_at_risk": sum(1 for r in self.plan.changing if r.outlook_rules),
        }
        if self.applied is not None:
            summary["applied"] = _tally(r.outcome for r in self.applied)
        if self.verified is not None:
            summary["verified"] = _tally(v.status for v in self.verified)
        summary["rule"] = self.plan.rule_name
        summary["mode"] = self.plan.mode
        summary["mailboxes_read"] = (
            "yes" if self.plan.read else "no (no Exchange service account given)"
        )
        summary["changes_made"] = (
            "none: this is the plan" if self.applied is None else "the rules above were applied"
        )
        return summary

    def figures(self) -> dict[str, str]:
        from emailrouter_lib.reports.charts import ACCENT, BAD, GOOD, NEUTRAL, bar_chart

        counts = self.counts
        colour = {"create": ACCENT, "update": ACCENT, "remove": ACCENT, "unchanged": GOOD}
        chart = bar_chart(
            counts,
            title="Mailboxes by planned action",
            xlabel="mailboxes",
            colors=[
                colour.get(a, BAD if a == "error" else NEUTRAL)
                for a in sorted(counts, key=lambda a: -counts[a])
            ],
        )
        return {"Mailboxes by planned action": chart}

    def __str__(self) -> str:
        lines = [
            f"rules {self.plan.mode}: "
            + ", ".join(f"{n} {a}" for a, n in self.counts.items())
            + ("  (dry run)" if self.dry_run else "")
        ]
        for row in self.plan.rows:
            lines.append(f"  {row.action:9} {row.mailbox:32} {row.reason}")
        if self.applied is not None:
            lines.append(f"  applied: {_tally(r.outcome for r in self.applied)}")
        if self.verified is not None:
            lines.append(f"  verified: {_tally(v.status for v in self.verified)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from emailrouter_lib.reports.display import result_html

        title = "Inbox rules: " + ("plan" if self.applied is None else "applied")
        return result_html(title, self.report_summary(), {})  # the notebook shows the tables


def _tally(values) -> dict[str, int]:
    tally: dict[str, int] = {}
    for value in values:
        tally[value] = tally.get(value, 0) + 1
    return tally


def check_params(params: Mapping[str, Any]) -> RulesParams:
    """The declared parameters (:class:`RulesParams`), with at least one source of mailboxes."""
    checked = RulesParams.from_mapping(params)
    if not checked.crm and not checked.config:
        raise ParameterError(
            "no source of mailboxes: give crm= (its mailbox records) and/or config= (a router's "
            "Microsoft.Crm.Tools.EmailAgent.xml)"
        )
    return checked


def find_targets(params: Mapping[str, Any]) -> list[Target]:
    """The mailboxes the parameters name, merged, filtered and with the forward mailbox set."""
    from emailrouter_lib.config import load_config
    from emailrouter_lib.crm import open_crm

    crm = open_crm(params["crm"]) if params.get("crm") else None
    try:
        sources = []
        if params.get("config"):
            sources.append(targets_from_config(load_config(params["config"]), crm))
        if crm is not None:
            sources.append(targets_from_crm(crm))
    finally:
        if crm is not None:
            crm.close()
    targets = with_forward_mailbox(merge(*sources), params.get("forward_mailbox"))
    return select(targets, params.get("mailboxes"))


def connector_for(params: Mapping[str, Any]):
    if not params.get("ews"):
        return None
    from emailrouter_lib.rules.connect import EwsConnector

    return EwsConnector(params["ews"], max_concurrency=params["max_concurrency"])


def run(params: Mapping[str, Any], *, targets: list[Target] | None = None) -> RulesResult:
    """Plan; unless ``dry_run``, apply and verify. *targets* replaces the CRM/config sources."""
    if targets is None:
        params = check_params(params)
        connector = connector_for(params)  # a bad URL fails before anything is read
        targets = find_targets(params)
    else:
        params = RulesParams.from_mapping(params)
        connector = connector_for(params)
    concurrency = params["max_concurrency"]
    plan = build_plan(
        targets,
        rule_name=params["rule_name"],
        mode=params["mode"],
        connector=connector,
        max_concurrency=concurrency,
    )
    run = RunRecord.begin("rules", params, run_id=params.get("run_id"))
    result = RulesResult(plan, dry_run=bool(params["dry_run"]), params=dict(params), run=run)
    if not params["dry_run"]:
        result = apply_result(result, connector, verify_after=bool(params.get("verify", True)))
    result.run.finish()
    return result


def apply_result(result: RulesResult, connector=None, *, verify_after: bool = True) -> RulesResult:
    """Apply *result*'s plan (it must have read the mailboxes), then verify.

    Without a *connector*, the plan's own ``ews`` parameter is used.
    """
    if connector is None:
        connector = connector_for(result.params)
    if connector is None:
        raise ConfigError("applying needs the mailboxes: plan with an ews= URL first")
    concurrency = int(result.params.get("max_concurrency", DEFAULTS["max_concurrency"]))
    applied = apply_plan(result.plan, connector, max_concurrency=concurrency)
    verified = verify(result.plan, connector, max_concurrency=concurrency) if verify_after else None
    return RulesResult(
        result.plan, applied, verified, dry_run=False, params=result.params, run=result.run
    )


__all__ = [
    "DEFAULTS",
    "RulesParams",
    "RulesResult",
    "apply_result",
    "check_params",
    "find_targets",
    "run",
]
