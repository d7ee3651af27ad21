"""Plain-language names for the internal words a run records, for people reading a report.

Results keep their machine words (``skipped:REPORT.IPM.Note.NDR``, ``filtered:not-a-response``)
in CSV and JSON files, because scripts and spreadsheets filter on them. A manager reading the
page needs "Skipped: non-delivery report (REPORT.IPM.Note.NDR)" instead: the words first, the
message class or rule beside them so an admin can still search for it.
"""

from __future__ import annotations

from emailrouter_lib.mail import classify

__all__ = ["message_class_label", "outcome_kind", "outcome_label"]

# Message classes by what a person calls them (reference/email-router.md §3: what is tracked).
_CLASS_NAMES: dict[str, str] = {
    classify.NOTE: "email",
    classify.OOF: "out-of-office reply",
    classify.NDR: "non-delivery report",
    classify.DR: "delivery receipt",
    classify.DELAYED_DR: "delayed-delivery notice",
    classify.READ_RECEIPT: "read receipt",
    classify.NOT_READ_RECEIPT: "not-read notice",
    classify.MEETING_REQUEST: "meeting request",
    classify.MEETING_CANCELED: "meeting cancellation",
    classify.MEETING_ACCEPTED: "meeting accepted",
    classify.MEETING_DECLINED: "meeting declined",
    classify.MEETING_TENTATIVE: "meeting tentatively accepted",
    classify.SMIME_SIGNED: "S/MIME-signed email",
    classify.SMIME: "S/MIME-encrypted email",
}

# Why a message was filtered (tracking/filtering.py and routing/decide.py name these rules).
_FILTER_RULES: dict[str, str] = {
    "not-a-response": "not a response to CRM email",
    "no-crm-recipient": "no CRM user or queue among the recipients",
    "recipient-disabled": "the recipient is disabled in the CRM",
    "not-approved": "the recipient's email address is not approved",
    "internal-email": "internal email (sent by a CRM user or queue)",
    "no-email-tracked": "the recipient tracks no email",
    "sender-not-lead-contact-account": "sender is not a lead, contact or account",
    "sender-not-in-crm": "sender is not a CRM record",
}

_KINDS: dict[str, str] = {
    "created": "Created",
    "duplicate": "Already in the CRM",
    "skipped": "Skipped",
    "filtered": "Filtered",
    "invalid-forward": "Invalid forwarded message",
    "quarantined": "Quarantined",
    "would-create": "Would be created (dry run)",
    "would-quarantine": "Would be quarantined (dry run)",
}


def message_class_label(message_class: str | None) -> str:
    """``REPORT.IPM.Note.NDR`` → ``non-delivery report (REPORT.IPM.Note.NDR)``."""
    if not message_class:
        return "unknown message class"
    name = _CLASS_NAMES.get(message_class)
    if name is None and message_class.startswith("REPORT."):
        name = "delivery report"
    elif name is None and message_class.startswith("IPM.Schedule.Meeting."):
        name = "meeting message"
    return f"{name} ({message_class})" if name else message_class


def outcome_kind(outcome: str) -> str:
    """The word before the colon: ``skipped:IPM.Note.SMIME`` → ``skipped``."""
    return str(outcome).split(":", 1)[0].strip().lower()


def outcome_label(outcome: str) -> str:
    """A routing outcome in words, with the class or rule it names beside them."""
    kind, _, detail = str(outcome).partition(":")
    word = _KINDS.get(kind, kind.replace("-", " ").capitalize())
    if not detail:
        return word
    if kind == "skipped":
        return f"{word}: {message_class_label(detail)}"
    if kind == "filtered":
        text = _FILTER_RULES.get(detail)
        return f"{word}: {text}" if text else f"{word}: {detail}"
    if kind == "quarantined":
        return f"{word}: {'could not be parsed' if detail == 'unparseable' else detail}"
    return f"{word}: {detail}"
