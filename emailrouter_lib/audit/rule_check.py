"""Is our forward rule in each forward-delivery mailbox, and is it as we deploy it? (read only)

A user or queue whose incoming delivery method is Forward Mailbox reaches the CRM only through a
server-side rule in its own mailbox that forwards every message, as an attachment, to the forward
mailbox. When that rule is gone or was edited, mail silently stops being tracked: nothing fails,
so only an audit notices.

Which mailboxes need the rule, and which forward mailbox it must name, comes from the rules
package (``targets_from_crm`` / ``targets_from_config``), and whether a rule read from the mailbox
is ours and as deployed is judged by it too (:func:`emailrouter_lib.rules.decide`, the judgement a
deployment plan makes): the audit and ``emailrouter rules`` never disagree about "our rule".
Each mailbox's rules are read once (one ``GetInboxRules``) through the mailbox's own ``ews://``
URL, else the service account (``ews``), else an ``ews://`` ``url_template``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from emailrouter_lib.audit.crm_view import FORWARD_DELIVERY, CrmView
from emailrouter_lib.audit.findings import INFO, WARNING, finding
from emailrouter_lib.audit.probe import error_text as _text
from emailrouter_lib.audit.targets import Target, template_url
from emailrouter_lib.errors import EmailRouterError, SecretError
from emailrouter_lib.findings import Finding

PRESENT, MISSING, ALTERED, CANNOT_CHECK = "present", "missing", "altered", "cannot-check"
RULE_STATES = (MISSING, ALTERED, CANNOT_CHECK, PRESENT)  # worst first
_EWS = ("ews", "ewss")
NO_CONNECTION = (
    "no EWS connection to read its rules: give ews= (the service account's ews:// URL, as for "
    "rule deployment), an ews:// mailbox URL or an ews:// url_template"
)
DEPLOY_HINT = "notebook 03_deploy_rules or `emailrouter rules apply` puts it right"


@dataclass(frozen=True)
class RuleCheck:
    """The forward rule of one mailbox as the audit found it."""

    state: str  # present | missing | altered | cannot-check
    detail: str
    forward_to: str | None = None
    own_rules: int | None = None  # rules that are not ours (a user's own); None: not read
    tried: bool = False  # the rules were asked for (a failure then is worth a warning)


class RuleChecker:
    """Knows which audit rows need the rule and how to read each one's rules."""

    def __init__(
        self,
        *,
        crm: Any | None,
        view: CrmView,
        config_paths: list[str],
        rule_name: str | None,
        forward_mailbox: str | None = None,
        ews: str | None = None,
        url_template: str | None = None,
        concurrency: int = 1,
        timeout: float | None = None,
        ca_file: str | None = None,
    ):
        self.url_template = url_template if _is_ews(url_template) else None
        self.timeout, self.ca_file = timeout, ca_file
        self.wanted = _wanted(crm, view, config_paths, forward_mailbox)
        # None when no mailbox needs the rule (and the rules package is then not even imported)
        self.rule_name = rule_name or (default_rule_name() if self.wanted else None)
        self._connector = None
        self._connector_error: str | None = None
        if ews and self.wanted:
            from emailrouter_lib.rules.connect import EwsConnector

            try:
                self._connector = EwsConnector(ews, max_concurrency=concurrency)
            except SecretError as exc:
                self._connector_error = f"ews= password reference: {exc}"
            except EmailRouterError as exc:
                self._connector_error = str(exc)

    def unlisted(self, targets: list[Target]) -> list[Target]:
        """Rows for mailboxes that need the rule but that no other source made a row for."""
        have = {t.address for t in targets if t.address}
        rows = []
        for address, wanted in self.wanted.items():
            if address not in have and not address.startswith("("):
                kind = wanted.owner.split(" ", 1)[0] if wanted.owner else "mailbox"
                rows.append(
                    Target(
                        address,
                        kind if kind in ("user", "queue") else "mailbox",
                        origins=[f"{wanted.source} (forward-mailbox delivery)"],
                        skipped="incoming mail reaches the CRM through the forward mailbox "
                        "(its inbox rule)",
                    )
                )
        return rows

    def check(self, target: Target) -> RuleCheck | None:
        """None when the row's mailbox needs no forward rule."""
        wanted = self.wanted.get(target.address or "")
        if wanted is None:
            return None
        if wanted.skip:
            return RuleCheck(CANNOT_CHECK, wanted.skip, wanted.forward_to)
        try:
            reader = self._reader(target)
        except SecretError as exc:
            return RuleCheck(CANNOT_CHECK, f"password reference: {exc}", wanted.forward_to)
        except EmailRouterError as exc:
            return RuleCheck(CANNOT_CHECK, _text(exc), wanted.forward_to)
        if reader is None:
            why = self._connector_error or NO_CONNECTION
            return RuleCheck(CANNOT_CHECK, why, wanted.forward_to)
        return self._read(wanted, reader)

    # -- helpers -----------------------------------------------------------------------------
    def _reader(self, target: Target):
        """The rules client of *target*'s mailbox, or None when there is no way to reach it."""
        if _is_ews(target.url):
            return self._rules_at(target.url)
        if self._connector is not None:
            return self._connector(target.address)
        if self.url_template:
            return self._rules_at(template_url(self.url_template, target.address or ""))
        return None

    def _rules_at(self, url: str):
        from emailrouter_lib.mailboxes import parse_mailbox_url
        from emailrouter_lib.mailboxes.ews_rules import EwsRules
        from emailrouter_lib.secrets import resolve_secret

        settings = parse_mailbox_url(url, timeout=self.timeout, ca_file=self.ca_file)
        return EwsRules(settings, resolve_secret(settings.password_ref or ""))

    def _read(self, wanted, reader) -> RuleCheck:
        from emailrouter_lib.mailboxes.ews_rules import RulesNotFound, RulesNotPermitted
        from emailrouter_lib.rules.plan import decide

        forward = wanted.forward_to
        try:
            found = reader.read()
        except RulesNotFound as exc:
            return RuleCheck(CANNOT_CHECK, f"mailbox not found: {_text(exc)}", forward, tried=True)
        except RulesNotPermitted as exc:
            return RuleCheck(CANNOT_CHECK, f"no permission: {_text(exc)}", forward, tried=True)
        except EmailRouterError as exc:
            return RuleCheck(CANNOT_CHECK, _text(exc), forward, tried=True)
        except Exception as exc:  # one mailbox's surprise must not stop the audit
            text = f"unexpected {type(exc).__name__}: {exc}"[:400]
            return RuleCheck(CANNOT_CHECK, text, forward, tried=True)
        row = decide(wanted, self.rule_name or "", "deploy", found)
        own = row.own_rules
        notes = []
        if own:
            notes.append(f"{own} rule(s) of the mailbox's own, left alone")
        if wanted.note and row.action in ("unchanged", "create"):
            notes.append(wanted.note)  # decide() put it into the other reasons already
        if found.outlook_rules_exist:
            notes.append("Outlook client-only rules exist (deploying through EWS deletes them)")
        if row.action == "unchanged":
            state, detail = PRESENT, f"forwards as attachment to {forward}"
        elif row.action == "update":
            state, detail = ALTERED, row.reason
        elif row.action == "create":
            state, detail = MISSING, f"no rule named {self.rule_name!r}"
        else:  # skip: a rule with our name that does not forward as attachment is not ours
            state, detail = MISSING, row.reason
        detail = "; ".join([detail, *notes])
        return RuleCheck(state, detail, forward, own, tried=True)


def default_rule_name() -> str:
    """The rules package's rule name (imported late: it brings exchangelib along)."""
    from emailrouter_lib.rules.model import DEFAULT_RULE_NAME

    return DEFAULT_RULE_NAME


def _wanted(crm, view: CrmView, config_paths: list[str], forward_mailbox: str | None) -> dict:
    """address → the rules package's target for every mailbox that should carry the rule."""
    if crm is None and not config_paths:
        return {}  # only mailbox URLs: nothing says whose mail arrives by forward mailbox
    from emailrouter_lib.config import load_config
    from emailrouter_lib.rules.targets import (
        Target as RuleTarget,
    )
    from emailrouter_lib.rules.targets import (
        merge,
        targets_from_config,
        targets_from_crm,
        with_forward_mailbox,
    )

    sources = []
    for path in config_paths:
        try:
            sources.append(targets_from_config(load_config(path), crm))
        except EmailRouterError:
            continue  # the configuration's own problem is a finding of the audit already
    if crm is not None:
        sources.append(targets_from_crm(crm))
    found = {t.address: t for t in with_forward_mailbox(merge(*sources), forward_mailbox)}
    # A backend without mailbox records: the CRM's users and queues still say who needs the rule.
    forwards = [m.address for m in view.mailboxes if m.kind == "forward"]
    for mailbox in view.mailboxes:
        if (
            mailbox.kind in ("user", "queue")
            and mailbox.incoming == FORWARD_DELIVERY
            and mailbox.address not in found
        ):
            forward = (forward_mailbox or (forwards[0] if len(forwards) == 1 else "")).lower()
            found[mailbox.address] = RuleTarget(
                mailbox.address,
                f"{mailbox.kind} {mailbox.name}",
                "crm",
                forward or None,
                skip=None
                if forward
                else "no forward mailbox found for it; pass forward_mailbox=ADDRESS",
            )
    return {address: t for address, t in found.items() if t.wanted}


def _is_ews(url: str | None) -> bool:
    return bool(url) and urlsplit(str(url).strip()).scheme.lower() in _EWS


def rule_counts(checks: list[RuleCheck | None]) -> dict[str, int]:
    """Forward rules by state, worst first (mailboxes that need none are left out)."""
    found = Counter(c.state for c in checks if c is not None)
    return {s: found[s] for s in RULE_STATES if found.get(s)}


def rule_findings(rows: list[tuple[Target, RuleCheck | None]], rule_name: str) -> list[Finding]:
    """A finding for every forward rule that is not present and correct."""
    found = []
    for target, check in rows:
        if check is None or check.state == PRESENT:
            continue
        mailbox = target.address or target.shown or "?"
        forward = check.forward_to or "the forward mailbox"
        if check.state == MISSING:
            found.append(
                finding(
                    WARNING,
                    "forward-rule-missing",
                    mailbox,
                    f"incoming mail reaches the CRM only through {forward}, by the inbox rule "
                    f"{rule_name!r} forwarding it as an attachment; found: {check.detail}; "
                    f"{DEPLOY_HINT}",
                )
            )
        elif check.state == ALTERED:
            found.append(
                finding(
                    WARNING,
                    "forward-rule-altered",
                    mailbox,
                    f"the rule {rule_name!r} is not as deployed: {check.detail}; {DEPLOY_HINT}",
                )
            )
        else:
            found.append(
                finding(
                    WARNING if check.tried else INFO,
                    "forward-rule-not-checked",
                    mailbox,
                    f"the forward rule could not be checked: {check.detail}",
                )
            )
    return found


__all__ = [
    "ALTERED",
    "CANNOT_CHECK",
    "MISSING",
    "PRESENT",
    "RULE_STATES",
    "RuleCheck",
    "RuleChecker",
    "default_rule_name",
    "rule_counts",
    "rule_findings",
]
