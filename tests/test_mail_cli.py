"""`emailrouter classify`: one row per file, never an exception for a bad file."""

from __future__ import annotations

import io
import json

from emailrouter_lib.mail.cli import classify_paths, main_classify

NOTE = b"From: a@example.com\nTo: b@example.com\nSubject: Hello\n\nHi\n"
OOF = (
    b"From: a@example.com\nSubject: Automatic reply: Hello\nAuto-Submitted: auto-replied\n\nAway\n"
)
MSG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512


def test_classify_paths_recurses_and_explains(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a-note.eml").write_bytes(NOTE)
    (tmp_path / "sub" / "b-oof.eml").write_bytes(OOF)
    (tmp_path / "sub" / "c-outlook.msg").write_bytes(MSG)
    rows = list(classify_paths([tmp_path, tmp_path / "missing.eml"]))
    assert [row["file"].rsplit("/", 1)[-1] for row in rows] == [
        "a-note.eml",
        "b-oof.eml",
        "c-outlook.msg",
        "missing.eml",
    ]
    note, oof, outlook, missing = rows
    assert note["message_class"] == "IPM.Note" and note["tracked"] is True and note["reason"]
    assert oof["message_class"] == "IPM.Note.Rules.OofTemplate.Microsoft" and oof["tracked"]
    assert outlook["message_class"] is None and outlook["tracked"] is False
    assert "Outlook .msg" in outlook["reason"]
    assert missing["message_class"] is None and "no such file" in missing["reason"]


def test_main_classify_prints_json_lines_and_a_status(tmp_path):
    (tmp_path / "note.eml").write_bytes(NOTE)
    out = io.StringIO()
    assert main_classify([tmp_path], as_json=True, out=out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows == [
        {
            "file": str(tmp_path / "note.eml"),
            "message_class": "IPM.Note",
            "tracked": True,
            "reason": rows[0]["reason"],
        }
    ]
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01\x02garbage")
    table = io.StringIO()
    assert main_classify([tmp_path], as_json=False, out=table) == 1
    text = table.getvalue()
    assert "IPM.Note" in text and "tracked" in text and "(not a message)" in text
