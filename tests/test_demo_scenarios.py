"""The demo's scenario messages and Maildir: deterministic, parseable, and aimed at the seed."""

from __future__ import annotations

import email
import mailbox
from email import policy
from pathlib import Path

import pytest

from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.demo.scenarios import (
    SCENARIOS,
    corpus_files,
    scenario,
    write_demo_maildir,
    write_scenario_messages,
)


def _parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = write_scenario_messages(tmp_path_factory.mktemp("scenarios"))
    return {path.stem: path for path in paths}


def test_two_runs_write_identical_bytes(tmp_path: Path) -> None:
    first = write_scenario_messages(tmp_path / "one")
    second = write_scenario_messages(tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second] == [s.filename for s in SCENARIOS]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_every_scenario_the_brief_asks_for_is_there() -> None:
    slugs = [s.slug for s in SCENARIOS]
    assert len(slugs) == len(set(slugs)) == 12
    assert slugs == sorted(slugs)


def test_messages_parse_without_defects(written: dict[str, Path]) -> None:
    for slug, path in written.items():
        msg = _parse(path)
        assert not msg.defects, (slug, msg.defects)
        assert msg["From"] and msg["To"] and msg["Subject"] and msg["Date"], slug
        sc = scenario(slug)
        assert sc.recipient in msg["To"].lower(), slug
        if slug == "12-no-message-id":
            assert msg["Message-ID"] is None
        else:
            assert msg["Message-ID"] == sc.message_id


def test_recipients_exist_in_the_demo_crm(tmp_path: Path) -> None:
    with open_crm(init_crm(f"sqlite:///{tmp_path / 'crm.db'}", demo=True)) as crm:
        found = crm.recipients_by_address({s.recipient for s in SCENARIOS})
        assert set(found) == {s.recipient for s in SCENARIOS}


def test_replies_point_at_seeded_emails(written: dict[str, Path]) -> None:
    in_reply_to = _parse(written["01-reply-in-reply-to"])
    assert in_reply_to["In-Reply-To"] == seed.SENT_PRINTER.messageid
    assert in_reply_to["Thread-Index"] is None and seed.TOKEN_PRINTER not in in_reply_to["Subject"]

    token = _parse(written["02-reply-tracking-token"])
    assert "CRM:0001003" in token["Subject"] and token["Subject"].startswith("RE: ")
    assert token["In-Reply-To"] is None and token["References"] is None

    thread = _parse(written["03-reply-thread-index"])
    assert thread["In-Reply-To"] is None and thread["References"] is None
    assert "CRM:" not in thread["Subject"]
    assert thread["Thread-Index"] != seed.SENT_PILOT.conversationindex
    assert base_conversation_index_hash(thread["Thread-Index"]) == base_conversation_index_hash(
        seed.SENT_PILOT.conversationindex
    )

    oof = _parse(written["08-out-of-office"])
    assert oof["In-Reply-To"] == seed.SENT_WELCOME.messageid
    assert oof["Auto-Submitted"] == "auto-replied"


def test_senders_are_the_intended_records(written: dict[str, Path]) -> None:
    assert seed.UNKNOWN_ADDRESS in _parse(written["05-unknown-sender"])["From"]
    assert seed.SHARED_ADDRESS in _parse(written["07-multiple-matches"])["From"]
    assert seed.BOB_ADDRESS in _parse(written["06-not-a-response"])["To"]


def test_special_messages_have_their_mime_shape(written: dict[str, Path]) -> None:
    bounce = _parse(written["09-bounce"])
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    status = [p for p in bounce.walk() if p.get_content_type() == "message/delivery-status"]
    assert len(status) == 1 and "Action: failed" in status[0].as_string()

    meeting = _parse(written["10-meeting-request"])
    (calendar,) = [p for p in meeting.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_param("method") == "REQUEST"
    assert "METHOD:REQUEST" in calendar.get_content()

    attached = _parse(written["11-attachment"])
    names = [part.get_filename() for part in attached.iter_attachments()]
    assert names == ["printer-log.txt", "display.png"]
    png = list(attached.iter_attachments())[1].get_content()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_expected_classes_agree_with_the_classifier(written: dict[str, Path]) -> None:
    classify = pytest.importorskip("emailrouter_lib.mail.classify")
    message = pytest.importorskip("emailrouter_lib.mail.message")
    for slug, path in written.items():
        found = classify.infer_message_class(message.ParsedMessage.from_bytes(path.read_bytes()))
        expected = scenario(slug).expected
        if expected.startswith("skipped:"):
            assert found.name == expected.split(":", 1)[1], slug
        else:
            assert classify.is_tracked(found.name), (slug, found)


def _fake_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    (corpus / "spam-assassin").mkdir(parents=True)
    (corpus / "NOTICE").write_text("licences\n")
    (corpus / "README.md").write_text("about\n")
    (corpus / ".hidden.eml").write_text("Subject: hidden\n\nx\n")
    (corpus / "b.eml").write_bytes(b"Subject: b\n\nbody b\n")
    (corpus / "spam-assassin" / "00001.a1b2").write_bytes(b"Subject: a\n\nbody a\n")
    return corpus


def test_demo_maildir_layout_and_reruns(tmp_path: Path) -> None:
    corpus = _fake_corpus(tmp_path)
    assert [p.name for p in corpus_files(corpus)] == ["b.eml", "00001.a1b2"]
    maildir = tmp_path / "Maildir"
    first = write_demo_maildir(maildir, corpus)
    assert all((maildir / sub).is_dir() for sub in ("new", "cur", "tmp"))
    assert len(first) == len(SCENARIOS) + 2
    assert all(path.parent == maildir / "new" and ":" not in path.name for path in first)
    contents = {path.name: path.read_bytes() for path in first}
    assert contents[first[-1].name] == b"Subject: a\n\nbody a\n"

    # The router moved one message to cur/ and flagged it; a rerun starts the mailbox afresh.
    moved = first[0].rename(maildir / "cur" / f"{first[0].name}:2,S")
    (maildir / "new" / "1.foreign.host").write_bytes(b"Subject: not ours\n\nx\n")
    second = write_demo_maildir(maildir, corpus)
    assert [p.name for p in second] == [p.name for p in first]
    assert {p.name: p.read_bytes() for p in second} == contents
    assert not moved.exists()
    assert (maildir / "new" / "1.foreign.host").exists()  # files we did not write are kept

    box = mailbox.Maildir(maildir, create=False)
    subjects = sorted(str(box[key]["Subject"]) for key in box.iterkeys())
    assert len(subjects) == len(SCENARIOS) + 3


def test_demo_maildir_without_corpus_or_scenarios(tmp_path: Path) -> None:
    only_scenarios = write_demo_maildir(tmp_path / "a", None)
    assert len(only_scenarios) == len(SCENARIOS)
    absent = write_demo_maildir(tmp_path / "b", tmp_path / "no-such-corpus")
    assert [p.name for p in absent] == [p.name for p in only_scenarios]
    corpus_only = write_demo_maildir(tmp_path / "c", _fake_corpus(tmp_path), scenarios=False)
    assert len(corpus_only) == 2
    names = [p.name for p in write_demo_maildir(tmp_path / "d", None)]
    assert names == [p.name for p in only_scenarios]


def test_vendored_corpus_is_tolerated_when_present() -> None:
    corpus = Path(__file__).resolve().parents[1] / "emailrouter_lib" / "demo" / "data" / "corpus"
    if not corpus.is_dir():
        pytest.skip("the vendored corpus is not in this tree yet")
    assert all(path.is_file() for path in corpus_files(corpus))
