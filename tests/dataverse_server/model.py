"""Which entity sets the fake serves: Microsoft's schema (``schema.py``) over SQLite tables.

The names a client may use — attributes, ``_<attr>_value``, navigation properties, collection
navigations for deep insert — come only from the flavour's vendored metadata. This module adds
what the schema cannot say: which SQLite table (the router's own ``schema.sql``, so tests seed
and inspect with ``SqliteCrm``) holds each entity, where a polymorphic lookup keeps its target's
logical name, and which columns are binary. A schema attribute the table lacks gets a column
the first time it is written (``Store.ensure_column``; reads answer null); table columns the
schema lacks (the router's own bookkeeping) are never served.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import Attribute, CollectionNav, EntitySchema, Navigation, Schema, load_schema


@dataclass(frozen=True)
class Mapping:
    """How one entity set lives in SQLite."""

    entity_set: str
    logical: str
    table: str
    typecolumns: dict[str, str] = field(default_factory=dict)  # lookup -> target-type column
    binary: frozenset[str] = frozenset()
    creatable: bool = True  # False: only by deep insert or not at all through the API


MAPPINGS = (
    Mapping(
        "emails",
        "email",
        "email",
        typecolumns={
            "regardingobjectid": "regardingobjecttypecode",
            "acceptingentityid": "acceptingentitytypecode",
            "ownerid": "owneridtype",
        },
    ),
    # Parties are created through their activity (deep insert), as in Dataverse.
    Mapping(
        "activityparties",
        "activityparty",
        "activityparty",
        typecolumns={"partyid": "partyobjecttypecode"},
        creatable=False,
    ),
    Mapping(
        "activitymimeattachments",
        "activitymimeattachment",
        "activitymimeattachment",
        typecolumns={"objectid": "objecttypecode"},
        binary=frozenset({"body"}),
    ),
    Mapping("organizations", "organization", "organization", creatable=False),
    Mapping("systemusers", "systemuser", "systemuser"),
    # usersettings is one row per user; the router's schema keeps it on systemuser.
    Mapping("usersettingscollection", "usersettings", "systemuser", creatable=False),
    Mapping("queues", "queue", "queue"),
    Mapping(
        "contacts", "contact", "contact", typecolumns={"parentcustomerid": "parentcustomeridtype"}
    ),
    Mapping("accounts", "account", "account"),
    Mapping("leads", "lead", "lead"),
    Mapping(
        "mailboxes",
        "mailbox",
        "mailbox",
        typecolumns={"regardingobjectid": "regardingobjecttypecode"},
    ),
    Mapping("emailserverprofiles", "emailserverprofile", "emailserverprofile"),
    Mapping("queueitems", "queueitem", "fake_queueitem"),
)

# A table the router's schema lacks: created by the store (queue items the actions make).
EXTRA_TABLES = {
    "fake_queueitem": (
        "CREATE TABLE IF NOT EXISTS fake_queueitem (queueitemid TEXT PRIMARY KEY, "
        "createdon TEXT, modifiedon TEXT)"
    ),
}

ACTIVITIES = frozenset({"email"})
CLOSED_STATES = frozenset({1, 2})  # statecode Completed, Canceled (email.md status table)
STATE_COLUMNS = frozenset({"statecode", "statuscode"})
# What stays changeable on a closed activity besides its state (assumed: "Set Regarding" and
# Assign work on completed activities in the application).
CLOSED_CHANGEABLE = STATE_COLUMNS | {
    "regardingobjectid", "regardingobjecttypecode", "ownerid", "owneridtype", "modifiedon",
}  # fmt: skip


@dataclass(frozen=True)
class Lookup:
    column: str  # the attribute (and SQLite column)
    typecolumn: str | None  # where a polymorphic lookup keeps the target's logical name
    target: str | None  # the one target of a single-target lookup
    attribute: Attribute


@dataclass
class EntitySet:
    """One entity set of one flavour: its schema and its SQLite mapping."""

    name: str
    logical: str
    table: str
    key: str
    schema: EntitySchema
    lookups: dict[str, Lookup]
    binary: frozenset[str]
    creatable: bool

    @property
    def navigation(self) -> dict[str, Navigation]:
        return self.schema.navigation

    @property
    def collections(self) -> dict[str, CollectionNav]:
        return self.schema.collections

    @property
    def booleans(self) -> frozenset[str]:
        return frozenset(n for n, a in self.schema.attributes.items() if a.type == "Boolean")

    def lookup(self, column: str) -> Lookup | None:
        return self.lookups.get(column)

    def attribute(self, name: str) -> Attribute | None:
        return self.schema.attributes.get(name)

    def readable(self) -> list[str]:
        """Web API property names this set serves (``_x_value`` for lookups)."""
        return [
            a.read_name
            for a in self.schema.attributes.values()
            if a.read and (a.is_lookup or a.is_property)
        ]


def _lookups(schema: EntitySchema, mapping: Mapping) -> dict[str, Lookup]:
    found = {}
    for name, attribute in schema.attributes.items():
        if not attribute.is_lookup:
            continue
        targets = attribute.targets
        polymorphic = len(targets) != 1 or attribute.type in ("Owner", "Customer")
        typecolumn = mapping.typecolumns.get(name)
        if typecolumn is None and polymorphic:
            typecolumn = f"fake_{name}_type"  # storage only; never served
        found[name] = Lookup(name, typecolumn, None if polymorphic else targets[0], attribute)
    return found


def build_sets(flavour: str) -> dict[str, EntitySet]:
    """The entity sets of *flavour* whose entity the vendored schema has."""
    schema: Schema = load_schema(flavour)
    sets = {}
    for mapping in MAPPINGS:
        entity = schema.get(mapping.logical)
        if entity is None:
            continue
        sets[mapping.entity_set] = EntitySet(
            name=mapping.entity_set,
            logical=mapping.logical,
            table=mapping.table,
            key=entity.primary_id,
            schema=entity,
            lookups=_lookups(entity, mapping),
            binary=mapping.binary,
            creatable=mapping.creatable,
        )
    return sets
