"""The fuzz property: one batch of fuzz cases through the real route, and what must hold after.

A batch is a fresh Maildir holding the built cases, exact copies of some of them, and one ordinary
message, routed by ``routing.run`` into a fresh demo SQLite CRM (the decide and create path the
command runs), its artifacts written, then routed a second time. What must hold (issue 12):

* every item ends in exactly one outcome, from the known set;
* the run survives: no exception, the mailbox's status "ok", the artifacts written;
* nothing is lost: a created item is in the CRM under its activity id, once; a duplicate's
  original is in the CRM and is the same message (an exact copy in the batch was created); a
  skipped, filtered or invalid-forward item is still in the Maildir; a quarantined item has a
  byte-exact copy in the quarantine folder;
* the ordinary message beside the broken ones is created;
* the second run over the same mailbox creates nothing.

A ``quarantined:<ExceptionClass>`` outcome keeps the property (the message is safe) but means
the firewall, not the decoder, caught it: :attr:`BatchReport.crash_quarantines` lists those.
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import os
import shutil
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from fuzz_mutations import Case, build
from routing_helpers import crm_store, demo_crm, drop, maildir_url, message

from emailrouter_lib import routing

ORDINARY = "ordinary"
PLAIN_OUTCOMES = ("created", "duplicate", "invalid-forward")
OUTCOME_PREFIXES = ("skipped:", "filtered:", "quarantined:")
LEFT_IN_MAILBOX = ("skipped:", "filtered:", "invalid-forward")


@dataclass(frozen=True)
class Batch:
    """What one fuzz run routes: the cases, where the ordinary message goes, how it is routed."""

    cases: tuple[Case, ...]
    copies: tuple[int, ...] = ()  # cases dropped a second time, byte for byte
    ordinary_at: int = 0  # position of the ordinary message among the items
    after: str = "delete"  # leave | delete | move:Processed
    owner: str | None = "queue:support@contoso.example"  # None: the To/Cc recipients decide
    batch_size: int = 3
    nonce: str = "f"  # makes the cases' Message-IDs unique across batches of a long run

    def message_id(self, index: int) -> str:
        """Case *index*'s own Message-ID; the index first, so a cut inside it leaves no other's."""
        return f"<{index}.{self.nonce}@fuzz.example>"


@dataclass(frozen=True)
class Item:
    key: str
    raw: bytes
    label: str  # "ordinary", "case 3" or "copy of case 3"
    case: Case | None
    message_id: str  # the Message-ID it was given (mutations may have damaged or removed it)

    def carries_own_id(self) -> bool:
        """Its own Message-ID is still in its bytes, whole: it cannot be another message."""
        return f"Message-ID: {self.message_id}".encode() in self.raw


@dataclass(frozen=True)
class Violation:
    kind: str  # e.g. run-raised, mailbox-error, lost, no-outcome, ordinary-not-created
    detail: str
    item: Item | None = None

    def __str__(self) -> str:
        where = ""
        if self.item is not None:
            where = f" [{self.item.label}"
            where += f": {self.item.case.describe()}]" if self.item.case else "]"
        return f"{self.kind}{where}: {self.detail}"


@dataclass
class BatchReport:
    items: list[Item]
    outcomes: Counter = field(default_factory=Counter)  # of the cases and their copies
    violations: list[Violation] = field(default_factory=list)
    crash_quarantines: list[tuple[Item, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def explain(self) -> str:
        return "\n".join(str(v) for v in self.violations)


def scratch_root() -> Path | None:
    """Where batches go: tmpfs when the machine has one. Each batch creates a SQLite CRM and
    ledger whose commits fsync; on a busy disk that, not routing, was most of a case's time."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))


_TEMPLATE: list[Path] = []  # the demo CRM, seeded once per process and copied per batch


def demo_crm_template() -> Path:
    """The seeded demo CRM every batch copies; made once, removed at exit. A process that forks
    batch workers calls this first, so the workers (which skip atexit) share the parent's."""
    if not _TEMPLATE or not _TEMPLATE[0].exists():
        base = scratch_dir("emailrouter-fuzz-crm-")
        demo_crm(base)
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        _TEMPLATE[:] = [base / "crm.sqlite"]
    return _TEMPLATE[0]


def fresh_demo_crm(folder: Path) -> str:
    """A demo CRM of its own for a batch: a copy of one seeded once (seeding is most of a small
    batch's time)."""
    shutil.copyfile(demo_crm_template(), folder / "crm.sqlite")
    return f"sqlite:///{folder / 'crm.sqlite'}"


def items_of(batch: Batch, sources: dict[str, bytes]) -> list[Item]:
    """The batch's messages in delivery order (keys are filled in when they are dropped)."""
    items = [
        Item("", build(case, sources, batch.message_id(n)), f"case {n}", case, batch.message_id(n))
        for n, case in enumerate(batch.cases)
    ]
    items += [
        Item("", items[n].raw, f"copy of case {n}", items[n].case, items[n].message_id)
        for n in batch.copies
        if n < len(items)
    ]
    ordinary = message("An ordinary message beside the broken ones")
    plain = Item("", ordinary.as_bytes(), ORDINARY, None, ordinary["Message-ID"])
    items.insert(min(batch.ordinary_at, len(items)), plain)
    return items


def check_batch(batch: Batch, sources: dict[str, bytes], folder: Path) -> BatchReport:
    """Route *batch* in *folder* (emptied first) twice and check the property."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    built = items_of(batch, sources)
    maildir = folder / "Maildir"
    paths = drop(maildir, *(item.raw for item in built))
    items = [replace(item, key=path.name) for path, item in zip(paths, built, strict=True)]
    report = BatchReport(items)
    crm_url = fresh_demo_crm(folder)
    crm = crm_store(crm_url)
    before = {row["activityid"] for row in crm.rows("email")}
    params = {
        "mailboxes": [_url(maildir, batch)],
        "crm": crm_url,
        "quarantine_dir": str(folder / "quarantine"),
        "batch_size": batch.batch_size,
        "progress": False,
    }
    started = time.perf_counter()
    try:
        result = routing.run(params)
    except Exception as exc:
        report.seconds = time.perf_counter() - started
        report.violations.append(Violation("run-raised", _traceback(exc)))
        crm.close()
        return report
    report.seconds = time.perf_counter() - started
    _check_run(result, "first run", report)
    _check_artifacts(result, folder / "run", report)
    _check_rows(result, items, report)
    _check_nothing_lost(result, items, crm, before, folder, report)
    _check_second_run(params, crm, report)
    crm.close()
    return report


def _url(maildir: Path, batch: Batch) -> str:
    params = {"after": batch.after}
    if batch.owner:
        params["owner"] = batch.owner
    return maildir_url(maildir, **params)


def _check_run(result, which: str, report: BatchReport) -> None:
    for box in result.mailboxes:
        if box.status != "ok":
            report.violations.append(
                Violation(f"mailbox-{box.status}", f"{which}: {box.mailbox}: {box.error}")
            )


def _check_artifacts(result, run_dir: Path, report: BatchReport) -> None:
    """The run's record: written, with one results.csv row per result row."""
    try:
        result.write_artifacts(run_dir)
    except Exception as exc:
        report.violations.append(Violation("artifacts-raised", _traceback(exc)))
        return
    with open(run_dir / "results.csv", newline="", encoding="utf-8") as handle:
        written = sum(1 for _ in csv.reader(handle)) - 1
    if written != len(result.rows):
        report.violations.append(
            Violation("artifacts-incomplete", f"results.csv has {written} of {len(result.rows)}")
        )


def _check_rows(result, items: list[Item], report: BatchReport) -> None:
    by_key = Counter(row.item_key for row in result.rows)
    known = {item.key for item in items}
    for item in items:
        if by_key[item.key] != 1:
            kind = "no-outcome" if by_key[item.key] == 0 else "two-outcomes"
            report.violations.append(Violation(kind, f"{by_key[item.key]} result rows", item))
    for key in set(by_key) - known:
        report.violations.append(Violation("unknown-item", f"a row for {key!r}"))
    ordinary = {item.key for item in items if item.label == ORDINARY}
    for row in result.rows:
        if row.item_key not in ordinary:  # the histogram is of the fuzz cases
            report.outcomes[row.outcome] += 1
        if row.outcome not in PLAIN_OUTCOMES and not row.outcome.startswith(OUTCOME_PREFIXES):
            report.violations.append(Violation("unknown-outcome", row.outcome))


def _check_nothing_lost(
    result, items: list[Item], crm, before: set[str], folder: Path, report: BatchReport
) -> None:
    everything = crm.rows("email")
    crm_ids = {row["messageid"] for row in everything}
    emails = [row for row in everything if row["activityid"] not in before]
    activity_ids = {row["activityid"] for row in emails}
    per_message_id = Counter(row["messageid"] for row in emails)
    for message_id, count in per_message_id.items():
        if count > 1:
            report.violations.append(
                Violation("doubled", f"{count} activities with Message-ID {message_id}")
            )
    in_mailbox = _hashes(folder / "Maildir")
    in_quarantine = _hashes(folder / "quarantine")
    by_key = {item.key: item for item in items}
    created_raw: dict[str, set[bytes]] = {}
    for row in result.rows:
        if row.outcome == "created" and row.item_key in by_key:
            created_raw.setdefault(row.message_id, set()).add(_sha(by_key[row.item_key].raw))
    for row in result.rows:
        item = by_key.get(row.item_key)
        if item is None:
            continue
        digest = _sha(item.raw)
        outcome = row.outcome
        if item.label == ORDINARY and outcome != "created":
            report.violations.append(
                Violation("ordinary-not-created", f"{outcome}: {row.reason}", item)
            )
        if outcome.startswith("quarantined:") and outcome != "quarantined:unparseable":
            report.crash_quarantines.append((item, f"{outcome}: {row.reason}"))
        if outcome == "created":
            if row.activityid not in activity_ids:
                report.violations.append(
                    Violation("lost", f"created as {row.activityid}, not in the CRM", item)
                )
        elif outcome == "duplicate":
            # A true duplicate: an exact copy was created, or the message lost its own
            # Message-ID to a mutation and matches another on what is left (the router's rule).
            taken_for_another = item.carries_own_id() and row.message_id != item.message_id
            if row.message_id not in crm_ids:
                report.violations.append(
                    Violation(
                        "lost" if digest not in in_mailbox else "false-duplicate",
                        f"a duplicate of {row.message_id}, which is not in the CRM",
                        item,
                    )
                )
            elif digest not in created_raw.get(row.message_id, set()) and taken_for_another:
                gone = digest not in in_mailbox
                report.violations.append(
                    Violation(
                        "lost" if gone else "false-duplicate",
                        f"a duplicate of a different message ({row.message_id})"
                        + ("; removed from the mailbox" if gone else "")
                        + f": {row.reason}",
                        item,
                    )
                )
        elif outcome.startswith(LEFT_IN_MAILBOX):
            if digest not in in_mailbox:
                report.violations.append(Violation("lost", f"{outcome}, not in the mailbox", item))
        elif outcome.startswith("quarantined:") and digest not in in_quarantine:
            report.violations.append(
                Violation(
                    "lost" if digest not in in_mailbox else "no-quarantine-copy",
                    f"{outcome}, no byte-exact copy in the quarantine",
                    item,
                )
            )


def _check_second_run(params: dict, crm, report: BatchReport) -> None:
    count = crm.count("email")
    try:
        again = routing.run(params)
    except Exception as exc:
        report.violations.append(Violation("second-run-raised", _traceback(exc)))
        return
    _check_run(again, "second run", report)
    created = [row for row in again.rows if row.outcome == "created"]
    if created or crm.count("email") != count:
        report.violations.append(
            Violation(
                "second-run-created",
                f"{len(created)} row(s) created, {crm.count('email') - count} new activities",
            )
        )


def _hashes(folder: Path) -> set[bytes]:
    return {_sha(p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _traceback(exc: BaseException) -> str:
    """The exception and the innermost frames: enough to tell one failure class from another."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(exc).__name__}: {str(exc)[:300]} at {where}"
