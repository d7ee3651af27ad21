"""Mailboxes routed in a bounded thread pool (``max_concurrency``): the same rows as one after
another, in the order of the mailbox URLs; a failing or throttled mailbox holds up no other."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import replace

import pytest
from fixtures_ews import SUPPORT_BOX, ews_url
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route

from emailrouter_lib.crm import demo
from emailrouter_lib.errors import ParameterError

SUPPORT = f"queue:{demo.SUPPORT.address}"
BOXES = 5


def _mailbox_messages(n: int) -> list:
    """Every outcome a Maildir can give: created, a reply linked by In-Reply-To, a duplicate
    within the mailbox, a message that is not email (skipped)."""
    first = message(f"box {n} question", body=f"from box {n}\n")
    return [
        first,
        message(f"box {n} second", sender=demo.ALICE.address),
        message(f"RE: box {n}", in_reply_to=demo.SENT_PRINTER.messageid),
        first,  # the same Message-ID again: a duplicate
        *(message(f"box {n} more {k}") for k in range(4)),
    ]


def _routed_rows(result, urls: list[str]) -> list[tuple]:
    """Rows with the mailbox as its position and without the random activity id."""
    position = {m.mailbox: i for i, m in enumerate(result.mailboxes)}
    return [
        (position[r.mailbox], r.item_key, r.message_id, r.outcome, r.reason, r.regarding)
        for r in result.rows
    ]


def test_parallel_run_gives_exactly_the_rows_of_a_sequential_run(tmp_path):
    trees = {}
    for name in ("sequential", "parallel"):
        (tmp_path / name).mkdir()
        trees[name] = tmp_path / name
    for n in range(BOXES):
        drop(trees["sequential"] / f"box{n}", *_mailbox_messages(n))
    shutil.copytree(trees["sequential"], trees["parallel"], dirs_exist_ok=True)
    results = {}
    for name, concurrency in (("sequential", 1), ("parallel", 4)):
        crm_url = demo_crm(trees[name])
        urls = [maildir_url(trees[name] / f"box{n}", owner=SUPPORT) for n in range(BOXES)]
        results[name] = route(crm_url, *urls, max_concurrency=concurrency, batch_size=3)
        assert [m.status for m in results[name].mailboxes] == ["ok"] * BOXES
        assert [m.mailbox for m in results[name].mailboxes] == [
            results[name].mailboxes[n].mailbox for n in range(BOXES)
        ]
        assert [r.mailbox for r in results[name].rows] == sorted(
            (r.mailbox for r in results[name].rows),
            key=[m.mailbox for m in results[name].mailboxes].index,
        )  # grouped in URL order, whichever mailbox finished first
        stored = Counter(e["messageid"] for e in crm_store(crm_url).emails(directioncode=0))
        created = [r.message_id for r in results[name].rows if r.outcome == "created"]
        assert len(created) == BOXES * 7 and all(stored[m] == 1 for m in created)
    seq, par = results["sequential"], results["parallel"]
    assert _routed_rows(par, []) == _routed_rows(seq, [])
    assert par.counts == seq.counts and "duplicate" in par.counts
    assert [m.outcomes for m in par.mailboxes] == [m.outcomes for m in seq.mailboxes]
    one_at_a_time = replace(par.params, max_concurrency=1)
    assert one_at_a_time.fingerprint() == par.params.fingerprint()  # not an outcome parameter


def test_the_same_message_in_every_mailbox_reaches_the_crm_once(tmp_path):
    crm_url = demo_crm(tmp_path)
    shared = message("sent to every mailbox")
    urls = []
    for n in range(6):
        drop(tmp_path / f"box{n}", shared, message(f"only in box {n}"))
        urls.append(maildir_url(tmp_path / f"box{n}", owner=SUPPORT))
    result = route(crm_url, *urls, max_concurrency=4)
    outcomes = Counter(r.outcome for r in result.rows if r.message_id == shared["Message-ID"])
    assert outcomes == {"created": 1, "duplicate": 5}
    stored = Counter(e["messageid"] for e in crm_store(crm_url).emails(directioncode=0))
    assert stored[shared["Message-ID"]] == 1 and result.counts["created"] == 7
    again = route(crm_url, *urls, max_concurrency=4)  # the ledgers saw everything
    assert again.rows == [] and [m.already_done for m in again.mailboxes] == [2] * 6


def test_a_failing_mailbox_does_not_stop_the_others(tmp_path, free_port):
    crm_url = demo_crm(tmp_path)
    urls = []
    for n in range(3):
        drop(tmp_path / f"box{n}", message(f"box {n}"))
        urls.append(maildir_url(tmp_path / f"box{n}", owner=SUPPORT))
    urls.insert(1, f"imap://crm@127.0.0.1:{free_port}/INBOX?password=env:NOPE")
    urls.insert(3, f"pop3://crm@127.0.0.1:{free_port}?password=env:NOPE")
    result = route(crm_url, *urls, max_concurrency=4)
    assert [m.status for m in result.mailboxes] == ["ok", "error", "ok", "error", "ok"]
    assert result.counts == {"created": 3} and not result.ok


def test_max_concurrency_is_checked_at_the_door(tmp_path):
    crm_url = demo_crm(tmp_path)
    for bad in (0, -1, "4", True):
        with pytest.raises(ParameterError, match="max_concurrency"):
            route(crm_url, maildir_url(tmp_path / "box"), max_concurrency=bad)


# -- Exchange: folders warmed one by one, then the pool --------------------------------------------
EWS_BOXES = (SUPPORT_BOX, "alice@contoso.example", "bob@contoso.example")
OWNERS = {
    SUPPORT_BOX: SUPPORT,
    "alice@contoso.example": SUPPORT,  # a queue owner accepts every message; users only replies
    "bob@contoso.example": SUPPORT,
}


def _ews_urls(ews, **params: str) -> list[str]:
    # A sleeping back-off holds its HTTP connection: one connection per worker keeps them apart.
    return [ews_url(ews, box, owner=OWNERS[box], connections="3", **params) for box in EWS_BOXES]


def test_an_exchange_mailbox_with_a_wrong_password_fails_alone(ews, tmp_path, monkeypatch):
    crm_url = demo_crm(tmp_path)
    for box in EWS_BOXES:
        ews.deliver(box, message(f"to {box}", to=box))
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    urls = _ews_urls(ews)
    urls[1] = urls[1].replace("env:EWS_PASSWORD", "env:WRONG_PW")
    result = route(crm_url, *urls, max_concurrency=4)
    assert [m.status for m in result.mailboxes] == ["ok", "error", "ok"]
    assert "refused the credentials" in result.mailboxes[1].error
    assert "not-the-password" not in str(result)
    assert result.counts == {"created": 2}
    assert ews.counts()["GetFolder"] == 4  # each good mailbox warmed once, never again in the pool
