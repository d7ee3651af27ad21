"""Rule deployment costs against the protocol-level fake Exchange: requests per mailbox, wall time.

Starts the fake server of ``tests/ews_server`` on loopback (same process) with N mailboxes (a third
of them carrying a user's own rule, which must stay) and measures, in the same run:

1. **Requests per mailbox** from the server's log: first apply (plan read + one update) and an
   unchanged re-run (one read, no changing request), against the baseline of exchangelib's own rule
   API (``account.rules`` + ``account.create_rule``, which re-reads every rule after creating one).
2. **Wall time** of the first apply and of the unchanged re-run at concurrency 1 and 8 (medians of
   ``--repeat`` runs, every repeat on freshly emptied mailboxes) and the ratio 8 : 1.

    python benchmarks/rules.py [--mailboxes 1000] [--repeat 3] [--latency-ms 0]

``--latency-ms`` makes the fake answer each request that much later (a real Exchange takes tens of
milliseconds per rule request; on loopback the client's own cost dominates). Figures are
client-side costs on loopback with the server in the same process (2 noisy cores); they are not
Exchange numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ews_server import FakeEws  # noqa: E402
from fixtures_rules import rule_xml, user_address  # noqa: E402

from emailrouter_lib import rules  # noqa: E402
from emailrouter_lib.mailboxes.ews_account import connect  # noqa: E402
from emailrouter_lib.mailboxes.ews_http import close_ews_connections  # noqa: E402
from emailrouter_lib.mailboxes.ews_rules import _to_ews  # noqa: E402
from emailrouter_lib.mailboxes.ews_url import parse_ews_url  # noqa: E402
from emailrouter_lib.rules.targets import Target  # noqa: E402

SERVICE, PASSWORD, FORWARD = "svc@contoso.example", "bench-pw", "crm-forward@contoso.example"


def start(count: int, latency: float) -> FakeEws:
    ews = FakeEws(auth=("Basic",)).start()
    ews.add_user(SERVICE, PASSWORD, logons=("CONTOSO\\svc",), impersonation=True)
    ews.add_user(FORWARD)
    for n in range(count):
        ews.add_user(user_address(n))
    if latency:
        ews.inject("slow", seconds=latency, times=10**9)
    return ews


def reset(ews: FakeEws, count: int) -> None:
    """Every mailbox back to its starting state: no rule of ours, every third one a user's rule."""
    for n in range(count):
        ews.store.rules[user_address(n)].clear()
        if n % 3 == 0:
            ews.seed_rule(
                user_address(n), rule_xml("Mine", forward_to="me@home.example", except_from=None)
            )
    ews.clear_log()


def url(ews: FakeEws, concurrency: int) -> str:
    return (
        f"ews://CONTOSO%5Csvc@{ews.host}:{ews.port}/EWS/Exchange.asmx?password=env:BENCH_EWS_PW"
        f"&auth=basic&connections={concurrency}"
    )


def ours(ews: FakeEws, count: int, concurrency: int) -> float:
    targets = [Target(user_address(n), "user", "bench", FORWARD) for n in range(count)]
    started = time.perf_counter()
    result = rules.run(
        {
            "ews": url(ews, concurrency),
            "dry_run": False,
            "verify": False,
            "max_concurrency": concurrency,
        },
        targets=targets,
    )
    seconds = time.perf_counter() - started
    bad = [r for r in result.applied if r.outcome == "error"]
    assert not bad, bad[:3]
    return seconds


def stock(ews: FakeEws, count: int, concurrency: int) -> float:
    """exchangelib's own API (impersonation, where it works): read, create, read again."""
    spec = rules.RuleSpec(rules.DEFAULT_RULE_NAME, FORWARD).rule()

    def one(n: int) -> None:
        settings = parse_ews_url(url(ews, concurrency) + f"&mailbox={user_address(n)}")
        account = connect(settings, PASSWORD)
        if not any(r.display_name == spec.name for r in account.rules):
            rule = _to_ews(spec)
            rule.account = account
            account.create_rule(rule)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def per_mailbox(ews: FakeEws) -> tuple[int, int, int]:
    """(max requests per mailbox, max changing requests per mailbox, total)."""
    total = Counter(m for r in ews.requests() for m in r.mailboxes)
    changing = Counter(m for r in ews.requests("UpdateInboxRules") for m in r.mailboxes)
    return max(total.values()), max(changing.values(), default=0), sum(total.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    os.environ["BENCH_EWS_PW"] = PASSWORD
    n = args.mailboxes
    ews = start(n, args.latency_ms / 1000)
    try:
        print(
            f"{n} mailboxes, fake EWS on loopback, latency {args.latency_ms:g} ms/request, "
            f"medians of {args.repeat}"
        )
        print(
            f"{'run':38} {'conc':>4} {'wall s':>8} {'ms/mbx':>7} {'req/mbx':>8} "
            f"{'upd/mbx':>8} {'requests':>9}"
        )
        timings: dict[tuple[str, int], float] = {}
        for label, func, rerun in (
            ("first apply (ours: read + update)", ours, False),
            ("unchanged re-run (ours: read)", ours, True),
            ("baseline: exchangelib create_rule", stock, False),
        ):
            for concurrency in (1, 8):
                times, counts = [], None
                for _ in range(args.repeat):
                    reset(ews, n)
                    if rerun:
                        ours(ews, n, concurrency)
                        ews.clear_log()
                    times.append(func(ews, n, concurrency))
                    counts = per_mailbox(ews)
                    close_ews_connections()
                wall = statistics.median(times)
                timings[(label, concurrency)] = wall
                most, updates, total = counts
                print(
                    f"{label:38} {concurrency:>4} {wall:>8.2f} {wall / n * 1000:>7.2f} "
                    f"{most:>8} {updates:>8} {total:>9}"
                )
        for label in ("first apply (ours: read + update)", "unchanged re-run (ours: read)"):
            ratio = timings[(label, 1)] / timings[(label, 8)]
            print(f"speed-up at concurrency 8 vs 1, {label}: {ratio:.2f}x")
        base = timings[("baseline: exchangelib create_rule", 8)]
        first = timings[("first apply (ours: read + update)", 8)]
        print(
            f"first apply vs exchangelib create_rule at concurrency 8: {base / first:.2f}x faster"
        )
    finally:
        ews.stop()


if __name__ == "__main__":
    main()
