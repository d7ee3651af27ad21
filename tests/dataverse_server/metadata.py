"""``$metadata`` (CSDL) and ``EntityDefinitions`` served from the flavour's vendored schema.

Only what a client needs to build valid requests: entity types with their structural
properties (lookups as ``_<name>_value``), single-valued navigation properties with their exact
names, collection navigations, the entity container, and the actions and functions the fake
models. ``EntityDefinitions(LogicalName='x')`` answers EntityMetadata with ``Attributes``
(IsValidForCreate/Update/Read, MaxLength, Targets), ``ManyToOneRelationships`` and
``OneToManyRelationships``, with ``$select`` at both levels (use-web-api-metadata /
query-metadata-web-api.md). Unknown names are refused as in any other query.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from xml.etree import ElementTree as ET

from .actions import FUNCTIONS, SIGNATURES
from .gate import UNKNOWN_PROPERTY, ODataError, segment_not_found
from .model import EntitySet
from .schema import Attribute

EDM_TYPES = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "EntityName": "Edm.String",
    "Integer": "Edm.Int32",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Boolean": "Edm.Boolean",
    "DateTime": "Edm.DateTimeOffset",
    "Uniqueidentifier": "Edm.Guid",
    "Money": "Edm.Decimal",
    "Decimal": "Edm.Decimal",
    "Double": "Edm.Double",
    "Image": "Edm.Binary",
    "File": "Edm.Guid",
}
METADATA_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "EntityName": "EntityNameAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Image": "ImageAttributeMetadata",
    "File": "FileAttributeMetadata",
}
NAMESPACE = "Microsoft.Dynamics.CRM"
EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"

BINDINGS = {
    "collection:emails": "Collection(mscrm.email)",
    "entity:emails": "mscrm.email",
    "entity:queues": "mscrm.queue",
}


def operations() -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    """(name, Function|Action, bound type, parameters) of every operation the fake models."""
    found = [("WhoAmI", "Function", None, ()), ("RetrieveVersion", "Function", None, ())]
    for name, (binding, parameters, _) in SIGNATURES.items():
        kind = "Function" if name in FUNCTIONS else "Action"
        found.append((name, kind, BINDINGS.get(binding or ""), parameters))
    return found


def csdl(sets: dict[str, EntitySet]) -> bytes:
    """The service's CSDL: entity types, their navigation properties, the container."""
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    root = ET.Element(f"{{{EDMX}}}Edmx", Version="4.0")
    services = ET.SubElement(root, f"{{{EDMX}}}DataServices")
    schema = _edm(services, "Schema", Namespace=NAMESPACE, Alias="mscrm")
    for es in sets.values():
        entity = _edm(schema, "EntityType", Name=es.logical)
        key = _edm(entity, "Key")
        _edm(key, "PropertyRef", Name=es.key)
        for attribute in es.schema.attributes.values():
            if not attribute.read or not (attribute.is_property or attribute.is_lookup):
                continue
            kind = (
                "Edm.Guid" if attribute.is_lookup else EDM_TYPES.get(attribute.type, "Edm.String")
            )
            _edm(entity, "Property", Name=attribute.read_name, Type=kind)
        for nav in es.navigation.values():
            target = "mscrm.principal" if nav.target == "owner" else f"mscrm.{nav.target}"
            _edm(entity, "NavigationProperty", Name=nav.name, Type=target)
        for collection in es.collections.values():
            _edm(
                entity,
                "NavigationProperty",
                Name=collection.name,
                Type=f"Collection(mscrm.{collection.entity})",
                Partner=collection.attribute,
            )
    for name, kind, bound, parameters in operations():
        operation = _edm(schema, kind, Name=name, IsBound=str(bool(bound)).lower())
        if bound:
            _edm(
                operation,
                "Parameter",
                Name="entityset" if "Collection" in bound else "entity",
                Type=bound,
            )
        for parameter in parameters:
            _edm(operation, "Parameter", Name=parameter, Type="Edm.String")
        _edm(operation, "ReturnType", Type=f"mscrm.{name}Response")
    container = _edm(schema, "EntityContainer", Name="System")
    for es in sets.values():
        _edm(container, "EntitySet", Name=es.name, EntityType=f"mscrm.{es.logical}")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _edm(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, f"{{{EDM}}}{tag}", attributes)


def _metadata_id(*names: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-dataverse:" + ":".join(names)))


def attribute_metadata(es: EntitySet, attribute: Attribute) -> dict[str, Any]:
    found: dict[str, Any] = {
        "@odata.type": f"#{NAMESPACE}.{METADATA_TYPES.get(attribute.type, 'AttributeMetadata')}",
        "MetadataId": _metadata_id(es.logical, attribute.name),
        "LogicalName": attribute.name,
        "SchemaName": es.schema.raw.get("attributes", {})
        .get(attribute.name, {})
        .get("schema_name", attribute.name),
        "EntityLogicalName": es.logical,
        "AttributeType": attribute.type,
        "IsValidForCreate": attribute.create,
        "IsValidForUpdate": attribute.update,
        "IsValidForRead": attribute.read,
        "IsPrimaryId": attribute.name == es.key,
    }
    if attribute.max_length is not None:
        found["MaxLength"] = attribute.max_length
    if attribute.is_lookup:
        found["Targets"] = list(attribute.targets)
    return found


def relationships(es: EntitySet) -> tuple[list[dict], list[dict]]:
    """(ManyToOneRelationships, OneToManyRelationships) of *es*."""
    many_to_one = [
        {
            "MetadataId": _metadata_id(es.logical, "m2o", nav.name),
            "SchemaName": nav.relationship or f"{nav.target}_{es.logical}_{nav.attribute}",
            "ReferencedEntity": nav.target,
            "ReferencingEntity": es.logical,
            "ReferencingAttribute": nav.attribute,
            "ReferencingEntityNavigationPropertyName": nav.name,
        }
        for nav in es.navigation.values()
    ]
    one_to_many = [
        {
            "MetadataId": _metadata_id(es.logical, "o2m", c.name),
            "SchemaName": c.name,
            "ReferencedEntity": es.logical,
            "ReferencingEntity": c.entity,
            "ReferencingAttribute": c.attribute,
            "ReferencedEntityNavigationPropertyName": c.name,
        }
        for c in es.collections.values()
    ]
    return many_to_one, one_to_many


def entity_metadata(es: EntitySet) -> dict[str, Any]:
    many_to_one, one_to_many = relationships(es)
    return {
        "MetadataId": _metadata_id(es.logical),
        "LogicalName": es.logical,
        "SchemaName": es.schema.schema_name,
        "EntitySetName": es.name,
        "LogicalCollectionName": es.schema.raw.get("logical_collection_name") or es.name,
        "PrimaryIdAttribute": es.key,
        "PrimaryNameAttribute": es.schema.raw.get("primary_name"),
        "Attributes": [attribute_metadata(es, a) for a in es.schema.attributes.values()],
        "ManyToOneRelationships": many_to_one,
        "OneToManyRelationships": one_to_many,
    }


EXPANDABLE = ("Attributes", "ManyToOneRelationships", "OneToManyRelationships")
DEFINITION = re.compile(
    r"^EntityDefinitions(?:\(LogicalName='(?P<name>[^']*)'\))?"
    r"(?:/(?P<part>Attributes|ManyToOneRelationships|OneToManyRelationships)"
    r"(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?)?$"
)


def _pick(item: dict[str, Any], select: list[str] | None, kind: str) -> dict[str, Any]:
    if not select:
        return item
    for name in select:
        if name not in item and name not in _OPTIONAL.get(kind, ()):
            raise ODataError(
                400,
                UNKNOWN_PROPERTY,
                f"Could not find a property named '{name}' on type '{NAMESPACE}.{kind}'.",
            )
    keep = {k: v for k, v in item.items() if k in select or k in ("MetadataId", "@odata.type")}
    return keep


_OPTIONAL = {"AttributeMetadata": ("MaxLength", "Targets")}


def _split(text: str) -> list[str]:
    """Top-level comma-separated items of an $expand (parentheses nest)."""
    items, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [i.strip() for i in [*items, current] if i.strip()]


def entity_definitions(
    rest: str, query: dict[str, str], sets: dict[str, EntitySet], base: str
) -> dict[str, Any]:
    """``EntityDefinitions(LogicalName='x')`` (or the collection) with $select and $expand."""
    match = DEFINITION.match(rest)
    if not match:
        raise segment_not_found(rest)
    by_logical = {es.logical: es for es in sets.values()}
    select = [s for s in query.get("$select", "").split(",") if s] or None
    expand: dict[str, list[str] | None] = {}
    for item in _split(query.get("$expand", "")):
        name, _, options = item.partition("(")
        if name not in EXPANDABLE:
            raise ODataError(
                400,
                UNKNOWN_PROPERTY,
                f"Could not find a property named '{name}' on type '{NAMESPACE}.EntityMetadata'.",
            )
        inner = re.search(r"\$select=([^;)]*)", options)
        expand[name] = inner.group(1).split(",") if inner else None

    def shape(es: EntitySet) -> dict[str, Any]:
        full = entity_metadata(es)
        top = {k: v for k, v in full.items() if k not in EXPANDABLE}
        out = _pick(top, select, "EntityMetadata")
        for name, inner in expand.items():
            kind = "AttributeMetadata" if name == "Attributes" else "RelationshipMetadataBase"
            out[name] = [_pick(item, inner, kind) for item in full[name]]
        return out

    if match.group("name") is not None:
        es = by_logical.get(match.group("name"))
        if es is None:
            raise ODataError(
                404,
                "0x80040217",
                f"Could not find an entity with specified entity name: {match.group('name')}",
            )
        part = match.group("part")
        if part:  # EntityDefinitions(LogicalName='x')/Attributes[/<cast>]?$select=...
            items = entity_metadata(es)[part]
            cast = match.group("cast")
            if cast:
                items = [i for i in items if i.get("@odata.type") == f"#{NAMESPACE}.{cast}"]
            kind = "AttributeMetadata" if part == "Attributes" else "RelationshipMetadataBase"
            return {
                "@odata.context": f"{base}$metadata#EntityDefinitions('{es.logical}')/{part}",
                "value": [_pick(item, select, kind) for item in items],
            }
        return {"@odata.context": f"{base}$metadata#EntityDefinitions/$entity", **shape(es)}
    wanted = set(re.findall(r"LogicalName eq '([^']*)'", query.get("$filter", "")))
    chosen = [es for es in by_logical.values() if not wanted or es.logical in wanted]
    return {
        "@odata.context": f"{base}$metadata#EntityDefinitions",
        "value": [shape(es) for es in chosen],
    }
