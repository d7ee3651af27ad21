"""Party resolution: sender and recipients to CRM records, as activity parties.

The candidates per address come from one batched CRM look-up, already in resolution order
(systemuser, contact, account, lead, queue). With several matches every record is linked, unless the
organisation asks to leave such addresses unresolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from emailrouter_lib.crm.base import (
    PARTICIPATION_BCC,
    PARTICIPATION_CC,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    NewParty,
    Organization,
    Party,
)


def party_rows(
    mask: int,
    address: str,
    display_name: str | None,
    candidates: list[Party],
    org: Organization,
) -> list[NewParty]:
    if not candidates or (len(candidates) > 1 and org.unresolveemailaddressifmultiplematch):
        return [NewParty(mask, address, unresolvedpartyname=display_name or address)]
    return [NewParty(mask, address, party.id, party.entity) for party in candidates]


def resolve_parties(
    sender: tuple[str | None, str | None],
    to: Iterable[tuple[str, str]],
    cc: Iterable[tuple[str, str]],
    bcc: Iterable[tuple[str, str]],
    *,
    parties: Mapping[str, list[Party]],
    org: Organization,
) -> list[NewParty]:
    """Activity parties for one email; *parties* maps lower-cased addresses to their records."""
    rows: list[NewParty] = []
    name, address = sender
    if address:
        rows += party_rows(PARTICIPATION_SENDER, address, name, parties.get(address, []), org)
    for mask, people in ((PARTICIPATION_TO, to), (PARTICIPATION_CC, cc), (PARTICIPATION_BCC, bcc)):
        seen: set[str] = set()
        for display, addr in people:
            if addr in seen:
                continue
            seen.add(addr)
            rows += party_rows(mask, addr, display, parties.get(addr, []), org)
    return rows


def unresolved_addresses(rows: Iterable[NewParty]) -> list[str]:
    return [row.addressused for row in rows if row.partyid is None]
