"""Routing throughput against bare parsing, and its cost as the CRM grows.

Builds a Maildir of N copies of the corpus messages, each with a fresh Message-ID, and in the same
run times (a) bare ``email.message_from_bytes(policy=compat32)`` over the same bytes and (b) the
full route into a fresh SQLite CRM (parse, classify, correlate, resolve, create, ledger).
Repeats and prints medians, the ratio route/parse (target >= 0.35), peak RSS, and the
per-message cost with 100,000 contacts against 1,000 (target <= 1.2x).

    python benchmarks/routing.py [--messages 5000] [--repeat 3] [--corpus DIR] [--tracked-only]

``--tracked-only`` keeps only the messages that routing creates (IPM.Note and auto-replies), the
costliest path; by default the corpus is taken as it is, bounces and receipts included.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from emailrouter_lib import routing
from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.crm.demo import add_bulk_contacts
from emailrouter_lib.errors import MessageError
from emailrouter_lib.mail.classify import infer_message_class, is_tracked
from emailrouter_lib.mail.message import ParsedMessage

ROOT = Path(__file__).resolve().parents[1]
VENDORED = ROOT / "emailrouter_lib" / "demo" / "data" / "corpus"
SHARED = ROOT.parent / "shared" / "corpora"
MESSAGE_ID = re.compile(
    rb"^message-id:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*", re.IGNORECASE | re.MULTILINE
)
SKIP_SUFFIXES = {".json", ".yml", ".yaml", ".md", ".txt-license"}


def corpus_messages(folder: Path) -> list[bytes]:
    """Every RFC 822 file under *folder* (not Outlook .msg OLE files, licences or oracles)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() in SKIP_SUFFIXES or "LICENSE" in path.name:
            continue
        if path.name in ("NOTICE.md", "README.md", "MANIFEST.tsv"):
            continue
        raw = path.read_bytes()
        if raw[:4] == b"\xd0\xcf\x11\xe0" or b":" not in raw[:200]:
            continue
        found.append(raw)
    return found


def is_routed_class(raw: bytes) -> bool:
    try:
        return is_tracked(infer_message_class(ParsedMessage.from_bytes(raw)).name)
    except MessageError:
        return False


def with_fresh_id(raw: bytes, n: int) -> bytes:
    """The message with its own Message-ID replaced (only in the header block) by a new one."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    split = min(ends) if ends else len(raw)
    head = MESSAGE_ID.sub(b"", raw[:split], count=1)
    return f"Message-ID: <bench-{n}@benchmark.invalid>\r\n".encode() + head + raw[split:]


def build_maildir(target: Path, messages: list[bytes], count: int) -> list[bytes]:
    for sub in ("new", "cur", "tmp"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        raw = with_fresh_id(messages[n % len(messages)], n)
        (target / "new" / f"{1700000000 + n}.bench{n}.localhost").write_bytes(raw)
        written.append(raw)
    return written


def time_bare_parse(blobs: list[bytes]) -> float:
    start = time.perf_counter()
    for raw in blobs:
        email.message_from_bytes(raw, policy=email.policy.compat32)
    return time.perf_counter() - start


def time_route(workdir: Path, maildir: Path, contacts: int) -> tuple[float, dict[str, int]]:
    crm_url = f"sqlite:///{workdir / f'crm-{contacts}.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    crm = open_crm(crm_url)
    add_bulk_contacts(crm, contacts)
    crm.close()
    ledger = workdir / f"ledger-{contacts}.sqlite"
    for stale in workdir.glob(ledger.name + "*"):
        stale.unlink()
    start = time.perf_counter()
    result = routing.run(
        {
            "mailboxes": [f"maildir://{maildir}?owner=queue:support@contoso.example"],
            "crm": crm_url,
            "ledger": str(ledger),
            "quarantine_dir": str(workdir / "quarantine"),
            "progress": False,
            "batch_size": 500,
        }
    )
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"routing failed: {result}")
    return elapsed, result.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=SHARED if SHARED.is_dir() else VENDORED)
    parser.add_argument("--tracked-only", action="store_true", help="only messages routing creates")
    args = parser.parse_args(argv)

    messages = corpus_messages(args.corpus)
    if args.tracked_only:
        messages = [raw for raw in messages if is_routed_class(raw)]
    if not messages:
        print(f"no messages under {args.corpus}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="er-bench-"))
    try:
        maildir = workdir / "Maildir"
        blobs = build_maildir(maildir, messages, args.messages)
        total_mb = sum(map(len, blobs)) / 1e6
        print(f"corpus: {len(messages)} distinct messages from {args.corpus}")
        print(f"maildir: {args.messages} messages, {total_mb:.1f} MB")

        parse_rates, route_rates, cost_small, cost_large = [], [], [], []
        counts: dict[str, int] = {}
        for round_ in range(args.repeat):
            parse_rates.append(len(blobs) / time_bare_parse(blobs))
            seconds, counts = time_route(workdir, maildir, 1_000)
            route_rates.append(len(blobs) / seconds)
            cost_small.append(seconds / len(blobs))
            seconds_large, _ = time_route(workdir, maildir, 100_000)
            cost_large.append(seconds_large / len(blobs))
            print(
                f"round {round_ + 1}: parse {parse_rates[-1]:,.0f} msg/s,"
                f" route {route_rates[-1]:,.0f} msg/s"
                f" (1k contacts), {len(blobs) / seconds_large:,.0f} msg/s (100k contacts)"
            )
        parse = statistics.median(parse_rates)
        route = statistics.median(route_rates)
        small = statistics.median(cost_small)
        large = statistics.median(cost_large)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"outcomes (last round): {counts}")
        print(f"bare parse (compat32): {parse:,.0f} msg/s (median of {args.repeat})")
        print(f"full route into SQLite: {route:,.0f} msg/s (median of {args.repeat})")
        print(f"ratio route/parse: {route / parse:.2f} (target >= 0.35)")
        print(
            f"per-message cost, 1,000 contacts: {small * 1e6:,.0f} us;"
            f" 100,000 contacts: {large * 1e6:,.0f} us"
        )
        print(f"ratio 100k/1k contacts: {large / small:.2f} (target <= 1.2)")
        print(f"peak RSS: {peak_mb:,.0f} MB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
