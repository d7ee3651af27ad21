"""The audit's driver: collect the mailboxes, probe them a few at a time, add the findings."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from tqdm.auto import tqdm

from emailrouter_lib.audit.crm_view import read_crm
from emailrouter_lib.audit.findings import find_problems
from emailrouter_lib.audit.history import LedgerView
from emailrouter_lib.audit.params import AuditParams
from emailrouter_lib.audit.probe import ERROR, NOT_CHECKED, SKIPPED, Probe, probe_mailbox
from emailrouter_lib.audit.result import AuditResult, AuditRow
from emailrouter_lib.audit.rule_check import (
    RuleCheck,
    RuleChecker,
    rule_findings,
)
from emailrouter_lib.audit.targets import Target, collect_targets
from emailrouter_lib.run_summary import new_run_id


def run(params: dict[str, Any] | AuditParams) -> AuditResult:
    """Audit every mailbox *params* names; a mailbox that fails is a row, never an exception."""
    p = AuditParams.from_mapping(params)
    run_id = p.run_id or new_run_id()
    since = p.since_datetime()
    crm = None
    if p.crm:
        from emailrouter_lib.crm import open_crm

        crm = open_crm(p.crm)
    ledger_path = p.ledger_path()
    ledger = LedgerView(ledger_path)
    result = AuditResult(
        run_id=run_id,
        started=datetime.now(UTC),
        since=since,
        tracked_classes=list(p.tracked_classes),
        crm=crm.url if crm else None,
        ledger=str(ledger_path) if ledger.available else None,
        concurrency=p.max_concurrency,
        migration_plan=p.migration_plan,
        parameters_hash=p.fingerprint(),
    )
    try:
        view = read_crm(crm)
        result.limits += view.limits
        targets, listing = collect_targets(
            list(p.mailboxes), list(p.config), p.config_password, p.url_template, crm, view
        )

        rules = RuleChecker(
            crm=crm,
            view=view,
            config_paths=list(p.config),
            rule_name=p.rule_name,
            forward_mailbox=p.forward_mailbox,
            ews=p.ews,
            url_template=p.url_template,
            concurrency=p.max_concurrency,
            timeout=p.timeout,
            ca_file=p.ca_file,
        )
        result.rule_name = rules.rule_name
        targets += rules.unlisted(targets)

        def probe_and_rule(target: Target) -> tuple[Probe, RuleCheck | None]:
            return probe(target), rules.check(target)  # one worker: a slow mailbox holds one

        def probe(target: Target) -> Probe:
            if target.invalid:
                return Probe(state=ERROR, error=target.invalid)
            if target.skipped or not target.url:
                state = (
                    SKIPPED
                    if any(o.startswith("config") for o in target.origins)
                    else (NOT_CHECKED)
                )
                return Probe(state=state, error=target.skipped)
            return probe_mailbox(
                target.url,
                since=since,
                tracked_classes=result.tracked_classes,
                ledger=ledger,
                timeout=p.timeout,
                budget=p.mailbox_budget,
                max_items=p.max_items,
                ca_file=p.ca_file,
            )

        show = p.progress if p.progress is not None else None
        with ThreadPoolExecutor(max_workers=p.max_concurrency, thread_name_prefix="audit") as pool:
            probes = pool.map(probe_and_rule, targets)
            bar = tqdm(
                probes,
                total=len(targets),
                desc="audit",
                unit="mailbox",
                disable=None if show is None else not show,
            )
            for target, (found, rule) in zip(targets, bar, strict=True):
                result.rows.append(AuditRow(target, found, view.find(target.address), rule))
        result.findings = find_problems(targets, listing, view)
        result.findings += rule_findings(
            [(r.target, r.rule) for r in result.rows], rules.rule_name or ""
        )
    finally:
        ledger.close()
        if crm is not None:
            crm.close()
    result.finished = datetime.now(UTC)
    return result
