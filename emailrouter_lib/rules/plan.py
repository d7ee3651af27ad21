"""The rule plan: per mailbox one row saying what apply would do, and why.

Actions: ``create`` (no rule of ours), ``update`` (a rule of ours exists but differs, or there are
duplicates), ``unchanged``, ``remove`` (``mode="remove"``: a rule of ours is there), ``skip`` with
the reason (POP3, Exchange 2007, Exchange Online, no permission, mailbox not found, the forward
mailbox itself, a same-named rule that is not ours), and ``error`` when reading failed for another
reason (that mailbox only; the run goes on).

Reading costs one ``GetInboxRules`` per mailbox; the row keeps the exact operations apply will send
(one ``UpdateInboxRules``), so apply does not read again. Every change through EWS also removes
the mailbox's Outlook *client-only* rules (Exchange requires ``RemoveOutlookRuleBlob``); rows say
where such rules exist (``outlook_rules``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pandas as pd

from emailrouter_lib.errors import EmailRouterError
from emailrouter_lib.mailboxes.ews_rules import (
    MailboxRules,
    RuleChange,
    RulesNotFound,
    RulesNotPermitted,
)
from emailrouter_lib.rules.model import RuleSpec, differences, has_our_name, is_ours
from emailrouter_lib.rules.targets import Target

ACTIONS = ("create", "update", "unchanged", "remove", "skip", "error")
CHANGING = ("create", "update", "remove")
OUTLOOK_NOTE = (
    "Changing rules through EWS deletes Outlook client-only rules (rules that run only in a "
    "user's Outlook) from that mailbox; rows with outlook_rules = True have some."
)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class PlanRow:
    """What apply would do to one mailbox."""

    mailbox: str
    owner: str
    source: str
    server: str
    forward_to: str | None
    action: str
    reason: str = ""
    outlook_rules: bool | None = None  # None: not read
    own_rules: int | None = None  # rules that are not ours (left alone); None: not read
    manual: bool = False
    changes: tuple[RuleChange, ...] = field(default=(), repr=False, compare=False)

    @property
    def changing(self) -> bool:
        return self.action in CHANGING

    def record(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("changes")
        values["operations"] = ", ".join(c.op for c in self.changes)
        return values


@dataclass
class RulePlan:
    """Every row, plus what it was built from (so verify can read the same mailboxes again)."""

    rule_name: str
    mode: str
    rows: list[PlanRow]
    targets: list[Target] = field(default_factory=list, repr=False)
    read: bool = True  # False: planned without a server (every Exchange row is "create")
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        counts = {a: 0 for a in ACTIONS}
        for row in self.rows:
            counts[row.action] += 1
        return {a: n for a, n in counts.items() if n}

    @property
    def changing(self) -> list[PlanRow]:
        return [r for r in self.rows if r.changing]

    @property
    def manual(self) -> list[PlanRow]:
        return [r for r in self.rows if r.action == "skip" and r.manual]

    def table(self) -> pd.DataFrame:
        columns = [
            "mailbox",
            "owner",
            "action",
            "reason",
            "forward_to",
            "server",
            "source",
            "outlook_rules",
            "own_rules",
            "operations",
            "manual",
        ]
        return pd.DataFrame([r.record() for r in self.rows], columns=columns)

    def row(self, mailbox: str) -> PlanRow:
        return next(r for r in self.rows if r.mailbox == mailbox.lower())


# -- deciding one mailbox -----------------------------------------------------------------------
def _row(target: Target, action: str, reason: str = "", **extra) -> PlanRow:
    return PlanRow(
        target.address,
        target.owner,
        target.source,
        target.server,
        target.forward_to,
        action,
        "; ".join(p for p in (reason, target.note) if p),
        **extra,
    )


def decide(target: Target, rule_name: str, mode: str, found: MailboxRules) -> PlanRow:
    """The row for *target* given the rules read from its mailbox."""
    ours = [r for r in found.rules if is_ours(r, rule_name)]
    same_name = [r for r in found.rules if has_our_name(r, rule_name) and not is_ours(r, rule_name)]
    extra = dict(outlook_rules=found.outlook_rules_exist, own_rules=len(found.rules) - len(ours))
    if mode == "remove":
        if not ours:
            return _row(target, "unchanged", "no rule of ours", **extra)
        deletes = tuple(RuleChange("delete", r) for r in ours)
        return _row(
            target, "remove", f"{len(ours)} rule(s) named {rule_name!r}", changes=deletes, **extra
        )
    spec = RuleSpec(rule_name, target.forward_to or "")
    if not ours:
        if same_name:
            return _row(
                target,
                "skip",
                f"a rule named {rule_name!r} exists that does not forward as attachment (not "
                "ours); rename it or choose another rule_name",
                **extra,
            )
        create = (RuleChange("create", spec.rule()),)
        return _row(target, "create", "no rule of ours", changes=create, **extra)
    first, duplicates = ours[0], ours[1:]
    diffs = differences(spec, first)
    changes = [RuleChange("delete", r) for r in duplicates]
    if diffs:
        changes.insert(0, RuleChange("set", spec.rule(rule_id=first.id, priority=first.priority)))
    if duplicates:
        diffs.append(f"{len(duplicates)} duplicate(s) to delete")
    if not changes:
        return _row(target, "unchanged", "rule is as deployed", **extra)
    return _row(target, "update", "; ".join(diffs), changes=tuple(changes), **extra)


def _unread(target: Target, mode: str) -> PlanRow:
    if mode == "remove":
        return _row(target, "remove", "not read (no ews= server given): would remove our rule")
    return _row(target, "create", "not read (no ews= server given): apply reads it first")


def needs_reading(target: Target, mode: str) -> bool:
    if mode == "remove":
        return target.wanted and not target.manual and not target.address.startswith("(")
    return target.skip is None


# -- the whole plan -----------------------------------------------------------------------------
def for_each(items: Sequence[T], work: Callable[[T], R], max_concurrency: int) -> list[R]:
    """*work* on every item, at most *max_concurrency* at once, results in input order."""
    if max_concurrency <= 1 or len(items) <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="rules") as pool:
        return list(pool.map(work, items))


def read_row(target: Target, rule_name: str, mode: str, connector: Callable) -> PlanRow:
    """Read one mailbox and decide; errors stay on this row."""
    try:
        found = connector(target.address).read()
    except RulesNotFound as exc:
        return _row(target, "skip", f"mailbox not found: {_text(exc)}")
    except RulesNotPermitted as exc:
        return _row(target, "skip", f"no permission: {_text(exc)}", manual=True)
    except EmailRouterError as exc:
        return _row(target, "error", _text(exc))
    except Exception as exc:  # one mailbox's surprise must not stop the others
        return _row(target, "error", f"{type(exc).__name__}: {exc}"[:300])
    return decide(target, rule_name, mode, found)


def build_plan(
    targets: Iterable[Target],
    *,
    rule_name: str,
    mode: str = "deploy",
    connector: Callable | None = None,
    max_concurrency: int = 4,
) -> RulePlan:
    """Read (with a *connector*) or only list (without) every target and decide its row."""
    if mode not in ("deploy", "remove"):
        raise ValueError(f"mode must be 'deploy' or 'remove', not {mode!r}")
    targets = list(targets)
    started = time.perf_counter()

    def one(target: Target) -> PlanRow:
        if target.skip and not needs_reading(target, mode):
            return _row(target, "skip", target.skip, manual=target.manual)
        if connector is None:
            return _unread(target, mode)
        return read_row(target, rule_name, mode, connector)

    rows = for_each(targets, one, max_concurrency)
    return RulePlan(
        rule_name, mode, rows, targets, connector is not None, time.perf_counter() - started
    )


def _text(exc: BaseException) -> str:
    """The message without the ``mailbox: `` prefix the row already shows."""
    text = str(exc)
    mailbox = getattr(exc, "mailbox", None)
    if mailbox and text.startswith(f"{mailbox}: "):
        text = text[len(mailbox) + 2 :]
    return text[:400]


__all__ = [
    "ACTIONS",
    "CHANGING",
    "OUTLOOK_NOTE",
    "PlanRow",
    "RulePlan",
    "build_plan",
    "decide",
    "for_each",
    "needs_reading",
    "read_row",
]
