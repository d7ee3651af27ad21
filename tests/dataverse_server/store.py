"""The fake's data: Web API records over the router's own SQLite schema.

Rows come out as OData JSON (lookups as ``_<attr>_value`` with their logical-name annotation,
Booleans as true/false, binary as base64, an ``@odata.etag``); bodies go in with ``@odata.bind``
and deep inserts. Everything is under one lock, and a change set is one SQLite transaction.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .filters import FilterError, compile_filter
from .model import BY_LOGICAL, SETS, EntitySet

BIND_TARGET = re.compile(r"(?:^|/)([A-Za-z_][A-Za-z0-9_]*)\(([^()]+)\)$")


class ODataError(Exception):
    """An error the Web API would answer, with its HTTP status and hex code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(es: EntitySet, record_id: str) -> ODataError:
    return ODataError(404, "0x80040217", f"{es.logical} With Id = {record_id} Does Not Exist")


def bad_property(es: EntitySet, name: str) -> ODataError:
    return ODataError(
        400,
        "0x80060888",
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{es.logical}'.",
    )


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.columns = {
            table: [row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")]
            for table in {es.table for es in SETS.values()}
        }
        # Dataverse's versionnumber: one counter for the whole org, bumped by every write through
        # the Web API. The ETag also hashes the row, so edits a test makes directly in SQLite
        # (a user cancelling an email) change it too.
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS fake_rowversion (tbl TEXT NOT NULL, "
            "id TEXT NOT NULL COLLATE NOCASE, version INTEGER NOT NULL, PRIMARY KEY (tbl, id))"
        )

    def close(self) -> None:
        self.conn.close()

    # -- properties -----------------------------------------------------------------------------

    def visible(self, es: EntitySet) -> list[str]:
        columns = [c for c in self.columns[es.table] if c not in es.hidden]
        return [c for c in columns if c in es.only] if es.only else columns

    def select_column(self, es: EntitySet, name: str) -> str:
        """The column behind a $select / $orderby name (lookups only as ``_x_value``)."""
        if name.startswith("_") and name.endswith("_value"):
            column = name[1:-6]
            if es.lookup(column) and column in self.visible(es):
                return column
        elif name in self.visible(es) and not es.lookup(name):
            return name
        raise bad_property(es, name)

    def filter_column(self, es: EntitySet, name: str) -> str:
        if name.startswith("_") and name.endswith("_value"):
            name = name[1:-6]
        if name in self.visible(es):
            return name
        raise bad_property(es, name)

    # -- reading --------------------------------------------------------------------------------

    def query(
        self,
        es: EntitySet,
        *,
        select: list[str] | None,
        where: str | None,
        orderby: str | None,
        top: int | None,
        offset: int,
        limit: int | None,
    ) -> list[sqlite3.Row]:
        sql = f"SELECT rowid AS _rowid, * FROM {es.table}"
        params: list[object] = []
        if where:
            try:
                clause, params = compile_filter(where, lambda n: self.filter_column(es, n))
            except FilterError as exc:
                raise ODataError(400, "0x80060888", str(exc)) from None
            sql += f" WHERE {clause}"
        order = []
        direction = "ASC"
        for item in (orderby or "").split(","):
            if not item.strip():
                continue
            name, _, way = item.strip().partition(" ")
            direction = "DESC" if way.strip().lower() == "desc" else "ASC"
            order.append(f"{self.select_column(es, name)} {direction}")
        order.append(f"rowid {direction}")  # a stable tie-break (Dataverse keeps milliseconds)
        sql += " ORDER BY " + ", ".join(order)
        count = limit if top is None else min(top - offset, limit or top)
        sql += f" LIMIT {max(count, 0) if count is not None else -1} OFFSET {offset}"
        if select:
            for name in select:
                self.select_column(es, name)
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise ODataError(400, "0x80040203", f"query failed: {exc}") from None

    def get(self, es: EntitySet, record_id: str) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(
                f"SELECT rowid AS _rowid, * FROM {es.table} WHERE {es.key} = ? COLLATE NOCASE",
                (record_id,),
            ).fetchone()

    def to_json(
        self, es: EntitySet, row: sqlite3.Row, select: list[str] | None, annotate: bool
    ) -> dict[str, Any]:
        names = select or [f"_{c}_value" if es.lookup(c) else c for c in self.visible(es)]
        out: dict[str, Any] = {"@odata.etag": self.etag(es, row)}
        for name in dict.fromkeys([*names, es.key]):
            column = self.select_column(es, name) if name != es.key else es.key
            value = row[column]
            if column in es.booleans and value is not None:
                value = bool(value)
            elif column in es.binary and value is not None:
                value = base64.b64encode(value).decode("ascii")
            out[name] = value
            lookup = es.lookup(column) if name.startswith("_") else None
            if lookup and annotate and value is not None:
                target = row[lookup.typecolumn] if lookup.typecolumn else lookup.target
                out[f"{name}@Microsoft.Dynamics.CRM.lookuplogicalname"] = target
        return out

    def etag(self, es: EntitySet, row: sqlite3.Row) -> str:
        found = self.conn.execute(
            "SELECT version FROM fake_rowversion WHERE tbl = ? AND id = ?", (es.table, row[es.key])
        ).fetchone()
        return etag(row, found[0] if found else 0)

    def bump(self, es: EntitySet, record_id: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO fake_rowversion (tbl, id, version) VALUES (?, ?, "
            "(SELECT coalesce(max(version), 0) + 1 FROM fake_rowversion))",
            (es.table, record_id),
        )

    # -- writing --------------------------------------------------------------------------------

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def create(
        self,
        es: EntitySet,
        body: dict[str, Any],
        refs: dict[str, tuple[EntitySet, str]],
        *,
        deep: bool = False,
        record_id: str | None = None,
    ) -> str:
        if not es.creatable and not deep:
            raise ODataError(
                400,
                "0x80040800",
                f"The 'Create' method does not support entities of type '{es.logical}'.",
            )
        values, children = self._values(es, body, refs)
        record_id = str(record_id or values.get(es.key) or uuid.uuid4())
        values[es.key] = record_id
        if self.get(es, record_id) is not None:
            raise ODataError(412, "0x80040237", "A record with matching key values already exists.")
        now = utcnow()
        for column in ("createdon", "modifiedon"):
            if column in self.columns[es.table]:
                values.setdefault(column, now)
        if es.table == "activitymimeattachment":
            values["filesize"] = len(values.get("body") or b"")
        columns = list(values)
        try:
            self.conn.execute(
                f"INSERT INTO {es.table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [values[c] for c in columns],
            )
        except sqlite3.IntegrityError as exc:
            raise ODataError(400, "0x80040203", f"{es.logical}: {exc}") from None
        self.bump(es, record_id)
        for name, items in children.items():
            collection = es.collections[name]
            child = SETS[collection.entity_set]
            if not isinstance(items, list):
                raise ODataError(400, "0x80060888", f"{name} must be an array for a deep insert")
            for item in items:
                self.create(
                    child, {**item, "__fk__": (collection.foreign_key, record_id)}, refs, deep=True
                )
        return record_id

    def update(
        self,
        es: EntitySet,
        record_id: str,
        body: dict[str, Any],
        refs: dict[str, tuple[EntitySet, str]],
    ) -> None:
        values, children = self._values(es, body, refs)
        if children:
            raise ODataError(400, "0x80060888", "deep update is not supported")
        values.pop(es.key, None)
        if "modifiedon" in self.columns[es.table]:
            values["modifiedon"] = utcnow()
        if es.table == "activitymimeattachment" and "body" in values:
            values["filesize"] = len(values["body"] or b"")
        if not values:
            return
        assignments = ", ".join(f"{c} = ?" for c in values)
        try:
            self.conn.execute(
                f"UPDATE {es.table} SET {assignments} WHERE {es.key} = ? COLLATE NOCASE",
                [*values.values(), record_id],
            )
        except sqlite3.IntegrityError as exc:
            raise ODataError(400, "0x80040203", f"{es.logical}: {exc}") from None
        self.bump(es, record_id)

    def delete(self, es: EntitySet, record_id: str) -> None:
        if self.get(es, record_id) is None:
            raise not_found(es, record_id)
        self.conn.execute(f"DELETE FROM {es.table} WHERE {es.key} = ? COLLATE NOCASE", (record_id,))

    def _values(
        self, es: EntitySet, body: dict[str, Any], refs: dict[str, tuple[EntitySet, str]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(body, dict):
            raise ODataError(400, "0x80060888", "The request body must be a JSON object")
        values: dict[str, Any] = {}
        children: dict[str, Any] = {}
        visible = set(self.visible(es))
        for key, value in body.items():
            if key == "__fk__":
                values[value[0]] = value[1]
            elif key.endswith("@odata.bind"):
                nav = key.removesuffix("@odata.bind")
                column = es.navigation.get(nav)
                lookup = es.lookup(column) if column else None
                if lookup is None or not lookup.writable:
                    raise ODataError(
                        400,
                        "0x80060888",
                        f"An undeclared property '{nav}' which only has property annotations in "
                        f"the payload but no property value was found in the payload.",
                    )
                if value is None:  # disassociate: the single-valued navigation set to null
                    values[column] = None
                    if lookup.typecolumn:
                        values[lookup.typecolumn] = None
                    continue
                target, target_id = self._resolve(value, refs)
                values[column] = target_id
                if lookup.typecolumn:
                    values[lookup.typecolumn] = target.logical
            elif key in es.collections:
                children[key] = value
            elif "@" in key:
                continue  # other annotations
            elif key in visible and not es.lookup(key):
                if key in es.booleans and value is not None:
                    value = int(bool(value))
                elif key in es.binary and value is not None:
                    try:
                        value = base64.b64decode(value, validate=True)
                    except ValueError:
                        raise ODataError(400, "0x80060888", f"{key} is not base64") from None
                values[key] = value
            else:
                raise bad_property(es, key)
        return values, children

    def _resolve(self, value: Any, refs: dict[str, tuple[EntitySet, str]]) -> tuple[EntitySet, str]:
        text = str(value)
        if text.startswith("$"):
            if text[1:] not in refs:
                raise ODataError(
                    400,
                    "0x80060888",
                    f"Content-ID Reference: '{text}' does not exist in the batch context.",
                )
            return refs[text[1:]]
        match = BIND_TARGET.search(text)
        es = SETS.get(match.group(1)) if match else None
        if match is None or es is None:
            raise ODataError(400, "0x80060888", f"Cannot resolve the @odata.bind value '{text}'")
        record_id = match.group(2).strip("'")
        if self.get(es, record_id) is None:
            raise not_found(es, record_id)
        return es, record_id


def etag(row: sqlite3.Row, version: int = 0) -> str:
    """``W/"<number>"`` as Dataverse writes it: the row version, then a hash of the values."""
    values = [row[i] for i in range(len(row)) if row.keys()[i] != "_rowid"]
    data = json.dumps([len(v) if isinstance(v, bytes) else v for v in values])
    return f'W/"{version * 10**10 + zlib.crc32(data.encode())}"'


def set_for(logical: str) -> EntitySet:
    return BY_LOGICAL[logical]
