"""Inbox rules of one Exchange mailbox over EWS: read them, and change them in one request.

exchangelib's own rule API has two traps for a tool that deploys rules to many mailboxes
(reference/exchange-ews.md §1):

* ``UpdateInboxRules`` is sent without ``MailboxSmtpAddress``. Exchange then changes "the
  logged-on user's" rules: under delegate access (FullAccess) the rule lands in the *service
  account's* mailbox. Our :class:`_UpdateRulesFor` always names the target mailbox.
* ``Account.create_rule`` re-reads every rule after creating one, to find its id by display name:
  three requests per mailbox where two do (read, then one update carrying every operation).

``GetInboxRules`` also says whether the mailbox holds Outlook client-only rules
(``OutlookRuleBlobExists``); any ``UpdateInboxRules`` must remove them (``RemoveOutlookRuleBlob``,
or Exchange refuses the update), so the plan can warn per mailbox.

Everything above the protocol sees plain :class:`InboxRule` records, never exchangelib objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from exchangelib import Account
from exchangelib import errors as ews
from exchangelib.properties import (
    Actions,
    Address,
    CreateRuleOperation,
    DeleteRuleOperation,
    Exceptions,
    Rule,
    SetRuleOperation,
)
from exchangelib.services.inbox_rules import GetInboxRules, UpdateInboxRules
from exchangelib.util import MNS, add_xml_child, create_element, set_xml_value

from emailrouter_lib.errors import MailboxAuthError, MailboxError
from emailrouter_lib.mailboxes.ews_account import connect, ews_errors
from emailrouter_lib.mailboxes.ews_url import EwsMailboxURL

_CONDITION_FIELDS = tuple(f.name for f in Exceptions.FIELDS)
_ACTION_FIELDS = tuple(f.name for f in Actions.FIELDS)


@dataclass(frozen=True)
class InboxRule:
    """One server-side inbox rule as read, reduced to what deciding about ours needs.

    ``conditions`` / ``exceptions`` / ``actions`` name the fields that are set besides the ones
    broken out (so "some other condition is set" is visible without exchangelib types).
    """

    id: str | None
    name: str
    priority: int = 1
    enabled: bool = True
    forward_as_attachment_to: tuple[str, ...] = ()
    except_from: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    in_error: bool = False


@dataclass(frozen=True)
class RuleChange:
    """One operation of an ``UpdateInboxRules`` request: ``create``, ``set`` (needs ``rule.id``)
    or ``delete`` (needs only ``rule.id``)."""

    op: str
    rule: InboxRule


@dataclass
class MailboxRules:
    """What ``GetInboxRules`` returned for one mailbox."""

    mailbox: str
    rules: list[InboxRule] = field(default_factory=list)
    outlook_rules_exist: bool = False


class RulesNotFound(MailboxError):
    """The mailbox does not exist on the server (or the service account cannot see it)."""


class RulesNotPermitted(MailboxAuthError):
    """The service account may not read or change this mailbox's rules."""


# -- exchangelib services --------------------------------------------------------------------------
class _GetRules(GetInboxRules):
    """GetInboxRules that also keeps ``OutlookRuleBlobExists``."""

    outlook_blob = False

    def _get_element_container(self, message, name=None):
        blob = message.find(f"{{{MNS}}}OutlookRuleBlobExists")
        if blob is not None:
            self.outlook_blob = (blob.text or "").strip().lower() == "true"
        return super()._get_element_container(message, name)


class _UpdateRulesFor(UpdateInboxRules):
    """UpdateInboxRules for a named mailbox, any number of operations in one request.

    Schema order: ``MailboxSmtpAddress``, ``RemoveOutlookRuleBlob``, ``Operations``.
    """

    def call(self, mailbox: str, operations: Sequence[object]):  # type: ignore[override]
        return self._get_elements(payload=self.get_payload(mailbox, operations))

    def get_payload(self, mailbox: str, operations: Sequence[object]):  # type: ignore[override]
        payload = create_element(f"m:{self.SERVICE_NAME}")
        add_xml_child(payload, "m:MailboxSmtpAddress", mailbox)
        add_xml_child(payload, "m:RemoveOutlookRuleBlob", True)
        container = create_element("m:Operations")
        for operation in operations:
            set_xml_value(container, operation, version=self.account.version)
        payload.append(container)
        return payload


# -- conversions ---------------------------------------------------------------------------------
def _addresses(values) -> tuple[str, ...]:
    return tuple(sorted((a.email_address or "").lower() for a in values or () if a is not None))


def _is_set(value) -> bool:
    # exchangelib elements compare by hash, so no ``value in (None, [], False)`` here
    if value is None or value is False:
        return False
    return not (isinstance(value, list) and not value)


def _set_fields(element, names: Sequence[str], skip: Sequence[str]) -> tuple[str, ...]:
    if element is None:
        return ()
    return tuple(n for n in names if n not in skip and _is_set(getattr(element, n, None)))


def _from_ews(rule: Rule) -> InboxRule:
    actions, exceptions = rule.actions, rule.exceptions
    return InboxRule(
        id=rule.id,
        name=rule.display_name or "",
        priority=rule.priority or 1,
        enabled=rule.is_enabled is not False,
        forward_as_attachment_to=_addresses(
            actions and actions.forward_as_attachment_to_recipients
        ),
        except_from=_addresses(exceptions and exceptions.from_addresses),
        conditions=_set_fields(rule.conditions, _CONDITION_FIELDS, ()),
        exceptions=_set_fields(exceptions, _CONDITION_FIELDS, ("from_addresses",)),
        actions=_set_fields(actions, _ACTION_FIELDS, ("forward_as_attachment_to_recipients",)),
        in_error=bool(rule.is_in_error),
    )


def _to_ews(rule: InboxRule) -> Rule:
    """Only what :class:`InboxRule` can say: no other conditions, actions or exceptions."""
    return Rule(
        id=rule.id,
        display_name=rule.name,
        priority=rule.priority,
        is_enabled=rule.enabled,
        exceptions=Exceptions(from_addresses=[Address(email_address=a) for a in rule.except_from])
        if rule.except_from
        else None,
        actions=Actions(
            forward_as_attachment_to_recipients=[
                Address(email_address=a) for a in rule.forward_as_attachment_to
            ]
        ),
    )


def _operation(change: RuleChange):
    if change.op == "create":
        return CreateRuleOperation(rule=_to_ews(change.rule))
    if change.op == "set":
        return SetRuleOperation(rule=_to_ews(change.rule))
    if change.op == "delete":
        return DeleteRuleOperation(id=change.rule.id)
    raise ValueError(f"unknown rule operation {change.op!r}")


# -- the calls -------------------------------------------------------------------------------------
class EwsRules:
    """The inbox rules of the mailbox an ``ews://`` URL names; one request per call."""

    def __init__(self, settings: EwsMailboxURL, secret: str):
        self.settings = settings
        with self._errors("connecting"):
            self._account: Account = connect(settings, secret)

    def read(self) -> MailboxRules:
        """One ``GetInboxRules`` (it names the mailbox; exchangelib does that part right)."""
        with self._errors("reading the inbox rules"):
            service = _GetRules(account=self._account)
            found = list(service.call(mailbox=self.settings.mailbox))
            _raise_any(found)
        return MailboxRules(
            self.settings.mailbox,
            [_from_ews(r) for r in found if r is not None],
            service.outlook_blob,
        )

    def update(self, changes: Sequence[RuleChange]) -> None:
        """One ``UpdateInboxRules`` with every change, addressed to this mailbox (delegate-safe).

        Exchange applies the operations of one request all or none.
        """
        if not changes:
            return
        with self._errors("changing the inbox rules"):
            service = _UpdateRulesFor(account=self._account)
            _raise_any(list(service.call(self.settings.mailbox, [_operation(c) for c in changes])))

    def _errors(self, action: str):
        return _Classified(self.settings, action)


def _raise_any(results: list) -> None:
    for result in results:
        if isinstance(result, Exception):
            raise result


class _Classified:
    """``ews_errors`` plus two distinctions a rule plan needs: not found, not permitted."""

    def __init__(self, settings: EwsMailboxURL, action: str):
        self.inner = ews_errors(settings, action)
        self.settings = settings

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, kind, exc, tb):
        try:
            return self.inner.__exit__(kind, exc, tb)
        except MailboxError as translated:
            cause = translated.__cause__
            mailbox = translated.mailbox
            if isinstance(cause, ews.ErrorNonExistentMailbox | ews.ErrorMailboxStoreUnavailable):
                raise RulesNotFound(
                    f"no mailbox {self.settings.mailbox} on the server; check the address (or "
                    "that the mailbox is on this Exchange)",
                    mailbox=mailbox,
                ) from cause
            if isinstance(
                cause,
                ews.ErrorAccessDenied
                | ews.ErrorImpersonateUserDenied
                | ews.ErrorImpersonationDenied,
            ):
                raise RulesNotPermitted(
                    str(translated).split(": ", 1)[-1], mailbox=mailbox
                ) from cause
            raise


__all__ = [
    "EwsRules",
    "InboxRule",
    "MailboxRules",
    "RuleChange",
    "RulesNotFound",
    "RulesNotPermitted",
]
