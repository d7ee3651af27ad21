"""The rule this tool deploys, and how a rule read from a mailbox compares with it.

The old Rule Deployment Wizard's exact rule is not documented (reference/email-router-research.md
§3.1). Ours: no conditions (every incoming message), one action (forward as attachment to the
forward mailbox), one exception (mail from the forward mailbox itself, so nothing loops), enabled.

A rule is *ours* when it has our display name **and** a forward-as-attachment action: a user's
own rule that happens to share the name is never changed or removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from emailrouter_lib.mailboxes.ews_rules import InboxRule

DEFAULT_RULE_NAME = "Dynamics CRM Email Router"


@dataclass(frozen=True)
class RuleSpec:
    """Our rule for one mailbox: its display name and the forward mailbox it sends to."""

    name: str
    forward_to: str

    def rule(self, *, rule_id: str | None = None, priority: int = 1) -> InboxRule:
        """The rule as we write it (an update keeps the priority the mailbox gave it)."""
        address = self.forward_to.lower()
        return InboxRule(rule_id, self.name, priority, True, (address,), (address,))


def has_our_name(rule: InboxRule, name: str) -> bool:
    return rule.name.strip().casefold() == name.strip().casefold()


def is_ours(rule: InboxRule, name: str) -> bool:
    """Our name and a forward-as-attachment action (to any address: an altered rule is ours)."""
    return has_our_name(rule, name) and bool(rule.forward_as_attachment_to)


def differences(spec: RuleSpec, rule: InboxRule) -> list[str]:
    """How *rule* differs from *spec* in words; empty when it is what we would write."""
    wanted = (spec.forward_to.lower(),)
    found = []
    if not rule.enabled:
        found.append("disabled")
    if rule.in_error:
        found.append("marked in error by Exchange")
    if rule.forward_as_attachment_to != wanted:
        found.append(f"forwards to {', '.join(rule.forward_as_attachment_to) or 'nobody'}")
    if rule.except_from != wanted:
        shown = ", ".join(rule.except_from) or "none"
        found.append(f"exception for mail from the forward mailbox missing (has: {shown})")
    if rule.conditions:
        found.append(f"has conditions ({', '.join(rule.conditions)})")
    if rule.exceptions:
        found.append(f"has other exceptions ({', '.join(rule.exceptions)})")
    if rule.actions:
        found.append(f"has other actions ({', '.join(rule.actions)})")
    return found


__all__ = ["DEFAULT_RULE_NAME", "RuleSpec", "differences", "has_our_name", "is_ours"]
