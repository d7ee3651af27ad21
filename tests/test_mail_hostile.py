"""Hostile and malformed mail (issue 12 items 1-4, 9; issue 15 item 7): decoding never raises.

Every text a :class:`ParsedMessage` hands out must be storable (encode as UTF-8), whatever the
bytes were; a header block that does not start with a header is recovered, not read as body;
and two different messages never share a synthetic Message-ID. The routing tests at the end run
the same messages through the real embedded CRM and Maildir, in-process and as ``emailrouter``.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import io
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from routing_helpers import demo_crm, drop, maildir_url, route, route_in_subprocess

from emailrouter_lib.crm import demo
from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail import ParsedMessage, infer_message_class, unwrap_forward
from emailrouter_lib.mail.charsets import codec_for, decode_bytes, decode_header_text, storable
from emailrouter_lib.mail.cli import main_classify

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
ROOT = Path(__file__).resolve().parents[1]
SUPPORT = f"queue:{demo.SUPPORT.address}"
NOT_STORABLE = "cannot be stored"


def _mail(headers: str | bytes, body: str | bytes = "Hello\n") -> bytes:
    head = headers.encode() if isinstance(headers, str) else headers
    text = body.encode() if isinstance(body, str) else body
    return b"From: a@example.com\nTo: b@example.com\nDate: Mon, 4 Mar 2024 12:00:00 +0000\n" + (
        head + b"\n" + text
    )


def _texts(msg: ParsedMessage) -> list[str]:
    """Every text a route reads from a message (and what classify makes of them)."""
    found = infer_message_class(msg)
    texts = [msg.subject, msg.description, found.reason, *msg.defects]
    texts += [msg.from_name or "", msg.from_address or "", msg.effective_message_id]
    texts += [text for pair in (*msg.to, *msg.cc, *msg.bcc) for text in pair]
    texts += [msg.body_text or "", msg.body_html or "", msg.filename or ""]
    texts += [msg.header("Subject") or "", *msg.header_all("X-Note")]
    texts += [msg.in_reply_to or "", *msg.references, msg.thread_index or ""]
    texts += list(msg.content_type_params.values())
    for attachment in msg.attachments:
        texts += [attachment.filename, attachment.content_type, attachment.content_id or ""]
    return texts


def _assert_storable(msg: ParsedMessage) -> None:
    for text in _texts(msg):
        text.encode("utf-8")  # raises UnicodeEncodeError for a lone surrogate
        assert "\x00" not in text
    json.dumps(_texts(msg), ensure_ascii=False).encode("utf-8")


# -- item 1: lone surrogates are replaced, once, at the boundary, with a defect ----------------

ATTACHED = (
    "Content-Type: multipart/mixed; boundary=XX\n",
    "--XX\nContent-Type: text/plain\n\nsee the file\n"
    "--XX\nContent-Type: text/plain\nContent-Disposition: attachment; {name}\n\ndata\n--XX--\n",
)


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        (_mail("Subject: =?utf-7?Q?+2AA-?=\n"), lambda m: m.subject),
        (_mail("Subject: =?unicode_escape?Q?=5Cud800?=\n"), lambda m: m.subject),
        (_mail("Subject: =?raw_unicode_escape?Q?=5Cud800?=\n"), lambda m: m.subject),
        (_mail("Subject: x\nContent-Type: text/plain; charset=utf-7\n", "a+2AA-b\n"),
         lambda m: m.body_text),
        (_mail("Subject: x\nContent-Type: text/html; charset=utf-7\n", "<p>+2AA-</p>\n"),
         lambda m: m.description),
        (_mail("Subject: x\nContent-Type: text/plain; charset=unicode_escape\n", "\\ud800\n"),
         lambda m: m.body_text),
        (b"From: =?utf-7?Q?+2AA-?= <a@example.com>\nTo: b@example.com\nSubject: x\n\nHi\n",
         lambda m: m.from_name),
        (b"From: a@example.com\nTo: =?utf-7?Q?+2AA-?= <b@example.com>\nSubject: x\n\nHi\n",
         lambda m: m.to[0][0]),
        (_mail(ATTACHED[0], ATTACHED[1].format(name='filename="=?utf-7?Q?+2AA-?=.txt"')),
         lambda m: m.attachments[0].filename),
        (_mail(ATTACHED[0], ATTACHED[1].format(name="filename*=utf-7''%2B2AA-.txt")),
         lambda m: m.attachments[0].filename),
        (_mail("Subject: x\nContent-Type: application/octet-stream;"
               " name*=utf-7''%2B2AA-.p7m\n", "AAAA\n"),
         lambda m: m.filename),
    ],
    ids=[
        "subject-utf7", "subject-unicode_escape", "subject-raw_unicode_escape", "body-utf7",
        "html-utf7", "body-unicode_escape", "from-name", "to-name", "attachment-name-2047",
        "attachment-name-2231", "smime-file-name",
    ],
)  # fmt: skip
def test_lone_surrogates_become_replacement_characters_with_a_defect(raw, read):
    msg = ParsedMessage.from_bytes(raw, origin="inbox/1")
    text = read(msg)
    assert "\ufffd" in text
    text.encode("utf-8")
    _assert_storable(msg)  # and everything else the message hands out
    assert any(NOT_STORABLE in defect for defect in msg.defects), msg.defects


def test_storable_leaves_good_text_alone_and_repairs_every_surrogate():
    good = "Grüße, 日本語, 😀"
    assert storable(good) is good and storable("ascii") == "ascii"
    assert storable("a\ud800b\udfff\udc80c") == "a\ufffdb\ufffd\ufffdc"
    assert storable("\ud83d\ude00") == "\ufffd\ufffd"  # a pair spelled as two code points


def test_nul_characters_in_headers_are_removed_with_a_defect():
    msg = ParsedMessage.from_bytes(_mail("Subject: =?utf-8?Q?a=00b?=\n"))
    assert msg.subject == "ab"
    assert any("NUL" in defect for defect in msg.defects)


def test_hostile_parameters_and_defect_texts_never_raise():
    raw = _mail(
        "Content-Type: multipart/mixed; boundary=b\n",
        b"--b\n \xff\xfe a part whose first header line is a continuation\n"
        b"Content-Type: text/plain\n\nhi\n"
        b"--b\nContent-Type: text/plain; charset*0=us; charset*=utf-8''x\n"
        b"Content-Disposition: attachment; filename*0=\"a\"; filename*=utf-8''b.txt\n\n"
        b"data\n--b--\n",
    )  # the stdlib's get_filename() raises TypeError on the second part
    msg = ParsedMessage.from_bytes(raw)
    assert [a.filename for a in msg.attachments] == ["part-1.txt"]
    assert any("FirstHeaderLineIsContinuation" in defect for defect in msg.defects)
    _assert_storable(msg)


# -- item 2: raw 8-bit bytes inside encoded words never raise ----------------------------------


def test_raw_8bit_inside_encoded_words_is_decoded_never_raised():
    raw = (
        b"From: =?utf-8?Q?J\xc3\xa9r=C3=B4me?= <jerome@example.com>\n"
        b"To: =?iso-8859-1?Q?Ren\xe9?= <rene@example.com>, =?utf-8?Q?Ren\xe9_B?= <b@example.com>\n"
        b"Cc: =?utf-8?B?w6k\xff?= <c@example.com>\n"
        b"Subject: =?utf-8?Q?caf\xc3\xa9_=E2=82=AC?=\n\nHi\n"
    )
    msg = ParsedMessage.from_bytes(raw)
    assert msg.from_name == "Jérôme"
    assert msg.to == [("René", "rene@example.com"), ("René B", "b@example.com")]
    assert msg.cc == [("=?utf-8?B?w6kÿ?=", "c@example.com")]  # no base64: kept as written
    assert msg.subject == "café €"
    _assert_storable(msg)


def test_bounce_and_receipt_with_raw_8bit_in_encoded_words_classify():
    bounce = (
        b"From: =?utf-8?Q?Mail_Delivery_Syst\xc3\xa8me?= <MAILER-DAEMON@mx.example>\n"
        b"To: support@contoso.example\n"
        b"Subject: =?utf-8?Q?Non_remis_\xe0_destination?=\n\nYour message was not delivered.\n"
    )
    msg = ParsedMessage.from_bytes(bounce)
    assert infer_message_class(msg).name == "REPORT.IPM.Note.NDR"
    assert msg.subject == "Non remis à destination" and msg.from_name == "Mail Delivery Système"
    receipt = (
        b"From: =?utf-8?B?\xff\xfe?= <b@example.com>\nTo: a@example.com\n"
        b"Subject: =?iso-8859-1?Q?Lu=A0:_r\xe9union?=\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\n\n'
        b"--r\nContent-Type: text/plain\n\nread\n--r\n"
        b"Content-Type: message/disposition-notification\n\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n--r--\n"
    )
    msg = ParsedMessage.from_bytes(receipt)
    assert infer_message_class(msg).name == "REPORT.IPM.Note.IPNRN"
    assert msg.subject == "Lu\xa0: réunion"
    _assert_storable(msg)


def test_raw_utf8_attachment_name_is_read_as_utf8():
    """Issue 15 item 7: ``ciële.txt`` was stored as ``ci��le.txt``."""
    raw = _mail(
        ATTACHED[0].encode(),
        ATTACHED[1].format(name='filename="ci\xeble.txt"').encode("utf-8"),
    )
    assert ParsedMessage.from_bytes(raw).attachments[0].filename == "ciële.txt"
    # not UTF-8: the charset the message declares, then Windows-1252
    gb = _mail(
        b'Content-Type: multipart/mixed; boundary=XX; charset="GB2312"\n',
        b"--XX\nContent-Type: text/plain\n\nsee the file\n--XX\nContent-Type: text/plain\n"
        b'Content-Disposition: attachment; filename="\xb1\xa8\xb8\xe6.txt"\n\ndata\n--XX--\n',
    )
    assert ParsedMessage.from_bytes(gb).attachments[0].filename == "报告.txt"
    latin = raw.replace("ciële".encode(), b"ci\xeble")
    assert ParsedMessage.from_bytes(latin).attachments[0].filename == "ciële.txt"


def test_raw_8bit_header_bytes_try_utf8_before_the_declared_charset():
    assert decode_header_text("caf\udcc3\udca9") == "café"
    assert decode_bytes(b"caf\xc3\xa9", "iso-8859-1", utf8_first=True) == "café"
    assert decode_bytes(b"caf\xe9", "iso-8859-1", utf8_first=True) == "café"


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"the shared corpora are not at {CORPORA}")
def test_corpus_attachment_names_in_raw_8bit():
    mikel = CORPORA / "mikel-mail-fixtures/spec/fixtures/emails/attachment_emails"
    msg = ParsedMessage.from_bytes((mikel / "attachment_nonascii_filename.eml").read_bytes())
    assert [a.filename for a in msg.attachments] == ["ciële.txt"]
    zammad = CORPORA / "zammad-test-data/test/data/mail/mail015.box"
    msg = ParsedMessage.from_bytes(zammad.read_bytes())
    assert [a.filename for a in msg.attachments] == ["绩效管理,究竟谁错了.xls"]


# -- item 3: charset labels naming bytes-to-bytes codecs fall back like unknown ones -----------


def _bytes_codecs() -> list[str]:
    """Every codec the interpreter knows that is not a text encoding (base64, zlib, rot13...)."""
    names = set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
    names |= {module.name for module in pkgutil.iter_modules(encodings.__path__)}
    found = set()
    for name in names:
        try:
            info = codecs.lookup(name)
        except LookupError:
            continue
        if not info._is_text_encoding:
            found.add(name)
    return sorted(found)


BYTES_CODECS = _bytes_codecs()


def test_every_bytes_to_bytes_codec_is_refused_as_a_charset():
    assert {"base64", "zlib", "rot13", "uu", "hex", "bz2", "quopri"} <= set(BYTES_CODECS)
    for name in BYTES_CODECS:
        assert codec_for(name) is None, name
        assert codec_for(name.upper()) is None, name
        assert decode_bytes(b"caf\xc3\xa9", name) == "café"  # like an unknown charset
    assert codec_for("iso-8859-1") == "cp1252" and codec_for("utf-8") == "utf-8"
    assert codec_for("a\x00b") is None and codec_for("x" * 10_000) is None


def _bytes_codec_message(name: str) -> bytes:
    return _mail(
        f"Subject: =?{name}?Q?caf=C3=A9?= =?{name}?B?Y2Fmw6k=?=\n"
        f'Content-Type: multipart/mixed; boundary="b"\n',
        f"--b\nContent-Type: text/plain; charset={name}\n\ncafé\n"
        f"--b\nContent-Type: text/html; charset={name}\n\n<p>café</p>\n"
        f"--b\nContent-Type: text/plain; charset={name}\n"
        f"Content-Disposition: attachment; filename*={name}''caf%C3%A9.txt\n\ndata\n--b--\n",
    )


@pytest.mark.parametrize("name", BYTES_CODECS)
def test_messages_labelled_with_bytes_codecs_parse_and_classify(name):
    msg = ParsedMessage.from_bytes(_bytes_codec_message(name))
    assert infer_message_class(msg).name == "IPM.Note"
    assert msg.subject == "cafécafé"  # blanks between encoded words are not text
    assert msg.body_text == "café" and msg.body_html == "<p>café</p>"
    assert msg.attachments[0].filename  # a name, whatever RFC 2231 made of it
    _assert_storable(msg)


def test_emailrouter_classify_never_tracebacks_on_bytes_codec_charsets(tmp_path):
    for name in ("base64", "zlib", "rot13", "uu", "hex", "bz2", "quopri"):
        (tmp_path / f"{name}.eml").write_bytes(_bytes_codec_message(name))
    (tmp_path / "utf7.eml").write_bytes(_mail("Subject: =?utf-7?Q?+2AA-?=\n"))
    (tmp_path / os.fsdecode(b"name-not-utf8-\xff.eml")).write_bytes(_mail("Subject: x\n"))
    exe = Path(sys.executable).with_name("emailrouter")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "emailrouter_lib.cli"]
    done = subprocess.run(
        [*command, "classify", "--json", str(tmp_path)], cwd=ROOT, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    rows = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert len(rows) == 9 and {row["message_class"] for row in rows} == {"IPM.Note"}
    table = io.StringIO()  # the readable table, in-process: the same rows
    assert main_classify([tmp_path], as_json=False, out=table) == 0
    table.getvalue().encode("utf-8")


# -- item 4 and 9: header blocks that do not start with a header -------------------------------

HEADERS = b"From: Carol <carol@example.com>\nTo: b@example.com\nSubject: Invoice 7\n"


@pytest.mark.parametrize(
    ("raw", "defect"),
    [
        (b"\n" + HEADERS + b"\nHello\n", "blank lines"),
        (b"\r\n \r\n" + HEADERS.replace(b"\n", b"\r\n") + b"\r\nHello\r\n", "blank lines"),
        (b"Received from mx.example by mx2.example\n" + HEADERS + b"\nHello\n", "not a header"),
        (b"Received from mx.example\n\tby mx2.example; Mon\n" + HEADERS + b"\nHello\n",
         "not a header"),
        (HEADERS.replace(b"Carol <carol", b"Ca\x00rol <carol") + b"\nHello\n", "NUL"),
        (HEADERS.replace(b"From:", b"Fr\x00om:") + b"\nHello\n", "NUL"),
        (b"From MAILER-DAEMON Mon Mar  4 12:00:00 2024\r" + HEADERS.replace(b"\n", b"\r")
         + b"\rHello\r", None),
    ],
    ids=["blank-line", "blank-lines-crlf", "received-without-colon", "folded-received",
         "nul-in-value", "nul-in-name", "mbox-bare-cr"],
)  # fmt: skip
def test_a_readable_header_block_is_recovered(raw, defect):
    msg = ParsedMessage.from_bytes(raw, origin="inbox/7")
    assert (msg.from_name, msg.from_address) == ("Carol", "carol@example.com")
    assert msg.to == [("", "b@example.com")] and msg.subject == "Invoice 7"
    assert msg.body_text.strip() == "Hello"
    if defect:
        assert any(defect in text for text in msg.defects), msg.defects
    _assert_storable(msg)


def test_what_is_not_a_message_stays_refused():
    for text in (
        b"# Title\n\nSource: https://example.com\nLicense: MIT\n",
        b"Apache License\nVersion 2.0\nhttp://www.apache.org/licenses/\n",
        b"\n\n\n",
        b"From nobody\r",
    ):
        with pytest.raises(MessageError, match=r"not an RFC 822 message|is empty"):
            ParsedMessage.from_bytes(text)


def test_synthetic_ids_tell_garbled_header_blocks_apart():
    body = b"\nThe same body.\n"
    garbled = [
        b"Received from one\nFrom: a@example.com\nSubject: first\n" + body,
        b"Received from one\nFrom: b@example.com\nSubject: second\n" + body,
        b"\nFrom: a@example.com\nSubject: third\n" + body,
        b"\nFrom: a@example.com\nSubject: fourth\n" + body,
        b"From: a@example.com\nBad line\nSubject: fifth\n" + body,  # the parser stops at line 2
        b"From: a@example.com\nBad line\nSubject: sixth\n" + body,
        b"From: a@example.com\nBad line\nTo: x@example.com\n" + body,
        b"Subject first\nFrom: a@example.com\nTo: b@example.com\n" + body,  # lost colon
        b"Subject second\nFrom: a@example.com\nTo: b@example.com\n" + body,
    ]
    ids = [ParsedMessage.from_bytes(raw).synthetic_message_id for raw in garbled]
    assert len(set(ids)) == len(ids)
    for raw, first in zip(garbled, ids, strict=True):
        assert ParsedMessage.from_bytes(raw).synthetic_message_id == first  # truly identical
        crlf = raw.replace(b"\n", b"\r\n")
        assert ParsedMessage.from_bytes(crlf).synthetic_message_id == first


def test_synthetic_id_ignores_what_delivery_adds():
    plain = b"From: a@example.com\nTo: b@example.com\nSubject: Hi\n\nHello\n"
    delivered = (
        b"Return-Path: <a@example.com>\nDelivered-To: b@example.com\n"
        b"Received: from mx by mx2; Mon, 4 Mar 2024 12:00:00 +0000\n" + plain
    )
    assert (
        ParsedMessage.from_bytes(plain).synthetic_message_id
        == ParsedMessage.from_bytes(delivered).synthetic_message_id
    )
    other = plain.replace(b"Subject: Hi", b"Subject: Hi\nReply-To: c@example.com")
    assert (
        ParsedMessage.from_bytes(other).synthetic_message_id
        != ParsedMessage.from_bytes(plain).synthetic_message_id
    )


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"the shared corpora are not at {CORPORA}")
def test_corpus_messages_made_hostile_stay_storable():
    """Corpus messages with a hostile subject, first line and charset label: nothing raises."""
    files = sorted((CORPORA / "mikel-mail-fixtures/spec/fixtures/emails").rglob("*.eml"))[:40]
    assert files
    for path in files:
        data = path.read_bytes()
        for mutated in (
            b"\n" + data,
            b"Received from mx\n" + data,
            data.replace(b"Subject:", b"Subject: =?utf-7?Q?+2AA-?=", 1),
            data.replace(b"charset=", b"charset=base64; x=", 1),
        ):
            try:
                msg = ParsedMessage.from_bytes(mutated, origin=str(path))
            except MessageError:  # only "not a message" may be refused
                continue
            _assert_storable(msg)
            unwrap_forward(msg)


# -- through the router: the real CRM and Maildir, in-process and as its own process ------------


def _hostile_batch() -> list[bytes]:
    body = b"\nPlease call me back.\n"
    return [
        _mail("Subject: =?utf-7?Q?+2AA-?=\n"),
        _mail("Subject: x\nContent-Type: text/plain; charset=utf-7\n", "a+2AA-b\n"),
        b"From: =?utf-8?Q?Ren\xe9?= <rene@example.com>\n"
        b"To: =?iso-8859-1?Q?Supp\xf6rt?= <support@contoso.example>\n"
        b"Subject: =?utf-8?Q?caf\xc3\xa9?=\n\nHi\n",
        _mail("Subject: base64\nContent-Type: text/plain; charset=base64\n", "hello\n"),
        b"\nFrom: one@example.com\nTo: support@contoso.example\nSubject: one\n" + body,
        b"\nFrom: two@example.com\nTo: support@contoso.example\nSubject: two\n" + body,
        b"Received from mx\nFrom: three@example.com\nSubject: three\n" + body,
        b"From: a@example.com\nTo: support@contoso.example\nSubject: ordinary\n\nHello\n",
    ]


def test_hostile_messages_are_all_created_and_none_lost(tmp_path):
    crm_url = demo_crm(tmp_path)
    maildir = tmp_path / "Maildir"
    drop(maildir, *_hostile_batch())
    url = maildir_url(maildir, owner=SUPPORT, after="delete")
    result = route(crm_url, url)
    assert result.counts == {"created": 8}, [(r.outcome, r.reason) for r in result.rows]
    assert len({row.message_id for row in result.rows}) == 8
    subjects = {row.subject for row in result.rows}
    assert {"\ufffd", "café", "one", "two", "three", "ordinary"} <= subjects
    assert not list((maildir / "new").iterdir())  # deleted only because created
    written = result.write_artifacts(tmp_path / "run")  # results.csv, report.html, ...
    for path in written.values():
        path.read_text(encoding="utf-8")


def test_emailrouter_route_creates_every_hostile_message(tmp_path):
    crm_url = demo_crm(tmp_path)
    maildir = tmp_path / "Maildir"
    drop(maildir, *_hostile_batch())
    url = maildir_url(maildir, owner=SUPPORT, after="delete")
    done = route_in_subprocess(crm_url, url, extra=("--run-dir", str(tmp_path / "run")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"] == {"created": 8}
    assert not list((maildir / "new").iterdir())
