"""The router's CRM over the Dataverse / Dynamics 365 Web API (OData v4).

Cost per routing batch, whatever its size up to the limits: one ``$batch`` of GETs per lookup
call (Message-IDs, party addresses, recipients), and one ``$batch`` holding one change set per
``create_emails`` call (up to ``batch=`` requests, 1000 by default), so routing 1,000 messages
costs a handful of requests, not thousands.

Writes are safe to repeat. Every record is created with the id the router chose (``activityid``,
``contactid``), so when a change set is sent again after a timeout and the server answers "a
record with that key exists", the backend checks that every record of the change set is there and
counts the change set as committed: nothing lost, nothing twice.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import requests

from emailrouter_lib.crm.base import (
    PARTY_ENTITIES,
    EmailRef,
    NewAttachment,
    NewEmail,
    Organization,
    Party,
    Recipient,
)
from emailrouter_lib.crm.dataverse.batch import (
    BatchRequest,
    BatchResponse,
    decode_batch,
    encode_batch,
    is_multipart,
)
from emailrouter_lib.crm.dataverse.incoming import email_requests, point_at
from emailrouter_lib.crm.dataverse.mailbox_settings import MailboxSettingsOverWebApi
from emailrouter_lib.crm.dataverse.metadata import (
    SCHEMA_ENTITIES,
    OrgSchema,
    definition_path,
    schema_from,
    trimmed,
)
from emailrouter_lib.crm.dataverse.odata import (
    all_of,
    any_of,
    chunks,
    eq,
    is_in,
    query_path,
)
from emailrouter_lib.crm.dataverse.outgoing import OutgoingOverWebApi
from emailrouter_lib.crm.dataverse.payload import PayloadRules
from emailrouter_lib.crm.dataverse.recipients import (
    QUEUE_COLUMNS,
    USER_COLUMNS,
    queue_recipient,
    read_recipients,
    user_recipient,
)
from emailrouter_lib.crm.dataverse.session import (
    RETRY_STATUS,
    DataverseSession,
    error_for,
    odata_error,
    retry_after,
)
from emailrouter_lib.crm.dataverse.settings import DataverseSettings, parse_dataverse_url
from emailrouter_lib.crm.dataverse.state import RouterState, default_state_path
from emailrouter_lib.errors import CrmError, CrmRecordError

# Values per In(...) list: a part of 3 x 200 addresses stays far below the 64 KB a GET inside a
# $batch may have, and below the URL limits of IIS for the odd plain GET.
IN_CHUNK = 200
RECORD_STATUS = (400, 413, 422)  # a change set refused for what one of its records holds
# Change sets stay small: one transaction per change set, and every request of it counts
# against the per-operation time limit online and the IIS request limits on-premises
# (Microsoft advises small batches, execute-batch-operations-using-web-api.md).
CHANGESET_REQUESTS = 100
CHANGESET_BYTES = 8 * 1024 * 1024  # base64 attachment bodies per change set
UNKNOWN_PROPERTY = "0x80060888"  # "Could not find a property named ..."
SCHEMA_MAX_AGE = 24 * 3600.0  # seconds the state file's copy of the org's metadata is used

LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
DUPLICATE_KEY = "0x80040237"  # "Cannot insert duplicate key" / a record with that key exists

ENTITY_SETS = {
    "account": "accounts",
    "contact": "contacts",
    "lead": "leads",
    "queue": "queues",
    "systemuser": "systemusers",
    "email": "emails",
    "mailbox": "mailboxes",
    "emailserverprofile": "emailserverprofiles",
    "organization": "organizations",
    "incident": "incidents",
    "opportunity": "opportunities",
    "team": "teams",
}
# The user settings of a systemuser (filtering method, create contacts). The entity-set name is
# the one Dataverse uses for usersettings; check $metadata of an old org if it differs.
USER_SETTINGS_SET = "usersettingscollection"

# Every email column of every party entity, in resolution order (reference/email-router.md §3.7).
PARTY_QUERIES: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    # (entity, id column, name column, email columns, only active records)
    ("systemuser", "systemuserid", "fullname",
     ("internalemailaddress", "personalemailaddress"), False),
    ("contact", "contactid", "fullname", ("emailaddress1", "emailaddress2", "emailaddress3"), True),
    ("account", "accountid", "name", ("emailaddress1", "emailaddress2", "emailaddress3"), True),
    ("lead", "leadid", "fullname", ("emailaddress1", "emailaddress2", "emailaddress3"), True),
    ("queue", "queueid", "name", ("emailaddress",), True),
)  # fmt: skip

EMAIL_REF_SELECT = (
    "activityid",
    "messageid",
    "subject",
    "trackingtoken",
    "conversationindex",
    "_regardingobjectid_value",
    "directioncode",
)
USER_SELECT = USER_COLUMNS  # the columns Load Data reads too (dataverse/recipients.py)
QUEUE_SELECT = QUEUE_COLUMNS
ORGANIZATION_SELECT = (
    "organizationid",
    "name",
    "trackingprefix",
    "trackingtokenidbase",
    "trackingtokeniddigits",
    "maximumtrackingnumber",
    "emailcorrelationenabled",
    "enablesmartmatching",
    "hashfilterkeywords",
    "hashmaxcount",
    "hashdeltasubjectcount",
    "hashminaddresscount",
    "ignoreinternalemail",
    "unresolveemailaddressifmultiplematch",
    "requireapprovalforuseremail",
    "requireapprovalforqueueemail",
    "maxuploadfilesize",
    "emailconnectionchannel",
)
# email attributes the Web API documents as read-only; sent unless the URL says readonly=omit.
READ_ONLY_EMAIL = ("inreplyto", "conversationindex", "correlationmethod", "senton")


def entity_set(logical_name: str) -> str:
    return ENTITY_SETS.get(logical_name, f"{logical_name}s")


def open_dataverse(url: str) -> DataverseCrm:
    """Open the Dataverse organisation a ``dataverse+http(s)://`` URL names (no request yet)."""
    return DataverseCrm(parse_dataverse_url(url))


class DataverseCrm(OutgoingOverWebApi, MailboxSettingsOverWebApi):
    """A :class:`~emailrouter_lib.crm.base.CrmBackend` and
    :class:`~emailrouter_lib.crm.base.MailboxSettingsStore` over one organisation's Web API.

    Everything Dataverse has a column for is read and written there: statuses (PATCH of
    ``statecode``/``statuscode`` with ``If-Match`` on the row's ETag: 412 = someone else changed
    it), ``deliveryattempts``, Message-ID, tracking token, mailboxes and profiles. The send attempt
    id, the last delivery error, tracking counters and user numbers and smart-matching hashes have
    no stock column: they are in the router's state file (``state=`` in the URL, see
    :mod:`emailrouter_lib.crm.dataverse.state`), so no customisation of the org is needed.
    """

    def __init__(
        self,
        settings: DataverseSettings,
        *,
        http: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.url = settings.url
        self.session = DataverseSession(settings, http=http, sleep=sleep)
        self._mailbox_of: dict[str, str | None] = {}  # accepting user/queue id -> its mailbox
        self._lock = threading.Lock()
        self._state: RouterState | None = None
        self._schema_lock = threading.Lock()
        self._rules: PayloadRules | None = None
        self._write_notes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"DataverseCrm({self.settings.base_url!r}, auth={self.settings.auth})"

    def __enter__(self) -> DataverseCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()
        if self._state is not None:
            self._state.close()
            self._state = None

    @property
    def stats(self) -> dict[str, int]:
        """Requests sent, retries, throttled answers, timeouts and milliseconds waited."""
        return dict(self.session.stats)

    # -- reading ------------------------------------------------------------------------------

    def _read_headers(self, pagesize: int | None = None) -> dict[str, str]:
        size = min(pagesize or self.settings.pagesize, self.settings.pagesize)
        return {
            "Prefer": f'odata.maxpagesize={max(size, 1)},odata.include-annotations="{LOOKUP_NAME}"'
        }

    def _pages(
        self, first: dict[str, Any], *, limit: int | None = None, pagesize: int | None = None
    ) -> list[dict[str, Any]]:
        """The rows of a collection answer, following ``@odata.nextLink`` as it is given, and
        no further than *limit* rows."""
        rows = list(first.get("value", []))
        link = first.get("@odata.nextLink")
        while link and (limit is None or len(rows) < limit):
            page = self.session.json(
                "GET", link, headers=self._read_headers(pagesize), what="next page"
            )
            rows += page.get("value", [])
            link = page.get("@odata.nextLink")
        return rows if limit is None else rows[:limit]

    def _get(self, path: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows of a GET; with *limit*, at most that many.

        No ``$top``: "If you include both [``$top`` and ``Prefer: odata.maxpagesize``], ``$top``
        is ignored" (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results),
        and every read needs maxpagesize for the lookup annotations' paging. So the page size is
        the limit (up to the server's 5,000) and paging stops once *limit* rows are read.
        """
        first = self.session.json("GET", path, headers=self._read_headers(limit))
        return self._pages(first, limit=limit, pagesize=limit)

    def _read_many(self, paths: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Run GET queries as ``$batch`` parts (as many per batch as ``batch=`` allows).

        Parts answered 429/503 (each inner request counts against service protection) and
        parts a v8.x server never ran (it stops at the first failure) are sent again.
        """
        results: list[list[dict[str, Any]] | None] = [None] * len(paths)
        pending = list(range(len(paths)))
        rounds = 0
        while pending:
            rounds += 1
            delay = 0.0
            again: list[int] = []
            for group in chunks(pending, self.settings.batch):
                requests_ = [
                    BatchRequest("GET", self.session.url(paths[i]), headers=self._read_headers())
                    for i in group
                ]
                headers = (
                    {"Prefer": "odata.continue-on-error"} if self.settings.continue_on_error else {}
                )
                answers = self._post_batch(requests_, headers, what=f"$batch of {len(group)} GETs")
                for position, index in enumerate(group):
                    answer = answers[position] if position < len(answers) else None
                    if answer is not None and answer.ok:
                        results[index] = self._pages(answer.json() or {})
                    elif answer is None or answer.status in RETRY_STATUS:
                        again.append(index)
                        if answer is not None:
                            delay = max(delay, _part_retry_after(answer))
                    else:
                        raise _part_error(answer, f"GET {paths[index].split('?', 1)[0]}")
            if again and rounds > self.settings.retries:
                raise CrmError(
                    f"{self.url}: {len(again)} GET(s) in a $batch were still not answered after "
                    f"{rounds} rounds; the server is throttling or failing, run the batch later"
                )
            if again and delay:
                self.session.stats["retries"] += 1
                self.session.stats["waited_ms"] += int(delay * 1000)
                self.session._sleep(delay)
            pending = again
        return [r or [] for r in results]

    def _post_batch(
        self,
        items: list[BatchRequest | list[BatchRequest]],
        headers: dict[str, str],
        *,
        what: str,
    ) -> list[BatchResponse]:
        answers, _ = self._post_batch_attempts(items, headers, what=what)
        return answers

    def _post_batch_attempts(
        self,
        items: list[BatchRequest | list[BatchRequest]],
        headers: dict[str, str],
        *,
        what: str,
    ) -> tuple[list[BatchResponse], int]:
        content_type, body = encode_batch(items)
        response, attempts = self.session.send(
            "POST",
            "$batch",
            body=body,
            headers={**headers, "Content-Type": content_type},
            what=what,
        )
        content_type = response.headers.get("Content-Type", "")
        # A stopped $batch answers with the failing request's status (400, 412...) at the top
        # level *and* the multipart body holding that request's answer ("Handling errors",
        # https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api#handling-errors):
        # the parts are the answer; only a non-multipart error is about the batch itself.
        if response.status_code >= 400 and not is_multipart(content_type):
            raise error_for(response, what, attempts=attempts)
        try:
            return decode_batch(content_type, response.content), attempts
        except ValueError as exc:
            if response.status_code >= 400:
                raise error_for(response, what, attempts=attempts) from None
            raise CrmError(f"{self.url}: {what}: unreadable $batch answer ({exc})") from None

    # -- CrmBackend: lookups -------------------------------------------------------------------

    def organization(self) -> Organization:
        rows = self._get(query_path("organizations", select=ORGANIZATION_SELECT), limit=1)
        if not rows:
            raise CrmError(f"{self.url}: the Web API returned no organization row")
        row = rows[0]
        values = {name: row.get(name) for name in ORGANIZATION_SELECT}
        defaults = Organization(organizationid=row["organizationid"], name=row.get("name") or "")
        return Organization(
            **{
                name: (getattr(defaults, name) if value is None else _as(defaults, name, value))
                for name, value in values.items()
            }
        )

    def recipients(self) -> list[Recipient]:
        """Every user and queue with an address (Load Data; see dataverse/recipients.py)."""
        return read_recipients(self._read_many)

    def recipients_by_address(self, addresses: Iterable[str]) -> dict[str, list[Recipient]]:
        wanted = _normalise(addresses)
        paths = []
        for chunk in chunks(wanted, IN_CHUNK):
            paths.append(
                query_path(
                    "systemusers", select=USER_SELECT, filter=is_in("internalemailaddress", chunk)
                )
            )
            paths.append(
                query_path("queues", select=QUEUE_SELECT, filter=is_in("emailaddress", chunk))
            )
        return self._recipients(paths, "address", set(wanted))

    def recipients_by_id(self, ids: Iterable[str]) -> dict[str, Recipient]:
        wanted = list(dict.fromkeys(i.strip().strip("{}").lower() for i in ids if i))
        paths = []
        for chunk in chunks(wanted, IN_CHUNK):
            paths.append(
                query_path("systemusers", select=USER_SELECT, filter=is_in("systemuserid", chunk))
            )
            paths.append(query_path("queues", select=QUEUE_SELECT, filter=is_in("queueid", chunk)))
        found = self._recipients(paths, "id", set(wanted))
        return {key: recipients[0] for key, recipients in found.items()}

    def _recipients(
        self, paths: list[str], by: str, wanted: set[str]
    ) -> dict[str, list[Recipient]]:
        if not paths:
            return {}
        answers = self._read_many(paths)
        users = [row for rows in answers[0::2] for row in rows]
        queues = [row for rows in answers[1::2] for row in rows]
        settings = self._user_settings([row["systemuserid"] for row in users])
        found: dict[str, list[Recipient]] = {}
        recipients = []
        for row in users:
            filtering, autocreate = settings.get(row["systemuserid"].lower(), (None, False))
            own = {
                "incomingemailfilteringmethod": filtering,
                "autocreatecontactonpromote": autocreate,
            }
            recipients.append(user_recipient(row, own))
        recipients += [queue_recipient(row) for row in queues]
        for recipient in recipients:  # rows as Load Data reads them (dataverse/recipients.py)
            key = recipient.id.lower() if by == "id" else (recipient.emailaddress or "").lower()
            if key in wanted:
                found.setdefault(key, []).append(recipient)
        return found

    def _user_settings(self, user_ids: list[str]) -> dict[str, tuple[int | None, bool]]:
        """Filtering method and "create contacts" of users (they live on usersettings)."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        paths = [
            query_path(
                USER_SETTINGS_SET,
                select=(
                    "systemuserid",
                    "incomingemailfilteringmethod",
                    "autocreatecontactonpromote",
                ),
                filter=is_in("systemuserid", chunk),
            )
            for chunk in chunks(ids, IN_CHUNK)
        ]
        rows = [row for rows in self._read_many(paths) for row in rows]
        return {
            str(row["systemuserid"]).lower(): (
                row.get("incomingemailfilteringmethod"),
                bool(row.get("autocreatecontactonpromote")),
            )
            for row in rows
        }

    def parties_by_address(self, addresses: Iterable[str]) -> dict[str, list[Party]]:
        wanted = _normalise(addresses)
        if not wanted:
            return {}
        paths: list[tuple[int, str]] = []
        for chunk in chunks(wanted, IN_CHUNK):
            for position, (entity, idcol, namecol, columns, active) in enumerate(PARTY_QUERIES):
                condition = any_of(*(is_in(column, chunk) for column in columns))
                if active:
                    condition = all_of(condition, eq("statecode", 0))
                paths.append(
                    (
                        position,
                        query_path(
                            entity_set(entity),
                            select=(idcol, namecol, *columns),
                            filter=condition,
                            orderby="createdon asc",
                        ),
                    )
                )
        answers = self._read_many([path for _, path in paths])
        keys = set(wanted)
        hits: dict[str, list[tuple[int, int, int, Party]]] = {}
        for (position, _), rows in zip(paths, answers, strict=True):
            entity, idcol, namecol, columns, _ = PARTY_QUERIES[position]
            for row_number, row in enumerate(rows):
                for column_number, column in enumerate(columns):
                    address = row.get(column)
                    if not address or address.lower() not in keys:
                        continue
                    party = Party(entity, row[idcol], row.get(namecol) or "", address)
                    hits.setdefault(address.lower(), []).append(
                        (position, row_number, column_number, party)
                    )
        order = {entity: i for i, entity in enumerate(PARTY_ENTITIES)}
        result: dict[str, list[Party]] = {}
        for key, found in hits.items():
            found.sort(key=lambda hit: (order[hit[3].entity], hit[1], hit[2]))
            seen: set[tuple[str, str]] = set()
            parties = []
            for *_, party in found:
                if (party.entity, party.id.lower()) not in seen:
                    seen.add((party.entity, party.id.lower()))
                    parties.append(party)
            result[key] = parties
        return result

    def emails_by_message_id(self, message_ids: Iterable[str]) -> dict[str, EmailRef]:
        wanted = list(dict.fromkeys(m for m in message_ids if m))
        paths = [
            query_path(
                "emails",
                select=EMAIL_REF_SELECT,
                filter=is_in("messageid", chunk),
                orderby="createdon desc",
            )
            for chunk in chunks(wanted, IN_CHUNK)
        ]
        exact = set(wanted)
        found: dict[str, EmailRef] = {}
        for rows in self._read_many(paths) if paths else []:
            for row in rows:
                # Dataverse compares strings case-insensitively; a Message-ID is exact.
                if row.get("messageid") in exact:
                    found[row["messageid"]] = _email_ref(row)
        return found

    def emails_by_activity_id(self, activityids: Iterable[str]) -> dict[str, EmailRef]:
        wanted = list(dict.fromkeys(a for a in activityids if a))
        paths = [
            query_path("emails", select=EMAIL_REF_SELECT, filter=is_in("activityid", chunk))
            for chunk in chunks(wanted, IN_CHUNK)
        ]
        by_lower = {a.lower(): a for a in wanted}
        found: dict[str, EmailRef] = {}
        for rows in self._read_many(paths) if paths else []:
            for row in rows:
                key = by_lower.get(str(row["activityid"]).lower())
                if key is not None:
                    found[key] = _email_ref(row)
        return found

    def email_by_tracking_token(self, token: str) -> EmailRef | None:
        if not token or not token.strip():
            return None
        rows = self._get(
            query_path(
                "emails",
                select=EMAIL_REF_SELECT,
                filter=eq("trackingtoken", token.strip()),
                orderby="createdon desc",
            ),
            limit=1,
        )
        return _email_ref(rows[0]) if rows else None

    def email_by_conversation(self, baseconversationindexhash: int) -> EmailRef | None:
        rows = self._get(
            query_path(
                "emails",
                select=EMAIL_REF_SELECT,
                filter=eq("baseconversationindexhash", int(baseconversationindexhash)),
                orderby="createdon desc",
            ),
            limit=1,
        )
        if not rows:
            return None
        found = _email_ref(rows[0])
        if found.conversationindex is None:
            # Read-only on every flavour, so empty on the emails this router created: their
            # Thread-Index is in the state file (stored by create_emails).
            stored = self.state.thread_indexes([found.activityid])
            if stored:
                found = replace(found, conversationindex=stored[found.activityid.lower()])
        return found

    def attachments_by_activity(self, activityids: Iterable[str]) -> dict[str, list[NewAttachment]]:
        wanted = list(dict.fromkeys(a for a in activityids if a))
        select = (
            "_objectid_value",
            "filename",
            "mimetype",
            "body",
            "attachmentcontentid",
            "attachmentnumber",
        )
        paths = [
            query_path(
                "activitymimeattachments",
                select=select,
                filter=is_in("objectid", chunk),
                orderby="attachmentnumber asc",
            )
            for chunk in chunks(wanted, IN_CHUNK)
        ]
        by_lower = {a.lower(): a for a in wanted}
        found: dict[str, list[NewAttachment]] = {}
        for rows in self._read_many(paths) if paths else []:
            for row in rows:
                key = by_lower.get(str(row.get("_objectid_value")).lower())
                if key is None:
                    continue
                found.setdefault(key, []).append(
                    NewAttachment(
                        row.get("filename") or "",
                        row.get("mimetype") or "application/octet-stream",
                        base64.b64decode(row.get("body") or ""),
                        row.get("attachmentcontentid"),
                    )
                )
        return found

    # -- CrmBackend: writes --------------------------------------------------------------------

    def create_emails(self, emails: Sequence[NewEmail]) -> None:
        """Create the emails, their parties and attachments in ``$batch`` change sets.

        Change sets of at most 100 requests and 8 MB of attachments, never splitting an email
        from its attachments; as many change sets per ``$batch`` as ``batch=`` requests allow
        (and 8 MB). A change set is all or nothing and a ``$batch`` stops at the first failed
        one; an error leaves the earlier change sets committed, and the message says so: the
        routing ledger's recovery then finds exactly which activities exist.
        """
        if not emails:
            return
        accepting = {e.acceptingentityid for e in emails if e.acceptingentityid}
        has_mailbox = self.rules.has("email", "receivingmailboxid")
        mailboxes = self._receiving_mailboxes(accepting) if has_mailbox else {}
        groups: list[_Group] = [_Group()]
        limit = min(self.settings.batch, CHANGESET_REQUESTS)
        for email in emails:
            notes: list[str] = []
            parts = self._email_requests(email, mailboxes.get(email.acceptingentityid or ""), notes)
            if notes:
                with self._lock:
                    self._write_notes[email.activityid] = "; ".join(notes)
            weight = sum(len(a.body) for a in email.attachments) * 4 // 3
            last = groups[-1]
            if last.emails and (
                last.size + len(parts) > limit or last.weight + weight > CHANGESET_BYTES
            ):
                groups.append(_Group())
            groups[-1].add(email, parts, weight)
        committed = 0
        for batch in _batches(groups, self.settings.batch, CHANGESET_BYTES):
            self._commit_batch(batch, committed, len(emails))
            committed += sum(len(g.emails) for g in batch)
            # conversationindex is read-only in every flavour (email.md): keep it here.
            indexes = {
                e.activityid: e.conversationindex
                for g in batch
                for e, _ in g.emails
                if e.conversationindex
            }
            if indexes:
                self.state.store_thread_indexes(indexes)

    def write_notes(self, activityids: Iterable[str]) -> dict[str, str]:
        """What writing these emails changed in them (values cut to the org's MaxLength), for
        the routing result rows; each note is handed out once."""
        with self._lock:
            return {a: n for a in activityids if (n := self._write_notes.pop(a, None))}

    def _commit_batch(self, batch: list[_Group], committed: int, total: int) -> None:
        """Send change sets in one ``$batch`` until each is committed (or found committed)."""
        changesets = [group.changeset() for group in batch]
        pending = list(range(len(batch)))
        resent = False
        while pending:
            what = f"$batch creating {sum(len(batch[i].emails) for i in pending)} email(s)"
            answers, attempts = self._post_batch_attempts(
                [changesets[i] for i in pending], {}, what=what
            )
            resent = resent or attempts > 1
            by_part: dict[int, list[BatchResponse]] = {}
            for answer in answers:
                by_part.setdefault(answer.part, []).append(answer)
            done = 0
            for position, index in enumerate(pending):
                group, found = batch[index], by_part.get(position, [])
                failed = next((a for a in found if not a.ok), None)
                if failed is None and len(found) >= len(changesets[index]):
                    done += 1
                    continue
                ids = [email.activityid for email, _ in group.emails]
                # A change set sent again after a timeout: the first one may have committed.
                if (
                    failed is not None
                    and resent
                    and _is_duplicate(failed)
                    and len(self.emails_by_activity_id(ids)) == len(ids)
                ):
                    done += 1
                    break  # the batch stopped here: send the rest again
                before = committed + sum(len(batch[i].emails) for i in pending[:position])
                self._refused(group, failed, before, total)
            pending = pending[done:]

    def _refused(
        self, group: _Group, failed: BatchResponse | None, committed: int, total: int
    ) -> None:
        culprit = group.owner_of.get(failed.content_id or "") if failed else None
        culprit = culprit or group.emails[0][0]
        code, message = odata_error(_json_or_none(failed)) if failed else ("", "no answer")
        if code.lower() == UNKNOWN_PROPERTY:  # the org changed since its metadata was read
            self.forget_schema()
        earlier = (
            f"; the {committed} email(s) of earlier change sets of this call were committed"
            if committed
            else ""
        )
        # 400/413/422 answer what one record holds (a value, a size); anything else (auth,
        # throttling, a server fault, no answer) is the CRM's state and stops the mailbox.
        record = failed is not None and failed.status in RECORD_STATUS
        raise (CrmRecordError if record else CrmError)(
            f"{self.url}: could not create {len(group.emails)} of {total} email(s): the change "
            f"set failed at Message-ID {culprit.messageid} (activityid {culprit.activityid}) "
            f"with HTTP {failed.status if failed else '?'} {code} {message[:300]}; nothing of "
            f"this change set was written{earlier}, the batch can be retried"
        )

    def _email_requests(
        self, email: NewEmail, mailboxid: str | None, notes: list[str]
    ) -> list[BatchRequest]:
        return email_requests(email, mailboxid, self.rules, self.session.url, entity_set, notes)

    def _receiving_mailboxes(self, accepting: set[str]) -> dict[str, str | None]:
        """The mailbox of each accepting user or queue (cached: it does not change in a run)."""
        missing = sorted(a for a in accepting if a not in self._mailbox_of)
        if missing:
            paths = [
                query_path(
                    "mailboxes",
                    select=("mailboxid", "_regardingobjectid_value"),
                    filter=is_in("regardingobjectid", chunk),
                    orderby="createdon asc",
                )
                for chunk in chunks(missing, IN_CHUNK)
            ]
            found: dict[str, str] = {}
            for rows in self._read_many(paths):
                for row in rows:
                    found.setdefault(
                        str(row.get("_regardingobjectid_value")).lower(), row["mailboxid"]
                    )
            with self._lock:
                for key in missing:
                    self._mailbox_of[key] = found.get(key.lower())
        return {key: self._mailbox_of.get(key) for key in accepting}

    def create_contact(self, emailaddress: str, fullname: str | None) -> Party:
        import uuid

        address = emailaddress.strip()
        name = (fullname or "").strip() or address.split("@", 1)[0]
        first, _, last = name.rpartition(" ") if " " in name else ("", "", name)
        contactid = str(uuid.uuid4())
        values = {"contactid": contactid, "lastname": last, "emailaddress1": address}
        if first:
            values["firstname"] = first
        notes: list[str] = []
        body = self.rules.values("contact", values, create=True, notes=notes)
        data = json.dumps(body).encode("utf-8")
        what = f"create a contact for {address}"
        response, attempts = self.session.send(
            "POST",
            "contacts",
            body=data,
            headers={"Content-Type": "application/json; charset=utf-8"},
            what=what,
        )
        if response.status_code >= 400:
            exists = attempts > 1 and _is_duplicate_response(response)
            if not exists:
                raise error_for(response, what, attempts=attempts)
        return Party("contact", contactid, name, address)

    # -- what the org has (metadata.py) -------------------------------------------------------

    @property
    def rules(self) -> PayloadRules:
        """The org's schema as payload rules, read on first use: once per connection, or
        from the state file's copy when it is younger than a day."""
        with self._schema_lock:
            if self._rules is None:
                self._rules = PayloadRules(
                    self._read_schema(), send_readonly=self.settings.send_readonly
                )
            return self._rules

    @property
    def schema_findings(self) -> list[str]:
        """What the router wanted to write and this org has no column for, or does not let a
        create/update set ("email.inreplyto: read-only"), each once: for the run's report."""
        rules = self._rules
        return sorted(rules.skipped) if rules is not None else []

    def forget_schema(self) -> None:
        """Read the org's metadata again on next use (its copy in the state file too)."""
        with self._schema_lock:
            self._rules = None
        self.state.forget_schema(self.settings.base_url)

    def _read_schema(self) -> OrgSchema:
        base = self.settings.base_url
        known = self.state.schema_definitions(base, SCHEMA_ENTITIES, SCHEMA_MAX_AGE)
        pending = [e for e in SCHEMA_ENTITIES if e not in known]
        read: dict[str, dict[str, Any]] = {}
        headers = {"Prefer": "odata.continue-on-error"} if self.settings.continue_on_error else {}
        for _ in range(len(pending)):  # v8.x stops at the first failed part: send the rest again
            if not pending:
                break
            answers = self._post_batch(
                [BatchRequest("GET", self.session.url(definition_path(e))) for e in pending],
                headers,
                what=f"$batch reading the metadata of {len(pending)} entities",
            )
            again = []
            for position, entity in enumerate(pending):
                answer = answers[position] if position < len(answers) else None
                if answer is None or answer.status in RETRY_STATUS:
                    again.append(entity)
                elif answer.ok:
                    read[entity] = trimmed(answer.json() or {})
                elif answer.status != 404:  # 404: the org has no such entity
                    raise _part_error(answer, f"GET EntityDefinitions(LogicalName='{entity}')")
            pending = again
        if read:
            self.state.store_schema_definitions(base, read)
        return schema_from([*known.values(), *read.values()])

    # -- the router's own state (what Dataverse has no column for) -----------------------------

    @property
    def state(self) -> RouterState:
        """The state file (``state=`` in the URL), opened on first use: routing incoming mail
        without smart matching never creates it."""
        with self._lock:
            if self._state is None:
                path = self.settings.state or default_state_path(self.settings.base_url)
                self._state = RouterState(path)
            return self._state


# -- helpers -----------------------------------------------------------------------------------


class _Group:
    """The emails of one change set, with their requests."""

    def __init__(self) -> None:
        self.emails: list[tuple[NewEmail, list[BatchRequest]]] = []
        self.size = 0  # requests
        self.weight = 0  # base64 attachment bytes
        self.owner_of: dict[str, NewEmail] = {}

    def add(self, email: NewEmail, parts: list[BatchRequest], weight: int) -> None:
        self.emails.append((email, parts))
        self.size += len(parts)
        self.weight += weight

    def changeset(self) -> list[BatchRequest]:
        """The change set: Content-IDs 1..n; an email's later requests refer to it as $n."""
        changeset: list[BatchRequest] = []
        for email, parts in self.emails:
            first: str | None = None
            for request in parts:
                request.content_id = str(len(changeset) + 1)
                self.owner_of[request.content_id] = email
                if first is None:
                    first = request.content_id
                else:
                    point_at(request, f"${first}")
                changeset.append(request)
        return changeset


def _batches(groups: list[_Group], requests: int, weight: int) -> list[list[_Group]]:
    """Change sets gathered into ``$batch``es of at most *requests* requests and *weight*."""
    batches: list[list[_Group]] = [[]]
    size = load = 0
    for group in groups:
        if not group.emails:
            continue
        if batches[-1] and (size + group.size > requests or load + group.weight > weight):
            batches.append([])
            size = load = 0
        batches[-1].append(group)
        size += group.size
        load += group.weight
    return [b for b in batches if b]


def _normalise(addresses: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        if address and (key := address.strip().lower()):
            seen.setdefault(key, None)
    return list(seen)


def _email_ref(row: dict[str, Any]) -> EmailRef:
    regarding = row.get("_regardingobjectid_value")
    return EmailRef(
        activityid=row["activityid"],
        messageid=row.get("messageid"),
        subject=row.get("subject"),
        trackingtoken=row.get("trackingtoken"),
        conversationindex=row.get("conversationindex"),
        regardingobjectid=regarding,
        regardingobjecttypecode=row.get(f"_regardingobjectid_value@{LOOKUP_NAME}")
        if regarding
        else None,
        directioncode=bool(row.get("directioncode")),
    )


def _bind(logical_name: str | None, record_id: str) -> str:
    return f"/{entity_set(logical_name or '')}({record_id})"


def _json_or_none(answer: BatchResponse | None) -> Any:
    if answer is None:
        return None
    try:
        return answer.json()
    except ValueError:
        return None


def _is_duplicate(answer: BatchResponse) -> bool:
    code, _ = odata_error(_json_or_none(answer))
    return answer.status == 412 or code.lower() == DUPLICATE_KEY


def _is_duplicate_response(response: requests.Response) -> bool:
    try:
        code, _ = odata_error(response.json())
    except ValueError:
        code = ""
    return response.status_code == 412 or code.lower() == DUPLICATE_KEY


def _part_retry_after(answer: BatchResponse) -> float:
    fake = requests.Response()
    fake.headers.update(answer.headers)
    return retry_after(fake, default=1.0)


def _part_error(answer: BatchResponse, what: str) -> CrmError:
    return error_for(None, what, status=answer.status, body=_json_or_none(answer))


def _as(defaults: Organization, name: str, value: Any) -> Any:
    current = getattr(defaults, name)
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, int):
        return int(value)
    return value


__all__ = ["DataverseCrm", "entity_set", "open_dataverse"]
