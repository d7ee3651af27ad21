"""Apply a rule plan, then verify it by reading every mailbox again.

Apply sends one ``UpdateInboxRules`` per changing row, carrying that row's operations (Exchange
runs them all or none), at most ``max_concurrency`` mailboxes at once. A mailbox that fails is
recorded and the others go on; running the plan again picks it up. Rows that change nothing send
nothing, so a second apply after a successful one makes no changing request at all.

Verify re-plans the same mailboxes: every row that would still change something is *drift*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from emailrouter_lib.errors import EmailRouterError
from emailrouter_lib.rules.plan import RulePlan, build_plan, for_each

DONE = {"create": "created", "update": "updated", "remove": "removed"}


@dataclass
class AppliedRow:
    mailbox: str
    action: str
    outcome: str  # created | updated | removed | unchanged | skipped | error
    detail: str = ""
    seconds: float = 0.0


@dataclass
class VerifiedRow:
    mailbox: str
    status: str  # ok | drift | error | skipped
    detail: str = ""


def apply_plan(
    plan: RulePlan, connector: Callable, *, max_concurrency: int = 4
) -> list[AppliedRow]:
    """Carry out every changing row of *plan*; one row per plan row, in order."""

    def one(row) -> AppliedRow:
        if not row.changing:
            outcome = "skipped" if row.action in ("skip", "error") else "unchanged"
            return AppliedRow(row.mailbox, row.action, outcome, row.reason)
        started = time.perf_counter()
        try:
            connector(row.mailbox).update(row.changes)
        except EmailRouterError as exc:
            return AppliedRow(row.mailbox, row.action, "error", _text(exc), _since(started))
        except Exception as exc:  # never abort the other mailboxes
            detail = f"{type(exc).__name__}: {exc}"[:300]
            return AppliedRow(row.mailbox, row.action, "error", detail, _since(started))
        return AppliedRow(row.mailbox, row.action, DONE[row.action], row.reason, _since(started))

    if not plan.read:
        raise ValueError("this plan was made without reading the mailboxes; plan with ews= first")
    return for_each(plan.rows, one, max_concurrency)


def verify(plan: RulePlan, connector: Callable, *, max_concurrency: int = 4) -> list[VerifiedRow]:
    """Read the plan's mailboxes again; anything left to change is drift."""
    again = build_plan(
        plan.targets,
        rule_name=plan.rule_name,
        mode=plan.mode,
        connector=connector,
        max_concurrency=max_concurrency,
    )
    return as_verified(again)


def as_verified(plan: RulePlan) -> list[VerifiedRow]:
    """A freshly read plan seen as verification: rows that would still change are drift."""
    rows = []
    for row in plan.rows:
        if row.changing:
            rows.append(
                VerifiedRow(row.mailbox, "drift", f"would still {row.action}: {row.reason}")
            )
        elif row.action == "error":
            rows.append(VerifiedRow(row.mailbox, "error", row.reason))
        elif row.action == "skip":
            rows.append(VerifiedRow(row.mailbox, "skipped", row.reason))
        else:
            rows.append(VerifiedRow(row.mailbox, "ok", row.reason))
    return rows


def applied_table(rows: list[AppliedRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=list(AppliedRow.__dataclass_fields__))


def verified_table(rows: list[VerifiedRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=list(VerifiedRow.__dataclass_fields__))


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _text(exc: BaseException) -> str:
    text = str(exc)
    mailbox = getattr(exc, "mailbox", None)
    if mailbox and text.startswith(f"{mailbox}: "):
        text = text[len(mailbox) + 2 :]
    return text[:400]


__all__ = [
    "AppliedRow",
    "VerifiedRow",
    "applied_table",
    "apply_plan",
    "as_verified",
    "verified_table",
    "verify",
]
