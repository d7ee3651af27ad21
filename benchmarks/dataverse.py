"""Routing over the Dataverse Web API (the fake server on loopback) against routing into SQLite.

Routes N messages (default 1,000) to the demo support queue, in the same run, (a) into the SQLite
CRM directly (the baseline) and (b) through the Dataverse backend into the fake Web API over the
same schema, then (c) the same through a 429 storm (every third request throttled with
``Retry-After``). Prints medians of the wall times, the ratio to the baseline, and the request
counts from the fake's log: writes ($batch change sets) and reads (batched lookups).

    python benchmarks/dataverse.py [--messages 1000] [--repeat 3] [--batch-size 200]
        [--storm-messages 30] [--retry-after 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dataverse_server import FakeDataverse  # noqa: E402
from routing_helpers import drop, message  # noqa: E402

from emailrouter_lib import routing  # noqa: E402
from emailrouter_lib.crm import demo, init_crm, sqlite_path  # noqa: E402
from emailrouter_lib.mailboxes.url import local_mailbox_url  # noqa: E402

SENDERS = [demo.CAROL.address, demo.GRACE.address, demo.SHARED_ADDRESS, demo.UNKNOWN_ADDRESS]


def build_maildir(folder: Path, count: int) -> Path:
    drop(
        folder,
        *(
            message(f"bench {n}", sender=SENDERS[n % len(SENDERS)], cc=demo.ALICE.address)
            for n in range(count)
        ),
    )
    return folder


def fresh_copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def route(crm_url: str, maildir: Path, work: Path, batch_size: int) -> tuple[float, dict]:
    ledger = work / "ledger.sqlite"
    for stale in work.glob("ledger.sqlite*"):
        stale.unlink()
    started = time.perf_counter()
    result = routing.run(
        {
            "mailboxes": [
                local_mailbox_url(maildir, "maildir", owner="queue:" + demo.SUPPORT.address)
            ],
            "crm": crm_url,
            "ledger": str(ledger),
            "quarantine_dir": str(work / "quarantine"),
            "batch_size": batch_size,
            "progress": False,
        }
    )
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"routing failed: {[m.error for m in result.mailboxes]}")
    return elapsed, result.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--storm-messages", type=int, default=30)
    parser.add_argument("--retry-after", type=float, default=1.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="er-bench-dv-"))
    try:
        source = build_maildir(work / "source", args.messages)
        sqlite_times, dataverse_times, summaries = [], [], []
        for round_ in range(args.repeat):
            url = f"sqlite:///{work / 'crm.sqlite'}"
            init_crm(url, demo=True, force=True)
            seconds, counts = route(
                url, fresh_copy(source, work / "Maildir"), work, args.batch_size
            )
            sqlite_times.append(seconds)

            init_crm(url, demo=True, force=True)
            with FakeDataverse(sqlite_path(url)) as server:
                seconds, counts_dv = route(
                    server.crm_url(), fresh_copy(source, work / "Maildir"), work, args.batch_size
                )
                summaries.append(server.log.summary())
            dataverse_times.append(seconds)
            assert counts == counts_dv, (counts, counts_dv)
            print(
                f"round {round_ + 1}: sqlite {sqlite_times[-1]:.2f} s, "
                f"dataverse (fake, loopback) {dataverse_times[-1]:.2f} s, log {summaries[-1]}"
            )
        base = statistics.median(sqlite_times)
        dv = statistics.median(dataverse_times)
        last = summaries[-1]
        print(f"outcomes: {counts}")
        print(f"messages: {args.messages}, routing batch_size {args.batch_size}")
        median = f"median of {args.repeat}"
        print(f"sqlite direct:          {base:.2f} s ({args.messages / base:,.0f} msg/s, {median})")
        print(f"dataverse via the fake: {dv:.2f} s ({args.messages / dv:,.0f} msg/s, {median})")
        print(f"ratio dataverse/sqlite:   {dv / base:.2f}")
        print(
            f"HTTP requests: {last['http_requests']} in all; writes {last['writes']} "
            f"($batch change sets, target <= 10), reads {last['reads']} (batched lookups), "
            f"{last['batch_parts']} requests inside $batch bodies"
        )

        # The 429 storm: every third request throttled with Retry-After.
        url = f"sqlite:///{work / 'crm.sqlite'}"
        init_crm(url, demo=True, force=True)
        storm = build_maildir(work / "storm", args.storm_messages)
        with FakeDataverse(sqlite_path(url)) as server:
            calm, _ = route(server.crm_url(), fresh_copy(storm, work / "Maildir"), work, 10)
        init_crm(url, demo=True, force=True)
        with FakeDataverse(sqlite_path(url)) as server:
            server.faults.throttle_every = 3
            server.faults.throttle_retry_after = args.retry_after
            stormy, counts = route(server.crm_url(), fresh_copy(storm, work / "Maildir"), work, 10)
            log = server.log.summary()
            from emailrouter_lib.crm import SqliteCrm

            db = SqliteCrm(sqlite_path(url))
            stored = sum(1 for r in db.rows("email") if (r["subject"] or "").startswith("bench"))
            db.close()
        print(
            f"429 storm ({args.storm_messages} messages, batch 10, every 3rd request 429 "
            f"Retry-After {args.retry_after:g} s): {calm:.2f} s calm -> {stormy:.2f} s, "
            f"{log['throttled']} throttled of {log['http_requests']} requests; outcomes {counts}; "
            f"{stored} emails stored (expected {args.storm_messages}: nothing lost or doubled)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
