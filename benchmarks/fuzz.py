"""Long fuzz runs: mutated corpus messages through the real route, checking the fuzz property.

The same cases, batches and property as ``tests/test_fuzz_routing.py`` (``tests/fuzz_mutations.py``
builds the cases, ``tests/fuzz_property.py`` routes a batch and checks it), at a scale the test
suite cannot afford. Cases go in batches of ``--batch`` into a fresh Maildir and demo SQLite CRM
each; every batch runs in its own forked process under a deadline (a hang is a violation too),
``--jobs`` at a time. A batch that fails as a whole (the run raised, the mailbox ended in an error,
the ordinary message was not created) is split: each of its cases is routed again alone, so the
case that breaks the run is named.

Prints cases/s, the outcomes histogram, the failure classes, and each violation with the seed that
replays it; a reproducer (batch.json, the message files, violations.txt) goes to
``benchmarks/_work/fuzz-failures/``. Replay one with ``--replay DIR``.

    python benchmarks/fuzz.py [--cases 50000] [--seed 1] [--batch 20] [--jobs 2]
                              [--timeout 120] [--slow 20] [--vendored-only] [--long-header-kb 20-50]
    python benchmarks/fuzz.py --replay benchmarks/_work/fuzz-failures/<name>
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fuzz_mutations  # noqa: E402
from fuzz_mutations import MUTATION_NAMES, Case, random_case  # noqa: E402
from fuzz_property import (  # noqa: E402
    Batch,
    BatchReport,
    check_batch,
    demo_crm_template,
    items_of,
    scratch_dir,
)

WORK = ROOT / "benchmarks" / "_work"
FAILURES = WORK / "fuzz-failures"
SUPPORT = "queue:support@contoso.example"
# Violations of the whole batch: the case behind them is found by routing each case alone.
BATCH_LEVEL = re.compile(
    r"^(run-raised|second-run-raised|artifacts-|mailbox-|ordinary-not-created|hang|slow)"
)
SAVED_PER_CLASS = 5


def make_batch(seed: int, index: int, size: int, names: list[str]) -> Batch:
    """Batch *index* of the run with *seed*: cases, a twin, copies, how it is routed."""
    rng = random.Random(f"{seed}:{index}")
    cases = [random_case(rng, names) for _ in range(size)]
    if size > 1 and rng.random() < 0.5:  # a twin: same source and mutations, another seed
        twin = rng.choice(cases[:-1])
        cases[-1] = Case(twin.source, twin.mutations, rng.getrandbits(32))
    return Batch(
        tuple(cases),
        copies=tuple(rng.sample(range(size), min(size, rng.choice((0, 1, 2))))),
        ordinary_at=rng.randrange(size + 1),
        after=rng.choice(("delete", "delete", "leave", "move:Processed")),
        owner=rng.choice((SUPPORT, SUPPORT, None)),
        batch_size=rng.choice((1, 5, 50, 200)),
        nonce=f"{seed}.{index}",
    )


def single(batch: Batch, n: int) -> Batch:
    """Case *n* of *batch* alone beside the ordinary message, routed the same way."""
    return Batch(
        (batch.cases[n],),
        after=batch.after,
        owner=batch.owner,
        batch_size=batch.batch_size,
        nonce=f"{batch.nonce}.alone{n}",
    )


# -- a job: one batch in its own process ---------------------------------------------------------


def _summary(report: BatchReport) -> dict:
    return {
        "outcomes": dict(report.outcomes),
        "seconds": report.seconds,
        "violations": [
            {
                "kind": v.kind,
                "detail": v.detail,
                "item": v.item.label if v.item else None,
                "case": asdict(v.item.case) if v.item and v.item.case else None,
            }
            for v in report.violations
        ],
        "crash_quarantines": [
            {"case": asdict(item.case) if item.case else None, "outcome": text}
            for item, text in report.crash_quarantines
        ],
    }


def _child(batch: Batch, sources: dict[str, bytes], folder: Path, out: Path) -> None:
    os.environ["TQDM_DISABLE"] = "1"
    try:
        summary = _summary(check_batch(batch, sources, folder))
    except Exception as exc:  # a bug of the harness, not of the router: say so
        summary = {"harness_error": f"{type(exc).__name__}: {exc}"}
    out.write_text(json.dumps(summary), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)


class Runner:
    """Keeps ``jobs`` forked batch processes going, each under the deadline."""

    def __init__(self, args: argparse.Namespace, sources: dict[str, bytes]):
        self.args, self.sources = args, sources
        self.work = scratch_dir("emailrouter-fuzz-")  # tmpfs when there is one
        demo_crm_template()  # before forking: every batch process copies this one
        self.context = multiprocessing.get_context("fork")
        self.outcomes: Counter = Counter()
        self.classes: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.crash_quarantines: Counter = Counter()
        self.violations = 0
        self.saved: Counter = Counter()
        self.cases = 0
        self.slowest = (0.0, "")
        self.batches_done = 0
        self.started = time.perf_counter()

    def progress(self) -> None:
        seconds = time.perf_counter() - self.started
        print(
            f"PROGRESS {self.cases} cases in {seconds:.0f} s ({self.cases / seconds:.1f}/s),"
            f" {self.violations} violation(s)",
            flush=True,
        )

    def run(self, batches: list[tuple[str, Batch, bool]]) -> None:
        queue = list(reversed(batches))  # (name, batch, is a case routed alone)
        running: dict[str, tuple[multiprocessing.Process, float, Batch, bool, Path]] = {}
        try:
            self._loop(queue, running)
        finally:  # stopped early: end the batch processes this run started
            for proc, *_ in running.values():
                proc.kill()
                proc.join()

    def _loop(self, queue: list, running: dict) -> None:
        while queue or running:
            while queue and len(running) < self.args.jobs:
                name, batch, alone = queue.pop()
                out = self.work / f"{name}.json"
                proc = self.context.Process(
                    target=_child, args=(batch, self.sources, self.work / name, out)
                )
                proc.start()
                running[name] = (proc, time.monotonic(), batch, alone, out)
            time.sleep(0.005)
            for name, (proc, started, batch, alone, out) in list(running.items()):
                elapsed = time.monotonic() - started
                if proc.is_alive() and elapsed < self.args.timeout:
                    continue
                if proc.is_alive():  # past the deadline: the mailbox would hang every run
                    proc.kill()
                    proc.join()
                    summary = {
                        "outcomes": {},
                        "seconds": elapsed,
                        "violations": [{"kind": "hang", "detail": f"> {self.args.timeout:.0f} s"}],
                    }
                else:
                    proc.join()
                    try:
                        summary = json.loads(out.read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        summary = {"harness_error": f"the batch process died ({proc.exitcode})"}
                shutil.rmtree(self.work / name, ignore_errors=True)
                del running[name]
                queue.extend(self._take(name, batch, alone, summary))
                if not alone:
                    self.batches_done += 1
                    if self.batches_done % 10 == 0:
                        self.progress()

    def _take(self, name: str, batch: Batch, alone: bool, summary: dict) -> list:
        """Count a finished job; return the single-case jobs that split a failed batch."""
        if "harness_error" in summary:
            raise SystemExit(f"harness error in {name}: {summary['harness_error']}")
        violations = summary["violations"]
        if summary["seconds"] > self.args.slow:  # a quadratic scan: every run of it would crawl
            violations.append({"kind": "slow", "detail": f"{summary['seconds']:.1f} s to route"})
        whole = [v for v in violations if BATCH_LEVEL.match(v["kind"])]
        split = bool(whole) and not alone and len(batch.cases) > 1 and not self.args.no_isolate
        if not alone:
            self.cases += len(batch.cases)
        if not split:  # a split batch's cases are counted when routed alone
            self.outcomes.update(summary["outcomes"])
            for crash in summary.get("crash_quarantines", []):
                self.crash_quarantines[":".join(crash["outcome"].split(":", 2)[:2])] += 1
        if summary["seconds"] > self.slowest[0]:
            self.slowest = (summary["seconds"], name)
        if split:
            for v in violations:
                if not BATCH_LEVEL.match(v["kind"]):
                    self._record(name, batch, v)
            return [(f"{name}-alone{n}", single(batch, n), True) for n in range(len(batch.cases))]
        for v in violations:
            self._record(name, batch, v, alone=alone)
        return []

    def _record(self, name: str, batch: Batch, v: dict, *, alone: bool = False) -> None:
        self.violations += 1
        case = v.get("case") or (asdict(batch.cases[0]) if alone else None)
        mutations = "+".join(case["mutations"]) if case else "(batch)"
        detail = re.sub(r"(?<![A-Za-z])'[^']*'|positions? [\d-]+", "…", v["detail"])
        detail = re.sub(r"<[^>]*@[^>]*>|\(\d+\)|\d+ of \d+|[\d.]+ s\b", "…", detail)[:160]
        key = f"{v['kind']}: {detail}"
        self.classes[key].append((mutations, name))
        line = f"VIOLATION {name} (seed {self.args.seed}) {v['kind']}"
        who = v.get("item") or "alone"
        line += f" [{who}: {case['source']} + {mutations} seed {case['seed']}]" if case else ""
        print(f"{line}: {v['detail'][:400]}", flush=True)
        if self.saved[key] < SAVED_PER_CLASS:
            self.saved[key] += 1
            save_reproducer(FAILURES / f"{self.args.seed}-{name}", batch, self.sources, v)


def save_reproducer(folder: Path, batch: Batch, sources: dict[str, bytes], v: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batch.json").write_text(json.dumps(asdict(batch), indent=2), encoding="utf-8")
    for n, item in enumerate(items_of(batch, sources)):
        label = re.sub(r"[^a-z0-9]+", "-", item.label)
        (folder / f"{n:02d}-{label}.eml").write_bytes(item.raw)
    with open(folder / "violations.txt", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(v) + "\n")


def load_batch(folder: Path) -> Batch:
    data = json.loads((folder / "batch.json").read_text(encoding="utf-8"))
    cases = tuple(Case(c["source"], tuple(c["mutations"]), c["seed"]) for c in data.pop("cases"))
    return Batch(cases, **{k: tuple(v) if k == "copies" else v for k, v in data.items()})


# -- the command ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=20, help="cases per Maildir and CRM")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    parser.add_argument(
        "--slow", type=float, default=20.0, help="a routing run slower than this is a violation"
    )
    parser.add_argument("--vendored-only", action="store_true", help="not ../shared/corpora")
    parser.add_argument("--long-header-kb", default="20-50", help="long header sizes, KB")
    parser.add_argument("--mutations", help="comma-separated subset of the mutation names")
    parser.add_argument("--no-isolate", action="store_true", help="do not split failed batches")
    parser.add_argument("--replay", type=Path, help="re-run one saved reproducer folder")
    args = parser.parse_args(argv)
    low, _, high = args.long_header_kb.partition("-")
    fuzz_mutations.LONG_HEADER_BYTES = (int(low) * 1000, int(high or low) * 1000)
    if args.mutations:
        wanted = args.mutations.split(",")
        unknown = sorted(set(wanted) - set(MUTATION_NAMES))
        if unknown:
            parser.error(f"unknown mutations {unknown}; known: {', '.join(MUTATION_NAMES)}")
        MUTATION_NAMES[:] = wanted
    messages = fuzz_mutations.corpus(shared=not args.vendored_only)
    sources = {m.name: m.raw for m in messages}
    if args.replay:
        folder = scratch_dir("emailrouter-fuzz-replay-")
        report = check_batch(load_batch(args.replay), sources, folder / "batch")
        shutil.rmtree(folder, ignore_errors=True)
        print(json.dumps(_summary(report), indent=2))
        return 0 if report.ok else 1

    names = sorted(sources)
    count = -(-args.cases // args.batch)
    batches = []
    for index in range(count):
        size = min(args.batch, args.cases - index * args.batch)
        batches.append((f"b{index:05d}", make_batch(args.seed, index, size, names), False))
    print(
        f"fuzz: {args.cases} cases in {count} batches of {args.batch}, seed {args.seed},"
        f" {len(names)} corpus messages, {len(MUTATION_NAMES)} mutations, {args.jobs} job(s)",
        flush=True,
    )
    runner = Runner(args, sources)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop early, still summarise
    try:
        runner.run(batches)
    except KeyboardInterrupt:
        print("\nstopped early: the figures below are for the batches that finished")
    finally:
        shutil.rmtree(runner.work, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(f"\n{runner.cases} cases in {seconds:.1f} s: {runner.cases / seconds:.1f} cases/s")
    print(f"slowest batch: {runner.slowest[1]} {runner.slowest[0]:.1f} s")
    print("outcomes:")
    for outcome, n in runner.outcomes.most_common():
        print(f"  {n:8d}  {outcome}")
    if runner.crash_quarantines:
        print("quarantined by an unexpected exception (kept safe, but a decoding gap):")
        for outcome, n in runner.crash_quarantines.most_common():
            print(f"  {n:8d}  {outcome}")
    print(f"violations: {runner.violations} in {len(runner.classes)} class(es)")
    for key, seen in sorted(runner.classes.items(), key=lambda kv: -len(kv[1])):
        mutations = Counter(m for m, _ in seen).most_common(4)
        print(f"  {len(seen):6d}  {key}")
        print(f"          mostly: {', '.join(f'{m} ({n})' for m, n in mutations)}")
    if runner.violations:
        print(f"reproducers: {FAILURES}/ (replay one with --replay DIR)")
    return 1 if runner.violations else 0


if __name__ == "__main__":
    sys.exit(main())
