"""Real-world messages: the vendored demo corpus always, the shared corpora when present.

The shared corpora (``../shared/corpora`` beside the repository) carry hand-written labels in
``MANIFEST.tsv``; the tests hold the classifier to them.
"""

from __future__ import annotations

import csv
import hashlib
import re
from functools import cache
from pathlib import Path

import pytest

from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail import ParsedMessage, infer_message_class, unwrap_forward

DEMO = Path(__file__).resolve().parents[1] / "emailrouter_lib" / "demo" / "data" / "corpus"
CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
OOF = "IPM.Note.Rules.OofTemplate.Microsoft"
NOT_MESSAGES = re.compile(r"(license|notice|readme|copying)", re.IGNORECASE)


def _surrogate_free(text: str | None) -> bool:
    return text is None or not any("\udc80" <= ch <= "\udcff" for ch in text)


def _read_everything(msg: ParsedMessage) -> None:
    """Touch every answer a route asks for; any exception fails the test."""
    for name in (
        "subject", "from_address", "from_name", "sender_address", "to", "cc", "bcc", "date",
        "message_id", "synthetic_message_id", "effective_message_id", "in_reply_to",
        "references", "thread_index", "content_type", "body_text", "body_html", "description",
        "attachments", "defects",
    ):  # fmt: skip
        getattr(msg, name)
    for text in (msg.subject, msg.from_name, msg.body_text, msg.body_html):
        assert _surrogate_free(text), f"{msg.origin}: undecoded 8-bit bytes left in text"
    unwrap_forward(msg)


# -- the vendored demo corpus ------------------------------------------------------------------

DEMO_EXPECTED = {
    "sisimai-set-of-emails/maildir/bsd/rfc3834-01.eml": OOF,
    "sisimai-set-of-emails/maildir/bsd/rfc3834-02.eml": OOF,
    "sisimai-set-of-emails/maildir/bsd/rfc3834-03.eml": OOF,
    "sisimai-set-of-emails/maildir/bsd/rfc3834-04.eml": OOF,
    "sisimai-set-of-emails/maildir/not/is-not-bounce-01.eml": "IPM.Note",
    "sisimai-set-of-emails/maildir/not/is-not-bounce-02.eml": "IPM.Note",
    "sisimai-set-of-emails/maildir/bsd/lhost-office365-01.eml": "REPORT.IPM.Note.NDR",
    "sisimai-set-of-emails/maildir/bsd/lhost-exchange2007-01.eml": "REPORT.IPM.Note.NDR",
    "sisimai-set-of-emails/maildir/bsd/lhost-exchange2003-01.eml": "REPORT.IPM.Note.NDR",
    "sisimai-set-of-emails/maildir/bsd/lhost-exim-01.eml": "REPORT.IPM.Note.NDR",
    "sisimai-set-of-emails/maildir/bsd/lhost-postfix-01.eml": "REPORT.IPM.Note.NDR",
    "sisimai-set-of-emails/maildir/bsd/lhost-outlook-06.eml": "REPORT.IPM.Note.Delayed.DR",
    "sisimai-set-of-emails/maildir/bsd/arf-01.eml": "IPM.Note",
    "mimekit-testdata/UnitTests/TestData/messages/disposition-notification.txt": (
        "REPORT.IPM.Note.IPNRN"
    ),
    "mimekit-testdata/UnitTests/TestData/messages/issue358.txt": "IPM.Note",
    "mikel-mail-fixtures/spec/fixtures/emails/multipart_report_emails/report_422.eml": (
        "REPORT.IPM.Note.Delayed.DR"
    ),
    "flanker-fixtures/tests/fixtures/messages/signed.eml": "IPM.Note.SMIME.MultipartSigned",
    "flanker-fixtures/tests/fixtures/messages/disposition-notification.eml": (
        "REPORT.IPM.Note.IPNRN"
    ),
    "flanker-fixtures/tests/fixtures/messages/bounce/mailbox-full.eml": "REPORT.IPM.Note.NDR",
    "spamscope-mail-parser/tests/mails/mail_test_7": "IPM.Note",
}
PERMISSIVE = {"BSD-2-Clause", "MIT", "Apache-2.0"}


@cache
def _demo_notice() -> dict[str, tuple[str, str]]:
    """file -> (licence, sha256 prefix), from the NOTICE's file table."""
    rows = {}
    for line in (DEMO / "NOTICE.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if len(cells) == 6 and "/" in cells[0] and cells[0] != "file":
            rows[cells[0]] = (cells[2], cells[4].rstrip("…"))
    return rows


def _demo_messages() -> list[Path]:
    return sorted(
        path for path in DEMO.rglob("*") if path.is_file() and not NOT_MESSAGES.search(path.name)
    )


def test_demo_corpus_is_listed_licensed_and_small():
    notice = _demo_notice()
    files = {path.relative_to(DEMO).as_posix() for path in _demo_messages()}
    assert 25 <= len(files) <= 40
    assert files == set(notice), "every vendored message is in NOTICE.md, and only those"
    for relative, (licence, sha_prefix) in notice.items():
        assert licence in PERMISSIVE, relative
        data = (DEMO / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest().startswith(sha_prefix), f"{relative} changed"
        upstream = DEMO / relative.split("/", 1)[0]
        assert any(NOT_MESSAGES.search(p.name) for p in upstream.iterdir()), f"{upstream} licence"
    total = sum(path.stat().st_size for path in DEMO.rglob("*") if path.is_file())
    assert total < 600 * 1024


def test_demo_corpus_parses_and_classifies():
    for path in _demo_messages():
        relative = path.relative_to(DEMO).as_posix()
        msg = ParsedMessage.from_bytes(path.read_bytes(), origin=relative)
        found = infer_message_class(msg)
        assert found.reason, relative
        _read_everything(msg)
        if relative in DEMO_EXPECTED:
            assert found.name == DEMO_EXPECTED[relative], f"{relative}: {found.reason}"


def test_demo_licence_files_are_not_messages():
    for path in DEMO.rglob("*"):
        if path.is_file() and NOT_MESSAGES.search(path.name):
            with pytest.raises(MessageError):
                ParsedMessage.from_bytes(path.read_bytes(), origin=str(path))


# -- the shared corpora ------------------------------------------------------------------------

needs_corpora = pytest.mark.skipif(
    not (CORPORA / "MANIFEST.tsv").is_file(),
    reason=f"the shared corpora are not at {CORPORA}",
)


@cache
def _manifest() -> list[dict[str, str]]:
    with (CORPORA / "MANIFEST.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _is_outlook_msg(data: bytes) -> bool:
    return data.startswith(b"\xd0\xcf\x11\xe0")


@cache
def _classified() -> dict[str, tuple[ParsedMessage, str, str, str]]:
    """file -> (message, class, reason, manifest label) for every RFC 822 file."""
    result = {}
    for row in _manifest():
        name = row["file"]
        if name.endswith((".json", ".yml")) or NOT_MESSAGES.search(name.rsplit("/", 1)[-1]):
            continue
        data = (CORPORA / name).read_bytes()
        if _is_outlook_msg(data):
            continue
        msg = ParsedMessage.from_bytes(data, origin=name)
        found = infer_message_class(msg)
        result[name] = (msg, found.name, found.reason, row["classification"])
    return result


def _hand_label(label: str) -> str:
    return label.split("| auto:", 1)[0].strip()


@needs_corpora
def test_every_corpus_message_parses_and_classifies_with_a_reason():
    classified = _classified()
    assert len(classified) > 400
    for name, (msg, class_name, reason, _) in classified.items():
        assert class_name and reason, name
        _read_everything(msg)


@needs_corpora
def test_outlook_msg_files_are_refused_with_a_clear_text():
    refused = 0
    for row in _manifest():
        data = (CORPORA / row["file"]).read_bytes()
        if not _is_outlook_msg(data):
            continue
        with pytest.raises(MessageError, match=r"Outlook \.msg file.*save it from Outlook"):
            ParsedMessage.from_bytes(data, origin=row["file"])
        refused += 1
    assert refused >= 40


@needs_corpora
def test_hand_labelled_auto_replies_are_oof():
    replies = {
        n: c for n, (_, c, _, label) in _classified().items() if label.startswith("auto-reply")
    }
    assert len(replies) >= 10
    assert replies == dict.fromkeys(replies, OOF)


@needs_corpora
def test_bounces_carrying_auto_submitted_are_reports_not_oof():
    bounces = {
        name: class_name
        for name, (msg, class_name, _, label) in _classified().items()
        if msg.has_header("Auto-Submitted")
        and re.search(r"NDR|bounce|DSN", _hand_label(label))
        and not label.startswith("auto-reply")
    }
    assert len(bounces) >= 30
    wrong = {name: c for name, c in bounces.items() if not c.startswith("REPORT.IPM.Note.")}
    assert not wrong
    for name in ("non-autoreply.msg", "warning-5.msg"):
        (found,) = [c for n, c in bounces.items() if n.endswith(name)]
        assert found == "REPORT.IPM.Note.NDR"


@needs_corpora
def test_exchange_ndr_header_means_ndr():
    marked = {
        n: c
        for n, (m, c, _, _) in _classified().items()
        if m.has_header("X-MS-Exchange-Message-Is-Ndr")
    }
    assert len(marked) >= 16
    assert marked == dict.fromkeys(marked, "REPORT.IPM.Note.NDR")


@needs_corpora
def test_read_receipts_delays_and_smime():
    for name, (_, class_name, reason, label) in _classified().items():
        hand = _hand_label(label)
        if hand.startswith("read receipt"):
            assert class_name in ("REPORT.IPM.Note.IPNRN", "REPORT.IPM.Note.IPNNRN"), name
        if re.search(r"delay", hand, re.IGNORECASE) and re.search(r"transient|must not", hand):
            assert class_name == "REPORT.IPM.Note.Delayed.DR", f"{name}: {reason}"
        if hand.startswith(("S/MIME encrypted", "S/MIME signed+encrypted")):
            assert class_name == "IPM.Note.SMIME", name
        elif hand.startswith("S/MIME signed"):
            assert class_name == "IPM.Note.SMIME.MultipartSigned", name
        if hand.startswith("PGP"):
            assert class_name == "IPM.Note", name


@needs_corpora
def test_negative_controls_stay_notes():
    controls = re.compile(
        r"negative control|not a bounce|not an NDR|business-relevant"
        r"|false-positive trap|backscatter|JIRA notification",
        re.IGNORECASE,
    )
    checked = 0
    for name, (_, class_name, reason, label) in _classified().items():
        hand = _hand_label(label)
        if controls.search(hand) and not hand.startswith("auto-reply"):
            assert class_name == "IPM.Note", f"{name}: {class_name} ({reason})"
            checked += 1
    assert checked >= 8


@needs_corpora
def test_odd_charsets_decode():
    odd = [
        msg
        for msg, _, _, label in _classified().values()
        if "non-UTF8 charset" in label or "8-bit" in label or "invalid" in label.lower()
    ]
    assert len(odd) >= 50
    for msg in odd:  # _read_everything already ran; the texts hold no raw bytes
        assert _surrogate_free(msg.subject) and _surrogate_free(msg.body_text), msg.origin
