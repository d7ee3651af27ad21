"""Which mailboxes an audit looks at, and where each one was named.

An admin's question is per address ("is support@ working?"), but the same address can be named by
a mailbox URL, by one or more router configuration files and by the CRM. Each distinct mailbox
connection becomes one row; what named it is kept (``origins``) because an address named by two
routers is itself a finding. Addresses the CRM routes through the Email Router but nobody gave a
connection for are listed too, so the report shows what was *not* checked.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from emailrouter_lib.audit.crm_view import FORWARD_DELIVERY, CrmView
from emailrouter_lib.config import load_config
from emailrouter_lib.crm.base import CrmBackend
from emailrouter_lib.errors import EmailRouterError, MailboxURLError
from emailrouter_lib.mailboxes import parse_mailbox_url, redact_url


@dataclass
class Target:
    """One mailbox row of the audit. ``url`` may name a secret reference: never shown as is."""

    address: str | None
    kind: str = "mailbox"  # user | queue | forward | mailbox
    url: str | None = None
    shown: str | None = None  # password-free name of the connection (mailbox id)
    origins: list[str] = field(default_factory=list)
    skipped: str | None = None  # why no connection is attempted
    invalid: str | None = None  # the URL cannot be used (its error text)


@dataclass
class ConfigListing:
    """Who the configuration files list: record id → the (file, provider) pairs naming it."""

    by_record: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    forward_addresses: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    unknown_ids: list[tuple[str, str, str]] = field(default_factory=list)  # file, provider, id


def collect_targets(
    urls: list[str],
    config_paths: list[str],
    config_password: str | None,
    url_template: str | None,
    crm: CrmBackend | None,
    view: CrmView,
) -> tuple[list[Target], ConfigListing]:
    targets: dict[str, Target] = {}

    def add(url: str, origin: str, kind: str | None = None, address: str | None = None) -> None:
        try:
            settings = parse_mailbox_url(url)
        except MailboxURLError as exc:
            shown = redact_url(url)
            row = targets.setdefault(shown, Target(address, kind or "mailbox", shown=shown))
            row.invalid = str(exc)
            row.origins.append(origin)
            return
        if settings.owner is not None:
            address = settings.owner.address
            kind = kind or settings.owner.kind
        elif settings.forward:
            kind = "forward"
        if address is None and getattr(settings, "mailbox", None):
            address = settings.mailbox.lower()  # EWS: the mailbox read, not the account logging on
        if address is None and settings.user and "@" in settings.user:
            address = settings.user.lower()
        found = view.find(address)
        if found is not None and kind in (None, "mailbox"):
            kind = found.kind
        row = targets.get(settings.mailbox_id)
        if row is None:
            row = Target(address, kind or "mailbox", url=url, shown=settings.mailbox_id)
            targets[settings.mailbox_id] = row
        row.origins.append(origin)

    for index, url in enumerate(urls):
        add(url, f"mailboxes[{index}]")

    listing = ConfigListing()
    for path in config_paths:
        _add_config(path, config_password, crm, view, listing, add, targets)

    covered = {t.address for t in targets.values() if t.address}
    for mailbox in view.mailboxes:
        if mailbox.address in covered or not mailbox.uses_router:
            continue
        origin = "CRM"
        if url_template and not (mailbox.kind == "user" and mailbox.incoming == FORWARD_DELIVERY):
            url = template_url(url_template, mailbox.address, mailbox.id)
            add(url, f"{origin} (url_template)", mailbox.kind, mailbox.address)
            continue
        if mailbox.kind == "user" and mailbox.incoming == FORWARD_DELIVERY:
            why = "incoming mail reaches the CRM through the forward mailbox (its inbox rule)"
        else:
            why = "no mailbox URL names it; add one to mailboxes, or give url_template"
        targets[f"crm:{mailbox.address}"] = Target(
            mailbox.address, mailbox.kind, origins=[origin], skipped=why
        )
    return _one_row_per_address(targets), listing


def _one_row_per_address(targets: dict[str, Target]) -> list[Target]:
    """Drop a "skipped" row for an address that another row connects to.

    A configuration can name a user under a provider we cannot read (Exchange) while a mailbox
    URL, or another provider, reaches the same mailbox: listing it as both "skipped" and "ok" made
    the report say two things about one mailbox. The connected row keeps where the skipped one
    was named, and why that source was not used.
    """
    connected: dict[str, Target] = {}
    for row in targets.values():
        if row.address and row.skipped is None and row.url is not None:
            connected.setdefault(row.address.lower(), row)
    rows = []
    for row in targets.values():
        other = connected.get((row.address or "").lower()) if row.skipped else None
        if other is None:
            rows.append(row)
            continue
        other.origins += [f"{origin} (not used: {row.skipped})" for origin in row.origins]
    return rows


def template_url(url_template: str, address: str, record_id: str = "") -> str:
    """*url_template* filled in for one mailbox: ``{address}``, ``{local}``, ``{id}``."""
    local = address.split("@", 1)[0]
    return url_template.format(
        address=quote(address, safe="@"), local=quote(local, safe=""), id=record_id
    )


def _add_config(path, password, crm, view, listing, add, targets) -> None:
    from emailrouter_lib.routing.config_sources import mailboxes_from_config

    name = Path(path).name
    config = load_config(path)
    for provider in config.incoming:
        where = (str(path), provider.label)
        if provider.is_forward_mailbox and provider.email_address:
            listing.forward_addresses[provider.email_address.lower()].append(where)
        for record_id in (*provider.user_ids, *provider.queue_ids):
            record_id = record_id.lower()
            if view.by_id and record_id not in view.by_id:
                listing.unknown_ids.append((str(path), provider.label, record_id))
            listing.by_record[record_id].append(where)
    if crm is None:
        return
    try:
        found = mailboxes_from_config(config, crm, password=password)
    except EmailRouterError as exc:
        targets[f"config:{path}"] = Target(None, origins=[name], invalid=str(exc))
        return
    for item in found:
        if item.url:
            add(item.url, f"config {name}: {item.label}")
            continue
        provider = next((p for p in config.incoming if item.label.startswith(p.label)), None)
        if provider is None or item.label != provider.label:
            continue  # a single unknown record; reported as a finding from the listing
        addresses = [provider.email_address.lower()] if provider.email_address else []
        addresses += [
            view.by_id[r.lower()].address
            for r in (*provider.user_ids, *provider.queue_ids)
            if r.lower() in view.by_id
        ]
        for address in addresses:
            known = view.find(address)
            kind = (
                known.kind if known else ("forward" if provider.is_forward_mailbox else "mailbox")
            )
            key = f"skip:{address}"
            row = targets.setdefault(key, Target(address, kind, skipped=item.skipped))
            row.origins.append(f"config {name}: {provider.label}")
