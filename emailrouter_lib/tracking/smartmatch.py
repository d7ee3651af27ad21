"""Smart matching: link a reply by its subject words and the people on it (reference §6).

The last resort of correlation, off by default (``organization.enablesmartmatching``). Every email
the router sends (and, while smart matching is on, every email it creates) stores hashes of its
subject words and of its unique addresses; an incoming message matches a stored email when

* the subject, with ``RE:``/``FW:``-style prefixes stripped by ``HashFilterKeywords`` (case
  ignored) and tracking tokens removed, has the same words: at most ``HashDeltaSubjectCount``
  words more or fewer, and every word of the shorter subject in the longer one; and
* at least ``HashMinAddressCount`` of the addresses (From, To, Cc, Bcc) are the same.

At most ``HashMaxCount`` subject words and addresses are hashed. Among several matches the one
sharing the most addresses wins, then the newest.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from emailrouter_lib.crm.base import EmailHashes, EmailRef, Organization
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

_WORD = re.compile(r"\w+", re.UNICODE)


def stable_hash(text: str) -> int:
    """A signed 32-bit hash that is the same in every process (Dataverse stores an int)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "big", signed=True)


@dataclass(frozen=True)
class HashSettings:
    """The organisation's four ``Hash*`` settings, the prefix filter compiled."""

    filter_keywords: re.Pattern[str]
    max_count: int = 20
    delta_subject_count: int = 0
    min_address_count: int = 2

    @classmethod
    def from_organization(cls, org: Organization) -> HashSettings:
        try:
            pattern = re.compile(org.hashfilterkeywords or r"^$", re.IGNORECASE)
        except re.error:  # a broken setting must not stop routing: strip nothing
            pattern = re.compile(r"(?!x)x")
        return cls(
            pattern,
            max(org.hashmaxcount, 1),
            max(org.hashdeltasubjectcount, 0),
            max(org.hashminaddresscount, 1),
        )


def subject_words(
    subject: str | None, settings: HashSettings, tokens: TrackingTokenFormat
) -> list[str]:
    """The words smart matching compares: prefixes and tracking tokens gone, lower case."""
    # One pass over the subject for every token in it: a search and a replace per distinct token
    # read a subject of many tokens once per token.
    text = tokens.remove(subject or "")
    text = settings.filter_keywords.sub("", text, count=1)
    return [w.lower() for w in _WORD.findall(text)][: settings.max_count]


def email_hashes(
    subject: str | None,
    addresses: Iterable[str | None],
    settings: HashSettings,
    tokens: TrackingTokenFormat,
) -> EmailHashes:
    """The hashes stored for an email (and computed for a message to match)."""
    words = subject_words(subject, settings, tokens)
    unique = list(dict.fromkeys(a.strip().lower() for a in addresses if a and a.strip()))
    return EmailHashes(
        tuple(stable_hash(w) for w in words),
        tuple(stable_hash(a) for a in unique[: settings.max_count]),
    )


def message_addresses(message: Any) -> list[str]:
    """From, To, Cc and Bcc addresses of a parsed message, in that order."""
    found = [getattr(message, "from_address", None)]
    for name in ("to", "cc", "bcc"):
        found += [address for _, address in getattr(message, name, None) or ()]
    return [a for a in found if a]


def subjects_match(mine: tuple[int, ...], theirs: tuple[int, ...], delta: int) -> bool:
    if not mine or not theirs or abs(len(mine) - len(theirs)) > delta:
        return False
    shorter, longer = sorted((set(mine), set(theirs)), key=len)
    return shorter <= longer


class HashLookups(Protocol):
    def email_hash_candidates(
        self, address_hashes: Iterable[int], *, limit: int = 200
    ) -> dict[str, EmailHashes]: ...

    def emails_by_activity_id(self, activityids: Iterable[str]) -> dict[str, EmailRef]: ...


class SmartMatcher:
    """The ``smart_matcher`` of :func:`~emailrouter_lib.tracking.correlate.correlate`."""

    def __init__(self, crm: HashLookups, org: Organization, tokens: TrackingTokenFormat):
        self.crm = crm
        self.settings = HashSettings.from_organization(org)
        self.tokens = tokens

    def hashes(self, subject: str | None, addresses: Iterable[str | None]) -> EmailHashes:
        return email_hashes(subject, addresses, self.settings, self.tokens)

    def __call__(self, message: Any) -> EmailRef | None:
        mine = self.hashes(getattr(message, "subject", ""), message_addresses(message))
        if not mine.subject or len(mine.addresses) < self.settings.min_address_count:
            return None
        best: tuple[int, str] | None = None
        for activityid, theirs in self.crm.email_hash_candidates(mine.addresses).items():
            shared = len(set(mine.addresses) & set(theirs.addresses))
            if shared < self.settings.min_address_count:
                continue
            if not subjects_match(mine.subject, theirs.subject, self.settings.delta_subject_count):
                continue
            if best is None or shared > best[0]:  # candidates come newest first
                best = (shared, activityid)
        if best is None:
            return None
        return self.crm.emails_by_activity_id([best[1]]).get(best[1])


def store_new_email_hashes(crm: Any, org: Organization, emails: Iterable[Any]) -> None:
    """Store the hashes of emails just created (``NewEmail``: subject and party addresses)."""
    settings = HashSettings.from_organization(org)
    tokens = TrackingTokenFormat.from_organization(org)
    hashes = {
        e.activityid: email_hashes(e.subject, [p.addressused for p in e.parties], settings, tokens)
        for e in emails
    }
    if hashes:
        crm.store_email_hashes(hashes)


__all__ = [
    "HashSettings",
    "SmartMatcher",
    "email_hashes",
    "message_addresses",
    "stable_hash",
    "store_new_email_hashes",
    "subject_words",
    "subjects_match",
]
