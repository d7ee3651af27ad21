"""The warnings a migration plan can carry: one table of codes, severities and what to do.

The first five follow the migration wizard's own warnings (``Pop3_Exchange``, ``Exchange_Smtp``,
``NonSSL_Profile`` …, ``email-router-research.md`` §1.7); the rest are what an admin needs to
know about the users, queues and routers before switching over.
"""

from __future__ import annotations

from typing import Literal

from emailrouter_lib.migration.model import PlanWarning

Severity = Literal["warning", "info"]

# code -> (severity, what it means and what to do)
CODES: dict[str, tuple[Severity, str]] = {
    "non-ssl": (
        "warning",
        "the profile connects without SSL/TLS; server-side synchronization expects SSL, turn it "
        "on at the server and in the profile",
    ),
    "exchange-smtp": (
        "info",
        "Exchange incoming with SMTP outgoing merges into one Exchange profile: email is then "
        "sent through Exchange (EWS), not through the SMTP server",
    ),
    "pop3-exchange": (
        "warning",
        "POP3 incoming with Exchange outgoing becomes an Exchange profile: the mailbox must be on "
        "that Exchange; POP3 is no longer used",
    ),
    "mixed-online-onpremises": (
        "warning",
        "Exchange Online and on-premises Exchange are mixed; server-side synchronization takes "
        "one kind per profile, check each mailbox lands on the right one",
    ),
    "credentials-dropped": (
        "info",
        "Exchange Online uses server-to-server authentication; the router's credentials are "
        "not carried over",
    ),
    "exchange-online-forward-mailbox": (
        "warning",
        "a forward mailbox on Exchange Online: Microsoft recommends synchronizing each mailbox "
        "with server-to-server authentication instead of forwarding",
    ),
    "in-several-routers": (
        "warning",
        "listed by more than one router; the first router (in the order given) decides its profile",
    ),
    "several-profiles": (
        "warning",
        "listed by more than one profile in the same direction; the first one is used",
    ),
    "not-in-crm": (
        "warning",
        "the configuration lists an id the CRM does not have; it is skipped (run Load Data or "
        "remove it from the configuration)",
    ),
    "not-in-config": (
        "info",
        "the CRM routes this mailbox through the Email Router but no configuration lists it; it "
        "keeps its current settings",
    ),
    "mailbox-disabled": (
        "warning",
        "the user, queue or mailbox is disabled; it is migrated, but Test & Enable will fail "
        "until it is enabled",
    ),
    "not-approved": (
        "warning",
        "the email address is not approved; server-side synchronization will not process it "
        "until an administrator approves it",
    ),
    "unknown-credentials": (
        "warning",
        "the profile does not say which credentials it uses; 'credentials specified by a user "
        "or queue' (0) is assumed",
    ),
    "profile-name-clash": (
        "warning",
        "two routers use the same profile name with different settings; the second one is renamed",
    ),
    "forward-without-address": (
        "warning",
        "a forward mailbox provider without an email address cannot become a mailbox",
    ),
    "unused-provider": ("info", "the provider lists no user, queue or forward mailbox"),
    "config-finding": ("warning", "the configuration reader reported a problem"),
    "no-crm": (
        "info",
        "planned without a CRM: users, queues and mailboxes were not checked, actions are "
        "'planned'",
    ),
}


def warning(
    code: str,
    message: str,
    *,
    profile: str | None = None,
    owner: str | None = None,
    router: str | None = None,
) -> PlanWarning:
    """A warning with its code's severity; *message* says what was found and where."""
    severity, _ = CODES[code]
    return PlanWarning(severity, code, message, profile=profile, owner=owner, router=router)


def explain(code: str) -> str:
    """What a code means and what to do about it (for reports)."""
    return CODES.get(code, ("warning", code))[1]
