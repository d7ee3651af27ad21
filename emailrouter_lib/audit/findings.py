"""What is wrong or worth a look, beyond whether a mailbox answers: CRM versus configuration.

Findings are returned, never raised (like the ``email`` package's defects): an audit exists to
list everything at once. Each says which mailbox, what is wrong and what to do.
"""

from __future__ import annotations

from collections import defaultdict

from emailrouter_lib.audit.crm_view import (
    APPROVAL,
    DELIVERY,
    FORWARD_DELIVERY,
    ROUTER_DELIVERY,
    CrmView,
    label,
)
from emailrouter_lib.audit.targets import ConfigListing, Target
from emailrouter_lib.findings import Finding
from emailrouter_lib.mailboxes.cleartext import cleartext_warning

WARNING, INFO = "warning", "info"


def finding(severity: str, code: str, mailbox: str, message: str) -> Finding:
    """A finding about one mailbox (the one Finding shape; ``where`` is the mailbox)."""
    return Finding(severity, code, message, where=mailbox)  # type: ignore[arg-type]


def find_problems(targets: list[Target], listing: ConfigListing, view: CrmView) -> list[Finding]:
    found: list[Finding] = []
    add = found.append

    for path, provider, record_id in listing.unknown_ids:
        add(
            finding(
                WARNING,
                "config-id-not-in-crm",
                record_id,
                f"{path} ({provider}) lists {record_id}, which is no user or queue in the CRM; "
                "run Load Data again or remove it from the configuration",
            )
        )

    # The same address served by two routers (two files) or two providers or two connections.
    served: dict[str, set[str]] = defaultdict(set)
    for record_id, places in listing.by_record.items():
        mailbox = view.by_id.get(record_id)
        key = mailbox.address if mailbox else record_id
        served[key].update(f"{path} ({provider})" for path, provider in places)
    for address, places in listing.forward_addresses.items():
        served[address].update(f"{path} ({provider})" for path, provider in places)
    connections: dict[str, set[str]] = defaultdict(set)
    for target in targets:
        if target.address and target.shown and not target.skipped:
            connections[target.address].add(target.shown)
    for address in sorted(set(served) | set(connections)):
        places, urls = served.get(address, set()), connections.get(address, set())
        if len(places) > 1:
            add(
                finding(
                    WARNING,
                    "two-routers",
                    address,
                    f"listed by {len(places)} incoming providers: {'; '.join(sorted(places))}. "
                    "Each router would pick up the same mail; keep it in one",
                )
            )
        if len(urls) > 1:
            add(
                finding(
                    WARNING,
                    "two-connections",
                    address,
                    f"read through {len(urls)} mailbox connections: {', '.join(sorted(urls))}",
                )
            )

    configured = {
        t.address for t in targets if t.address and any(not o.startswith("CRM") for o in t.origins)
    }
    for record_id in listing.by_record:
        if record_id in view.by_id:
            configured.add(view.by_id[record_id].address)
    configured |= set(listing.forward_addresses)
    crm_only = {t.address for t in targets if t.origins == ["CRM"]}

    for address in sorted(configured):
        mailbox = view.find(address)
        if mailbox is None:
            if view.by_address:
                add(
                    finding(
                        WARNING,
                        "address-not-in-crm",
                        address,
                        "configured for routing, but no CRM user, queue or forward mailbox has "
                        "this address; correct the address in the CRM or in the configuration",
                    )
                )
            continue
        if mailbox.disabled:
            add(
                finding(
                    WARNING,
                    "disabled-still-configured",
                    address,
                    f"the CRM {mailbox.kind} {mailbox.name!r} is disabled but still configured "
                    "for routing; remove the mailbox from the configuration",
                )
            )
        if mailbox.kind in ("user", "queue") and mailbox.incoming not in (
            ROUTER_DELIVERY,
            FORWARD_DELIVERY,
        ):
            add(
                finding(
                    WARNING,
                    "delivery-method",
                    address,
                    f"configured for routing, but its incoming delivery method in the CRM is "
                    f"{label(DELIVERY, mailbox.incoming)}; set it to Email Router, or remove "
                    "the mailbox from the configuration",
                )
            )
        if mailbox.approval != 1 and view.approval_required(mailbox.kind):
            add(
                finding(
                    WARNING,
                    "not-approved",
                    address,
                    f"the organisation requires approved email addresses and this one is "
                    f"{label(APPROVAL, mailbox.approval)}; mail will not be routed until an "
                    "administrator approves it",
                )
            )
        elif mailbox.approval == 2:
            add(finding(INFO, "approval-pending", address, "email address approval is pending"))

    for mailbox in view.mailboxes:
        if mailbox.mailbox_address and mailbox.mailbox_address != mailbox.address:
            add(
                finding(
                    WARNING,
                    "address-mismatch",
                    mailbox.address,
                    f"the {mailbox.kind}'s address differs from its mailbox record's "
                    f"({mailbox.mailbox_address}); make them the same",
                )
            )
        if mailbox.incoming_status == 2 or mailbox.outgoing_status == 2:
            which = " and ".join(
                d
                for d, s in (
                    ("incoming", mailbox.incoming_status),
                    ("outgoing", mailbox.outgoing_status),
                )
                if s == 2
            )
            add(
                finding(
                    WARNING,
                    "mailbox-status-failure",
                    mailbox.address,
                    f"the CRM marks {which} email of this mailbox as failed",
                )
            )
        if (
            mailbox.kind == "user"
            and mailbox.incoming == ROUTER_DELIVERY
            and not mailbox.disabled
            and mailbox.address in crm_only
        ):
            add(
                finding(
                    INFO,
                    "routed-in-crm-not-configured",
                    mailbox.address,
                    "the CRM expects the Email Router to read this mailbox, but no "
                    "configuration or mailbox URL names it",
                )
            )

    for target in targets:
        if target.invalid:
            add(
                finding(
                    WARNING, "unusable-url", target.address or target.shown or "?", target.invalid
                )
            )
        elif target.url and not target.skipped and (cleartext := cleartext_warning(target.url)):
            name = target.address or target.shown or "?"
            add(finding(WARNING, "cleartext-login", name, cleartext))
    return found
