"""Every real-world message in ../shared/corpora through the whole route.

One outcome each, with a reason, and no message stopping the batch (a crash would show as
``quarantined:<ExceptionClass>``)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from routing_helpers import demo_crm, maildir_url, route

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
NOT_MESSAGES = {".json", ".yml", ".yaml", ".md", ".tsv"}


def corpus_messages() -> list[Path]:
    found = []
    for path in sorted(CORPORA.rglob("*")):
        if not path.is_file() or path.suffix.lower() in NOT_MESSAGES:
            continue
        if "LICENSE" in path.name.upper() or path.name.upper().startswith(("NOTICE", "COPYING")):
            continue
        if path.read_bytes()[:4] == b"\xd0\xcf\x11\xe0":  # Outlook .msg (OLE2), not RFC 822
            continue
        found.append(path)
    return found


@pytest.mark.skipif(not CORPORA.is_dir(), reason="../shared/corpora is not beside the repository")
def test_every_corpus_message_gets_one_outcome_with_a_reason(tmp_path):
    files = corpus_messages()
    assert len(files) > 400
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n, path in enumerate(files):
        shutil.copyfile(path, maildir / "new" / f"{1700000000 + n}.corpus{n}.test")
    result = route(demo_crm(tmp_path), maildir_url(maildir, owner="queue:support@contoso.example"))
    assert not result.failed_mailboxes  # the mailbox was routed to the end (an unparseable
    # corpus message is quarantined, which fails the batch but not the mailbox)
    assert len(result.rows) == len(files)
    assert all(row.reason for row in result.rows)
    outcomes = Counter(row.outcome for row in result.rows)
    crashes = {
        o: n
        for o, n in outcomes.items()
        if o.startswith("quarantined:") and o != "quarantined:unparseable"
    }
    assert crashes == {}
    assert outcomes["created"] > 100 and outcomes["skipped:REPORT.IPM.Note.NDR"] > 100
