"""Tracking tokens: ``PREFIX:`` + deployment base number + user number + per-user counter.

The organisation's settings decide the shape (reference/email-router.md §6): with the defaults a
token reads ``CRM:0001001`` (base 0, user 001, counter 001). ``trackingprefix`` may hold a
history of prefixes separated by ``;`` or ``,``: tokens with any of them are recognised, the
first is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from emailrouter_lib.crm.base import Organization


@dataclass(frozen=True)
class TrackingTokenFormat:
    prefixes: tuple[str, ...] = ("CRM",)
    base: int = 0
    user_digits: int = 3
    counter_digits: int = 3

    @classmethod
    def from_organization(cls, org: Organization) -> TrackingTokenFormat:
        prefixes = tuple(
            p.strip() for p in re.split(r"[;,]", org.trackingprefix or "") if p.strip()
        )
        return cls(
            prefixes=prefixes or ("CRM",),
            base=max(org.trackingtokenidbase, 0),
            user_digits=min(max(org.trackingtokeniddigits, 1), 10),
            counter_digits=min(max(len(str(max(org.maximumtrackingnumber, 1))), 1), 9),
        )

    @property
    def prefix(self) -> str:
        return self.prefixes[0]

    def format(self, user_number: int, counter: int) -> str:
        """The token for a user's *counter*-th email; the counter wraps at its digit count."""
        counter %= 10**self.counter_digits
        user = user_number % 10**self.user_digits
        return (
            f"{self.prefix}:{self.base}{user:0{self.user_digits}d}{counter:0{self.counter_digits}d}"
        )

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(p) for p in sorted(self.prefixes, key=len, reverse=True))
        # The number part is at least user + counter digits long (the base may add more digits).
        minimum = self.user_digits + self.counter_digits
        return re.compile(rf"(?<![\w])(?:{alternatives}):(\d{{{minimum},}})(?!\d)", re.IGNORECASE)

    def find(self, subject: str | None) -> str | None:
        """The first token in *subject*, normalised to the written prefix's case, or None."""
        if not subject:
            return None
        match = self._pattern.search(subject)
        if match is None:
            return None
        prefix = match.group(0).split(":", 1)[0]
        for known in self.prefixes:
            if known.lower() == prefix.lower():
                prefix = known
                break
        return f"{prefix}:{match.group(1)}"

    def remove(self, text: str) -> str:
        """*text* with every tracking token in it replaced by a blank."""
        return self._pattern.sub(" ", text) if text else text
