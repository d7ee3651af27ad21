"""The incoming batch: every mailbox, every new item, exactly once into the CRM.

Per batch of items (reference/email-router.md §3 steps 1–9):

1. decide each item (``decide.BatchDecider``) and write the decisions to the ledger as *pending*;
2. create the batch's email activities in one CRM transaction;
3. mark the ledger *committed*; 4. delete or move the source items; 5. mark the ledger *done*.

A crash anywhere is repaired by the next run: pending entries are checked against the CRM by their
chosen activity id, committed ones get their source action, and anything else is decided afresh,
where the CRM's Message-ID check stops a second copy.

With ``dry_run`` every message is decided the same way and nothing is written
(``routing.dry_run``: no CRM write, ledger entry, lease, quarantine copy or source action).

A mailbox is routed only under its lease (``routing.lease``): a run that finds another live run's
lease skips the mailbox, a crashed run's lease is taken over once it expired, and every ledger
write is fenced by the lease, so two overlapping runs never route one mailbox at once.

Mailboxes on servers run in a bounded thread pool (``max_concurrency``; DESIGN.md "Scale"; local
folders, which are CPU-bound, run one after another): each with its own
ledger connection, Exchange folders warmed one by one first, and steps 1–2 taken in turns so the
Message-ID check sees what another mailbox is creating. Rows keep the order of the mailbox URLs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tqdm.auto import tqdm

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import open_crm
from emailrouter_lib.crm.base import CrmBackend, NewEmail, Organization
from emailrouter_lib.errors import CrmRecordError, EmailRouterError, LeaseHeldError, MailboxError
from emailrouter_lib.mailboxes import open_source, redact_url
from emailrouter_lib.mailboxes.base import MailboxSource
from emailrouter_lib.mailboxes.cleartext import cleartext_warnings
from emailrouter_lib.routing.batching import fetch_batch, plan_batch
from emailrouter_lib.routing.config_sources import mailboxes_from_config
from emailrouter_lib.routing.decide import BatchDecider, Decision
from emailrouter_lib.routing.dry_run import DryRunCrm, LedgerView, as_dry_run
from emailrouter_lib.routing.faults import checkpoint
from emailrouter_lib.routing.lease import LeaseKeeper, LeaseOwner
from emailrouter_lib.routing.ledger import COMMITTED, DONE, PENDING, Ledger, LedgerEntry
from emailrouter_lib.routing.outgoing import run_outgoing
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.routing.quarantine import quarantine
from emailrouter_lib.routing.result import MailboxReport, ResultRow, RoutingResult
from emailrouter_lib.run_summary import new_run_id
from emailrouter_lib.tracking.smartmatch import store_new_email_hashes

UNDELIVERABLE_FOLDER = "Undeliverable"
LOCAL_SCHEMES = ("maildir:", "eml:")
DEFAULT_CONCURRENCY = 4


def _concurrency(params: RoutingParams, urls: Sequence[str]) -> int:
    """Mailboxes at once: as asked, else 4 when one waits on a server, else 1.

    Local folders are CPU-bound: threads only contend for the interpreter there (measured ~36%
    slower for 4 Maildirs than one after another), so by default the pool is for server mailboxes.
    Exchange mailboxes always go one after another: under throttling, exchangelib's shared
    session pool (``decrease_poolsize`` during a back-off) once hung a threaded run here, and a
    hang is worse than a slow batch.
    """
    if any(url.lower().startswith(("ews:", "ewss:")) for url in urls):
        return 1
    if params.max_concurrency is not None:
        return params.max_concurrency
    networked = any(not url.lower().startswith(LOCAL_SCHEMES) for url in urls)
    return DEFAULT_CONCURRENCY if networked else 1


def run(params: dict | RoutingParams) -> RoutingResult:
    """Route one batch from every mailbox in *params* into the CRM; never raises per message."""
    p = RoutingParams.from_mapping(params)
    run_id = p.run_id or new_run_id()
    result = RoutingResult(run_id=run_id, params=p, started=datetime.now(UTC))
    crm = open_crm(p.crm)
    try:
        ledger = LedgerView(p.ledger_path()) if p.dry_run else Ledger(p.ledger_path())
    except EmailRouterError:
        crm.close()
        raise
    if p.dry_run:
        crm = DryRunCrm(crm)
    try:
        org = crm.organization()
        incoming = "incoming" in p.directions
        urls = list(p.mailboxes) if incoming else []
        if p.config and incoming:
            for mailbox in mailboxes_from_config(
                load_config(p.config), crm, password=p.config_password
            ):
                if mailbox.url:
                    urls.append(mailbox.url)
                else:
                    result.mailboxes.append(
                        MailboxReport(
                            mailbox=mailbox.label, status="skipped", error=mailbox.skipped
                        )
                    )
        result.warnings += cleartext_warnings([*urls, *p.transports.values()])
        jobs = [MailboxJob(url, MailboxReport(mailbox=redact_url(url))) for url in urls]
        result.mailboxes.extend(job.report for job in jobs)  # never a password in a report
        context = _RunContext(crm, org, p, run_id)
        if _concurrency(p, urls) == 1 or len(jobs) < 2:
            for job in jobs:
                job.route(context, ledger)
        else:
            _route_in_parallel(jobs, context)
        for job in jobs:  # the order of the mailbox URLs, whichever finished first
            result.rows.extend(job.rows)
        would_quarantine = sum(1 for r in result.rows if r.outcome.startswith("would-quarantine"))
        if would_quarantine:
            result.warnings.append(
                f"dry run: {would_quarantine} message(s) would be quarantined; the rows say why"
            )
        if "outgoing" in p.directions and p.dry_run:
            result.warnings.append(
                "dry run: the CRM's pending outgoing email was not looked at and nothing was sent"
            )
        elif "outgoing" in p.directions:
            try:
                result.outgoing.extend(run_outgoing(crm, org, p, run_id))
            except EmailRouterError as exc:  # the send ledger is locked or unusable
                result.mailboxes.append(
                    MailboxReport(mailbox="outgoing", status="error", error=str(exc))
                )
    finally:
        ledger.close()
        crm.close()
    result.finished = datetime.now(UTC)
    return result


@dataclass(frozen=True)
class _RunContext:
    """What every mailbox of a run shares (the CRM backends are safe to share across threads)."""

    crm: CrmBackend
    org: Organization
    params: RoutingParams
    run_id: str
    crm_turn: AbstractContextManager = field(default_factory=threading.Lock)


@dataclass
class MailboxJob:
    """One mailbox of a run: its report and its rows, kept apart until the run merges them."""

    url: str
    report: MailboxReport
    rows: list[ResultRow] = field(default_factory=list)
    source: MailboxSource | None = None
    entered: bool = False  # connected already (EWS sources are warmed before the pool starts)
    failed: EmailRouterError | None = None  # opening or connecting failed before the pool
    seconds: float = 0.0

    def route(self, context: _RunContext, ledger: Ledger) -> None:
        """Route this mailbox; a mailbox error goes to its report, never to the caller."""
        started = time.perf_counter()
        try:
            if self.failed is not None:
                raise self.failed
            source = self.source or open_source(self.url, ca_file=context.params.ca_file)
            self.report.mailbox = source.mailbox_id
            (DryMailboxRun if context.params.dry_run else MailboxRun)(
                source,
                context.crm,
                context.org,
                ledger,
                context.params,
                context.run_id,
                self.rows,
                self.report,
                context.crm_turn,
            ).run(entered=self.entered)
        except LeaseHeldError as exc:  # another live run routes it: not an error of this run
            self.report.status, self.report.error = "skipped", str(exc)
        except EmailRouterError as exc:
            if self.report.status != "interrupted":  # closing a dropped connection fails too
                self.report.status, self.report.error = "error", str(exc)
        self.report.seconds = round(self.seconds + time.perf_counter() - started, 3)

    def route_with_own_ledger(self, context: _RunContext) -> None:
        """Route on a ledger connection of this thread: WAL lets the threads write the one file
        in turns (``BEGIN IMMEDIATE`` waits for the busy timeout), each batch still atomic."""
        try:
            path = context.params.ledger_path()
            ledger = LedgerView(path) if context.params.dry_run else Ledger(path)
        except EmailRouterError as exc:
            self.report.status, self.report.error = "error", str(exc)
            return
        try:
            self.route(context, ledger)
        finally:
            ledger.close()


def _route_in_parallel(jobs: Sequence[MailboxJob], context: _RunContext) -> None:
    """Route *jobs* in a bounded thread pool; EWS sources are connected one by one first."""
    with ExitStack() as stack:
        _enter_ews_sources(jobs, context.params, stack)
        workers = min(_concurrency(context.params, [job.url for job in jobs]), len(jobs))
        with ThreadPoolExecutor(workers, thread_name_prefix="emailrouter-mailbox") as pool:
            futures = [pool.submit(job.route_with_own_ledger, context) for job in jobs]
            for future in futures:
                future.result()  # anything but a mailbox error is a bug: let it out, as before


def _enter_ews_sources(jobs: Sequence[MailboxJob], params: RoutingParams, stack: ExitStack) -> None:
    """Connect and warm the EWS mailboxes serially: exchangelib serialises every account's first
    folder access process-wide, so doing it in the pool would only queue the threads."""
    ews_jobs = [j for j in jobs if j.url.lower().startswith(("ews://", "ewss://"))]
    if not ews_jobs:
        return  # no exchangelib import for a run without Exchange
    from emailrouter_lib.mailboxes.ews_source import EwsSource, enter_all

    opened: list[MailboxJob] = []
    for job in ews_jobs:
        try:
            job.source = open_source(job.url, ca_file=params.ca_file)
        except EmailRouterError as exc:
            job.failed = exc
            continue
        if isinstance(job.source, EwsSource):
            opened.append(job)
    for job in opened:  # enter_all's order, timed per mailbox
        started = time.perf_counter()
        entered = enter_all([job.source], stack)[0]
        job.seconds = time.perf_counter() - started
        if isinstance(entered, EmailRouterError):
            job.failed = entered
        else:
            job.entered = True


@dataclass
class MailboxRun:
    source: MailboxSource
    crm: CrmBackend
    org: Organization
    ledger: Ledger
    params: RoutingParams
    run_id: str
    rows: list[ResultRow]  # this mailbox's rows; the run merges them in mailbox order
    report: MailboxReport
    # held while a batch is decided and created; the run's lock when mailboxes run in parallel
    crm_turn: AbstractContextManager = field(default_factory=nullcontext)
    _done_keys: set[str] = field(default_factory=set)
    _unhandled: int = 0  # items routed whose delete or move failed, this run

    @property
    def mailbox_id(self) -> str:
        return self.source.mailbox_id

    def run(self, *, entered: bool = False) -> None:
        """Route the mailbox under its lease; *entered*: the source is connected already and
        stays open. ``LeaseHeldError`` before anything is read when another run holds it."""
        with self._lease():
            self._run(entered=entered)

    @contextmanager
    def _lease(self) -> Iterator[None]:
        """Hold the mailbox's lease while it is routed, renewed in the background and by every
        ledger write; given up at the end (a killed run's lease expires by itself)."""
        seconds = self.params.lease_seconds
        owner = LeaseOwner.this_process(self.run_id)
        lease = self.ledger.acquire(self.mailbox_id, owner, seconds)
        keeper = LeaseKeeper(lambda: Ledger.lease_store(self.ledger.path))
        keeper.keep(lease, seconds)
        try:
            yield
        finally:
            keeper.stop()
            self.ledger.release(lease)

    def _run(self, *, entered: bool) -> None:
        decider = BatchDecider(
            self.crm,
            self.org,
            owner=self.source.owner,
            is_forward_mailbox=self.source.is_forward_mailbox,
            tracked_classes=self.params.tracked_classes,
            class_of=getattr(self.source, "item_class", None),
        )
        if entered:
            self._route(decider)
        else:
            with self.source:
                self._route(decider)

    def _route(self, decider: BatchDecider) -> None:
        items = self.source.list_items()
        entries = self._recover(self.ledger.entries(self.mailbox_id), {i.key for i in items})
        todo = [item.key for item in items if item.key not in entries]
        self.report.seen = len(items)
        self.report.already_done = len(items) - len(todo)
        sizes = {item.key: item.size for item in items}
        budget = self.params.batch_bytes
        with tqdm(
            total=len(todo),
            desc=self.mailbox_id,
            unit="msg",
            disable=None if self.params.progress is None else not self.params.progress,
        ) as bar:
            start = 0
            while start < len(todo):
                # batch_size items at most, and about batch_bytes: planned by the listed sizes,
                # cut short when the fetched bytes reach the budget (routing/batching.py)
                keys = plan_batch(todo, start, sizes, count=self.params.batch_size, budget=budget)
                try:
                    fetched, covered = fetch_batch(self.source, keys, budget=budget)
                except MailboxError as exc:
                    # Nothing of this batch reached the ledger: the next run resumes here.
                    self.report.status, self.report.error = "interrupted", str(exc)
                    self.report.resumable = len(todo) - start
                    return
                # Deciding and creating are one step per run: a message another mailbox of this
                # run is creating right now must be found by the Message-ID check, not created
                # again (and a contact auto-created once). Fetching and source actions overlap.
                with self.crm_turn:
                    decisions = decider.decide(fetched)
                    entries = self._create(decisions)
                self._finish(decisions, entries)
                bar.update(covered)
                start += covered
                # let this batch go before the next is fetched (held, they doubled the peak)
                del fetched, decisions, entries

    # -- crash recovery ------------------------------------------------------------------------
    def _recover(
        self, entries: dict[str, LedgerEntry], present: set[str]
    ) -> dict[str, LedgerEntry]:
        """Finish what a killed run left half done; return the entries that still stand.

        This runs under the mailbox's lease, so a pending entry here was left by a run whose
        lease expired or was given up, never by a live run (which would have made this run skip
        the mailbox); and each repair below is a fenced ledger write.

        Items the ledger calls done but that are still in the mailbox with a delete or move due
        (a POP3 session that died before QUIT never commits its DELEs) get their action again.
        """
        pending = [e for e in entries.values() if e.state == PENDING]
        if pending:
            created = [e for e in pending if e.outcome == "created"]
            in_crm = self.crm.emails_by_message_id({e.message_id for e in created if e.message_id})
            lost = [
                e.item_key
                for e in created
                if e.message_id not in in_crm or in_crm[e.message_id].activityid != e.activityid
            ]
            # An activity whose id is in the CRM did commit; one that is not is decided afresh.
            self.ledger.forget(self.mailbox_id, lost)
            survived = [e.item_key for e in pending if e.item_key not in set(lost)]
            self.ledger.advance(self.mailbox_id, survived, COMMITTED)
            self.report.recovered += len(survived)
            for key in lost:
                entries.pop(key)
            entries = {
                k: (replace(e, state=COMMITTED) if e.state == PENDING else e)
                for k, e in entries.items()
            }
        committed = [
            e
            for e in entries.values()
            if e.state == COMMITTED
            or (
                e.state == DONE and e.item_key in present and e.source_action not in (None, "leave")
            )
        ]
        if committed:
            # The URL's action now, not the one the ledger stored: an admin who corrected a
            # refused after=move: (or switched to leave) is obeyed at once.
            current = [replace(e, source_action=self._source_action(e.outcome)) for e in committed]
            failed = self._apply_source_actions(current)
            handled = [e.item_key for e in committed if e.item_key not in failed]
            self.ledger.advance(self.mailbox_id, handled, DONE)
            self._source_actions_failed(failed, "created by an earlier run")
        return entries

    # -- one batch -----------------------------------------------------------------------------
    def _create(self, decisions: Sequence[Decision]) -> list[LedgerEntry]:
        """Quarantine copies, the ledger's pending entries, then the CRM's activities."""
        for d in decisions:  # first, so a crash later never leaves an item without its copy
            if d.raw is not None:
                quarantine(
                    self.params.quarantine_path(),
                    self.mailbox_id,
                    d.key,
                    d.raw,
                    d.outcome,
                    d.reason,
                )
        entries = [self._entry(d) for d in decisions]
        self.ledger.write(entries, self.run_id)
        emails = [d.email for d in decisions if d.email is not None]
        if emails:
            refused, duplicates = self._create_emails(emails)
            if refused:
                entries = self._quarantine_refused(decisions, entries, refused)
            if duplicates:  # created meanwhile by another writer: the CRM's Message-ID check
                entries = self._duplicates_at_write(decisions, entries, duplicates)
            emails = [e for e in emails if e.activityid not in {*refused, *duplicates}]
            self._note_changes_at_write(decisions, emails)
            if emails and self.org.enablesmartmatching:  # so later replies can match these too
                store_new_email_hashes(self.crm, self.org, emails)
        return entries

    def _note_changes_at_write(
        self, decisions: Sequence[Decision], emails: Sequence[NewEmail]
    ) -> None:
        """Add to a created email's reason what the backend changed while writing it (a value
        cut to the CRM's column length): the result row says so."""
        if not emails:
            return
        notes = self.crm.write_notes([e.activityid for e in emails])
        for d in decisions:
            note = notes.get(d.email.activityid) if d.email is not None else None
            if note:
                d.reason = f"{d.reason}; {note}" if d.reason else note

    def _create_emails(self, emails: Sequence[NewEmail]) -> tuple[dict[str, str], set[str]]:
        """Create *emails*; return the activity ids the CRM refused, with its answer, and those
        it did not create because a received email with their Message-ID is stored already.

        A refusal that names a record (:class:`CrmRecordError`, or anything a backend raises
        on one email's values) is bisected: the batch is written again in halves without the
        refused email, so one message the CRM cannot take never keeps the rest out. Any other
        CRM error (unreachable, throttled, locked) stops the mailbox as before; the ledger's
        pending entries make the next run finish the batch.
        """
        try:
            return {}, set(self.crm.create_emails(emails) or ())
        except CrmRecordError as exc:
            error: Exception = exc
        except EmailRouterError:
            raise
        except Exception as exc:  # a backend's encoder choking on one email's text
            error = exc
        if len(emails) == 1:
            return {emails[0].activityid: f"{error.__class__.__name__}: {error}"[:500]}, set()
        # A call of several change sets may have committed the first ones (Dataverse).
        present = self.crm.emails_by_activity_id([e.activityid for e in emails])
        rest = [e for e in emails if e.activityid not in present]
        if len(rest) < 2:
            return self._create_emails(rest) if rest else ({}, set())
        half = len(rest) // 2
        (refused, duplicates), (more, others) = (
            self._create_emails(rest[:half]),
            self._create_emails(rest[half:]),
        )
        return {**refused, **more}, duplicates | others

    def _quarantine_refused(
        self,
        decisions: Sequence[Decision],
        entries: Sequence[LedgerEntry],
        refused: dict[str, str],
    ) -> list[LedgerEntry]:
        """Turn the emails the CRM refused into quarantined items: copy, then ledger."""

        def quarantined(d: Decision) -> None:
            d.outcome = "quarantined:crm-refused"
            d.reason = f"the CRM refused this email: {refused[d.email.activityid]}"
            d.raw, d.email = d.original or b"", None
            quarantine(
                self.params.quarantine_path(), self.mailbox_id, d.key, d.raw, d.outcome, d.reason
            )

        return self._rewrite_uncreated(decisions, entries, set(refused), quarantined)

    def _duplicates_at_write(
        self, decisions: Sequence[Decision], entries: Sequence[LedgerEntry], duplicates: set[str]
    ) -> list[LedgerEntry]:
        """Turn the decisions whose email the CRM did not create as a duplicate into
        ``duplicate``s."""

        def duplicate(d: Decision) -> None:
            d.outcome, d.email = "duplicate", None
            d.reason = (
                f"Duplicate: Message-ID {d.message_id} was created in the CRM by another writer"
                " while this run wrote it"
            )

        return self._rewrite_uncreated(decisions, entries, duplicates, duplicate)

    def _rewrite_uncreated(
        self,
        decisions: Sequence[Decision],
        entries: Sequence[LedgerEntry],
        activity_ids: set[str],
        change: Callable[[Decision], None],
    ) -> list[LedgerEntry]:
        """*change* each decision whose email (one of *activity_ids*) the CRM did not create,
        and rewrite its pending ledger entry in one write.

        The rewrite comes before the batch is marked committed, so a crash in between leaves
        pending entries whose ids are not in the CRM: the next run decides those items afresh.
        """
        changed: dict[str, LedgerEntry] = {}
        for d in decisions:
            if d.email is None or d.email.activityid not in activity_ids:
                continue
            change(d)
            changed[d.key] = self._entry(d)
        self.ledger.write(list(changed.values()), self.run_id)
        return [changed.get(e.item_key, e) for e in entries]

    def _finish(self, decisions: Sequence[Decision], entries: Sequence[LedgerEntry]) -> None:
        """Mark committed, delete or move the source items, mark done, report."""
        checkpoint("after-crm-commit")
        acting = [e for e in entries if e.source_action != "leave"]
        failed: dict[str, str] = {}
        if acting:
            self.ledger.advance(self.mailbox_id, [e.item_key for e in acting], COMMITTED)
            checkpoint("after-ledger-commit")
            failed = self._apply_source_actions(acting)
            checkpoint("after-source-action")
        # An item whose delete or move failed stays committed: a later run retries the action.
        done = [e.item_key for e in entries if e.item_key not in failed]
        self.ledger.advance(self.mailbox_id, done, DONE)
        for d in decisions:
            row = ResultRow.from_decision(self.mailbox_id, d)
            if d.key in failed:
                row.reason += f"; {failed[d.key]}"
            self.rows.append(row)
        self.report.count(decisions)
        self._source_actions_failed(failed, "created")

    def _entry(self, d: Decision) -> LedgerEntry:
        return LedgerEntry(
            self.mailbox_id,
            d.key,
            PENDING,
            d.outcome,
            d.reason,
            d.message_id,
            d.activityid,
            self._source_action(d.outcome),
        )

    def _source_action(self, outcome: str) -> str:
        if outcome in ("created", "duplicate"):
            return self.source.after
        if outcome == "invalid-forward" and self.source.supports_folders:
            return f"move:{UNDELIVERABLE_FOLDER}"
        return "leave"  # skipped and filtered items stay where they are; quarantine keeps a copy

    def _apply_source_actions(self, entries: Sequence[LedgerEntry]) -> dict[str, str]:
        """Delete or move the source items; return the keys whose action failed, with why.

        A refused action (a folder the server will not create, a read-only mailbox) is the
        item's, not the batch's: the activity exists, so the row says created and names the
        failure, and routing goes on with new mail.
        """
        by_action: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            if e.source_action and e.source_action != "leave":
                by_action[e.source_action].append(e.item_key)
        failed: dict[str, str] = {}
        for action, keys in by_action.items():
            try:
                if action == "delete":
                    self.source.delete(keys)
                elif action.startswith("move:"):
                    self.source.move(keys, action.removeprefix("move:"))
            except MailboxError as exc:
                note = (
                    f"after={action} failed ({exc}); retried by the next run with the URL's after="
                )
                failed.update(dict.fromkeys(keys, note))
        return failed

    def _source_actions_failed(self, failed: dict[str, str], what: str) -> None:
        """Say on the mailbox's report that items were routed but not deleted or moved."""
        if not failed:
            return
        self._unhandled += len(failed)
        self.report.status = "error"
        first = next(iter(failed.values()))
        self.report.error = (
            f"{self._unhandled} item(s) in the CRM could not be deleted or moved (latest:"
            f" {len(failed)} {what}): {first}"
        )


class DryMailboxRun(MailboxRun):
    """The same batches and decisions as :class:`MailboxRun`, with every write left out
    (``routing.dry_run``): no lease, no repair of a crashed run, no ledger entry, quarantine
    copy, CRM write or source action. Its CRM is a :class:`DryRunCrm`, which remembers what
    would have been created so that later batches see it as a real run's would."""

    def run(self, *, entered: bool = False) -> None:
        self._run(entered=entered)

    def _recover(
        self, entries: dict[str, LedgerEntry], present: set[str]
    ) -> dict[str, LedgerEntry]:
        return entries  # what an earlier run left half done is that run's to finish

    def _create(self, decisions: Sequence[Decision]) -> list[LedgerEntry]:
        emails = [d.email for d in decisions if d.email is not None]
        if emails:
            self.crm.create_emails(emails)
        return []

    def _finish(self, decisions: Sequence[Decision], entries: Sequence[LedgerEntry]) -> None:
        as_dry_run(decisions)
        self.rows.extend(ResultRow.from_decision(self.mailbox_id, d) for d in decisions)
        self.report.count(decisions)
