"""A routing dry run: every message decided as a real run would decide it, nothing changed.

``routing.run({..., "dry_run": True})`` (``emailrouter route --dry-run``, notebook 04's
``dry_run``) reads the mailboxes, the ledger and the CRM, and decides each new message (class,
duplicate, correlation, parties, filtering) with the same code as a real run. It writes the same
results table and report, with ``would-create`` and ``would-quarantine:<why>`` where a real run
would create an activity or quarantine the message. It writes nothing: no activity, contact or
smart-matching hash in the CRM, no ledger entry or lease, no quarantine copy, no delete or move
in a mailbox, no email sent.

Within the run, what it would have created counts as created: a second copy of a message is a
``duplicate`` and a reply to it correlates by In-Reply-To, as in a real run. What it cannot see
is what a real run's writes make findable by other means (a tracking token or a Thread-Index of an
email created earlier in the same run), and another run routing the mailbox at the same moment.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from emailrouter_lib.crm.base import CrmBackend, EmailHashes, EmailRef, NewEmail, Party
from emailrouter_lib.errors import RoutingError
from emailrouter_lib.routing.decide import Decision
from emailrouter_lib.routing.ledger import LedgerEntry

WOULD_CREATE = "would-create"
WOULD_QUARANTINE = "would-quarantine"


def dry_outcome(outcome: str) -> str:
    """The dry run's word for what a real run would do: ``created`` -> ``would-create``..."""
    if outcome == "created":
        return WOULD_CREATE
    if outcome.startswith("quarantined"):
        return WOULD_QUARANTINE + outcome.removeprefix("quarantined")
    return outcome


def real_outcome(outcome: str) -> str:
    """The inverse of :func:`dry_outcome`: the outcome a real run reports."""
    if outcome == WOULD_CREATE:
        return "created"
    if outcome.startswith(WOULD_QUARANTINE):
        return "quarantined" + outcome.removeprefix(WOULD_QUARANTINE)
    return outcome


class DryRunCrm:
    """The CRM as a dry run sees it: its reads, plus what this run would have created.

    Only the methods routing calls are offered, by name: a new write method added to the
    backends is refused here (``AttributeError``) until someone decides what a dry run does
    with it, instead of being passed through and changing the CRM.
    """

    _READS = (
        "organization",
        "recipients_by_address",
        "recipients_by_id",
        "email_by_tracking_token",
        "email_by_conversation",
        "emails_by_activity_id",
        "email_hash_candidates",
    )

    def __init__(self, crm: CrmBackend):
        self._crm = crm
        self._emails: dict[str, EmailRef] = {}  # Message-ID -> what would have been created
        self._contacts: dict[str, Party] = {}  # address -> the contact that would be created

    def __getattr__(self, name: str) -> Any:
        if name in self._READS:
            return getattr(self._crm, name)
        raise AttributeError(f"a dry run does not call CrmBackend.{name}")

    def emails_by_message_id(self, message_ids: Iterable[str]) -> dict[str, EmailRef]:
        wanted = set(message_ids)
        found = self._crm.emails_by_message_id(wanted)
        return {**{m: e for m, e in self._emails.items() if m in wanted}, **found}

    def parties_by_address(self, addresses: Iterable[str]) -> dict[str, list[Party]]:
        wanted = set(addresses)
        found = self._crm.parties_by_address(wanted)
        for address in wanted - found.keys():
            contact = self._contacts.get(address.lower())
            if contact is not None:
                found[address] = [contact]
        return found

    def create_contact(self, emailaddress: str, fullname: str | None) -> Party:
        """The contact a real run would create (kept for the run; not written)."""
        key = emailaddress.lower()
        if key not in self._contacts:
            self._contacts[key] = Party(
                "contact", str(uuid.uuid4()), fullname or emailaddress, emailaddress
            )
        return self._contacts[key]

    def create_emails(self, emails: Sequence[NewEmail]) -> set[str]:
        """Remember *emails* as created for the rest of the run; nothing is written."""
        for email in emails:
            if email.messageid:
                self._emails[email.messageid] = EmailRef(
                    email.activityid,
                    email.messageid,
                    email.subject,
                    email.trackingtoken,
                    email.conversationindex,
                    email.regardingobjectid,
                    email.regardingobjecttypecode,
                    False,
                )
        return set()

    def store_email_hashes(self, hashes: Mapping[str, EmailHashes]) -> None:
        """Smart-matching hashes are not stored by a dry run."""

    def close(self) -> None:
        self._crm.close()


class LedgerView:
    """The ledger read only: a dry run skips what earlier runs did, and writes nothing (not
    even the file, when there is none yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        if self.path.exists():
            try:
                # mode=rw, not ro: a read-only connection to a WAL database leaves its -wal and
                # -shm files behind; this one only reads, and SQLite removes them on close.
                self._db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=30)
            except sqlite3.Error as exc:
                raise RoutingError(f"ledger {self.path}: {exc}; check it can be read") from None

    def entries(self, mailbox_id: str) -> dict[str, LedgerEntry]:
        if self._db is None:
            return {}
        try:
            rows = self._db.execute(
                "SELECT mailbox_id, item_key, state, outcome, reason, message_id, activityid,"
                " source_action FROM ledger_item WHERE mailbox_id = ?",
                (mailbox_id,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise RoutingError(f"ledger {self.path}: {exc}; check it can be read") from None
        return {row[1]: LedgerEntry(*row) for row in rows}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def as_dry_run(decisions: Sequence[Decision]) -> None:
    """Rename the outcomes of *decisions* to what a dry run reports (in place)."""
    for d in decisions:
        d.outcome = dry_outcome(d.outcome)
        if d.email is not None:  # no activity exists: the row names no activity id
            d.email = None


__all__ = [
    "WOULD_CREATE",
    "WOULD_QUARANTINE",
    "DryRunCrm",
    "LedgerView",
    "as_dry_run",
    "dry_outcome",
    "real_outcome",
]
