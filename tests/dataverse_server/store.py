"""The fake's data: Web API records over the router's own SQLite schema, gated by the contract.

Rows come out as OData JSON (lookups as ``_<attr>_value`` with their logical-name annotation,
Booleans as true/false, binary as base64, an ``@odata.etag``); bodies go in with ``@odata.bind``
and deep inserts. Every name is checked against the flavour's vendored schema first (the
contract gate, ``gate.py``): unknown properties and navigation properties are refused with
Dataverse's codes, read-only attributes are dropped as the platform drops them, strings longer
than MaxLength are refused. Everything is under one lock; a change set is one SQLite transaction.
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
from functools import partial
from pathlib import Path
from typing import Any

from . import gate
from .filters import FilterError, compile_filter
from .gate import ODataError, bad_property, not_found
from .model import ACTIVITIES, EXTRA_TABLES, EntitySet

BIND_TARGET = re.compile(r"(?:^|/)([A-Za-z_][A-Za-z0-9_]*)\(([^()]+)\)$")

__all__ = ["ODataError", "Store", "bad_property", "not_found"]


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, path: str | Path, sets: dict[str, EntitySet]):
        self.path = Path(path)
        self.sets = sets
        self.by_logical = {s.logical: s for s in sets.values()}
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 30000")
        for ddl in EXTRA_TABLES.values():
            self.conn.execute(ddl)
        self.tables = {es.table for es in sets.values()}
        self.columns: dict[str, list[str]] = {}
        self._read_columns()
        # Dataverse's versionnumber: one counter for the whole org, bumped by every write through
        # the Web API. The ETag also hashes the row, so edits a test makes directly in SQLite
        # (a user cancelling an email) change it too.
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS fake_rowversion (tbl TEXT NOT NULL, "
            "id TEXT NOT NULL COLLATE NOCASE, version INTEGER NOT NULL, PRIMARY KEY (tbl, id))"
        )

    def close(self) -> None:
        self.conn.close()

    def ensure_column(self, es: EntitySet, column: str) -> str:
        """A schema attribute the router's table lacks gets a column the first time it is used."""
        if column not in self.columns[es.table]:
            with self.lock:
                self.conn.execute(f'ALTER TABLE {es.table} ADD COLUMN "{column}"')
                self.columns[es.table].append(column)
        return column

    # -- properties -----------------------------------------------------------------------------

    def expression(self, es: EntitySet, column: str) -> str:
        """A read of *column*: NULL while nothing has stored it (reads add no columns)."""
        return f'"{column}"' if column in self.columns[es.table] else "NULL"

    def select_column(self, es: EntitySet, name: str) -> str:
        """The SQL behind a $select / $orderby name (lookups only as ``_x_value``)."""
        return self.expression(es, gate.read_property(es, name).name)

    def filter_column(self, es: EntitySet, name: str, *, in_function: bool = False) -> str:
        return self.expression(es, gate.filter_property(es, name, in_function).name)

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
        if select:
            for name in select:
                self.select_column(es, name)
        sql = f"SELECT rowid AS _rowid, * FROM {es.table}"
        params: list[object] = []
        if where:
            try:
                clause, params = compile_filter(where, partial(self.filter_column, es))
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
        present = set(row.keys())  # (a sqlite3.Row's `in` tests values, not names)
        names = select or [n for n in es.readable() if gate.read_property(es, n).name in present]
        out: dict[str, Any] = {"@odata.etag": self.etag(es, row)}
        for name in dict.fromkeys([*names, es.key]):
            column = gate.read_property(es, name).name if name != es.key else es.key
            value = row[column] if column in present else None
            if column in es.booleans and value is not None:
                value = bool(value)
            elif column in es.binary and isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            out[name] = value
            lookup = es.lookup(column) if name.startswith("_") else None
            if lookup and annotate and value is not None:
                target = row[lookup.typecolumn] if lookup.typecolumn in present else None
                out[f"{name}@Microsoft.Dynamics.CRM.lookuplogicalname"] = target or lookup.target
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
            # a column ensure_column added in the rolled-back transaction is gone again
            self._read_columns()

    def _read_columns(self) -> None:
        self.columns = {
            table: [row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")]
            for table in self.tables
        }

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
        values, children = self._values(es, body, refs, creating=True)
        record_id = str(record_id or values.get(es.key) or uuid.uuid4())
        values[es.key] = record_id
        if self.get(es, record_id) is not None:
            # The client-errors article's DuplicateRecord text; the create-only upsert answers
            # "A record with matching key values already exists." (server.py).
            raise ODataError(412, "0x80040237", "Cannot insert duplicate key.")
        now = utcnow()
        for column in ("createdon", "modifiedon"):
            if column in self.columns[es.table]:
                values.setdefault(column, now)
        if es.table == "activitymimeattachment":
            values["filesize"] = len(values.get("body") or b"")
        _computed(es, values, None)
        _defaults(es, values, self.columns[es.table])
        gate.settle_state(es, values, None, record_id)
        self.insert(es, values)
        for name, items in children.items():
            collection = es.collections[name]
            child = self.by_logical[collection.entity]
            if not isinstance(items, list):
                raise ODataError(400, "0x80060888", f"{name} must be an array for a deep insert")
            for item in items:
                if not isinstance(item, dict):
                    raise ODataError(400, "0x80060888", f"{name} items must be objects")
                self.create(
                    child, {**item, "__fk__": (collection.attribute, record_id, es.logical)}, refs,
                    deep=True,
                )  # fmt: skip
        return record_id

    def insert(self, es: EntitySet, values: dict[str, Any]) -> None:
        """One row as given (the actions' server-side effects come through here too)."""
        for column in values:
            self.ensure_column(es, column)
        columns = list(values)
        try:
            self.conn.execute(
                f"INSERT INTO {es.table} ({', '.join(map(_quoted, columns))}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [values[c] for c in columns],
            )
        except sqlite3.IntegrityError as exc:
            raise ODataError(400, "0x80040203", f"{es.logical}: {exc}") from None
        self.bump(es, values[es.key])

    def update(
        self,
        es: EntitySet,
        record_id: str,
        body: dict[str, Any],
        refs: dict[str, tuple[EntitySet, str]],
    ) -> None:
        values, children = self._values(es, body, refs, creating=False)
        if children:
            raise ODataError(400, "0x80060888", "deep update is not supported")
        values.pop(es.key, None)
        row = self.get(es, record_id)
        if es.logical in ACTIVITIES:
            gate.check_closed_activity(es, row, values)
        gate.settle_state(es, values, row, record_id)
        _computed(es, values, row)
        self.write(es, record_id, values)

    def write(self, es: EntitySet, record_id: str, values: dict[str, Any]) -> None:
        if "modifiedon" in self.columns[es.table]:
            values["modifiedon"] = utcnow()
        if es.table == "activitymimeattachment" and "body" in values:
            values["filesize"] = len(values["body"] or b"")
        for column in values:
            self.ensure_column(es, column)
        assignments = ", ".join(f'"{c}" = ?' for c in values)
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
        self,
        es: EntitySet,
        body: dict[str, Any],
        refs: dict[str, tuple[EntitySet, str]],
        *,
        creating: bool,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(body, dict):
            raise ODataError(400, "0x80060888", "The request body must be a JSON object")
        values: dict[str, Any] = {}
        children: dict[str, Any] = {}
        for key, value in body.items():
            if key == "__fk__":  # the parent of a deep insert
                column, parent_id, parent_logical = value
                values[column] = parent_id
                lookup = es.lookup(column)
                if lookup and lookup.typecolumn:
                    values[lookup.typecolumn] = parent_logical
            elif key.endswith("@odata.bind"):
                nav = gate.navigation(es, key.removesuffix("@odata.bind"))
                lookup = es.lookup(nav.attribute)
                if lookup is None or not gate.writable(lookup.attribute, creating):
                    continue  # a read-only lookup: ignored, as the platform ignores it
                if value is None:  # disassociate: the single-valued navigation set to null
                    values[lookup.column] = None
                    if lookup.typecolumn:
                        values[lookup.typecolumn] = None
                    continue
                target, target_id = self._resolve(value, refs)
                gate.check_bind_target(es, nav, target)
                values[lookup.column] = target_id
                if lookup.typecolumn:
                    values[lookup.typecolumn] = target.logical
            elif key in es.collections:
                if not creating:
                    raise ODataError(400, "0x80060888", "deep update is not supported")
                if es.collections[key].entity not in self.by_logical:
                    raise ODataError(400, "0x80060888", f"deep insert into {key} is not modelled")
                children[key] = value
            elif "@" in key:
                continue  # other annotations
            else:
                attribute = gate.payload_property(es, key)
                if not gate.writable(attribute, creating):
                    continue  # not valid for create/update: the platform ignores the value
                gate.check_length(es, attribute, value)
                if attribute.name in es.booleans and value is not None:
                    value = int(bool(value))
                elif attribute.name in es.binary and value is not None:
                    try:
                        value = base64.b64decode(value, validate=True)
                    except ValueError:
                        raise ODataError(400, "0x80060888", f"{key} is not base64") from None
                values[attribute.name] = value
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
        es = self.sets.get(match.group(1)) if match else None
        if match is None or es is None:
            raise ODataError(400, "0x80060888", f"Cannot resolve the @odata.bind value '{text}'")
        record_id = match.group(2).strip("'")
        if self.get(es, record_id) is None:
            raise not_found(es, record_id)
        return es, record_id


NAMED = frozenset({"contact", "lead", "systemuser"})


def _computed(es: EntitySet, values: dict[str, Any], row: sqlite3.Row | None) -> None:
    """What the platform computes: ``fullname`` (read-only) from first and last name."""
    fullname = es.attribute("fullname")
    if es.logical not in NAMED or fullname is None or fullname.create:
        return
    if "firstname" not in values and "lastname" not in values and row is not None:
        return
    old = dict(zip(row.keys(), tuple(row), strict=True)) if row is not None else {}
    first = values.get("firstname", old.get("firstname")) or ""
    last = values.get("lastname", old.get("lastname")) or ""
    values["fullname"] = f"{first} {last}".strip()


def _defaults(es: EntitySet, values: dict[str, Any], columns: list[str]) -> None:
    """The page's DefaultValue of what a client cannot set (IsForwardMailbox: Yes), where the
    router's table keeps the attribute (its own column default may differ from the platform's);
    others stay unstored, so a test's view of the tables gains no columns for them."""
    for name, attribute in es.schema.attributes.items():
        if attribute.create or name in values or attribute.default in (None, -1):
            continue
        if name not in columns:
            continue
        if attribute.type == "Boolean":
            values[name] = int(bool(attribute.default))
        elif attribute.type in ("Picklist", "Integer") and isinstance(attribute.default, int):
            values[name] = attribute.default


def _quoted(column: str) -> str:
    return f'"{column}"'


def etag(row: sqlite3.Row, version: int = 0) -> str:
    """``W/"<number>"`` as Dataverse writes it: the row version, then a hash of the values."""
    # Only non-null values, by name: a column the fake adds later must not change the ETag.
    values = sorted(
        (name, len(v) if isinstance(v, bytes) else v)
        for name, v in zip(row.keys(), tuple(row), strict=True)
        if name != "_rowid" and v is not None
    )
    data = json.dumps(values)
    return f'W/"{version * 10**10 + zlib.crc32(data.encode())}"'
