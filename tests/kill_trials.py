"""SIGKILL trials: ``emailrouter route`` killed for real at random moments, then rerun to the end.

Where ``test_routing_exactly_once.py`` kills at each named crash point, a trial here kills the
process wherever it happens to be (mid-batch, mid-commit, mid-delete) once the CRM has a
randomly chosen number of the trial's messages, as often as asked, then reruns it until it exits
cleanly. Nothing may be lost or doubled: every message once in the CRM, the mailbox handled as
``after=`` says. Used by ``test_routing_sigkill.py`` (a few small trials) and
``benchmarks/sigkill.py`` (the issue's 15 kills across 10 trials of 2,000 messages).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from routing_helpers import (
    CRASH_LEASE_SECONDS,
    ROOT,
    demo_crm,
    drop,
    maildir_url,
    message,
    route_in_subprocess,
)

SUPPORT = "queue:support@contoso.example"


@dataclass
class TrialResult:
    messages: int
    kills: int  # runs that really died by SIGKILL (a run that finished first is not counted)
    reruns: int
    lost: list[str]  # Message-IDs of the trial not in the CRM
    doubled: dict[str, int]  # Message-ID -> activities, where more than one
    mailbox_problem: str | None  # what is wrong with the Maildir after the last run
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled and self.mailbox_problem is None


def _routed(crm_path: Path) -> Counter:
    """Message-IDs of the trial's messages in the CRM; read while the router may be writing."""
    for _ in range(50):
        try:
            with sqlite3.connect(f"file:{crm_path}?mode=ro", uri=True, timeout=5) as conn:
                rows = conn.execute(
                    "SELECT messageid FROM email WHERE messageid LIKE '%@trial.example>'"
                ).fetchall()
            return Counter(row[0] for row in rows)
        except sqlite3.OperationalError:  # busy, or the schema is not there yet
            time.sleep(0.05)
    raise RuntimeError(f"cannot read {crm_path}")


def _start(crm_url: str, url: str, batch_size: int) -> subprocess.Popen:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("EMAILROUTER_CRASH_AT", None)
    args = [sys.executable, "-m", "emailrouter_lib.cli", "route", "--crm", crm_url, "--quiet"]
    # A killed run holds its mailbox's lease until it expires: short leases, waited out below.
    args += ["--mailbox", url, "--batch-size", str(batch_size)]
    args += ["--lease-seconds", str(CRASH_LEASE_SECONDS)]
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill_when(
    proc: subprocess.Popen, crm_path: Path, target: int, delay: float, timeout: float
) -> bool:
    """SIGKILL *proc* *delay* s after the CRM holds *target* trial messages; False when it
    exited first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if crm_path.exists() and sum(_routed(crm_path).values()) >= target:
            time.sleep(delay)  # so the kill lands anywhere in the next batch, not just after
            break
        time.sleep(0.005)  # a fast run routes a batch in a few ms: look often, or miss it
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    return proc.wait() == -signal.SIGKILL


def run_trial(
    folder: Path,
    *,
    messages: int,
    kills: int,
    after: str,
    seed: int,
    batch_size: int = 10,
    timeout: float = 300.0,
) -> TrialResult:
    """Drop *messages*, route with *kills* SIGKILLs at random progress points, rerun, count."""
    rng = random.Random(seed)
    started = time.perf_counter()
    crm_url = demo_crm(folder)
    crm_path = folder / "crm.sqlite"
    maildir = folder / "Maildir"
    ids = [f"<m{n}.{seed}@trial.example>" for n in range(messages)]
    drop(maildir, *(message(f"trial {seed} message {n}", message_id=i) for n, i in enumerate(ids)))
    url = maildir_url(maildir, owner=SUPPORT, after=after)
    killed = 0
    attempts = 0
    while killed < kills and attempts < kills * 4:
        attempts += 1
        done = sum(_routed(crm_path).values())
        if done >= messages:
            break  # nothing left to kill a run in
        # within this kill's share of what is left, so a later kill still finds work to cut
        target = done + rng.randint(1, max(1, (messages - done) // (kills - killed + 1)))
        proc = _start(crm_url, url, batch_size)
        # the delay stays within about one batch of a fast run, so the kill still lands mid-run
        if _kill_when(proc, crm_path, target, rng.uniform(0, 0.01), timeout):
            killed += 1
            time.sleep(CRASH_LEASE_SECONDS + 0.2)  # the killed run's lease expires
    reruns = 0
    while True:  # rerun until a run finishes cleanly
        reruns += 1
        done = route_in_subprocess(crm_url, url, extra=("--batch-size", str(batch_size)))
        if done.returncode == 0 or reruns >= 3:
            break
    routed = _routed(crm_path)
    return TrialResult(
        messages=messages,
        kills=killed,
        reruns=reruns,
        lost=[i for i in ids if i not in routed],
        doubled={i: n for i, n in routed.items() if n > 1},
        mailbox_problem=_mailbox_problem(maildir, after, messages)
        or (None if done.returncode == 0 else f"the last rerun failed: {done.stderr[-500:]}"),
        seconds=time.perf_counter() - started,
    )


def _mailbox_problem(maildir: Path, after: str, messages: int) -> str | None:
    def count(folder: Path) -> int:
        return sum(
            len(list((folder / sub).iterdir())) for sub in ("new", "cur") if (folder / sub).is_dir()
        )

    inbox = count(maildir)
    moved = count(maildir / ".Processed")
    expected = {"delete": (0, 0), "leave": (messages, 0), "move:Processed": (0, messages)}[after]
    if (inbox, moved) != expected:
        return f"after={after}: {inbox} item(s) left in the inbox, {moved} in .Processed"
    return None
