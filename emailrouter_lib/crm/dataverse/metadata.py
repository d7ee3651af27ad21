"""What the organisation has: attributes, their writability and length, and navigation names.

Payloads are built from the org's own entity metadata, not from names guessed once for all
versions: Dataverse online has ``email.receivingmailboxid`` (navigation property
``ReceivingMailboxId_Email``, case-sensitive), CRM 2016 and Dynamics 365 on-premises do not;
``activityparty.addressused`` is 320 characters online and 200 on-premises. One ``$batch`` of
``EntityDefinitions(LogicalName='<entity>')?$expand=Attributes,ManyToOneRelationships`` reads it
(https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api;
``EntityDefinitions`` is in the CRM 2016 v8.x Web API as well); the state file keeps it
per org URL and API version, so a connection pays for it once per cache lifetime, not per batch.

``Attributes`` is expanded without ``$select``: ``MaxLength`` lives on the derived
``StringAttributeMetadata``/``MemoAttributeMetadata`` types, which a ``$select`` on the base
``AttributeMetadata`` cannot name, while the expanded collection carries each item's derived
properties.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The entities whose payloads the router builds or whose columns it selects by name.
SCHEMA_ENTITIES = (
    "email",
    "activityparty",
    "activitymimeattachment",
    "mailbox",
    "emailserverprofile",
    "contact",
    "queueitem",
)
RELATIONSHIP_SELECT = (
    "ReferencingAttribute",
    "ReferencedEntity",
    "ReferencingEntityNavigationPropertyName",
)
ENTITY_SELECT = ("LogicalName", "EntitySetName", "PrimaryIdAttribute")


def definition_path(logical_name: str) -> str:
    """The GET of one entity's definition, with its attributes and many-to-one relationships."""
    return (
        f"EntityDefinitions(LogicalName='{logical_name}')"
        f"?$select={','.join(ENTITY_SELECT)}"
        "&$expand=Attributes,ManyToOneRelationships"
    )


@dataclass(frozen=True)
class AttributeInfo:
    logical_name: str
    type: str = ""
    creatable: bool = True
    updatable: bool = True
    max_length: int | None = None


@dataclass(frozen=True)
class EntityInfo:
    """One entity as the org describes it."""

    logical_name: str
    entity_set: str | None = None
    attributes: Mapping[str, AttributeInfo] = field(default_factory=dict)
    # (referencing attribute, referenced entity) -> navigation property name, as the org spells it
    navigation: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def has(self, attribute: str) -> bool:
        return attribute.lower() in self.attributes

    def writable(self, attribute: str, *, create: bool) -> bool:
        info = self.attributes.get(attribute.lower())
        return info is not None and (info.creatable if create else info.updatable)

    def max_length(self, attribute: str) -> int | None:
        info = self.attributes.get(attribute.lower())
        return info.max_length if info else None

    def nav(self, attribute: str, target: str) -> str | None:
        """The single-valued navigation property binding *attribute* to a *target* record.

        A polymorphic lookup has one relationship per target; ``ownerid`` points at the
        ``owner`` entity whatever the owner's type, so a lone relationship of the attribute
        stands for every target.
        """
        attribute, target = attribute.lower(), target.lower()
        name = self.navigation.get((attribute, target))
        if name is not None:
            return name
        names = {n for (a, _), n in self.navigation.items() if a == attribute}
        return names.pop() if len(names) == 1 else None


@dataclass(frozen=True)
class OrgSchema:
    """The definitions read from one org (entities it could not describe are absent: their
    payloads go out as built, unchecked)."""

    entities: Mapping[str, EntityInfo] = field(default_factory=dict)

    def get(self, logical_name: str) -> EntityInfo | None:
        return self.entities.get(logical_name)


def parse_definition(row: Mapping[str, Any]) -> EntityInfo:
    """An :class:`EntityInfo` from a Web API ``EntityMetadata`` answer."""
    attributes: dict[str, AttributeInfo] = {}
    for item in row.get("Attributes") or ():
        name = str(item.get("LogicalName") or "").lower()
        if not name:
            continue
        length = item.get("MaxLength")
        attributes[name] = AttributeInfo(
            logical_name=name,
            type=str(item.get("AttributeType") or ""),
            creatable=bool(item.get("IsValidForCreate", True)),
            updatable=bool(item.get("IsValidForUpdate", True)),
            max_length=int(length) if isinstance(length, int) and length > 0 else None,
        )
    navigation: dict[tuple[str, str], str] = {}
    for item in row.get("ManyToOneRelationships") or ():
        attribute = str(item.get("ReferencingAttribute") or "").lower()
        target = str(item.get("ReferencedEntity") or "").lower()
        name = item.get("ReferencingEntityNavigationPropertyName")
        if attribute and target and name:
            navigation[(attribute, target)] = str(name)
    return EntityInfo(
        logical_name=str(row.get("LogicalName") or "").lower(),
        entity_set=row.get("EntitySetName"),
        attributes=attributes,
        navigation=navigation,
    )


def trimmed(row: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a definition the router uses (what the state file keeps)."""
    return {
        **{key: row.get(key) for key in ENTITY_SELECT},
        "Attributes": [
            {
                key: item.get(key)
                for key in (
                    "LogicalName",
                    "AttributeType",
                    "IsValidForCreate",
                    "IsValidForUpdate",
                    "MaxLength",
                )
                if key in item
            }
            for item in row.get("Attributes") or ()
        ],
        "ManyToOneRelationships": [
            {key: item.get(key) for key in RELATIONSHIP_SELECT}
            for item in row.get("ManyToOneRelationships") or ()
        ],
    }


def schema_from(definitions: Iterable[Mapping[str, Any]]) -> OrgSchema:
    entities = {}
    for row in definitions:
        info = parse_definition(row)
        if info.logical_name:
            entities[info.logical_name] = info
    return OrgSchema(entities)


def known_columns(info: EntityInfo | None, columns: Iterable[str]) -> tuple[str, ...]:
    """*columns* the entity has (``_x_value`` names checked as ``x``); all when unknown."""
    columns = tuple(columns)
    if info is None:
        return columns
    kept = []
    for column in columns:
        name = column[1:-6] if column.startswith("_") and column.endswith("_value") else column
        if info.has(name):
            kept.append(column)
    return tuple(kept)


__all__ = [
    "SCHEMA_ENTITIES",
    "AttributeInfo",
    "EntityInfo",
    "OrgSchema",
    "definition_path",
    "known_columns",
    "parse_definition",
    "schema_from",
    "trimmed",
]
