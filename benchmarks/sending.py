"""Outgoing throughput: 1,000 CRM emails sent to a local aiosmtpd sink, one connection reused
against a new connection per message.

Each repeat makes a fresh demo CRM holding N Pending Send emails (Alice to bulk contacts, HTML
body, one small attachment on every tenth) and runs the whole outgoing batch: selection, token
allocation, the send ledger's write-ahead records, claim, MIME building, SMTP, and the CRM
status writes. The sink runs in this process (a thread) and keeps only a count. Prints medians
in messages/s and the ratio reused / per-message (measured in the same run).

    python benchmarks/sending.py [--emails 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

from emailrouter_lib import routing
from emailrouter_lib.crm import SqliteCrm, init_crm, sqlite_path
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.base import (
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    STATUS_PENDING_SEND,
    NewAttachment,
    NewEmail,
    NewParty,
)


class CountingSink:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 OK"


def start_sink() -> tuple[CountingSink, Controller, int]:
    """An aiosmtpd sink that only counts, on a free loopback port: (sink, controller, port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    return sink, controller, port


def make_crm(folder: Path, emails: int) -> str:
    url = init_crm(f"sqlite:///{folder / 'crm.sqlite'}", demo=True, force=True)
    seed.add_bulk_contacts(sqlite_path(url), emails)
    with SqliteCrm(sqlite_path(url)) as crm:
        crm.create_emails(
            [
                NewEmail(
                    activityid=str(uuid.uuid4()),
                    subject=f"Your order {n} has shipped",
                    description=f"<p>Order <b>{n}</b> left the warehouse today.</p>",
                    messageid=None,
                    directioncode=True,
                    statuscode=STATUS_PENDING_SEND,
                    sender=seed.ALICE_ADDRESS,
                    mimetype="text/html",
                    acceptingentityid=None,
                    parties=[
                        NewParty(
                            PARTICIPATION_SENDER, seed.ALICE_ADDRESS, seed.ALICE.id, "systemuser"
                        ),
                        NewParty(PARTICIPATION_TO, f"bulk-{n}@bulk.example"),
                    ],
                    attachments=(
                        [NewAttachment(f"invoice-{n}.csv", "text/csv", b"item,price\nx,1\n" * 20)]
                        if n % 10 == 0
                        else []
                    ),
                )
                for n in range(emails)
            ]
        )
        with crm.transaction() as conn:  # only the benchmark's emails are pending
            conn.execute("UPDATE email SET statuscode = 3 WHERE activityid IN (?, ?, ?)",
                         [e.activityid for e in seed.PENDING_EMAILS])  # fmt: skip
    return url


def timed_run(emails: int, transport: str, sink: CountingSink) -> float:
    with tempfile.TemporaryDirectory(prefix="send-bench-") as folder:
        crm_url = make_crm(Path(folder), emails)
        before = sink.messages
        started = time.perf_counter()
        result = routing.run(
            {"crm": crm_url, "directions": ["outgoing"], "transports": [transport],
             "progress": False, "send_limit": emails, "batch_size": 200}
        )  # fmt: skip
        seconds = time.perf_counter() - started
        sent = result.outgoing_counts.get("sent", 0)
        if sent != emails or sink.messages - before != emails:
            raise SystemExit(f"expected {emails} sent, got {result.outgoing_counts}")
        return emails / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    sink, controller, port = start_sink()
    base = f"smtp://127.0.0.1:{port}?helo=bench.example"
    try:
        reused, fresh = [], []
        for _ in range(args.repeat):  # interleaved, so drift hits both alike
            reused.append(timed_run(args.emails, f"{base}&per_connection={args.emails}", sink))
            fresh.append(timed_run(args.emails, f"{base}&per_connection=1", sink))
    finally:
        controller.stop()
    r, f = statistics.median(reused), statistics.median(fresh)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{x:.0f}" for x in values)

    print(f"emails per run            {args.emails} (repeats: {args.repeat}, medians)")
    print(f"one connection reused     {r:6.0f} messages/s   runs: {runs(reused)}")
    print(f"a connection per message  {f:6.0f} messages/s   runs: {runs(fresh)}")
    print(f"ratio reused / per-message: {r / f:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
