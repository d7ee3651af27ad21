"""``mailbox``, ``emailserverprofile`` and the channel switch over the Web API (mixed into
``DataverseCrm``): the :class:`~emailrouter_lib.crm.base.MailboxSettingsStore` of the migration
to server-side synchronization.

Rows come back as plain dicts with Dataverse column names (lookups as the referenced id, not
``_x_value``; OData annotations dropped). A save reads the row by its natural key, compares column
by column and PATCHes only what differs, with ``If-Match`` on the ETag it read, so a row an
administrator edits at the same moment is never overwritten blindly (412 → an error that says to
run the apply again). Lookups are written with ``<nav>@odata.bind`` and cleared with a null bind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from emailrouter_lib.crm.base import RECIPIENT_COLUMNS, RowChange, check_recipient_update
from emailrouter_lib.crm.dataverse.odata import all_of, eq, is_in, query_path
from emailrouter_lib.crm.dataverse.session import error_for
from emailrouter_lib.errors import CrmError

LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ANNOTATED = {"Prefer": f'odata.include-annotations="{LOOKUP_NAME}"'}

# Lookup columns the store writes, per table: column -> entity set of a single-target lookup, or
# None for the polymorphic regarding lookup (bound as regardingobjectid_<type>, on create only).
LOOKUPS: dict[str, dict[str, str | None]] = {
    "mailbox": {"emailserverprofile": "emailserverprofiles", "regardingobjectid": None},
    "emailserverprofile": {},
}
SETS = {"mailbox": "mailboxes", "emailserverprofile": "emailserverprofiles"}
TYPE_COLUMN = "regardingobjecttypecode"  # not an attribute to write: it follows the bind


class MailboxSettingsOverWebApi:
    """Needs from its host: ``session``, ``url`` and ``_get``."""

    def email_server_profiles(self) -> list[dict[str, Any]]:
        return [_plain(row) for row in self._rows(query_path("emailserverprofiles"))]

    def mailboxes(self) -> list[dict[str, Any]]:
        return [_plain(row) for row in self._rows(query_path("mailboxes"))]

    def save_email_server_profile(self, values: Mapping[str, Any]) -> RowChange:
        name = str(values.get("name") or "").strip()
        if not name:
            raise CrmError(f"{self.url}: an email server profile needs a name")
        path = query_path("emailserverprofiles", filter=eq("name", name), orderby="createdon asc")
        return self._save("emailserverprofile", path, values, f"email server profile {name!r}")

    def save_mailbox(self, values: Mapping[str, Any]) -> RowChange:
        owner = values.get("regardingobjectid")
        if owner:
            condition = is_in("regardingobjectid", [str(owner).strip("{}").lower()])
            what = f"the mailbox of {owner}"
        else:
            address = str(values.get("emailaddress") or "").strip()
            if not address:
                raise CrmError(
                    f"{self.url}: a mailbox needs a regardingobjectid (user or queue) or, for a "
                    "forward mailbox, an emailaddress"
                )
            condition = all_of(eq("emailaddress", address), eq("isforwardmailbox", True))
            what = f"forward mailbox {address}"
        path = query_path("mailboxes", filter=condition, orderby="createdon asc")
        if owner and not self._rows(path, limit=1):
            path = self._default_mailbox(str(owner), values.get(TYPE_COLUMN), what)
        return self._save("mailbox", path, values, what)

    def _default_mailbox(self, owner: str, kind: str | None, what: str) -> str:
        """The query finding the mailbox the platform made for a user or queue.

        Dataverse creates the mailbox of every user and queue itself and links it through
        ``systemuser.defaultmailbox`` / ``queue.defaultmailbox``; ``mailbox.regardingobjectid``
        and ``isforwardmailbox`` are read-only (mailbox.md,
        https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/mailbox),
        so a mailbox created through the Web API is always an unlinked forward mailbox. A user or
        queue without one is reported, never given a forward mailbox in its name.
        """
        key = owner.strip("{}").lower()
        for entity in (kind,) if kind in ("systemuser", "queue") else ("systemuser", "queue"):
            rows = self._rows(
                query_path(
                    f"{entity}s",
                    select=(f"{entity}id", "_defaultmailbox_value"),
                    filter=is_in(f"{entity}id", [key]),
                ),
                limit=1,
            )
            if rows and rows[0].get("_defaultmailbox_value"):
                mailboxid = str(rows[0]["_defaultmailbox_value"])
                return query_path("mailboxes", filter=is_in("mailboxid", [mailboxid]))
        raise CrmError(
            f"{self.url}: {what} does not exist. Dataverse creates the mailbox of a user or "
            "queue itself (it cannot be created or linked through the Web API): check that the "
            "user is enabled and licensed, or that the queue exists, then apply again"
        )

    def delete_email_server_profile(self, emailserverprofileid: str) -> bool:
        return self._delete("emailserverprofiles", emailserverprofileid)

    def delete_mailbox(self, mailboxid: str) -> bool:
        return self._delete("mailboxes", mailboxid)

    def set_email_connection_channel(self, value: int) -> RowChange:
        rows = self._rows(
            query_path("organizations", select=("organizationid", "emailconnectionchannel")),
            limit=1,
        )
        if not rows:
            raise CrmError(f"{self.url}: the Web API returned no organization row")
        row = rows[0]
        current = row.get("emailconnectionchannel")
        if current == int(value):
            return RowChange(row["organizationid"], "unchanged")
        self._patch(
            f"organizations({row['organizationid']})",
            {"emailconnectionchannel": int(value)},
            row.get("@odata.etag"),
            "organization.emailconnectionchannel",
        )
        return RowChange(row["organizationid"], "updated", {"emailconnectionchannel": current})

    def update_recipient(
        self, entity: str, recipientid: str, values: Mapping[str, Any]
    ) -> RowChange:
        check_recipient_update(self.url, entity, values)
        key = str(recipientid).strip("{}").lower()
        rows = self._rows(
            query_path(
                f"{entity}s",
                select=(f"{entity}id", *sorted(RECIPIENT_COLUMNS[entity])),
                filter=is_in(f"{entity}id", [key]),
            )
        )
        if not rows:
            raise CrmError(f"{self.url}: no {entity} {recipientid}; re-plan against this CRM")
        row = rows[0]
        before = {c: row.get(c) for c, v in values.items() if not _same(row.get(c), v)}
        if not before:
            return RowChange(str(row[f"{entity}id"]), "unchanged")
        self._patch(
            f"{entity}s({row[f'{entity}id']})",
            {c: values[c] for c in before},
            row.get("@odata.etag"),
            f"{entity} {recipientid}",
        )
        return RowChange(str(row[f"{entity}id"]), "updated", before)

    @contextmanager
    def atomic(self) -> Iterator[bool]:
        """The Web API has no transaction spanning reads and writes (a save reads, compares,
        then writes), so each write stands alone: yields False, and the migration's apply record
        is what undoes a partial apply."""
        yield False

    # -- helpers ----------------------------------------------------------------------------------

    def _rows(self, path: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        return self._get(path, limit=limit)

    def _save(self, table: str, path: str, values: Mapping[str, Any], what: str) -> RowChange:
        id_column = f"{table}id"
        rows = self._rows(path, limit=1)
        if not rows:
            record_id = str(values.get(id_column) or uuid.uuid4())
            body = {id_column: record_id}
            body.update(self._writable(table, _body(table, values, None, create=True), True))
            self.session.json("POST", SETS[table], body, what=f"create {what}")
            return RowChange(record_id, "created")
        row = rows[0]
        current = _plain(row)
        before = {
            column: current.get(column)
            for column, value in values.items()
            if column not in (id_column, TYPE_COLUMN) and not _same(current.get(column), value)
        }
        if not before:
            return RowChange(str(row[id_column]), "unchanged")
        changed = {column: values[column] for column in before}
        if TYPE_COLUMN in values:
            changed[TYPE_COLUMN] = values[TYPE_COLUMN]
        self._patch(
            f"{SETS[table]}({row[id_column]})",
            self._writable(table, _body(table, changed, current, create=False), False),
            row.get("@odata.etag"),
            what,
        )
        return RowChange(str(row[id_column]), "updated", before)

    def _writable(self, table: str, body: dict[str, Any], create: bool) -> dict[str, Any]:
        """*body* without what the org lacks or does not let a create/update set (binds are
        built for the org already)."""
        binds = {k: v for k, v in body.items() if k.endswith("@odata.bind")}
        plain = {k: v for k, v in body.items() if k not in binds}
        return {**self.rules.values(table, plain, create=create, notes=[]), **binds}

    def _patch(self, path: str, body: dict[str, Any], etag: str | None, what: str) -> None:
        import json

        response, attempts = self.session.send(
            "PATCH",
            path,
            body=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8", "If-Match": etag or "*"},
            what=f"update {what}",
        )
        if response.status_code == 412 and attempts == 1:
            raise CrmError(
                f"{self.url}: {what} changed while it was being updated (HTTP 412); nothing was "
                "overwritten: run the apply again"
            )
        if response.status_code >= 400 and response.status_code != 412:
            raise error_for(response, f"update {what}", attempts=attempts)

    def _delete(self, set_name: str, record_id: str) -> bool:
        """True when the row was deleted, False when it was gone already (404)."""
        response, attempts = self.session.send(
            "DELETE", f"{set_name}({record_id})", what=f"delete {set_name}({record_id})"
        )
        if response.status_code >= 400 and response.status_code != 404:
            raise error_for(response, f"delete {set_name}({record_id})", attempts=attempts)
        return response.status_code != 404


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """A Web API record as a store row: lookups by their column name, no annotations."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if "@" in name:
            continue
        if name.startswith("_") and name.endswith("_value"):
            column = name[1:-6]
            out[column] = value
            target = row.get(f"{name}@{LOOKUP_NAME}")
            if column == "regardingobjectid" and target:
                out[TYPE_COLUMN] = target
        else:
            out.setdefault(name, value)
    return out


def _body(
    table: str, values: Mapping[str, Any], current: Mapping[str, Any] | None, *, create: bool
) -> dict[str, Any]:
    lookups = LOOKUPS.get(table, {})
    body: dict[str, Any] = {}
    for column, value in values.items():
        if column == TYPE_COLUMN or column == f"{table}id":
            continue
        if column not in lookups:
            body[column] = value
            continue
        target = lookups[column]
        if target is None:  # the regarding user/queue: set when the mailbox is created
            kind = values.get(TYPE_COLUMN) or (current or {}).get(TYPE_COLUMN)
            if value and create:
                if kind not in ("systemuser", "queue"):
                    raise CrmError(
                        f"a {table} for {value} needs {TYPE_COLUMN} systemuser or queue, "
                        f"not {kind!r}"
                    )
                body[f"regardingobjectid_{kind}@odata.bind"] = f"/{kind}s({value})"
            continue
        if value:
            body[f"{column}@odata.bind"] = f"/{target}({value})"
        elif not create:
            body[f"{column}@odata.bind"] = None
    return body


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(current, bool) or isinstance(wanted, bool):
        return current is not None and wanted is not None and int(current) == int(wanted)
    if isinstance(current, str) and isinstance(wanted, str):
        folded = current.strip("{}").lower() == wanted.strip("{}").lower()
        return current == wanted or (folded and _is_guid(current))
    return current == wanted


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text.strip("{}"))
    except ValueError:
        return False
    return True


__all__ = ["MailboxSettingsOverWebApi"]
