"""A batch is bounded by bytes as well as by count (``batch_bytes``), so large messages are split.

A batch is in memory whole until its CRM commit. The batches are seen from outside: the routing
command is killed (SIGKILL) right after the first batch's CRM commit, and what reached the CRM is
that first batch; a plain rerun then routes the rest, each message once.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route_in_subprocess

from emailrouter_lib.errors import ParameterError
from emailrouter_lib.mailboxes import open_source
from emailrouter_lib.routing.batching import fetch_batch, plan_batch
from emailrouter_lib.routing.params import DEFAULT_BATCH_BYTES, RoutingParams

SUPPORT = "queue:support@contoso.example"
KB = 1024


def _large(n: int, size: int = 300 * KB):
    return message(f"large {n}", body=("y" * 75 + "\n") * (size // 76))


def _routed_ids(crm_url: str) -> Counter:
    emails = crm_store(crm_url).emails(directioncode=0)
    return Counter(e["messageid"] for e in emails if e["messageid"].endswith("@test.example>"))


def _first_batch_then_rest(crm_url: str, url: str, *flags: str) -> int:
    """How many messages the first batch created; the rerun must create the others once."""
    killed = route_in_subprocess(crm_url, url, crash_at="after-crm-commit", extra=flags)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = sum(_routed_ids(crm_url).values())
    rerun = route_in_subprocess(crm_url, url, extra=flags)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    return first


def test_large_messages_are_split_into_batches_by_bytes(tmp_path):
    crm_url = demo_crm(tmp_path)
    messages = [_large(n) for n in range(6)]
    drop(tmp_path / "Maildir", *messages)
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    # ~310 KB each: three fit in 1,000,000 bytes, a fourth would not (batch_size is 200)
    assert _first_batch_then_rest(crm_url, url, "--batch-bytes", "1000000") == 3
    assert _routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)


def _drop_with_size_in_name(maildir, messages, size: int) -> None:
    """Files named as Dovecot names them (``,S=<bytes>``), here with a size that is wrong."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for n, msg in enumerate(messages):
        name = f"17000000{n:02d}.M{n}P{os.getpid()}.test,S={size}"
        (maildir / "new" / name).write_bytes(msg.as_bytes())


def test_a_batch_is_cut_when_the_listed_sizes_are_wrong(tmp_path):
    crm_url = demo_crm(tmp_path)
    messages = [_large(n) for n in range(6)]
    _drop_with_size_in_name(tmp_path / "Maildir", messages, size=100)  # listed as 100 bytes
    url = maildir_url(tmp_path / "Maildir", owner=SUPPORT)
    # planned as one batch by the listed sizes; fetching stops once 700,000 bytes are in hand
    assert _first_batch_then_rest(crm_url, url, "--batch-bytes", "700000") == 3
    assert _routed_ids(crm_url) == Counter(m["Message-ID"] for m in messages)


def test_plan_batch_by_count_and_listed_bytes():
    todo = ["a", "b", "c", "d", "e"]
    sizes = {"a": 40, "b": 40, "c": 200, "d": None, "e": 10}
    assert plan_batch(todo, 0, sizes, count=10, budget=100) == ["a", "b"]
    assert plan_batch(todo, 2, sizes, count=10, budget=100) == ["c"]  # alone, though too big
    assert plan_batch(todo, 3, sizes, count=10, budget=100) == ["d", "e"]  # unknown counts 0
    assert plan_batch(todo, 0, sizes, count=1, budget=10**9) == ["a"]


def test_fetch_batch_stops_at_the_budget_and_says_how_far_it_got(tmp_path):
    maildir = tmp_path / "Maildir"
    drop(maildir, *[_large(n, 50 * KB) for n in range(4)])
    with open_source(maildir_url(maildir)) as source:
        keys = [item.key for item in source.list_items()]
        fetched, covered = fetch_batch(source, keys, budget=120 * KB)
        assert covered == 3 and [key for key, _ in fetched] == keys[:3]
        fetched, covered = fetch_batch(source, keys, budget=10**9)
        assert covered == 4 and len(fetched) == 4
        (maildir / "new" / keys[0]).unlink()  # gone since the listing: skipped, still covered
        fetched, covered = fetch_batch(source, keys[:2], budget=10)
        assert covered == 2 and [key for key, _ in fetched] == keys[1:2]


@pytest.mark.parametrize("bad", [0, -1, "64M", True, 1.5])
def test_a_bad_batch_bytes_is_refused(bad):
    with pytest.raises(ParameterError, match="batch_bytes must be a positive whole number"):
        RoutingParams.from_mapping(
            {"mailboxes": ["maildir:///x"], "crm": "sqlite:///c", "batch_bytes": bad}
        )


def test_the_default_budget_is_64_mb():
    params = RoutingParams.from_mapping({"mailboxes": ["maildir:///x"], "crm": "sqlite:///c"})
    assert params.batch_bytes == DEFAULT_BATCH_BYTES == 64 * 1024 * 1024
