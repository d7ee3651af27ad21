"""Outgoing email and smart matching over the Web API (mixed into ``DataverseCrm``).

Status changes are compare-and-set the Dataverse way: the backend reads each email's
``@odata.etag`` and status, and PATCHes ``statecode``/``statuscode`` with ``If-Match`` on that
ETag; 412 means someone else changed the email first, and the change is skipped, never forced.
The PATCHes of one call travel in one ``$batch`` as independent requests (a 412 must not undo the
others, so no change set). What Dataverse has no column for — the attempt id, the last delivery
error, tracking counters and user numbers, smart-matching hashes — is in the router's state file
(:mod:`emailrouter_lib.crm.dataverse.state`).

Cost of one outgoing batch: one GET for the emails, one ``$batch`` for their parties, one for the
senders and party names; per status write, one ``$batch`` of GETs (ETags) and one of PATCHes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emailrouter_lib.crm.base import (
    PARTICIPATION_BCC,
    PARTICIPATION_CC,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    STATUS_DRAFT,
    EmailHashes,
    EmailStatusChange,
    OutgoingEmail,
    OutgoingParty,
    SendingMailbox,
)
from emailrouter_lib.crm.dataverse.batch import BatchRequest, BatchResponse
from emailrouter_lib.crm.dataverse.odata import all_of, any_of, chunks, eq, is_in, query_path
from emailrouter_lib.crm.dataverse.session import RETRY_STATUS, error_for
from emailrouter_lib.crm.dataverse.state import RouterState
from emailrouter_lib.errors import CrmError

LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
IN_CHUNK = 200

OUTGOING_SELECT = (
    "activityid",
    "subject",
    "description",
    "mimetype",
    "statuscode",
    "deliveryattempts",
    "modifiedon",
    "trackingtoken",
    "inreplyto",
    "_parentactivityid_value",
    "_regardingobjectid_value",
    "_ownerid_value",
)
PARTY_SELECT = (
    "_activityid_value",
    "participationtypemask",
    "_partyid_value",
    "addressused",
    "unresolvedpartyname",
)
# (entity set, id column, name column, address column) of every record a party may point at.
NAMED = {
    "systemuser": ("systemusers", "systemuserid", "fullname"),
    "contact": ("contacts", "contactid", "fullname"),
    "account": ("accounts", "accountid", "name"),
    "lead": ("leads", "leadid", "fullname"),
    "queue": ("queues", "queueid", "name"),
}
SENDER_SELECT = {
    "systemuser": (
        "systemuserid",
        "fullname",
        "internalemailaddress",
        "outgoingemaildeliverymethod",
        "emailrouteraccessapproval",
        "isdisabled",
    ),
    "queue": (
        "queueid",
        "name",
        "emailaddress",
        "outgoingemaildeliverymethod",
        "emailrouteraccessapproval",
        "statecode",
    ),
}
RECIPIENTS = (PARTICIPATION_TO, PARTICIPATION_CC, PARTICIPATION_BCC)
# statecode of each email statuscode (email.md): 0 Open, 1 Completed, 2 Canceled.
STATE_OF_STATUS = {1: 0, 8: 0, 2: 1, 3: 1, 4: 1, 6: 1, 7: 1, 5: 2}


@dataclass(frozen=True)
class _Version:
    etag: str | None
    statuscode: int
    row: dict[str, Any]


class OutgoingOverWebApi:
    """The outgoing and smart-matching part of :class:`~emailrouter_lib.crm.base.CrmBackend`.

    Needs from its host: ``settings``, ``session``, ``url``, ``state`` (a RouterState),
    ``_get``, ``_read_many``, ``_post_batch_attempts`` and ``organization``.
    """

    state: RouterState

    # -- reading outgoing emails ----------------------------------------------------------------

    def outgoing_emails(self, statuscodes: Iterable[int], *, limit: int) -> list[OutgoingEmail]:
        codes = sorted({int(c) for c in statuscodes})
        if not codes or limit <= 0:
            return []
        rows = self._get(
            query_path(
                "emails",
                select=OUTGOING_SELECT,
                filter=all_of(
                    eq("directioncode", True), any_of(*(eq("statuscode", c) for c in codes))
                ),
                orderby="modifiedon asc",
            ),
            limit=int(limit),
        )
        if not rows:
            return []
        ids = [row["activityid"] for row in rows]
        parties: dict[str, list[dict[str, Any]]] = {}
        paths = [
            query_path(
                "activityparties",
                select=self.rules.select("activityparty", PARTY_SELECT),
                filter=is_in("activityid", chunk),
            )
            for chunk in chunks(ids, IN_CHUNK)
        ]
        for found in self._read_many(paths):
            for party in found:
                parties.setdefault(str(party.get("_activityid_value")).lower(), []).append(party)
        senders: dict[str, tuple[str, str]] = {}
        for row in rows:
            sender = next(
                (
                    (_party_type(p), p["_partyid_value"])
                    for p in parties.get(row["activityid"].lower(), [])
                    if p.get("participationtypemask") == PARTICIPATION_SENDER
                    and _party_type(p) in ("systemuser", "queue")
                    and p.get("_partyid_value")
                ),
                None,
            )
            owner_type = row.get(f"_ownerid_value@{LOOKUP_NAME}")
            if sender is None and row.get("_ownerid_value") and owner_type in SENDER_SELECT:
                sender = (owner_type, row["_ownerid_value"])
            if sender is not None:
                senders[row["activityid"]] = (sender[0], sender[1].lower())
        named = {
            (_party_type(p), str(p["_partyid_value"]).lower())
            for found in parties.values()
            for p in found
            if p.get("_partyid_value") and _party_type(p) in NAMED
        }
        mailboxes, names = self._senders_and_names(set(senders.values()), named)
        attempts = self.state.attempts(ids)
        result = []
        for row in rows:
            key = row["activityid"].lower()
            record = attempts.get(key)
            result.append(
                OutgoingEmail(
                    activityid=row["activityid"],
                    subject=row.get("subject") or "",
                    description=row.get("description") or "",
                    mimetype=row.get("mimetype"),
                    statuscode=int(row["statuscode"]),
                    deliveryattempts=int(row.get("deliveryattempts") or 0),
                    modifiedon=row.get("modifiedon") or "",
                    trackingtoken=row.get("trackingtoken"),
                    inreplyto=row.get("inreplyto"),
                    parentactivityid=row.get("_parentactivityid_value"),
                    regardingobjectid=row.get("_regardingobjectid_value"),
                    regardingobjecttypecode=row.get(f"_regardingobjectid_value@{LOOKUP_NAME}")
                    if row.get("_regardingobjectid_value")
                    else None,
                    ownerid=row.get("_ownerid_value"),
                    attemptid=record.holds(row.get("@odata.etag")) if record else None,
                    sender=mailboxes.get(senders.get(row["activityid"], ("", ""))),
                    parties=tuple(
                        OutgoingParty(
                            participationtypemask=int(p["participationtypemask"]),
                            addressused=p.get("addressused"),
                            name=p.get("unresolvedpartyname")
                            or names.get((_party_type(p), str(p.get("_partyid_value")).lower())),
                            partyid=p.get("_partyid_value"),
                            partyobjecttypecode=_party_type(p) if p.get("_partyid_value") else None,
                        )
                        for p in parties.get(key, [])
                        if p.get("participationtypemask") in RECIPIENTS
                    ),
                )
            )
        return result

    def _senders_and_names(
        self, senders: set[tuple[str, str]], named: set[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], SendingMailbox], dict[tuple[str, str], str]]:
        """Sending users/queues and the names of party records, in one ``$batch`` of GETs."""
        wanted: dict[str, set[str]] = {}
        for entity, record_id in senders | named:
            wanted.setdefault(entity, set()).add(record_id)
        paths: list[tuple[str, str]] = []
        for entity, ids in sorted(wanted.items()):
            set_name, idcol, namecol = NAMED[entity]
            select = SENDER_SELECT.get(entity, (idcol, namecol))
            for chunk in chunks(sorted(ids), IN_CHUNK):
                paths.append(
                    (entity, query_path(set_name, select=select, filter=is_in(idcol, chunk)))
                )
        answers = self._read_many([p for _, p in paths]) if paths else []
        numbers = self.state.user_numbers(i for e, i in senders if e == "systemuser")
        mailboxes: dict[tuple[str, str], SendingMailbox] = {}
        names: dict[tuple[str, str], str] = {}
        for (entity, _), rows in zip(paths, answers, strict=True):
            _, idcol, namecol = NAMED[entity]
            for row in rows:
                key = (entity, str(row[idcol]).lower())
                if row.get(namecol):
                    names[key] = row[namecol]
                if key not in senders:
                    continue
                user = entity == "systemuser"
                mailboxes[key] = SendingMailbox(
                    entity=entity,
                    id=row[idcol],
                    name=row.get(namecol) or "",
                    emailaddress=row.get("internalemailaddress" if user else "emailaddress"),
                    outgoingemaildeliverymethod=int(row.get("outgoingemaildeliverymethod") or 0),
                    emailrouteraccessapproval=int(row.get("emailrouteraccessapproval") or 0),
                    isdisabled=bool(row.get("isdisabled")) if user else row.get("statecode") != 0,
                    trackingusernumber=numbers.get(key[1]) if user else None,
                )
        return mailboxes, names

    # -- compare-and-set status writes ----------------------------------------------------------

    def update_email_status(self, changes: Sequence[EmailStatusChange]) -> set[str]:
        if not changes:
            return set()
        ids = [c.activityid for c in changes]
        current = self._versions(ids)
        records = self.state.attempts(ids)
        todo: list[tuple[EmailStatusChange, str]] = []
        for change in changes:
            key = change.activityid.lower()
            now = current.get(key)
            if now is None or now.statuscode != change.expected_statuscode or now.etag is None:
                continue
            if change.expected_attemptid is not None:
                record = records.get(key)
                if record is None or record.holds(now.etag) != change.expected_attemptid:
                    continue
            todo.append((change, now.etag))
        if not todo:
            return set()
        claims = {c.activityid: (c.attemptid, etag) for c, etag in todo if c.attemptid}
        if claims:  # before the PATCH, so that a killed run still knows its claims
            self.state.begin_claims(claims)
        items = [self._status_requests(c, etag) for c, etag in todo]
        answers, repeated = self._write_each(items, what="$batch of email status changes")
        written: dict[str, str | None] = {}
        lost: list[EmailStatusChange] = []
        for (change, _), answer in zip(todo, answers, strict=True):
            if answer.ok:
                body = _json(answer)
                written[change.activityid] = (body or {}).get("@odata.etag") or answer.headers.get(
                    "etag"
                )
            elif answer.status == 412 and repeated:
                lost.append(change)  # maybe our own write, answered too late and sent again
            elif answer.status in (404, 412):
                continue  # deleted, or changed by someone else since we read it: not forced
            else:
                raise error_for(
                    None,
                    f"status change of email {change.activityid}",
                    status=answer.status,
                    body=_json(answer),
                )
        if lost:
            again = self._versions([c.activityid for c in lost])
            for change in lost:
                now = again.get(change.activityid.lower())
                if now is not None and _shows(now.row, change):
                    written[change.activityid] = now.etag
        missing = [a for a, etag in written.items() if not etag]
        if missing:
            for key, now in self._versions(missing).items():
                written.update({a: now.etag for a in missing if a.lower() == key})
        by_id = {c.activityid: c for c, _ in todo}
        self.state.record_writes(
            written,
            {a: by_id[a].attemptid for a in written},
            {a: by_id[a].error for a in written if by_id[a].error is not None},
        )
        return set(written)

    def _status_requests(
        self, change: EmailStatusChange, etag: str
    ) -> BatchRequest | list[BatchRequest]:
        """The PATCH(es) of one compare-and-set status change, in an order the platform takes.

        Pending Send (6) and Sending (7) are statecode 1, *Completed* (email.md status table),
        and the platform refuses an update of other columns of a closed activity ("Cannot update
        Closed or Cancelled Activity"). So columns are written only while the email is open:
        from a closed status to an open one (Failed), the state first, then the columns; from a
        closed status to a closed one with columns (the claim's subject and tracking token, the
        Message-ID when Sent), reopen as Draft, write the columns, close again. More than one
        PATCH goes in one change set (all or nothing); the first carries ``If-Match``, so a
        412 still means "someone else changed it" and nothing of it is written. That a caller
        may set a Completed email back to an open status is not documented (the same open
        question as Sending -> Failed, dataverse-research.md §1.9): check it on a live org.
        """
        url = self.session.url(f"emails({change.activityid})")
        columns = {
            "messageid": change.messageid,
            "deliveryattempts": change.deliveryattempts,
            "subject": change.subject,
            "trackingtoken": change.trackingtoken,
            "senton": change.senton,  # read-only (email.md): left out by the rules
        }
        columns = self.rules.values(
            "email",
            {k: v for k, v in columns.items() if v is not None},
            create=False,
            notes=[],
        )
        state = {"statecode": change.statecode, "statuscode": change.statuscode}
        closed_now = STATE_OF_STATUS.get(change.expected_statuscode, 0) != 0
        last = {"Prefer": "return=representation"}
        if not columns:
            return BatchRequest("PATCH", url, state, headers={"If-Match": etag, **last})
        if not closed_now:
            return BatchRequest(
                "PATCH", url, {**state, **columns}, headers={"If-Match": etag, **last}
            )
        if change.statecode == 0:
            steps = [(state, {"If-Match": etag}), (columns, last)]
        else:
            reopen = {"statecode": 0, "statuscode": STATUS_DRAFT}
            steps = [(reopen, {"If-Match": etag}), (columns, {}), (state, last)]
        return [
            BatchRequest("PATCH", url, body, headers=headers, content_id=str(n))
            for n, (body, headers) in enumerate(steps, start=1)
        ]

    def _versions(self, activityids: Sequence[str]) -> dict[str, _Version]:
        """ETag, status and the written columns of each email (lower-cased keys)."""
        wanted = list(dict.fromkeys(a for a in activityids if a))
        select = ("activityid", "statuscode", "messageid", "subject", "trackingtoken")
        paths = [
            query_path("emails", select=select, filter=is_in("activityid", chunk))
            for chunk in chunks(wanted, IN_CHUNK)
        ]
        found: dict[str, _Version] = {}
        for rows in self._read_many(paths) if paths else []:
            for row in rows:
                found[str(row["activityid"]).lower()] = _Version(
                    row.get("@odata.etag"), int(row["statuscode"]), row
                )
        return found

    def _write_each(
        self, items: list[BatchRequest | list[BatchRequest]], *, what: str
    ) -> tuple[list[BatchResponse], bool]:
        """Send independent writes (a request, or a change set of several) in ``$batch``es;
        return each item's final answer (a change set's failing answer, else its last) and
        whether any batch was sent more than once (then a 412 may be our own earlier write).

        Items answered 429/503, and items a v8.x server never ran after a failure, are sent
        again; 412 and other client errors are answers, for the caller to judge.
        """
        results: list[BatchResponse | None] = [None] * len(items)
        pending = list(range(len(items)))
        repeated = False
        rounds = 0
        settings = self.settings
        headers = {"Prefer": "odata.continue-on-error"} if settings.continue_on_error else {}
        while pending:
            rounds += 1
            again: list[int] = []
            delay = 0.0
            for group in _groups(pending, items, settings.batch):
                answers, attempts = self._post_batch_attempts(
                    [items[i] for i in group], headers, what=what
                )
                repeated = repeated or attempts > 1
                by_part: dict[int, list[BatchResponse]] = {}
                for answer in answers:
                    by_part.setdefault(answer.part, []).append(answer)
                for position, index in enumerate(group):
                    found = by_part.get(position, [])
                    answer = next((a for a in found if not a.ok), found[-1] if found else None)
                    if answer is None or answer.status in RETRY_STATUS:
                        again.append(index)
                        if answer is not None:
                            delay = max(delay, _retry_after(answer))
                    else:
                        results[index] = answer
            if again and rounds > settings.retries:
                raise CrmError(
                    f"{self.url}: {what}: {len(again)} write(s) were still not answered after "
                    f"{rounds} rounds; the server is throttling or failing, run the batch later"
                )
            if again and delay:
                self.session.stats["retries"] += 1
                self.session._sleep(delay)
            pending = again
        return [r for r in results if r is not None], repeated

    # -- tracking tokens ------------------------------------------------------------------------

    def issue_tracking_tokens(self, subjects: Mapping[str, str]) -> dict[str, str] | None:
        """One token per email from the CRM's own counters: the unbound ``GetTrackingTokenEmail``
        action (parameter ``Subject``, answer ``TrackingToken``; Dataverse and CRM 2016,
        https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/gettrackingtokenemail,
        mt593007(v=crm.8)), all in one ``$batch``. Tokens the CRM issues cannot collide with
        those it issues to SendEmail, workflows or other routers.

        None when the org does not issue them to this caller (the action is unknown, or the
        router's user lacks the privilege): then routing falls back to the named local
        fallback, ``allocate_tracking_numbers`` (user numbers in the state file).
        """
        if not subjects or getattr(self, "_no_crm_tokens", False):
            return None
        ids = list(subjects)
        items: list[BatchRequest | list[BatchRequest]] = [
            BatchRequest(
                "POST", self.session.url("GetTrackingTokenEmail"), {"Subject": subjects[a] or ""}
            )
            for a in ids
        ]
        answers, _ = self._write_each(items, what="$batch of GetTrackingTokenEmail")
        tokens: dict[str, str] = {}
        for activityid, answer in zip(ids, answers, strict=True):
            token = (_json(answer) or {}).get("TrackingToken") if answer.ok else None
            if not token:
                if answer.status in (400, 403, 404, 501):
                    self._no_crm_tokens = True  # this org or user: the local fallback from now on
                    return None
                raise error_for(
                    None, "GetTrackingTokenEmail", status=answer.status, body=_json(answer)
                )
            tokens[activityid] = str(token)
        return tokens

    # -- tracking numbers: the local fallback ---------------------------------------------------

    def allocate_tracking_numbers(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        wanted = {uid: int(n) for uid, n in counts.items() if uid and int(n) > 0}
        if not wanted:
            return {}
        org = self.organization()
        modulo = max(int(org.maximumtrackingnumber), 1) + 1
        known = self.state.counters(wanted)
        unknown = [uid for uid in wanted if uid.lower() not in known]
        start = self._highest_counters(unknown, modulo) if unknown else {}
        return self.state.allocate(wanted, modulo, start)

    def _highest_counters(self, users: list[str], modulo: int) -> dict[str, int]:
        """The highest counter in each user's stored tokens (users sent as the Sender party)."""
        digits = len(str(modulo - 1))
        paths = [
            query_path(
                "activityparties",
                select=("_activityid_value", "_partyid_value"),
                filter=all_of(
                    eq("participationtypemask", PARTICIPATION_SENDER), is_in("partyid", chunk)
                ),
            )
            for chunk in chunks([u.lower() for u in users], IN_CHUNK)
        ]
        sender_of: dict[str, str] = {}
        for rows in self._read_many(paths):
            for row in rows:
                activity, user = row["_activityid_value"], row["_partyid_value"]
                sender_of[str(activity).lower()] = str(user).lower()
        paths = [
            query_path(
                "emails",
                select=("activityid", "trackingtoken"),
                filter=all_of(is_in("activityid", chunk), "trackingtoken ne null"),
            )
            for chunk in chunks(sorted(sender_of), IN_CHUNK)
        ]
        highest: dict[str, int] = {}
        for rows in self._read_many(paths) if paths else []:
            for row in rows:
                user = sender_of.get(str(row["activityid"]).lower())
                number = str(row.get("trackingtoken") or "").rsplit(":", 1)[-1]
                if user and number[-digits:].isdigit():
                    highest[user] = max(highest.get(user, 0), int(number[-digits:]))
        return highest

    # -- smart matching -------------------------------------------------------------------------

    def store_email_hashes(self, hashes: Mapping[str, EmailHashes]) -> None:
        if hashes:
            self.state.store_hashes(hashes)

    def email_hash_candidates(
        self, address_hashes: Iterable[int], *, limit: int = 200
    ) -> dict[str, EmailHashes]:
        return self.state.hash_candidates(address_hashes, limit)

    def last_delivery_error(self, activityid: str) -> str | None:
        """The error of the email's last failed delivery (kept in the router's state file)."""
        return self.state.last_error(activityid)


def _groups(
    pending: list[int], items: Sequence[BatchRequest | list[BatchRequest]], limit: int
) -> list[list[int]]:
    """*pending* items in groups of at most *limit* requests per ``$batch``."""
    groups: list[list[int]] = [[]]
    size = 0
    for index in pending:
        item = items[index]
        weight = len(item) if isinstance(item, list) else 1
        if groups[-1] and size + weight > limit:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += weight
    return [g for g in groups if g]


def _party_type(party: Mapping[str, Any]) -> str | None:
    return party.get(f"_partyid_value@{LOOKUP_NAME}")


def _json(answer: BatchResponse) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _retry_after(answer: BatchResponse) -> float:
    try:
        return max(0.0, float(answer.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _shows(row: Mapping[str, Any], change: EmailStatusChange) -> bool:
    """Whether the row holds what *change* wrote (the status and every column it set)."""
    if int(row.get("statuscode") or 0) != change.statuscode:
        return False
    return all(
        getattr(change, column) is None or row.get(column) == getattr(change, column)
        for column in ("messageid", "subject", "trackingtoken")
    )


__all__ = ["OutgoingOverWebApi"]
