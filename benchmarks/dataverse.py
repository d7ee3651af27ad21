"""Routing over the Dataverse Web API (the fake server on loopback) against routing into SQLite.

Incoming: routes N messages (default 1,000) to the demo support queue, in the same run, (a) into
the SQLite CRM directly (the baseline) and (b) through the Dataverse backend into the fake Web API
over the same schema, then (c) the same through a 429 storm (every third request throttled with
``Retry-After``). Prints medians of the wall times, the ratio to the baseline, and the request
counts from the fake's log, per 1,000 routed messages: writes ($batch change sets, goal <= 10)
and reads (batched lookups).

Outgoing: N Pending Send emails (benchmarks/sending.py's CRM: Alice to bulk contacts, an
attachment on every tenth) sent through the Dataverse backend to an SMTP sink in this process
(Pending Send -> Sent), against the same through SQLite; prints requests per 1,000 sent emails.

Connection cost: what a run costs once (opening the CRM, reading the organisation, any metadata
the client reads at connect) against what each routing batch costs, from two runs of one and two
batches (fixed = 2 x one - two, per batch = two - one), and again with a warm state file (what a
client caching per organisation saves on the next run).

    python benchmarks/dataverse.py [--messages 1000] [--emails 1000] [--repeat 3]
        [--batch-size 200] [--storm-messages 30] [--retry-after 1]
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
sys.path.insert(0, str(ROOT))  # this checkout's emailrouter_lib, not whichever the venv installed
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dataverse_server import FakeDataverse  # noqa: E402
from routing_helpers import drop, message  # noqa: E402
from sending import CountingSink, make_crm, start_sink  # noqa: E402

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


def per_1000(count: int, of: int) -> str:
    return f"{count * 1000 / of:,.1f}" if of else "-"


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


def send(crm_url: str, emails: int, transport: str, sink: CountingSink, work: Path) -> float:
    """Send every Pending Send email of the CRM through *transport*; the wall time."""
    for stale in work.glob("*ledger.sqlite*"):
        stale.unlink()
    before = sink.messages
    started = time.perf_counter()
    result = routing.run(
        {"crm": crm_url, "directions": ["outgoing"], "transports": [transport],
         "ledger": str(work / "ledger.sqlite"), "send_ledger": str(work / "send-ledger.sqlite"),
         "progress": False, "send_limit": emails, "batch_size": 200}
    )  # fmt: skip
    seconds = time.perf_counter() - started
    sent = result.outgoing_counts.get("sent", 0)
    if sent != emails or sink.messages - before != emails:
        raise SystemExit(f"expected {emails} sent, got {result.outgoing_counts}: {result.failures}")
    return seconds


def outgoing(work: Path, emails: int, repeat: int) -> None:
    """Pending Send -> Sent through SQLite and through the Dataverse backend into the fake."""
    sink, controller, port = start_sink()
    transport = f"smtp://127.0.0.1:{port}?helo=bench.example&per_connection={emails}"
    sqlite_times, dataverse_times, logs = [], [], []
    try:
        for round_ in range(repeat):
            folder = work / f"send-{round_}"
            folder.mkdir()
            url = make_crm(folder, emails)
            sqlite_times.append(send(url, emails, transport, sink, folder))
            url = make_crm(folder, emails)
            with FakeDataverse(sqlite_path(url)) as server:
                crm_url = server.crm_url(state=str(folder / "dataverse-state.sqlite"))
                dataverse_times.append(send(crm_url, emails, transport, sink, folder))
                logs.append(server.log.summary())
    finally:
        controller.stop()
    base, dv, log = statistics.median(sqlite_times), statistics.median(dataverse_times), logs[-1]
    print(f"outgoing: {emails} Pending Send emails -> Sent (SMTP sink, median of {repeat})")
    print(f"  sqlite direct:          {base:.2f} s ({emails / base:,.0f} emails/s)")
    print(f"  dataverse via the fake: {dv:.2f} s ({emails / dv:,.0f} emails/s)")
    print(
        f"  HTTP requests per 1,000 sent emails: {per_1000(log['http_requests'], emails)} in all; "
        f"writes {per_1000(log['writes'], emails)}, reads {per_1000(log['reads'], emails)}, "
        f"{per_1000(log['batch_parts'], emails)} requests inside $batch bodies "
        f"(raw: {log})"
    )


def connection_cost(work: Path, batch_size: int) -> None:
    """Requests a run costs once against what each routing batch costs (incoming).

    Each run opens its own connection (a new DataverseCrm). The warm run is a second run against
    the same server and state file, as the next cron run would be: what the client caches per
    organisation (the metadata) it does not read again."""
    keys = ("http_requests", "writes", "reads")

    def run(messages: int, name: str, again: int = 0) -> tuple[dict, dict | None, list[str]]:
        folder = work / name
        url = f"sqlite:///{folder / 'crm.sqlite'}"
        folder.mkdir(parents=True)
        init_crm(url, demo=True, force=True)
        state = str(folder / "dataverse-state.sqlite")
        with FakeDataverse(sqlite_path(url)) as server:
            route(server.crm_url(state=state), build_maildir(folder / "a", messages), folder,
                  batch_size)  # fmt: skip
            first = server.log.summary()
            definitions = sorted(
                {p for e in server.log for _, p, _ in e.parts if p.startswith("EntityDefinitions")}
                | {e.path.rsplit("/", 1)[-1] for e in server.log if not e.is_batch}
            )
            warm = None
            if again:
                route(server.crm_url(state=state), build_maildir(folder / "b", again), folder,
                      batch_size)  # fmt: skip
                total = server.log.summary()
                warm = {k: total[k] - first[k] for k in keys}
        return first, warm, definitions

    one, warm, paths = run(batch_size, "conn-1", again=batch_size)
    two, _, _ = run(2 * batch_size, "conn-2")
    fixed = {k: 2 * one[k] - two[k] for k in keys}
    each = {k: two[k] - one[k] for k in keys}
    fixed_warm = {k: warm[k] - each[k] for k in keys} if warm else None
    print(f"connection cost (incoming, routing batches of {batch_size} messages):")
    print(f"  one batch {one['http_requests']} requests, two batches {two['http_requests']}")
    print(
        f"  once per connection: {fixed['http_requests']} requests (writes {fixed['writes']}, "
        f"reads {fixed['reads']}); per batch: {each['http_requests']} (writes {each['writes']}, "
        f"reads {each['reads']})"
    )
    if fixed_warm is not None:
        print(
            f"  once per connection, next run on the same org and state file: "
            f"{fixed_warm['http_requests']} requests ({warm['http_requests']} for its one batch)"
        )
    print(f"  read outside $batch or as metadata in the first run: {paths}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--emails", type=int, default=1000, help="outgoing emails to send")
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
                crm_url = server.crm_url(state=str(work / f"dataverse-state-{round_}.sqlite"))
                seconds, counts_dv = route(
                    crm_url, fresh_copy(source, work / "Maildir"), work, args.batch_size
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
        n = args.messages
        print(
            f"HTTP requests per 1,000 routed messages: {per_1000(last['http_requests'], n)}; "
            f"writes {per_1000(last['writes'], n)} (goal <= 10), "
            f"reads {per_1000(last['reads'], n)} (batched lookups)"
        )
        outgoing(work, args.emails, args.repeat)
        connection_cost(work, args.batch_size)

        # The 429 storm: every third request throttled with Retry-After.
        url = f"sqlite:///{work / 'crm.sqlite'}"
        init_crm(url, demo=True, force=True)
        storm = build_maildir(work / "storm", args.storm_messages)
        with FakeDataverse(sqlite_path(url)) as server:
            calm_url = server.crm_url(state=str(work / "dataverse-state-calm.sqlite"))
            calm, _ = route(calm_url, fresh_copy(storm, work / "Maildir"), work, 10)
        init_crm(url, demo=True, force=True)
        with FakeDataverse(sqlite_path(url)) as server:
            server.faults.throttle_every = 3
            server.faults.throttle_retry_after = args.retry_after
            storm_url = server.crm_url(state=str(work / "dataverse-state-storm.sqlite"))
            stormy, counts = route(storm_url, fresh_copy(storm, work / "Maildir"), work, 10)
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
