"""Audit of many small Maildir mailboxes: time at concurrency 1 and 8, and the report's size.

Builds N Maildirs (default 2,000) of a few small messages each (a tracked note, an auto-reply,
a meeting request, a bounce), then in the same run times (a) the baseline: one thread reading
and parsing every message file with the stdlib (``os.scandir`` + ``email.message_from_bytes``),
and (b) the full audit (listing, reading newest first, message-class inference, ledger lookup,
result tables) at concurrency 1 and 8, plus writing the artifacts. Prints medians, the ratios to
the baseline, and the sizes of report.html (cut to the first rows, problems first), audit.xlsx
and the CSVs (every row).

    python benchmarks/audit.py [--mailboxes 2000] [--messages 4] [--repeat 3]

Local Maildirs are CPU-bound under the GIL, so concurrency gains little here; it pays off where
the time is spent waiting on servers (IMAP/POP3/EWS round trips), which this benchmark does not
model.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from emailrouter_lib import audit
from emailrouter_lib.mailboxes.url import local_mailbox_url

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "audit"


def sample_messages(count: int) -> list[bytes]:
    now = datetime.now(UTC)
    kinds = [
        ("Question about my order", {}),
        ("Out of office", {"Auto-Submitted": "auto-replied"}),
        ("Weekly sync", {"calendar": "REQUEST"}),
        ("Undelivered Mail Returned to Sender", {"bounce": "1"}),
    ]
    out = []
    for n in range(count):
        subject, extra = kinds[n % len(kinds)]
        msg = EmailMessage()
        msg["From"] = "carol@fabrikam.example" if not extra.get("bounce") else "MAILER-DAEMON@x"
        msg["To"] = "support@contoso.example"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now - timedelta(days=n))
        msg["Message-ID"] = f"<bench.{n}@audit.example>"
        for name, value in extra.items():
            if name[0].isupper():
                msg[name] = value
        msg.set_content("Hello,\n\nThis is a small message for the audit benchmark.\n")
        if extra.get("calendar"):
            msg.add_alternative(
                "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n", subtype="calendar"
            )
        out.append(msg.as_bytes())
    return out


def build(mailboxes: int, messages: int) -> list[str]:
    shutil.rmtree(WORK, ignore_errors=True)
    bodies = sample_messages(messages)
    urls = []
    for m in range(mailboxes):
        root = WORK / "mail" / f"user{m:05d}"
        for sub in ("new", "cur", "tmp"):
            (root / sub).mkdir(parents=True)
        for n, body in enumerate(bodies):
            (root / "new" / f"{1_700_000_000 + n}.M{n}P{m}.bench").write_bytes(body)
        urls.append(local_mailbox_url(root, owner=f"user:user{m:05d}@contoso.example"))
    return urls


def baseline(root: Path) -> int:
    parsed = 0
    for mailbox in os.scandir(root):
        for sub in ("new", "cur"):
            for entry in os.scandir(Path(mailbox.path) / sub):
                with open(entry.path, "rb") as handle:
                    email.message_from_bytes(handle.read(), policy=email.policy.compat32)
                parsed += 1
    return parsed


def timed(fn, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=4, help="messages per mailbox")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    urls = build(args.mailboxes, args.messages)
    total = args.mailboxes * args.messages
    built = time.perf_counter() - started
    print(f"built {args.mailboxes} Maildirs, {total} messages in {built:.1f} s")

    base, parsed = timed(lambda: baseline(WORK / "mail"), args.repeat)
    print(f"baseline  read+parse {parsed} files, 1 thread: {base:7.2f} s (median of {args.repeat})")
    results = {}
    for concurrency in (1, 8):
        seconds, result = timed(
            lambda c=concurrency: audit.run(
                {"mailboxes": urls, "since": None, "max_concurrency": c, "progress": False}
            ),
            args.repeat,
        )
        results[concurrency] = (seconds, result)
        states = result.counts
        print(
            f"audit     concurrency {concurrency}:                {seconds:7.2f} s  "
            f"{args.mailboxes / seconds:6.0f} mailboxes/s  {seconds / base:4.2f}x baseline  "
            f"states {states}"
        )
    one, eight = results[1][0], results[8][0]
    print(f"speed-up  concurrency 8 vs 1: {one / eight:.2f}x")

    result = results[8][1]
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    artifacts = result.write_artifacts(run_dir)
    print(f"artifacts written in {time.perf_counter() - started:.2f} s:")
    for name, path in sorted(artifacts.items()):
        print(f"  {name:22} {path.stat().st_size / 1024:9.1f} KiB")
    report_mb = artifacts["report.html"].stat().st_size / 1_000_000
    print(f"report.html {report_mb:.2f} MB ({'under' if report_mb < 3 else 'OVER'} 3 MB)")
    return 0 if report_mb < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
