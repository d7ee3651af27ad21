"""The outgoing batch: send what the CRM has in Pending Send, each email once (reference §4).

A run, holding the send ledger's lock:

1. **reconciles** attempts an earlier run left open (the ledger says sent → *Sent*; never handed
   over → back to *Pending Send*; handed over but unconfirmed → asked of the transport when it
   can tell (``was_sent(message_id)``: Exchange looks in the mailbox's Sent Items): found →
   *Sent*, not found → back to *Pending Send*, transport unreachable → left in *Sending* for the
   next run; a transport that cannot tell (SMTP, pickup) → *Failed* saying so, unless
   ``uncertain_sends="resend"``), and emails stuck in *Sending* for longer than
   ``SendingStatusDelay`` that the ledger does not know (asked of the transport the same way,
   else treated as unconfirmed, never resent blindly);
2. **selects** *Pending Send* (6) emails whose sending user/queue uses the Email Router for
   outgoing (2), is enabled and approved when the organisation requires approval (below), and
   has a transport (:mod:`emailrouter_lib.routing.transports`: explicit address → ``*`` → the
   router configuration's outgoing provider → the CRM mailbox's email server profile → the pickup
   folder; the rule that chose is in each row's ``transport_rule``); a retried email waits
   ``PendingStatusDelay`` after its last attempt;
3. per batch: allocates tracking tokens, writes the attempts to the ledger (*claimed*), then sets
   *Sending* (7) with the attempt id by compare-and-set; per email: ledger *sending* → transport →
   ledger *sent*; then one CRM write for the batch: *Sent* (3) with the Message-ID, back to
   *Pending Send* with ``deliveryattempts`` + 1 after a transient failure, or *Failed* (8,
   ``statecode`` 0) with the error after a permanent one or ``MaximumDeliveryAttempts``.

**Approval.** A sender must be approved (``emailrouteraccessapproval`` = 1) exactly when the
organisation requires it: ``requireapprovalforuseremail`` for users,
``requireapprovalforqueueemail`` for queues ("Process emails only for approved users / queues",
System Settings → Email; research §5.5, §2.5). When the organisation does not require approval,
the approval status is not consulted, not even *Rejected*, as the old router did not: the two
check boxes are the switch. (Server-side sync always requires an approved address, research §6.2;
that rule belongs to the migration, not to the router this engine replaces.) Skipped emails stay in
*Pending Send* with the reason ``skipped:not-approved``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from emailrouter_lib.config import load_config
from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    DELIVERY_ROUTER,
    STATE_COMPLETED,
    STATE_OPEN,
    STATUS_FAILED,
    STATUS_PENDING_SEND,
    STATUS_SENDING,
    STATUS_SENT,
    CrmBackend,
    EmailStatusChange,
    Organization,
    OutgoingEmail,
)
from emailrouter_lib.errors import EmailRouterError, MailboxError, MailboxSendError
from emailrouter_lib.mailboxes.base import MailSender
from emailrouter_lib.mailboxes.schemes import open_sender, redact_url
from emailrouter_lib.routing.faults import checkpoint
from emailrouter_lib.routing.outgoing_ledger import (
    CLAIMED,
    FAILED,
    SENDING,
    SENT,
    Attempt,
    SendLedger,
)
from emailrouter_lib.routing.outgoing_message import (
    build_message,
    message_id_for,
    subject_with_token,
)
from emailrouter_lib.routing.params import RoutingParams
from emailrouter_lib.routing.transports import TransportChoice, TransportResolver
from emailrouter_lib.tracking.smartmatch import HashSettings, email_hashes
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

# Where the exactly-once tests kill the process (EMAILROUTER_CRASH_AT, see routing.faults).
OUTGOING_CRASH_POINTS = (
    "after-send-claim",  # the CRM says Sending, nothing handed over yet
    "after-smtp-data",  # the server accepted the message, the ledger does not know yet
    "after-send-ledger",  # the ledger says sent, the CRM still says Sending
)

UNCERTAIN_TEXT = (
    "the router stopped while handing this email to {transport}; it may have been delivered. "
    "Check the recipient's mailbox, then set the email back to Pending Send to send it again"
)


@dataclass
class OutgoingRow:
    """One email's outcome in this run: ``sent``, ``retry``, ``failed``, ``waiting``,
    ``skipped:<why>``, ``reconciled:sent``, ``reconciled:pending`` or ``uncertain``."""

    outcome: str
    subject: str | None
    sender: str | None
    recipients: str | None
    reason: str
    transport: str | None = None
    tracking_token: str | None = None
    message_id: str | None = None
    deliveryattempts: int | None = None
    activityid: str | None = None
    transport_rule: str | None = None  # which setting chose the transport (routing.transports)


OUTGOING_COLUMNS = [f for f in OutgoingRow.__dataclass_fields__]


@dataclass
class _Job:
    email: OutgoingEmail
    attempt: Attempt
    subject: str
    token: str | None
    url: str
    transport: str  # the sender id: printable, never a secret
    rule: str  # TransportChoice.explained
    row: OutgoingRow | None = None
    change: EmailStatusChange | None = None


@dataclass(frozen=True)
class _Verdict:
    """What the transport knows of a send left unconfirmed: ``found`` True / False, or None when
    it cannot tell; ``later`` when it could tell but cannot be reached now."""

    found: bool | None
    transport: str | None
    reason: str
    later: bool = False


@dataclass
class OutgoingRun:
    crm: CrmBackend
    org: Organization
    params: RoutingParams
    run_id: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    rows: list[OutgoingRow] = field(default_factory=list)
    _transports: dict[str, MailSender | MailboxError] = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict)
    _choices: dict[str, TransportChoice] = field(default_factory=dict)

    def run(self) -> list[OutgoingRow]:
        p = self.params
        self.resolver = TransportResolver(
            transports=p.transports,
            pickup_dir=str(p.outbox_path().resolve()),
            crm=self.crm,
            config=load_config(p.config) if p.config else None,
            password=p.transport_password or p.config_password,
            ca_file=p.ca_file,
        )
        ledger = SendLedger(self.params.send_ledger_path())
        try:
            ledger.lock()
            self.ledger = ledger
            self._reconcile()
            due = self._select()
            size = self.params.batch_size
            for start in range(0, len(due), size):
                self._send_batch(due[start : start + size])
        finally:
            for sender in self._transports.values():
                if not isinstance(sender, MailboxError):
                    with contextlib.suppress(EmailRouterError):
                        sender.__exit__(None, None, None)
            ledger.close()
        return self.rows

    # -- 1. reconcile ----------------------------------------------------------------------------
    def _reconcile(self) -> None:
        open_attempts = self.ledger.open_attempts()
        sending = {
            e.activityid: e for e in self.crm.outgoing_emails([STATUS_SENDING], limit=1_000_000)
        }
        changes: list[tuple[EmailStatusChange, OutgoingRow]] = []
        finished: list[str] = []
        kept_open: set[str] = set()  # asked again by the next run
        known = set()
        for attempt in open_attempts:
            email = sending.get(attempt.activityid)
            known.add(attempt.activityid)
            if email is None or email.attemptid != attempt.attemptid:
                finished.append(attempt.attemptid)  # the CRM moved on (or never said Sending)
                continue
            if attempt.state == SENT:
                change = self._sent(email, attempt)
                row = self._row("reconciled:sent", email, "the send ledger says it was sent")
            elif attempt.state in (CLAIMED, FAILED):
                change = self._status(email, STATUS_PENDING_SEND, STATE_COMPLETED, attempt)
                row = self._row("reconciled:pending", email, "never handed over; sent later")
            else:
                verdict = self._ask(email, attempt.messageid, attempt.transport)
                if verdict.later:
                    kept_open.add(attempt.attemptid)
                    self.rows.append(self._later(email, verdict, attempt.messageid))
                    continue
                change, row = self._settle(email, attempt, verdict)
            row.message_id, row.transport = attempt.messageid, attempt.transport
            changes.append((change, row))
        stuck_before = self.now - timedelta(seconds=self.params.sending_status_delay)
        for email in sending.values():
            if email.activityid in known or _parse(email.modifiedon) > stuck_before:
                continue
            attempt = Attempt(
                attemptid=email.attemptid or "",
                activityid=email.activityid,
                messageid=self._message_id(email),
                transport=None,
                state=SENDING,
            )
            verdict = self._ask(email, attempt.messageid, None)
            if verdict.later:
                self.rows.append(self._later(email, verdict, attempt.messageid))
                continue
            if verdict.found is None:
                verdict = _Verdict(None, "another router", verdict.reason)
            change, row = self._settle(email, attempt, verdict)
            row.message_id, row.transport = attempt.messageid, verdict.transport
            changes.append((change, row))
        self._apply(changes)
        self.ledger.finish(
            finished + [a.attemptid for a in open_attempts if a.attemptid not in kept_open]
        )

    def _ask(self, email: OutgoingEmail, message_id: str, transport: str | None) -> _Verdict:
        """Ask the email's transport whether it sent *message_id*, when it can tell."""
        choice = self._choice(email)
        if choice is None or choice.url is None:
            return _Verdict(None, transport, "no transport to ask")
        name = self._name(choice.url)
        if transport is not None and name != transport:
            return _Verdict(None, transport, f"the transport is {name} now; it cannot tell")
        if not callable(getattr(self._probe(choice.url), "was_sent", None)):
            return _Verdict(None, name, "it cannot tell")  # SMTP, pickup: nothing to ask
        sender = self._open(choice.url)
        try:
            if isinstance(sender, MailboxError):
                raise sender
            return _Verdict(bool(sender.was_sent(message_id)), name, "")  # type: ignore[attr-defined]
        except MailboxError as exc:
            return _Verdict(None, name, str(exc), later=True)

    def _probe(self, url: str) -> MailSender | None:
        """The unopened sender of *url*: what it can do, without connecting."""
        try:
            return open_sender(url, ca_file=self.params.ca_file)
        except MailboxError:
            return None

    def _settle(
        self, email: OutgoingEmail, attempt: Attempt, verdict: _Verdict
    ) -> tuple[EmailStatusChange, OutgoingRow]:
        if verdict.found:
            reason = f"{verdict.transport} has a sent copy with its Message-ID (Sent Items)"
            return self._sent(email, attempt), self._row("reconciled:sent", email, reason)
        if verdict.found is False:
            reason = f"{verdict.transport} has no sent copy with its Message-ID; sent again later"
            change = self._status(email, STATUS_PENDING_SEND, STATE_COMPLETED, attempt)
            return change, self._row("reconciled:pending", email, reason)
        return self._uncertain(email, verdict.transport, attempt)

    def _later(self, email: OutgoingEmail, verdict: _Verdict, message_id: str) -> OutgoingRow:
        reason = (
            f"{verdict.transport} could not be asked whether it sent this email ({verdict.reason});"
            " left in Sending until it can"
        )
        row = self._row("reconciled:later", email, reason)
        row.message_id, row.transport = message_id, verdict.transport
        return row

    def _uncertain(
        self, email: OutgoingEmail, transport: str | None, attempt: Attempt | None
    ) -> tuple[EmailStatusChange, OutgoingRow]:
        text = UNCERTAIN_TEXT.format(transport=transport or "the transport")
        if self.params.uncertain_sends == "resend":
            change = self._status(email, STATUS_PENDING_SEND, STATE_COMPLETED, attempt)
            return change, self._row("reconciled:pending", email, text + " (resend requested)")
        change = self._status(email, STATUS_FAILED, STATE_OPEN, attempt, error=text)
        return change, self._row("uncertain", email, text)

    # -- 2. select -------------------------------------------------------------------------------
    def _select(self) -> list[OutgoingEmail]:
        due = []
        retry_after = timedelta(seconds=self.params.pending_status_delay)
        pending = self.crm.outgoing_emails([STATUS_PENDING_SEND], limit=self.params.send_limit)
        for email in pending:
            why = self._not_ours(email)
            if why:
                self.rows.append(self._row(f"skipped:{why[0]}", email, why[1]))
            elif email.deliveryattempts and _parse(email.modifiedon) + retry_after > self.now:
                when = (_parse(email.modifiedon) + retry_after).strftime("%Y-%m-%dT%H:%M:%SZ")
                self.rows.append(self._row("waiting", email, f"retry due at {when}"))
            elif (choice := self._choice(email)) is not None and choice.problem:
                # the configured road is broken: never fall back to another one silently
                self.rows.append(self._row("skipped:no-transport", email, choice.problem))
            else:
                due.append(email)
        return due

    def _not_ours(self, email: OutgoingEmail) -> tuple[str, str] | None:
        sender = email.sender
        if sender is None:
            return "no-sender", "the sender is neither a CRM user nor a queue"
        if sender.outgoingemaildeliverymethod != DELIVERY_ROUTER:
            return "not-email-router", (
                f"{sender.entity} {sender.emailaddress} sends through "
                f"outgoingemaildeliverymethod {sender.outgoingemaildeliverymethod}, not the "
                "Email Router (2)"
            )
        if sender.isdisabled:
            return "disabled", f"{sender.entity} {sender.emailaddress} is disabled"
        required = (
            self.org.requireapprovalforuseremail
            if sender.entity == "systemuser"
            else self.org.requireapprovalforqueueemail
        )
        if required and sender.emailrouteraccessapproval != APPROVAL_APPROVED:
            return "not-approved", f"{sender.entity} {sender.emailaddress} is not approved"
        if not sender.emailaddress:
            return "no-address", f"{sender.entity} {sender.name} has no email address"
        return None

    # -- 3. send ---------------------------------------------------------------------------------
    def _send_batch(self, emails: Sequence[OutgoingEmail]) -> None:
        jobs = self._claim(emails)
        if not jobs:
            return
        checkpoint("after-send-claim")
        attachments = self.crm.attachments_by_activity([j.email.activityid for j in jobs])
        parents = self.crm.emails_by_activity_id(
            [j.email.parentactivityid for j in jobs if j.email.parentactivityid]
        )
        for job in jobs:
            email = job.email
            parent = parents.get(email.parentactivityid or "")
            in_reply_to = email.inreplyto or (parent.messageid if parent else None)
            sender = self._open(job.url)
            try:
                if isinstance(sender, MailboxError):
                    raise sender
                built = build_message(
                    email,
                    subject=job.subject,
                    message_id=job.attempt.messageid,
                    attachments=attachments.get(email.activityid, []),
                    in_reply_to=in_reply_to,
                    delegate_sender=getattr(getattr(sender, "mode", None), "sender", None),
                )
                self.ledger.mark(job.attempt.attemptid, SENDING)
                sender.send(
                    built.raw, envelope_from=built.envelope_from, recipients=built.recipients
                )
                checkpoint("after-smtp-data")
                self.ledger.mark(job.attempt.attemptid, SENT)
                checkpoint("after-send-ledger")
                job.change = self._sent(email, job.attempt)
                job.row = self._row("sent", email, f"sent via {job.transport}", job)
            except MailboxError as exc:
                self._failed(job, exc)
            except ValueError as exc:  # the message cannot be built (no sender address)
                self._failed(job, MailboxSendError(str(exc), permanent=True))
        self._apply([(j.change, j.row) for j in jobs if j.change and j.row])
        sent = [j for j in jobs if j.change and j.change.statuscode == STATUS_SENT]
        if sent:  # so that replies can be linked by smart matching later
            settings = HashSettings.from_organization(self.org)
            self.crm.store_email_hashes(
                {
                    j.email.activityid: email_hashes(
                        j.subject,
                        [j.email.sender.emailaddress if j.email.sender else None]
                        + [p.addressused for p in j.email.parties],
                        settings,
                        self._tokens,
                    )
                    for j in sent
                }
            )
        self.ledger.finish([j.attempt.attemptid for j in jobs])

    def _claim(self, emails: Sequence[OutgoingEmail]) -> list[_Job]:
        tokens = self._allocate_tokens(emails)
        jobs = []
        for email in emails:
            token = tokens.get(email.activityid)
            choice = self._choice(email)
            assert choice is not None and choice.url is not None  # _select checked
            attempt = Attempt(
                attemptid=str(uuid.uuid4()),
                activityid=email.activityid,
                messageid=self._message_id(email),
                transport=self._name(choice.url),
                state=CLAIMED,
            )
            subject = subject_with_token(email.subject, token)
            jobs.append(
                _Job(
                    email,
                    attempt,
                    subject,
                    token,
                    choice.url,
                    attempt.transport or choice.url,
                    choice.explained,
                )
            )
        self.ledger.claim([j.attempt for j in jobs], self.run_id)
        claimed = self.crm.update_email_status(
            [
                EmailStatusChange(
                    j.email.activityid,
                    expected_statuscode=STATUS_PENDING_SEND,
                    statuscode=STATUS_SENDING,
                    statecode=STATE_COMPLETED,
                    attemptid=j.attempt.attemptid,
                    subject=j.subject,
                    trackingtoken=j.token,
                )
                for j in jobs
            ]
        )
        lost = [j for j in jobs if j.email.activityid not in claimed]
        for job in lost:
            reason = "its status changed while this run claimed it (another router, a user)"
            self.rows.append(self._row("skipped:taken", job.email, reason))
        self.ledger.finish([j.attempt.attemptid for j in lost])
        return [j for j in jobs if j.email.activityid in claimed]

    def _allocate_tokens(self, emails: Sequence[OutgoingEmail]) -> dict[str, str]:
        use = self.params.tracking_tokens
        if use is None:
            use = bool((self.org.trackingprefix or "").strip())
        result: dict[str, str] = {}
        if not use:
            return result
        wanted: dict[str, list[OutgoingEmail]] = {}
        for email in emails:
            existing = email.trackingtoken or self._tokens.find(email.subject)
            if existing:
                result[email.activityid] = existing
            elif email.sender is not None:
                wanted.setdefault(email.sender.id, []).append(email)
        issue = getattr(self.crm, "issue_tracking_tokens", None)
        issued = (
            issue({e.activityid: e.subject for g in wanted.values() for e in g})
            if issue is not None and wanted
            else None
        )
        if issued is not None:  # the CRM's own tokens (its counters: never a collision)
            result.update(issued)
            wanted = {k: [e for e in g if e.activityid not in issued] for k, g in wanted.items()}
            wanted = {k: g for k, g in wanted.items() if g}
        numbers = self.crm.allocate_tracking_numbers({k: len(v) for k, v in wanted.items()})
        for key, group in wanted.items():
            user = group[0].sender.trackingusernumber if group[0].sender else None
            for email, counter in zip(group, numbers.get(key, []), strict=False):
                result[email.activityid] = self._tokens.format(user or 0, counter)
        return result

    def _failed(self, job: _Job, exc: MailboxError) -> None:
        email, attempts = job.email, job.email.deliveryattempts + 1
        text = str(exc)
        self.ledger.mark(job.attempt.attemptid, FAILED, text[:2000])
        permanent = isinstance(exc, MailboxSendError) and exc.permanent
        if permanent or attempts >= self.params.max_delivery_attempts:
            if not permanent:
                text += f" (MaximumDeliveryAttempts {self.params.max_delivery_attempts} reached)"
            job.change = self._status(
                email, STATUS_FAILED, STATE_OPEN, job.attempt, error=text, attempts=attempts
            )
            job.row = self._row("failed", email, text, job)
        else:
            job.change = self._status(
                email, STATUS_PENDING_SEND, STATE_COMPLETED, job.attempt, error=text,
                attempts=attempts,
            )  # fmt: skip
            job.row = self._row("retry", email, text, job)
        job.row.deliveryattempts = attempts

    # -- transports ------------------------------------------------------------------------------
    def _choice(self, email: OutgoingEmail) -> TransportChoice | None:
        """The sender's transport (routing.transports); None when the email has no sender."""
        if email.sender is None:
            return None
        if email.activityid not in self._choices:
            self._choices[email.activityid] = self.resolver.choose(email.sender)
        return self._choices[email.activityid]

    def _message_id(self, email: OutgoingEmail) -> str:
        address = email.sender.emailaddress if email.sender else None
        return message_id_for(email.activityid, self.params.message_id_domain or _domain(address))

    def _name(self, url: str) -> str:
        """The printable sender id of a transport URL (never a secret; nothing connects)."""
        if url not in self._names:
            try:
                self._names[url] = open_sender(url, ca_file=self.params.ca_file).sender_id
            except MailboxError:
                self._names[url] = redact_url(url).partition("?")[0]
        return self._names[url]

    def _open(self, url: str) -> MailSender | MailboxError:
        """The sender for a transport, opened once per run; its error when it cannot open
        (server down, TLS, login), so every email of that transport is retried later."""
        if url not in self._transports:
            try:
                sender = open_sender(url, ca_file=self.params.ca_file)
                sender.__enter__()
                self._transports[url] = sender
            except MailboxError as exc:
                self._transports[url] = exc
        return self._transports[url]

    # -- CRM writes and rows ---------------------------------------------------------------------
    @property
    def _tokens(self) -> TrackingTokenFormat:
        return TrackingTokenFormat.from_organization(self.org)

    def _sent(self, email: OutgoingEmail, attempt: Attempt) -> EmailStatusChange:
        return EmailStatusChange(
            email.activityid,
            expected_statuscode=STATUS_SENDING,
            statuscode=STATUS_SENT,
            statecode=STATE_COMPLETED,
            expected_attemptid=attempt.attemptid or None,
            messageid=attempt.messageid,
            senton=_iso(datetime.now(UTC)),
            error="",
        )

    def _status(
        self,
        email: OutgoingEmail,
        status: int,
        state: int,
        attempt: Attempt | None,
        *,
        error: str | None = None,
        attempts: int | None = None,
    ) -> EmailStatusChange:
        return EmailStatusChange(
            email.activityid,
            expected_statuscode=STATUS_SENDING,
            statuscode=status,
            statecode=state,
            expected_attemptid=(attempt.attemptid if attempt else email.attemptid) or None,
            deliveryattempts=attempts,
            error=error[:2000] if error else None,
        )

    def _apply(self, changes: Sequence[tuple[EmailStatusChange, OutgoingRow]]) -> None:
        if not changes:
            return
        done = self.crm.update_email_status([c for c, _ in changes])
        for change, row in changes:
            if change.activityid not in done:
                row.outcome = "skipped:taken"
                row.reason = "its status changed meanwhile; left as it is"
            self.rows.append(row)

    def _row(
        self, outcome: str, email: OutgoingEmail, reason: str, job: _Job | None = None
    ) -> OutgoingRow:
        recipients = ";".join(p.addressused for p in email.parties if p.addressused)
        choice = self._choices.get(email.activityid)
        return OutgoingRow(
            outcome=outcome,
            subject=job.subject if job else email.subject,
            sender=email.sender.emailaddress if email.sender else None,
            recipients=recipients or None,
            reason=reason,
            transport=job.transport if job else None,
            tracking_token=job.token if job else email.trackingtoken,
            message_id=job.attempt.messageid if job else None,
            deliveryattempts=email.deliveryattempts,
            activityid=email.activityid,
            transport_rule=job.rule if job else (choice.explained if choice else None),
        )


def run_outgoing(
    crm: CrmBackend, org: Organization, params: RoutingParams, run_id: str
) -> list[OutgoingRow]:
    """Send one outgoing batch; the rows say what happened to each email looked at."""
    return OutgoingRun(crm, org, params, run_id).run()


def _parse(iso: str | None) -> datetime:
    if not iso:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _domain(address: str | None) -> str:
    return (address or "").rpartition("@")[2].lower() or "emailrouter.invalid"


__all__ = ["OUTGOING_COLUMNS", "OUTGOING_CRASH_POINTS", "OutgoingRow", "run_outgoing"]
