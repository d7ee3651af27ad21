"""The incoming batch: every mailbox, every new item, exactly once into the CRM.

Per batch of items (reference/email-router.md §3 steps 1–9):

1. decide each item (``decide.BatchDecider``) and write the decisions to the ledger as *pending*;
2. create the batch's email activities in one CRM transaction;
3. mark the ledger *committed*; 4. delete or move the source items; 5. mark the ledger *done*.

A crash anywhere is repaired by the next run: pending entries are checked against the CRM by their
chosen activity id, committed ones get their source action, and anything else is decided afresh,
where the CRM's Message-ID check stops a second copy.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tqdm.auto import tqdm

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import open_crm
from emailrouter_lib.crm.base import CrmBackend, Organization
from emailrouter_lib.errors import EmailRouterError, MailboxError
from emailrouter_lib.mailboxes import open_source, redact_url
from emailrouter_lib.mailboxes.base import MailboxSource
from emailrouter_lib.routing.config_sources import mailboxes_from_config
from emailrouter_lib.routing.decide import BatchDecider, Decision
from emailrouter_lib.routing.faults import checkpoint
from emailrouter_lib.routing.ledger import COMMITTED, DONE, PENDING, Ledger, LedgerEntry
from emailrouter_lib.routing.outgoing import run_outgoing
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.routing.quarantine import quarantine
from emailrouter_lib.routing.result import MailboxReport, ResultRow, RoutingResult
from emailrouter_lib.tracking.smartmatch import store_new_email_hashes

UNDELIVERABLE_FOLDER = "Undeliverable"


def run(params: dict | RoutingParams) -> RoutingResult:
    """Route one batch from every mailbox in *params* into the CRM; never raises per message."""
    p = RoutingParams.from_mapping(params)
    run_id = p.run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    result = RoutingResult(run_id=run_id, params=p, started=datetime.now(UTC))
    crm = open_crm(p.crm)
    ledger = Ledger(p.ledger_path())
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
        for url in urls:
            report = MailboxReport(mailbox=redact_url(url))  # never a password in a report
            result.mailboxes.append(report)
            started = time.perf_counter()
            try:
                source = open_source(url, ca_file=p.ca_file)
                report.mailbox = source.mailbox_id
                MailboxRun(source, crm, org, ledger, p, run_id, result, report).run()
            except EmailRouterError as exc:
                if report.status != "interrupted":  # closing a dropped connection fails too
                    report.status, report.error = "error", str(exc)
            report.seconds = round(time.perf_counter() - started, 3)
        if "outgoing" in p.directions:
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


@dataclass
class MailboxRun:
    source: MailboxSource
    crm: CrmBackend
    org: Organization
    ledger: Ledger
    params: RoutingParams
    run_id: str
    result: RoutingResult
    report: MailboxReport
    _done_keys: set[str] = field(default_factory=set)

    @property
    def mailbox_id(self) -> str:
        return self.source.mailbox_id

    def run(self) -> None:
        decider = BatchDecider(
            self.crm,
            self.org,
            owner=self.source.owner,
            is_forward_mailbox=self.source.is_forward_mailbox,
            tracked_classes=self.params.tracked_classes,
            class_of=getattr(self.source, "item_class", None),
        )
        with self.source:
            items = self.source.list_items()
            entries = self._recover(self.ledger.entries(self.mailbox_id), {i.key for i in items})
            todo = [item.key for item in items if item.key not in entries]
            self.report.seen = len(items)
            self.report.already_done = len(items) - len(todo)
            size = self.params.batch_size
            with tqdm(
                total=len(todo),
                desc=self.mailbox_id,
                unit="msg",
                disable=None if self.params.progress is None else not self.params.progress,
            ) as bar:
                for start in range(0, len(todo), size):
                    keys = todo[start : start + size]
                    try:
                        fetched = list(self.source.fetch(keys))
                    except MailboxError as exc:
                        # Nothing of this batch reached the ledger: the next run resumes here.
                        self.report.status, self.report.error = "interrupted", str(exc)
                        self.report.resumable = len(todo) - start
                        return
                    self._commit(decider.decide(fetched))
                    bar.update(len(keys))

    # -- crash recovery ------------------------------------------------------------------------
    def _recover(
        self, entries: dict[str, LedgerEntry], present: set[str]
    ) -> dict[str, LedgerEntry]:
        """Finish what a killed run left half done; return the entries that still stand.

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
            self._apply_source_actions(committed)
            self.ledger.advance(self.mailbox_id, [e.item_key for e in committed], DONE)
        return entries

    # -- one batch -----------------------------------------------------------------------------
    def _commit(self, decisions: Sequence[Decision]) -> None:
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
            self.crm.create_emails(emails)
            if self.org.enablesmartmatching:  # so later replies can match these too
                store_new_email_hashes(self.crm, self.org, emails)
        checkpoint("after-crm-commit")
        acting = [e for e in entries if e.source_action != "leave"]
        if acting:
            self.ledger.advance(self.mailbox_id, [e.item_key for e in acting], COMMITTED)
            checkpoint("after-ledger-commit")
            self._apply_source_actions(acting)
            checkpoint("after-source-action")
        self.ledger.advance(self.mailbox_id, [e.item_key for e in entries], DONE)
        for d in decisions:
            self.result.rows.append(ResultRow.from_decision(self.mailbox_id, d))
        self.report.count(decisions)

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

    def _apply_source_actions(self, entries: Sequence[LedgerEntry]) -> None:
        by_action: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            if e.source_action and e.source_action != "leave":
                by_action[e.source_action].append(e.item_key)
        for action, keys in by_action.items():
            if action == "delete":
                self.source.delete(keys)
            elif action.startswith("move:"):
                self.source.move(keys, action.removeprefix("move:"))
