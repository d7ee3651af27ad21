"""The Outlook message class of a MIME message, with the evidence for it.

Exchange hands the router each item's message class (``ItemClass``); POP3, IMAP and Maildir hand
it bytes. The router filters on the class (only ``IPM.Note`` and the OOF template are tracked by
default), so for MIME sources the class is inferred here, from the evidence Exchange itself uses
when it converts MIME (MS-OXCMAIL) plus what real bounces and auto-replies look like.

The checks run in a fixed order and the first that fits wins (``reference/email-router.md`` §5).
Delivery reports come before auto-replies because many bounces also carry
``Auto-Submitted: auto-replied``. Every answer carries a human-readable reason, so a skipped
message can be explained in the run's result table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from emailrouter_lib.mail.message import ParsedMessage

NOTE = "IPM.Note"
OOF = "IPM.Note.Rules.OofTemplate.Microsoft"
NDR = "REPORT.IPM.Note.NDR"
DR = "REPORT.IPM.Note.DR"
DELAYED_DR = "REPORT.IPM.Note.Delayed.DR"
READ_RECEIPT = "REPORT.IPM.Note.IPNRN"
NOT_READ_RECEIPT = "REPORT.IPM.Note.IPNNRN"
MEETING_REQUEST = "IPM.Schedule.Meeting.Request"
MEETING_CANCELED = "IPM.Schedule.Meeting.Canceled"
MEETING_ACCEPTED = "IPM.Schedule.Meeting.Resp.Pos"
MEETING_DECLINED = "IPM.Schedule.Meeting.Resp.Neg"
MEETING_TENTATIVE = "IPM.Schedule.Meeting.Resp.Tent"
SMIME_SIGNED = "IPM.Note.SMIME.MultipartSigned"
SMIME = "IPM.Note.SMIME"

#: The classes the Email Router tracks unless the deployment configures another allow-list.
TRACKED_CLASSES: tuple[str, ...] = (NOTE, OOF)


@dataclass(frozen=True, slots=True)
class MessageClass:
    """An inferred message class and the evidence that decided it."""

    name: str
    reason: str

    def __str__(self) -> str:
        return self.name


def is_tracked(name: str | None, allow: Iterable[str] = TRACKED_CLASSES) -> bool:
    """Whether a message class is on the allow-list; classes compare case-insensitively."""
    if not name:
        return False
    wanted = name.casefold()
    return any(wanted == allowed.casefold() for allowed in allow)


# -- delivery reports ---------------------------------------------------------------------------

_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ACTION = re.compile(r"^[ \t]*Action[ \t]*:[ \t]*([A-Za-z-]+)", re.MULTILINE | re.IGNORECASE)
_STATUS = re.compile(r"^[ \t]*Status[ \t]*:[ \t]*([245])\.\d{1,3}\.\d{1,3}", re.M | re.I)
_ACTION_CLASSES = (  # the most serious action among the recipients decides
    ("failed", NDR),
    ("delayed", DELAYED_DR),
    ("delivered", DR),
    ("relayed", DR),
    ("expanded", DR),
)
_STATUS_CLASSES = {"5": (NDR, "failed"), "4": (DELAYED_DR, "delayed"), "2": (DR, "delivered")}
# Senders that are the mail system itself: a message from them is a report, whatever its subject.
_DAEMON_LOCALPARTS = frozenset(
    {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "maildaemon", "mdaemon"}
)
_DAEMON_NAME = re.compile(r"mailer[- _]?daemon|mail delivery (?:sub)?system", re.IGNORECASE)
# A postmaster may be a person: their messages need a bounce-like sign as well.
_POSTMASTER_LOCALPARTS = frozenset({"postmaster", "post_master"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|not (?:yet )?(?:be |been )?delivered|deliver(?:y|ing) (?:status|fail|problem|error"
    r"|report|notification|has failed|final)|failure|failed|error|returned mail|returning"
    r"|returned to sender|non[- ]?deliver|could not send|bounce|rejected|delay"
    r"|配信できません|メールエラー",
    re.IGNORECASE,
)
# At the start of a subject these are the mail system's words, not a person's; they still need a
# sign of automatic sending (null reverse path, bulk precedence, Auto-Submitted) to count.
_NDR_SUBJECT_START = re.compile(
    r"\s*(?:undeliverable|undelivered mail|delivery status notification|failure notice"
    r"|returned mail|mail delivery failed|non[- ]?delivery|delivery failure|permanent delivery"
    r"|message not delivered|(?:mail |message )?could not be delivered|failed mail|mail error)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(
    r"delay|still being retried|could not send message for past|will (?:be )?retr|temporar"
    r"|not yet (?:been )?delivered",
    re.IGNORECASE,
)
_AUTOMATIC_PRECEDENCE = ("bulk", "junk", "list")
# The look-behind lets a match start only where a run of local-part characters starts, so a long
# value without "@" is read once, not once from each of its characters.
_RETURN_PATH = re.compile(r"<?(?<![^<>@\s])([^<>@\s]+)@[^<>\s]*>?")


def _dsn_texts(msg: ParsedMessage) -> list[str]:
    texts = []
    for content_type in _DSN_TYPES:
        texts.extend(msg.parts_text(content_type, include_attached=True))
    return texts


def _from_report(evidence: str, texts: Iterable[str]) -> MessageClass | None:
    """Class of a delivery report from its Action fields (else Status codes); None if neither."""
    text = "\n".join(texts)
    actions = {action.lower() for action in _ACTION.findall(text)}
    for action, name in _ACTION_CLASSES:
        if action in actions:
            return MessageClass(name, f"{evidence}, Action: {action}")
    statuses = {status for status in _STATUS.findall(text)}
    for digit in "542":
        if digit in statuses:
            name, meaning = _STATUS_CLASSES[digit]
            return MessageClass(name, f"{evidence}, Status: {digit}.x.x ({meaning})")
    return None


def _local_part(address: str | None) -> str:
    return address.split("@", 1)[0] if address else ""


def _null_return_path(msg: ParsedMessage) -> bool:
    value = msg.raw_header("Return-Path")
    return value is not None and value.replace(" ", "") == "<>"


def _daemon_sender(msg: ParsedMessage) -> str | None:
    """Why the sender is the mail system itself (MAILER-DAEMON and kin), or None."""
    if _local_part(msg.from_address) in _DAEMON_LOCALPARTS:
        return f"From {msg.from_address}"
    if msg.from_name and _DAEMON_NAME.search(msg.from_name):
        return f"From {msg.from_name!r}"
    return None


def _system_sender(msg: ParsedMessage) -> str | None:
    """Why the sender may be the mail system (postmaster, empty From, daemon envelope), or None."""
    if _local_part(msg.from_address) in _POSTMASTER_LOCALPARTS:
        return f"From {msg.from_address}"
    if msg.from_address is None and msg.has_header("From"):
        return "From: without an address"
    return_path = _RETURN_PATH.search(msg.raw_header("Return-Path") or "")
    if return_path and return_path.group(1).lower() in _DAEMON_LOCALPARTS:
        return f"Return-Path {return_path.group(0).strip('<>')}"
    return None


def _classic_bounce(msg: ParsedMessage) -> MessageClass | None:
    """A bounce without RFC 3464 structure, told by its sender and subject."""
    subject = msg.subject
    shown = f"subject {subject[:60]!r}" if subject else "no subject"
    evidence = None
    daemon = _daemon_sender(msg)
    if daemon:
        evidence = f"{daemon}, {shown}"
    else:
        system = _system_sender(msg)
        if system:
            if not subject or _BOUNCE_SUBJECT.search(subject):
                evidence = f"{system}, {shown}"
            elif _null_return_path(msg) and msg.from_address is not None:
                # a postmaster writing from the null reverse path; an empty From with <> is spam
                evidence = f"{system}, Return-Path: <>"
            elif msg.has_header("Auto-Submitted"):
                evidence = f"{system}, Auto-Submitted: {msg.header('Auto-Submitted')}"
        if evidence is None and _NDR_SUBJECT_START.match(subject):
            precedence = (msg.header("Precedence") or "").strip().lower()
            if _null_return_path(msg):
                evidence = f"{shown}, Return-Path: <>"
            elif precedence in _AUTOMATIC_PRECEDENCE:
                evidence = f"{shown}, Precedence: {precedence}"
            elif msg.has_header("Auto-Submitted"):
                evidence = f"{shown}, Auto-Submitted: {msg.header('Auto-Submitted')}"
    if evidence is None:
        return None
    if _DELAY_SUBJECT.search(subject):
        return MessageClass(DELAYED_DR, f"classic delay warning: {evidence}")
    return MessageClass(NDR, f"classic bounce: {evidence}")


def _report_type(msg: ParsedMessage) -> str:
    if msg.content_type != "multipart/report":
        return ""
    return msg.content_type_params.get("report-type", "").lower()


def _delivery_report(msg: ParsedMessage) -> MessageClass | None:
    report_type = _report_type(msg)
    if report_type in (
        "delivery-status",
        "global-delivery-status",
    ):
        evidence = f"multipart/report; report-type={report_type}"
        texts = _dsn_texts(msg)
        if not texts and msg.body_text:
            texts = [msg.body_text]
    else:
        evidence = "message/delivery-status part"
        texts = _dsn_texts(msg)
    found = _from_report(evidence, texts) if texts else None
    if found is not None:
        return found
    if msg.has_header("X-MS-Exchange-Message-Is-Ndr"):
        return MessageClass(NDR, "X-MS-Exchange-Message-Is-Ndr header (Exchange NDR)")
    if texts:
        return MessageClass(NDR, f"{evidence} without Action or Status: taken as a failure")
    failed = msg.header("X-Failed-Recipients")
    if failed:
        return MessageClass(NDR, f"X-Failed-Recipients: {failed[:80]}")
    return _classic_bounce(msg)


# -- read receipts ------------------------------------------------------------------------------

_DISPOSITION = re.compile(r"^[ \t]*Disposition[ \t]*:[ \t]*([^\r\n]*)", re.M | re.I)


def _read_report(msg: ParsedMessage) -> MessageClass | None:
    texts = list(msg.parts_text("message/disposition-notification", include_attached=True))
    is_mdn = _report_type(msg) == "disposition-notification"
    if not is_mdn and not texts:
        return None
    evidence = (
        "multipart/report; report-type=disposition-notification"
        if is_mdn
        else "message/disposition-notification part"
    )
    match = _DISPOSITION.search("\n".join(texts))
    if match is None:
        return MessageClass(READ_RECEIPT, f"{evidence}, no Disposition field: taken as read")
    disposition = match.group(1).strip()
    kind = disposition.rpartition(";")[2].split("/")[0].strip().lower()
    if kind == "displayed":
        return MessageClass(READ_RECEIPT, f"{evidence}, Disposition: {disposition}")
    return MessageClass(NOT_READ_RECEIPT, f"{evidence}, Disposition: {disposition}")


# -- meetings -----------------------------------------------------------------------------------

_ICAL_FOLD = re.compile(r"\r?\n[ \t]")
_ICAL_METHOD = re.compile(r"^METHOD[ \t]*:[ \t]*([A-Za-z-]+)", re.M | re.I)
_ICAL_ATTENDEE = re.compile(r"^ATTENDEE([^\r\n]*)", re.M | re.I)
_PARTSTAT = re.compile(r";PARTSTAT=\"?([A-Za-z-]+)", re.I)
_REPLY_CLASSES = {
    "accepted": MEETING_ACCEPTED,
    "declined": MEETING_DECLINED,
    "tentative": MEETING_TENTATIVE,
}


def _meeting(msg: ParsedMessage) -> MessageClass | None:
    for text in msg.parts_text("text/calendar"):
        text = _ICAL_FOLD.sub("", text)
        found = _ICAL_METHOD.search(text)
        if found is None:
            continue
        method = found.group(1).upper()
        evidence = f"text/calendar part with METHOD:{method}"
        if method == "REQUEST":
            return MessageClass(MEETING_REQUEST, evidence)
        if method == "CANCEL":
            return MessageClass(MEETING_CANCELED, evidence)
        if method == "COUNTER":
            return MessageClass(MEETING_TENTATIVE, f"{evidence} (a new time proposed)")
        if method == "REPLY":
            for attendee in _ICAL_ATTENDEE.finditer(text):
                status = _PARTSTAT.search(attendee.group(1).split(":", 1)[0] + ";")
                if status and status.group(1).lower() in _REPLY_CLASSES:
                    partstat = status.group(1).upper()
                    name = _REPLY_CLASSES[partstat.lower()]
                    return MessageClass(name, f"{evidence}, PARTSTAT={partstat}")
            return MessageClass(MEETING_TENTATIVE, f"{evidence}, no usable PARTSTAT")
    return None


# -- S/MIME -------------------------------------------------------------------------------------

_PKCS7_MIME = ("application/pkcs7-mime", "application/x-pkcs7-mime")


def _smime(msg: ParsedMessage) -> MessageClass | None:
    content_type = msg.content_type
    if content_type == "multipart/signed":
        protocol = msg.content_type_params.get("protocol", "").lower()
        if "pkcs7-signature" in protocol:
            return MessageClass(SMIME_SIGNED, f"multipart/signed; protocol={protocol}")
        return None
    if content_type in _PKCS7_MIME:
        smime_type = msg.content_type_params.get("smime-type")
        detail = f"; smime-type={smime_type}" if smime_type else ""
        return MessageClass(SMIME, f"{content_type}{detail}")
    if content_type == "application/octet-stream":
        filename = msg.filename or ""
        if filename.lower().endswith(".p7m"):
            return MessageClass(SMIME, f"application/octet-stream named {filename!r}")
    return None


# -- unified messaging --------------------------------------------------------------------------

_CONTENT_CLASSES = {
    "voice-ca": "IPM.Note.Microsoft.Voicemail.UM.CA",
    "voice-uc": "IPM.Note.Microsoft.Conversation.Voice",
    "voice": "IPM.Note.Microsoft.Voicemail.UM",
    "missedcall": "IPM.Note.Microsoft.Missed.Voice",
    "fax": "IPM.Note.Microsoft.Fax",
    "fax-ca": "IPM.Note.Microsoft.Fax",
}


def _voicemail(msg: ParsedMessage) -> MessageClass | None:
    value = msg.header("Content-Class")
    if not value:
        return None
    name = _CONTENT_CLASSES.get(value.strip().lower())
    return MessageClass(name, f"Content-Class: {value}") if name else None


# -- auto-replies -------------------------------------------------------------------------------

_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Mail-Autoreply")
_AUTO_REPLY_PREFIXES = (
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "auto-response",
    "automatic response",
    "out of office",
    "out of the office",
    "automatische antwort",
    "abwesenheitsnotiz",
    "réponse automatique",
    "reponse automatique",
    "respuesta automática",
    "respuesta automatica",
    "risposta automatica",
    "automatisch antwoord",
    "autosvar",
    "automatisk svar",
    "automaattinen vastaus",
    "automatyczna odpowiedź",
    "odpowiedź automatyczna",
    "resposta automática",
    "automatikus válasz",
    "automatická odpověď",
    "автоматический ответ",
    "автоответ",
    "αυτόματη απάντηση",
    "otomatik yanıt",
    "自动回复",
    "自動回覆",
    "自動応答",
    "자동 회신",
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"\s*\[?\s*(?:"
    + "|".join(re.escape(prefix) for prefix in _AUTO_REPLY_PREFIXES)
    + r")\s*(?::|：|\]|$)",
    re.IGNORECASE,
)
# Lotus Notes: "AUTO: <name> is out of the office (returning ...)"; "Auto:" alone may be about cars.
_NOTES_AUTO_SUBJECT = re.compile(
    r"\s*AUTO\s*:.*\b(?:out of (?:the )?office|away|absent|abwesend|vacation|holiday)",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = ("bulk", "junk")


def _auto_reply(msg: ParsedMessage) -> MessageClass | None:
    auto_submitted = msg.header("Auto-Submitted")
    if auto_submitted and auto_submitted.lower().startswith("auto-replied"):
        return MessageClass(OOF, f"Auto-Submitted: {auto_submitted}")
    if msg.has_header("X-Auto-Response-Suppress") and msg.has_header(
        "X-MS-Exchange-Inbox-Rules-Loop"
    ):
        return MessageClass(
            OOF, "X-Auto-Response-Suppress with X-MS-Exchange-Inbox-Rules-Loop (Exchange OOF)"
        )
    for name in _AUTO_REPLY_HEADERS:
        value = msg.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return MessageClass(OOF, f"{name}: {value}".rstrip(": "))
    precedence = (msg.header("Precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return MessageClass(OOF, "Precedence: auto_reply")
    match = _AUTO_REPLY_SUBJECT.match(msg.subject)
    if match:
        return MessageClass(OOF, f"auto-reply subject prefix {match.group(0).strip()!r}")
    if _NOTES_AUTO_SUBJECT.match(msg.subject):
        return MessageClass(OOF, "Lotus Notes auto-reply subject 'AUTO: ... out of the office'")
    return_path = msg.raw_header("Return-Path")
    if (
        precedence in _BULK_PRECEDENCE
        and return_path is not None
        and return_path.replace(" ", "") == "<>"
        and not msg.has_header("List-Id")
        and not msg.has_header("List-Unsubscribe")
    ):
        return MessageClass(
            OOF,
            f"Return-Path: <> with Precedence: {precedence} and no list headers "
            "(how vacation responders send)",
        )
    return None


# -- the order ----------------------------------------------------------------------------------

_CHECKS: tuple[Callable[[ParsedMessage], MessageClass | None], ...] = (
    _delivery_report,
    _read_report,
    _meeting,
    _smime,
    _voicemail,
    _auto_reply,
)


def _plain_reason(msg: ParsedMessage) -> str:
    if msg.content_type == "multipart/report":
        report_type = msg.content_type_params.get("report-type", "unknown")
        return f"multipart/report; report-type={report_type} is not a delivery or read report"
    return f"{msg.content_type}: no report, meeting, S/MIME, voicemail or auto-reply evidence"


def infer_message_class(msg: ParsedMessage) -> MessageClass:
    """The Outlook message class Exchange would give this MIME message, and why."""
    for check in _CHECKS:
        found = check(msg)
        if found is not None:
            return found
    return MessageClass(NOTE, _plain_reason(msg))


__all__ = [
    "DELAYED_DR",
    "DR",
    "MEETING_ACCEPTED",
    "MEETING_CANCELED",
    "MEETING_DECLINED",
    "MEETING_REQUEST",
    "MEETING_TENTATIVE",
    "NDR",
    "NOTE",
    "NOT_READ_RECEIPT",
    "OOF",
    "READ_RECEIPT",
    "SMIME",
    "SMIME_SIGNED",
    "TRACKED_CLASSES",
    "MessageClass",
    "infer_message_class",
    "is_tracked",
]
