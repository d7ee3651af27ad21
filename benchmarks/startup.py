"""What a cron job pays before and around routing: start-up of the ``emailrouter`` command.

In the same run, on this machine, medians of ``--repeat`` runs of:

* ``import emailrouter_lib`` and ``import emailrouter_lib.cli`` in a fresh interpreter,
* ``emailrouter --help`` (goal < 0.3 s),
* ``emailrouter route`` on an empty Maildir into a demo SQLite CRM (goal < 0.6 s),
* ``emailrouter route`` of ``--messages`` corpus messages (default 3,000) from a Maildir as one
  process, against a bare ``email.message_from_bytes`` (compat32) parse of the same bytes
  (goal: the route at >= 0.5x the speed of the parse, i.e. parse time / route time >= 0.5).

    python benchmarks/startup.py [--repeat 5] [--messages 3000]

Each command runs as a real subprocess of the installed Python, as cron would start it, so the
figures include the interpreter's own start (printed too, as ``python -c pass``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from routing import SHARED, VENDORED, build_maildir, corpus_messages, time_bare_parse

from emailrouter_lib.crm import init_crm

COMMAND = [sys.executable, "-m", "emailrouter_lib.cli"]


def seconds(argv: list[str], repeat: int) -> float:
    """Median wall time of *argv* run *repeat* times; a non-zero exit aborts the benchmark."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[2:])} exited {done.returncode}: {done.stderr[-500:]}")
    return statistics.median(times)


def route_argv(work: Path, maildir: Path, name: str) -> list[str]:
    crm = f"sqlite:///{work / (name + '.sqlite')}"
    init_crm(crm, demo=True, force=True)
    for stale in work.glob(f"{name}-ledger.sqlite*"):
        stale.unlink()
    return [
        *COMMAND,
        "route",
        "--mailbox",
        f"maildir://{maildir}?owner=queue:support@contoso.example",
        "--crm",
        crm,
        "--ledger",
        str(work / f"{name}-ledger.sqlite"),
        "--batch-size",
        "500",
        "--quiet",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="emailrouter-startup-"))
    try:
        python = seconds([sys.executable, "-c", "pass"], args.repeat)
        library = seconds([sys.executable, "-c", "import emailrouter_lib"], args.repeat)
        cli = seconds([sys.executable, "-c", "import emailrouter_lib.cli"], args.repeat)
        help_ = seconds([*COMMAND, "--help"], args.repeat)
        empty = work / "empty"
        for sub in ("new", "cur", "tmp"):
            (empty / sub).mkdir(parents=True)
        empty_route = statistics.median(
            seconds(route_argv(work, empty, f"empty{n}"), 1) for n in range(args.repeat)
        )
        print(f"python -c pass:              {python:.3f} s (median of {args.repeat})")
        print(f"import emailrouter_lib:      {library:.3f} s")
        print(f"import emailrouter_lib.cli:  {cli:.3f} s")
        print(f"emailrouter --help:          {help_:.3f} s (goal < 0.3 s)")
        print(f"route, empty Maildir:        {empty_route:.3f} s (goal < 0.6 s)")

        corpus = corpus_messages(SHARED) if SHARED.is_dir() else corpus_messages(VENDORED)
        full = work / "full"
        blobs = build_maildir(full, corpus, args.messages)
        parse, route = [], []
        for n in range(max(1, args.repeat // 2)):
            parse.append(time_bare_parse(blobs))
            route.append(seconds(route_argv(work, full, f"full{n}"), 1))
            # the route moved every message to cur/: put them back for the next round
            for path in (full / "cur").iterdir():
                path.rename(full / "new" / path.name.split(":")[0])
        parse_s, route_s = statistics.median(parse), statistics.median(route)
        print(
            f"route {args.messages} messages:  {route_s:.2f} s as one process; bare parse "
            f"{parse_s:.2f} s; speed ratio {parse_s / route_s:.2f}x (goal >= 0.5x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
