"""The demo's scenario messages: one small .eml per routing rule worth showing.

Each scenario is written against the seeded Contoso CRM (:mod:`emailrouter_lib.crm.demo`): a reply
to a seeded email by In-Reply-To, by tracking token, by Thread-Index; mail from a known contact,
an unknown sender, a sender three records share; mail a filter rejects; an out-of-office reply; a
bounce; a meeting request; an attachment; a message without a Message-ID. Each says what routing
is expected to do with it, so the demo report and the tests can compare.

Messages are built with the stdlib ``email`` package from fixed dates, ids and MIME boundaries, so
every run writes the same bytes.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message, MIMEPart
from email.utils import format_datetime, formataddr
from pathlib import Path

from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.conversation import decode_conversation_index

_POLICY = policy.default  # LF line endings, as files in a Maildir have them
_FIRST_DATE = datetime(2024, 3, 8, 9, 0, tzinfo=UTC)
# Maildir names start with a delivery time; a fixed one keeps the names identical across runs.
_MAILDIR_EPOCH = 1_709_888_400  # 2024-03-08T09:00:00Z
MAILDIR_MARK = "emailrouter-demo"
_DOC_FILE = re.compile(
    r"(^|[-_.])(notice|readme|license|licence|copying|sources?)\b|\.(md|rst)$", re.I
)


@dataclass(frozen=True)
class Scenario:
    """One scenario message and what routing should make of it.

    ``expected`` uses the routing outcomes (``created``, ``filtered:<rule>``, ``skipped:<class>``);
    ``correlation`` the correlation method names (``in-reply-to``, ``tracking-token``,
    ``conversation-index``) or None; ``recipient`` is the CRM user or queue whose mailbox and
    settings apply (the message's To address).
    """

    slug: str
    title: str
    recipient: str
    expected: str
    correlation: str | None
    regarding: str | None  # id of the record the created email should be regarding
    build: Callable[[Scenario], EmailMessage]

    @property
    def filename(self) -> str:
        return f"{self.slug}.eml"

    @property
    def message_id(self) -> str | None:
        return (
            None if self.slug.endswith("no-message-id") else f"<{self.slug}.demo@scenarios.example>"
        )

    @property
    def date(self) -> datetime:
        number = int(self.slug.split("-", 1)[0])
        return _FIRST_DATE + timedelta(minutes=17 * number)

    def message(self) -> EmailMessage:
        msg = self.build(self)
        _fix_boundaries(msg, self.slug)
        return msg

    def as_bytes(self) -> bytes:
        return self.message().as_bytes(policy=_POLICY)


# -- building blocks ----------------------------------------------------------------------------


def _who(record: seed.DemoRecord) -> str:
    return formataddr((record.name, record.address))


def _base(
    scenario: Scenario,
    sender: str,
    to: str,
    subject: str,
    *,
    extra: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(scenario.date)
    if scenario.message_id:
        msg["Message-ID"] = scenario.message_id
    for name, value in (extra or {}).items():
        msg[name] = value
    return msg


def _reply_headers(original: seed.SeedEmail, *, replies: int = 1) -> dict[str, str]:
    """In-Reply-To, References and Outlook's thread headers of a reply to a seeded email."""
    assert original.messageid and original.conversationindex
    return {
        "In-Reply-To": original.messageid,
        "References": original.messageid,
        "Thread-Topic": original.subject.rsplit(" CRM:", 1)[0],
        "Thread-Index": _child_index(original.conversationindex, replies),
    }


def _child_index(conversationindex: str, replies: int) -> str:
    """The Thread-Index of the *replies*-th answer in a conversation (same 22-byte base)."""
    raw = decode_conversation_index(conversationindex)
    assert raw is not None
    blocks = b"".join(struct.pack(">IB", 0x00A0_0000 + i * 0x1000, i) for i in range(replies))
    return base64.b64encode(raw + blocks).decode("ascii")


def _fix_boundaries(msg: Message, slug: str) -> None:
    for number, part in enumerate(msg.walk()):
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_{MAILDIR_MARK}_{slug}_{number}")


def _png_1x1() -> bytes:
    """A valid one-pixel PNG (a screenshot stand-in), built here so the bytes are fixed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xd0\x30\x30", 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# -- the scenarios ------------------------------------------------------------------------------


def _reply_in_reply_to(s: Scenario) -> EmailMessage:
    original = seed.SENT_PRINTER
    headers = _reply_headers(original)
    del headers["Thread-Index"], headers["Thread-Topic"]  # a non-Outlook client
    msg = _base(
        s, _who(seed.CAROL), _who(seed.ALICE), "RE: Printer offline since Monday", extra=headers
    )
    msg.set_content(
        "Hi Alice,\n\nThe printer is back online after the firmware update. Thanks!\n\nCarol\n\n"
        f"> {original.subject}\n"
    )
    return msg


def _reply_tracking_token(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.DAN), _who(seed.ALICE), f"RE: {seed.SENT_QUOTE.subject}")
    msg.set_content(
        "Hello Alice,\n\nWe accept quote Q-1042. Please send the order confirmation.\n\nDan\n"
    )
    return msg


def _reply_thread_index(s: Scenario) -> EmailMessage:
    headers = _reply_headers(seed.SENT_PILOT, replies=2)
    del headers["In-Reply-To"], headers["References"]  # only Outlook's conversation headers
    headers["X-MS-Has-Attach"] = ""
    headers["Content-Language"] = "en-US"
    msg = _base(s, _who(seed.GRACE), _who(seed.BOB), "RE: Litware pilot follow-up", extra=headers)
    msg.set_content("Bob,\n\nThursday works for the pilot review.\n\nGrace\n")
    return msg


def _contact_to_support(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.ERIN), _who(seed.SUPPORT), "Cannot log in to the portal")
    msg.set_content(
        "Hello support,\n\nSince this morning the portal says my password has expired, but the\n"
        "reset link never arrives.\n\nViele Grüße,\nErin Walker\nAdventure Works\n"
    )
    return msg


def _unknown_sender(s: Scenario) -> EmailMessage:
    sender = formataddr(("Pat Stranger", seed.UNKNOWN_ADDRESS))
    msg = _base(s, sender, _who(seed.SUPPORT), "Question about your service plans")
    msg.set_content("Hi,\n\nDo you offer on-site support in Lisbon?\n\nPat\n")
    return msg


def _not_a_response(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.CAROL), _who(seed.BOB), "Lunch next week?")
    msg.set_content("Bob, are you free for lunch on Tuesday? Carol\n")
    return msg


def _multiple_matches(s: Scenario) -> EmailMessage:
    sender = formataddr(("Northwind Traders", seed.SHARED_ADDRESS))
    msg = _base(s, sender, _who(seed.SALES), "Order enquiry: 40 office chairs")
    msg.set_content(
        "Good morning,\n\nPlease quote 40 office chairs, delivery to our Seattle office.\n\n"
        "Northwind Traders purchasing\n"
    )
    return msg


def _out_of_office(s: Scenario) -> EmailMessage:
    original = seed.SENT_WELCOME
    headers = _reply_headers(original)
    headers.update(
        {
            "Auto-Submitted": "auto-replied",
            "X-Auto-Response-Suppress": "All",
            "X-MS-Exchange-Inbox-Rules-Loop": seed.ERIN.address,
            "X-MS-Exchange-Organization-AutoResponse": "OOF",  # hint only; not needed to classify
            "Content-Language": "en-US",
        }
    )
    subject = f"Automatic reply: {original.subject}"
    msg = _base(s, _who(seed.ERIN), _who(seed.ALICE), subject, extra=headers)
    msg.set_content(
        "I am out of the office until 18 March with limited access to email.\n"
        "For urgent matters please call +1 555 0140.\n"
    )
    return msg


def _bounce(s: Scenario) -> EmailMessage:
    failed = "no-such-user@fabrikam.example"
    msg = _base(
        s,
        formataddr(("Mail Delivery System", "MAILER-DAEMON@mail.contoso.example")),
        seed.SUPPORT.address,
        "Undelivered Mail Returned to Sender",
        extra={"Return-Path": "<>", "Auto-Submitted": "auto-replied"},
    )
    msg.set_content(
        "This is the mail system at host mail.contoso.example.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        f"<{failed}>: host mx.fabrikam.example said: 550 5.1.1 User unknown\n"
    )
    msg.make_mixed()
    msg.set_type("multipart/report")
    msg.set_param("report-type", "delivery-status")

    per_message = Message(policy=_POLICY)
    per_message["Reporting-MTA"] = "dns; mail.contoso.example"
    per_message["Arrival-Date"] = format_datetime(s.date - timedelta(minutes=1))
    per_recipient = Message(policy=_POLICY)
    per_recipient["Final-Recipient"] = f"rfc822; {failed}"
    per_recipient["Original-Recipient"] = f"rfc822; {failed}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Remote-MTA"] = "dns; mx.fabrikam.example"
    per_recipient["Diagnostic-Code"] = "smtp; 550 5.1.1 User unknown"
    status = MIMEPart(policy=_POLICY)
    status["Content-Type"] = "message/delivery-status"
    status["Content-Description"] = "Delivery report"
    status.set_payload([per_message, per_recipient])
    msg.attach(status)

    headers = MIMEPart(policy=_POLICY)
    headers.set_content(
        f"From: {_who(seed.SUPPORT)}\nTo: {failed}\nSubject: Case 4711: portal access restored\n"
        f"Message-ID: <case-4711.outbound@contoso.example>\n",
        subtype="rfc822-headers",
        disposition="inline",
    )
    headers["Content-Description"] = "Undelivered Message Headers"
    msg.attach(headers)
    return msg


def _meeting_request(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.DAN), _who(seed.BOB), "Pilot kick-off")
    msg.set_content("Dan Buyer has invited you to: Pilot kick-off, 12 March 2024 15:00 UTC.\n")
    calendar = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//emailrouter//demo scenarios//EN",
            "VERSION:2.0",
            "METHOD:REQUEST",
            "BEGIN:VEVENT",
            "UID:pilot-kickoff-20240312@fabrikam.example",
            "DTSTAMP:20240308T120000Z",
            "DTSTART:20240312T150000Z",
            "DTEND:20240312T160000Z",
            "SUMMARY:Pilot kick-off",
            f"ORGANIZER;CN={seed.DAN.name}:mailto:{seed.DAN.address}",
            f"ATTENDEE;CN={seed.BOB.name};ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;",
            f" RSVP=TRUE:mailto:{seed.BOB.address}",  # folded, as RFC 5545 folds long lines
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    msg.add_alternative(calendar, subtype="calendar", params={"method": "REQUEST"}, cte="7bit")
    return msg


def _attachment(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.CAROL), _who(seed.SUPPORT), "Error log from the 3rd-floor printer")
    msg.set_content(
        "Hello,\n\nThe printer's error log and a photo of its display are attached.\n\nCarol\n"
    )
    log = "".join(
        f"2024-03-08 08:{m:02d}:00 E042 paper path sensor timeout\n" for m in range(0, 50, 7)
    )
    msg.add_attachment(
        log.encode("ascii"), maintype="text", subtype="plain", filename="printer-log.txt"
    )
    msg.add_attachment(_png_1x1(), maintype="image", subtype="png", filename="display.png")
    return msg


def _no_message_id(s: Scenario) -> EmailMessage:
    msg = _base(s, _who(seed.ERIN), _who(seed.SUPPORT), "Sent from an old phone")
    msg.set_content("Is the portal down again? Sent from my old phone, which adds no Message-ID.\n")
    return msg


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        slug="01-reply-in-reply-to",
        title="Reply to a CRM email, linked by In-Reply-To",
        recipient=seed.ALICE.address,
        expected="created",
        correlation="in-reply-to",
        regarding=seed.CAROL.id,
        build=_reply_in_reply_to,
    ),
    Scenario(
        slug="02-reply-tracking-token",
        title="Reply whose subject carries tracking token CRM:0001003",
        recipient=seed.ALICE.address,
        expected="created",
        correlation="tracking-token",
        regarding=seed.FABRIKAM.id,
        build=_reply_tracking_token,
    ),
    Scenario(
        slug="03-reply-thread-index",
        title="Reply linked only by its Thread-Index (Bob: responses only)",
        recipient=seed.BOB.address,
        expected="created",
        correlation="conversation-index",
        regarding=seed.GRACE.id,
        build=_reply_thread_index,
    ),
    Scenario(
        slug="04-contact-to-support",
        title="A known contact writes to the support queue",
        recipient=seed.SUPPORT.address,
        expected="created",
        correlation=None,
        regarding=None,
        build=_contact_to_support,
    ),
    Scenario(
        slug="05-unknown-sender",
        title="An unknown sender writes to the support queue (accepts all)",
        recipient=seed.SUPPORT.address,
        expected="created",
        correlation=None,
        regarding=None,
        build=_unknown_sender,
    ),
    Scenario(
        slug="06-not-a-response",
        title="New mail to Bob, who tracks only responses to CRM email",
        recipient=seed.BOB.address,
        expected="filtered:not-a-response",
        correlation=None,
        regarding=None,
        build=_not_a_response,
    ),
    Scenario(
        slug="07-multiple-matches",
        title="Sender address shared by a contact, an account and a lead",
        recipient=seed.SALES.address,
        expected="created",
        correlation=None,
        regarding=None,
        build=_multiple_matches,
    ),
    Scenario(
        slug="08-out-of-office",
        title="Exchange out-of-office reply to a CRM email (a tracked class)",
        recipient=seed.ALICE.address,
        expected="created",
        correlation="in-reply-to",
        regarding=seed.ERIN.id,
        build=_out_of_office,
    ),
    Scenario(
        slug="09-bounce",
        title="Delivery failure report (multipart/report)",
        recipient=seed.SUPPORT.address,
        expected="skipped:REPORT.IPM.Note.NDR",
        correlation=None,
        regarding=None,
        build=_bounce,
    ),
    Scenario(
        slug="10-meeting-request",
        title="Meeting request (text/calendar METHOD:REQUEST)",
        recipient=seed.BOB.address,
        expected="skipped:IPM.Schedule.Meeting.Request",
        correlation=None,
        regarding=None,
        build=_meeting_request,
    ),
    Scenario(
        slug="11-attachment",
        title="Mail with a text and an image attachment",
        recipient=seed.SUPPORT.address,
        expected="created",
        correlation=None,
        regarding=None,
        build=_attachment,
    ),
    Scenario(
        slug="12-no-message-id",
        title="Mail without a Message-ID (gets a stable synthetic one)",
        recipient=seed.SUPPORT.address,
        expected="created",
        correlation=None,
        regarding=None,
        build=_no_message_id,
    ),
)


def scenario(slug: str) -> Scenario:
    """The scenario with this slug (e.g. ``"09-bounce"``)."""
    for candidate in SCENARIOS:
        if candidate.slug == slug:
            return candidate
    raise KeyError(f"no demo scenario {slug!r}; known: {', '.join(s.slug for s in SCENARIOS)}")


def write_scenario_messages(target_dir: Path) -> list[Path]:
    """Write every scenario as ``<slug>.eml`` into *target_dir*; the same bytes on every run."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for item in SCENARIOS:
        path = target / item.filename
        path.write_bytes(item.as_bytes())
        written.append(path)
    return written


def corpus_files(corpus_dir: Path | None) -> list[Path]:
    """The message files of the vendored corpus, sorted; notices and READMEs are left out."""
    if corpus_dir is None or not Path(corpus_dir).is_dir():
        return []
    root = Path(corpus_dir)
    found = []
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if _DOC_FILE.search(path.name):
            continue
        found.append(path)
    return found


def write_demo_maildir(
    maildir: Path, corpus_dir: Path | None = None, *, scenarios: bool = True
) -> list[Path]:
    """Lay out a Maildir (``new``, ``cur``, ``tmp``) holding the demo's messages, in ``new``.

    The scenario messages come first (unless *scenarios* is false), then every message file under
    *corpus_dir* (absent or None: none). Names are fixed (``<time>.<n>-<slug>.emailrouter-demo``),
    and files this function wrote before are removed first, so a rerun leaves the same mailbox.
    """
    root = Path(maildir)
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for old in (root / sub).iterdir():
            if old.is_file() and f".{MAILDIR_MARK}" in old.name:
                old.unlink()
    items: list[tuple[str, bytes]] = []
    if scenarios:
        items.extend((item.slug, item.as_bytes()) for item in SCENARIOS)
    if corpus_dir is not None:
        base = Path(corpus_dir)
        for path in corpus_files(base):
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", path.relative_to(base).as_posix())
            items.append((slug, path.read_bytes()))
    written = []
    for number, (slug, data) in enumerate(items, start=1):
        path = root / "new" / f"{_MAILDIR_EPOCH + number}.{number:04d}-{slug}.{MAILDIR_MARK}"
        path.write_bytes(data)
        written.append(path)
    return written


__all__ = [
    "SCENARIOS",
    "Scenario",
    "corpus_files",
    "scenario",
    "write_demo_maildir",
    "write_scenario_messages",
]
