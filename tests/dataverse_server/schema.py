"""Microsoft's published entity metadata, per flavour: what the fake accepts and serves.

The JSON under ``tests/contracts/dataverse/`` (see its README: extracted from the entity reference
pages, CC BY 4.0) is the only source of attribute names, writability, MaxLength, lookup targets
and navigation-property names. A flavour reads its own folder first and falls back to the 2018
v9.0 pages (``v9.0-2018/``) for entities its folder lacks; ``source`` says which file answered.

Navigation-property names come from ``ReferencingEntityNavigationPropertyName`` where the page
gives it (online). The on-premises and 2018 pages do not: there the name of the same
(attribute, target) online is used, else the platform's naming rule (``<attribute>`` for a
single-target lookup, ``<attribute>_<target>`` — plus ``_<entity>`` where the online page uses
that form for the attribute — for a polymorphic one). Both are labelled assumptions in README.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts" / "dataverse"
FLAVOURS = ("online", "onprem", "crm2016")
# Where each flavour reads its entities, in order.
FOLDERS = {
    "online": ("online", "v9.0-2018"),
    "onprem": ("onprem", "v9.0-2018", "online"),
    "crm2016": ("onprem", "v9.0-2018", "online"),
}  # on-premises falls back to online only for an entity neither on-premises folder has
API_VERSION = {"online": "v9.2", "onprem": "v9.1", "crm2016": "v8.2"}
SERVER_VERSION = {"online": "9.2.24112.200", "onprem": "9.1.0.26", "crm2016": "8.2.29.8"}

# What CRM 2016 (v8.2) lacks beside the on-premises v9 reference: until the vendored contract
# says more (tests/contracts/dataverse/crm2016.md, when present), nothing is removed and the
# differences modelled are the documented Web API ones (README.md, "crm2016").
CRM2016_LACKS: dict[str, frozenset[str]] = {}

# Types that are not structural properties of an EntityType in the Web API: lookups are read
# as ``_<name>_value`` and written with ``<nav>@odata.bind``; party lists only through
# ``<entity>_activity_parties``.
LOOKUP_TYPES = frozenset({"Lookup", "Owner", "Customer"})
NOT_PROPERTIES = frozenset({"PartyList", "ManagedProperty"})
STRING_TYPES = frozenset({"String", "Memo"})


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    create: bool  # IsValidForCreate
    update: bool  # IsValidForUpdate
    read: bool  # IsValidForRead
    max_length: int | None = None
    targets: tuple[str, ...] = ()
    options: tuple[int, ...] = ()
    default: object = None  # the page's DefaultValue (the platform fills it in)

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def is_property(self) -> bool:
        return not self.is_lookup and self.type not in NOT_PROPERTIES

    @property
    def read_name(self) -> str:
        """The Web API property name: ``_<lookup>_value`` for lookups."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass(frozen=True)
class Navigation:
    """A single-valued navigation property: bind name -> (lookup attribute, target entity)."""

    name: str
    attribute: str
    target: str
    relationship: str = ""
    derived: bool = False  # not given by the page: named by the rule in the module docstring


@dataclass(frozen=True)
class CollectionNav:
    """A collection-valued navigation property (one-to-many), usable for deep insert."""

    name: str
    entity: str  # the referencing entity
    attribute: str  # its lookup back to us


@dataclass
class EntitySchema:
    logical: str
    entity_set: str
    primary_id: str
    schema_name: str
    source: str  # folder/file the metadata came from
    attributes: dict[str, Attribute] = field(default_factory=dict)
    navigation: dict[str, Navigation] = field(default_factory=dict)
    collections: dict[str, CollectionNav] = field(default_factory=dict)
    messages: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, repr=False)

    def property(self, name: str) -> Attribute | None:
        """The attribute behind a Web API property name (``_x_value`` for lookups)."""
        if name.startswith("_") and name.endswith("_value"):
            attribute = self.attributes.get(name[1:-6])
            return attribute if attribute and attribute.is_lookup else None
        attribute = self.attributes.get(name)
        return attribute if attribute and attribute.is_property else None


@dataclass
class Schema:
    flavour: str
    entities: dict[str, EntitySchema]

    @property
    def by_set(self) -> dict[str, EntitySchema]:
        return {e.entity_set: e for e in self.entities.values()}

    def get(self, logical: str) -> EntitySchema | None:
        return self.entities.get(logical)


# Until queueitem.json is vendored: the few queueitem attributes AddToQueue sets, from the
# queueitem entity reference (QueueId, ObjectId, ObjectTypeCode, Title; statecode 0 Active /
# 1 Inactive). Labelled in README.md; a vendored file replaces it.
BUILTIN = {
    "queueitem": {
        "entity_set": "queueitems",
        "logical_name": "queueitem",
        "schema_name": "QueueItem",
        "primary_id": "queueitemid",
        "completeness": "partial: built into the fake (schema.py BUILTIN)",
        "attributes": {
            "queueitemid": {"type": "Uniqueidentifier", "writable": True},
            "queueid": {
                "type": "Lookup",
                "writable": True,
                "targets": ["queue"],
                "navigation_properties": [
                    {"target": "queue", "navigation_property": "queueid", "relationship": ""}
                ],
            },
            "objectid": {
                "type": "Lookup",
                "writable": True,
                "valid_for_update": False,
                "targets": ["email"],
                "navigation_properties": [
                    {"target": "email", "navigation_property": "objectid_email", "relationship": ""}
                ],
            },
            "objecttypecode": {"type": "EntityName", "writable": True},
            "title": {"type": "String", "writable": False, "max_length": 300},
            "statecode": {"type": "State", "writable": True},
            "statuscode": {"type": "Status", "writable": True},
            "enteredon": {"type": "DateTime", "writable": False},
            "createdon": {"type": "DateTime", "writable": False},
            "modifiedon": {"type": "DateTime", "writable": False},
        },
    }
}  # fmt: skip


def _load(folder: str, logical: str) -> dict | None:
    path = CONTRACTS / folder / f"{logical}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return None


def _entity_names() -> list[str]:
    return sorted({p.stem for p in CONTRACTS.glob("*/*.json")} | set(BUILTIN))


def _online_navigation(logical: str) -> dict[tuple[str, str], str]:
    data = _load("online", logical)
    found: dict[tuple[str, str], str] = {}
    for name, attr in (data or {}).get("attributes", {}).items():
        for nav in attr.get("navigation_properties") or ():
            if nav.get("navigation_property"):
                found[(name, nav["target"])] = nav["navigation_property"]
    return found


def _online_relationships(logical: str) -> dict[str, tuple[str, str, str]]:
    """Online relationship schema name (lowercase) -> (attribute, target, navigation name)."""
    data = _load("online", logical)
    found = {}
    for name, attr in (data or {}).get("attributes", {}).items():
        for nav in attr.get("navigation_properties") or ():
            if nav.get("navigation_property") and nav.get("relationship"):
                found[nav["relationship"].lower()] = (
                    name,
                    nav["target"],
                    nav["navigation_property"],
                )
    return found


def _attribute(name: str, raw: dict) -> Attribute:
    writable = bool(raw.get("writable"))
    options = tuple(int(k) for k in (raw.get("options") or {}) if k.lstrip("-").isdigit())
    return Attribute(
        name=name,
        type=raw.get("type", "String"),
        create=writable and raw.get("valid_for_create") is not False,
        update=writable and raw.get("valid_for_update") is not False,
        read=raw.get("valid_for_read") is not False,
        max_length=raw.get("max_length") if raw.get("type") in STRING_TYPES else None,
        targets=tuple(raw.get("targets") or ()),
        options=options,
        default=raw.get("default_value"),
    )


def _navigations(
    logical: str, attributes: dict, from_page: bool, many_to_one: list
) -> dict[str, Navigation]:
    online = _online_navigation(logical)
    navs: dict[str, Navigation] = {}
    if not from_page:
        # A relationship this page lists (by schema name) that the online page names too.
        relationships = _online_relationships(logical)
        for rel in many_to_one:
            known = relationships.get(str(rel.get("schema_name", "")).lower())
            if known and known[0] in attributes:
                attribute, _, bind = known
                target = rel.get("referenced_entity") or known[1]
                navs[bind] = Navigation(bind, attribute, target, rel["schema_name"], derived=True)
    for name, raw in attributes.items():
        if raw.get("type") not in LOOKUP_TYPES:
            continue
        given = [n for n in raw.get("navigation_properties") or () if n.get("navigation_property")]
        if from_page and given:
            # Two relationships with one name cannot both be in the CSDL; the pages print
            # "acceptingentityid" for both targets, the metadata-generated typings have
            # acceptingentityid_queue / acceptingentityid_systemuser (dataverse-audit.md §E).
            names = [n["navigation_property"] for n in given]
            for nav in given:
                bind = nav["navigation_property"]
                if names.count(bind) > 1:
                    bind = f"{bind}_{nav['target']}"
                target = nav["target"]  # "owner" for an Owner: systemuser or team
                navs[bind] = Navigation(
                    bind, name, target, nav.get("relationship", ""), bool(nav.get("derived"))
                )
            continue
        targets = raw.get("targets") or ()
        if raw.get("type") == "Owner":
            bind = online.get((name, "owner"), name)
            navs[bind] = Navigation(bind, name, "owner", derived=True)
            continue
        entity_form = any(v.endswith(f"_{logical}") for (a, _), v in online.items() if a == name)
        for target in targets:
            if (name, target) in online:
                bind = online[(name, target)]
            elif len(targets) == 1:
                bind = name
            else:
                bind = f"{name}_{target}_{logical}" if entity_form else f"{name}_{target}"
            navs[bind] = Navigation(bind, name, target, derived=True)
    return navs


def _collections(raw: dict) -> dict[str, CollectionNav]:
    found = {}
    for rel in raw.get("one_to_many") or ():
        nav = rel.get("navigation_property")
        if nav and rel.get("referencing_entity") and rel.get("referencing_attribute"):
            found[nav] = CollectionNav(nav, rel["referencing_entity"], rel["referencing_attribute"])
    return found


def _add_app_targets(logical: str, attributes: dict) -> None:
    """The online pages describe Dataverse without the Dynamics 365 apps, so a polymorphic
    lookup there lacks targets such as ``lead`` that an org running the Email Router has. The
    targets the v9.0 Dynamics 365 page lists, for entities this fake serves, are added with the
    online page's naming pattern for that attribute, marked derived."""
    stand_in = _load("v9.0-2018", logical)
    served = set(_entity_names())
    for name, attr in list(attributes.items()):
        if attr.get("type") not in ("Lookup", "Customer") or len(attr.get("targets") or ()) < 2:
            continue
        more = ((stand_in or {}).get("attributes", {}).get(name) or {}).get("targets") or ()
        extra = [t for t in more if t in served and t not in attr["targets"]]
        if not extra:
            continue
        navs = list(attr.get("navigation_properties") or ())
        entity_form = any(
            str(n.get("navigation_property", "")).endswith(f"_{logical}") for n in navs
        )
        for target in extra:
            bind = f"{name}_{target}_{logical}" if entity_form else f"{name}_{target}"
            navs.append({"target": target, "navigation_property": bind, "relationship": "",
                         "derived": True})  # fmt: skip
        attributes[name] = {
            **attr,
            "targets": [*attr["targets"], *extra],
            "navigation_properties": navs,
        }


@cache
def load_schema(flavour: str) -> Schema:
    """The entities of *flavour*, each from its flavour's folder or the 2018 stand-in."""
    if flavour not in FOLDERS:
        raise ValueError(f"unknown Dataverse flavour {flavour!r}; one of {FLAVOURS}")
    entities = {}
    for logical in _entity_names():
        found = [(f, r) for f in FOLDERS[flavour] if (r := _load(f, logical)) is not None]
        if not found and logical in BUILTIN:
            found = [("builtin", BUILTIN[logical])]
        if not found:
            continue
        folder, raw = found[0]
        attributes_raw = dict(raw.get("attributes") or {})
        source = f"{folder}/{logical}.json"
        if str(raw.get("completeness", "")).startswith("partial") and len(found) > 1:
            # A partial extraction: the attributes it lacks come from the stand-in, labelled.
            fallback, more = found[1]
            for name, attr in (more.get("attributes") or {}).items():
                attributes_raw.setdefault(name, attr)
            source += f" (partial; rest from {fallback}/{logical}.json)"
        if folder == "online":
            _add_app_targets(logical, attributes_raw)
        if flavour == "crm2016":
            for gone in CRM2016_LACKS.get(logical, ()):
                attributes_raw.pop(gone, None)
        entity = EntitySchema(
            logical=logical,
            entity_set=raw["entity_set"],
            primary_id=raw["primary_id"],
            schema_name=raw.get("schema_name") or logical,
            source=source,
            attributes={n: _attribute(n, a) for n, a in attributes_raw.items()},
            navigation=_navigations(
                logical,
                attributes_raw,
                folder in ("online", "builtin"),
                raw.get("many_to_one") or [],
            ),
            collections=_collections(raw),
            messages=tuple(m["name"] for m in raw.get("messages") or ()),
            raw=raw,
        )
        entities[logical] = entity
    return Schema(flavour, entities)
