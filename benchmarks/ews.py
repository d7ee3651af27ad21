"""EWS costs against the protocol-level fake Exchange: requests per routing batch, ms per message.

Starts the fake server of ``tests/ews_server`` on loopback (same process), delivers N messages of
about ``--size`` bytes, and in the same run measures:

1. **Requests.** One routing batch of N messages through ``emailrouter_lib.routing.run`` into a
   fresh demo CRM: the server log's count per operation against the bound
   ceil(N/page) + ceil(N/chunk) + constant (one request per message would be N).
2. **ms per message with MIME fetch** (list + GetItem with MimeContent, no CRM), exchangelib as
   shipped (responses parsed one byte per read) against the scoped 64 KiB read adapter
   (``mailboxes/ews_http.py``), medians of ``--repeat`` runs and their ratio.

    python benchmarks/ews.py [--messages 1000] [--size 2000] [--repeat 5] [--page 100] [--chunk 10]

Figures are client-side costs on loopback (the server answers in well under a millisecond per
request); they are not Exchange numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ews_server import FakeEws  # noqa: E402

from emailrouter_lib import routing  # noqa: E402
from emailrouter_lib.crm import init_crm  # noqa: E402
from emailrouter_lib.mailboxes import parse_mailbox_url  # noqa: E402
from emailrouter_lib.mailboxes.ews_http import close_ews_connections  # noqa: E402
from emailrouter_lib.mailboxes.ews_source import EwsSource  # noqa: E402

MAILBOX = "support@contoso.example"


def make_message(n: int, size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "carol@fabrikam.example"
    msg["To"] = MAILBOX
    msg["Subject"] = f"Question {n}"
    msg["Date"] = "Mon, 04 Mar 2024 12:00:00 +0000"
    msg["Message-ID"] = make_msgid(domain="bench.example")
    line = f"line of message {n}, to fill it up to the size asked for.\n"
    msg.set_content(line * max(1, size // len(line)))
    return msg.as_bytes()


def server(count: int, size: int) -> FakeEws:
    ews = FakeEws().start()
    ews.add_user("svc@contoso.example", "Bench-1", logons=("CONTOSO\\svc",), impersonation=True)
    ews.add_user(MAILBOX)
    for n in range(count):
        ews.deliver(MAILBOX, make_message(n, size))
    return ews


def url(ews: FakeEws, page: int, chunk: int, **params: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return (
        f"ews://CONTOSO%5Csvc@{ews.host}:{ews.port}/EWS/Exchange.asmx?mailbox={MAILBOX}"
        f"&password=env:EWS_BENCH_PASSWORD&page={page}&chunk={chunk}{extra}"
    )


def fetch_all(ews: FakeEws, page: int, chunk: int, read_chunk: int) -> float:
    """Seconds to list the Inbox and fetch every message's MIME content."""
    settings = replace(parse_mailbox_url(url(ews, page, chunk)), read_chunk=read_chunk)
    close_ews_connections()
    started = time.perf_counter()
    with EwsSource(settings) as source:
        keys = [i.key for i in source.list_items()]
        total = sum(len(raw) for _, raw in source.fetch(keys))
    elapsed = time.perf_counter() - started
    assert total > 0
    return elapsed


def route_once(ews: FakeEws, count: int, page: int, chunk: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as folder:
        crm = f"sqlite:///{Path(folder) / 'crm.sqlite'}"
        init_crm(crm, demo=True, force=True)
        ews.clear_log()
        result = routing.run(
            {
                "mailboxes": [url(ews, page, chunk, owner="queue:support@contoso.example")],
                "crm": crm,
                "batch_size": count,
                "progress": False,
            }
        )
        assert result.counts.get("created") == count, result.counts
    return ews.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=10)
    args = parser.parse_args()
    os.environ["EWS_BENCH_PASSWORD"] = "Bench-1"
    n, page, chunk = args.messages, args.page, args.chunk

    ews = server(n, args.size)
    try:
        ops = route_once(ews, n, page, chunk)
        bound = math.ceil(n / page) + math.ceil(n / chunk)
        print(f"routing {n} messages (page={page}, chunk={chunk}), requests by operation:")
        for op, c in sorted(ops.items()):
            print(f"  {op:<12} {c:>6}")
        total = sum(ops.values())
        print(
            f"  total        {total:>6}   bound ceil(N/page)+ceil(N/chunk) = {bound} "
            f"+ constant {total - bound}   (one per message would be {n})"
        )

        timings: dict[int, list[float]] = {0: [], 64 * 1024: []}
        for _ in range(args.repeat):
            for read_chunk in timings:  # interleaved, so drift hits both alike
                timings[read_chunk].append(fetch_all(ews, page, chunk, read_chunk))
        stock = statistics.median(timings[0])
        fixed = statistics.median(timings[64 * 1024])
        print(f"\nlist + MIME fetch of {n} messages of ~{args.size} B, median of {args.repeat}:")
        print(f"  exchangelib as shipped (1-byte reads)  {stock * 1000 / n:7.3f} ms/message")
        print(f"  scoped 64 KiB read adapter             {fixed * 1000 / n:7.3f} ms/message")
        print(f"  speed-up                               {stock / fixed:7.2f}x")
    finally:
        ews.stop()
        close_ews_connections()


if __name__ == "__main__":
    main()
