"""Inbox-rule deployment for forward mailboxes: plan, apply, verify, remove.

Every user and queue whose incoming method is Forward Mailbox needs a server-side rule in its own
mailbox that forwards each incoming message *as an attachment* to the forward mailbox (except mail
from the forward mailbox itself). ``run(params)`` finds those mailboxes (CRM records and/or a
router configuration), reads each one's rules over EWS and plans ``create`` / ``update`` /
``unchanged`` / ``remove`` / ``skip`` (with the reason); with ``dry_run=False`` it applies the plan
(one request per changing mailbox, bounded concurrency, per-mailbox errors) and verifies it.

    result = rules.run({"crm": "sqlite:///crm.sqlite",
                        "ews": "ewss://CONTOSO%5Csvc@mail.contoso.com/EWS/Exchange.asmx"
                               "?password=env:EWS_PASSWORD",
                        "dry_run": False})
    result.tables()["plan"]; result.drift; result.write_artifacts(run_dir)

Mailboxes that cannot be reached over EWS (POP3, Exchange 2007, Exchange Online, no permission)
get ``manual-rules.ps1`` (Exchange Management Shell) and ``manual-rules.md`` in the run folder.
"""

from __future__ import annotations

from emailrouter_lib.lazy_exports import lazy_exports

# Imported on first use (start-up time: emailrouter_lib.lazy_exports says why).
__all__, __getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "apply": (
            "AppliedRow",
            "VerifiedRow",
            "apply_plan",
            "verify",
        ),
        "flow": (
            "DEFAULTS",
            "RulesParams",
            "RulesResult",
            "apply_result",
            "find_targets",
            "run",
        ),
        "model": (
            "DEFAULT_RULE_NAME",
            "RuleSpec",
            "differences",
            "is_ours",
        ),
        "plan": (
            "PlanRow",
            "RulePlan",
            "build_plan",
            "decide",
        ),
        "targets": ("Target",),
    },
)
