"""A refused ``after=move:`` never wedges a mailbox (issue 15 item 3), against a real Dovecot.

The server is set up as Cyrus's legacy namespace and Courier are: the user's folders live under
``INBOX.`` (separator ``.``), and a public namespace ``Archive.`` the user may not create folders
in (its directory is read-only), so a move there is refused by the server itself. The activities
of a run whose move is refused are created and in that run's results; the next run, with the URL
corrected, moves them with the URL's current action and routes new mail; nothing twice.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

import pytest
from routing_helpers import crm_store, demo_crm, message, route
from servers import Dovecot, ServerUnavailable, start_dovecot

pytestmark = pytest.mark.dovecot

SUPPORT = "queue:support@contoso.example"
NAMESPACES = """
namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
}
namespace archive {
  type = public
  prefix = Archive.
  separator = .
  location = maildir:{root}/archive:LAYOUT=fs
  subscriptions = no
  list = yes
}
"""


@pytest.fixture(scope="module")
def legacy_dovecot() -> Iterator[Dovecot]:
    try:
        server = start_dovecot(extra_config=NAMESPACES)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    archive = server.root / "archive"
    archive.mkdir()
    os.chmod(archive, 0o555)  # the mail processes never run as root: CREATE there is refused
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def crm_url(tmp_path):
    return demo_crm(tmp_path)


def deliver(server: Dovecot, *subjects: str) -> list[str]:
    ids = []
    for subject in subjects:
        msg = message(subject)
        server.deliver(msg, to="crm@example.test")
        ids.append(msg["Message-ID"])
    return ids


def created_ids(crm_url: str) -> list[str]:
    emails = crm_store(crm_url).emails(directioncode=0)
    return sorted(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


def folder_count(server: Dovecot, folder: str) -> int:
    conn = server.imap("crm")
    try:
        typ, data = conn.select(f'"{folder}"', readonly=True)
        return int(data[0]) if typ == "OK" else -1
    finally:
        conn.logout()


def test_move_into_a_relative_folder_goes_into_the_personal_namespace(legacy_dovecot, crm_url):
    legacy_dovecot.reset("crm")
    deliver(legacy_dovecot, "One", "Two")
    result = route(
        crm_url, legacy_dovecot.url("imap", "crm", owner=SUPPORT, after="move:Processed")
    )
    assert result.ok, result.mailboxes
    assert result.counts == {"created": 2}
    assert folder_count(legacy_dovecot, "INBOX.Processed") == 2
    assert folder_count(legacy_dovecot, "INBOX") == 0


@pytest.mark.parametrize("corrected", ["move:INBOX/Done", "leave", "delete"])
def test_refused_move_is_reported_per_message_and_retried_with_the_current_action(
    legacy_dovecot, crm_url, tmp_path, corrected
):
    legacy_dovecot.reset("crm")
    first = deliver(legacy_dovecot, "First 1", "First 2", "First 3")
    refused_url = legacy_dovecot.url("imap", "crm", owner=SUPPORT, after="move:Archive/Processed")
    run1 = route(crm_url, refused_url)
    # The activities were created, and this run's results say so, each with the failed move.
    assert run1.counts == {"created": 3}
    assert all("after=move:Archive/Processed failed" in row.reason for row in run1.rows)
    assert run1.mailboxes[0].status == "error" and "could not be deleted or moved" in (
        run1.mailboxes[0].error
    )
    written = run1.write_artifacts(tmp_path / "run1")
    with open(written["results.csv"], encoding="utf-8") as f:
        assert [r["outcome"] for r in csv.DictReader(f)] == ["created"] * 3
    assert created_ids(crm_url) == sorted(first)
    assert folder_count(legacy_dovecot, "INBOX") == 3  # not moved, not lost

    # The same URL again: new mail is still routed, the old items are not created again.
    later = deliver(legacy_dovecot, "Later 1")
    run2 = route(crm_url, refused_url)
    assert run2.counts == {"created": 1}
    assert created_ids(crm_url) == sorted(first + later)

    # The admin corrects the URL: the next run obeys it for the old items and routes new mail.
    newest = deliver(legacy_dovecot, "Newest 1", "Newest 2")
    fixed = legacy_dovecot.url("imap", "crm", owner=SUPPORT, after=corrected)
    run3 = route(crm_url, fixed)
    assert run3.ok, run3.mailboxes
    assert run3.counts == {"created": 2}
    assert run3.mailboxes[0].recovered == 0 and run3.mailboxes[0].already_done == 4
    assert created_ids(crm_url) == sorted(first + later + newest)  # nothing twice
    inbox = folder_count(legacy_dovecot, "INBOX")
    if corrected == "leave":
        assert inbox == 6
    elif corrected == "delete":
        assert inbox == 0
    else:
        assert inbox == 0 and folder_count(legacy_dovecot, "INBOX.Done") == 6
    run4 = route(crm_url, fixed)
    assert run4.ok and run4.rows == []
    assert run4.mailboxes[0].error is None
