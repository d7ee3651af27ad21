"""The contract gate: every name and value a request carries, checked against the schema.

Each check answers as Dataverse does (status, hex code, a message naming the property); the
codes and messages, and which of them are assumptions, are listed in README.md:

* a property the entity type lacks, in a payload (``0x80060888`` "The property 'x' does not
  exist on type ...") or in ``$select``/``$filter``/``$orderby`` (``0x80060888`` "Could not find
  a property named 'x' on type ...");
* a navigation property the entity type lacks (names are case-sensitive): ``0x80060888``
  "An undeclared property 'x' which only has property annotations ...";
* a string longer than MaxLength: ``0x80044331`` "A validation error occurred. The length of the
  'subject' attribute of the 'task' entity exceeded the maximum allowed length of '200'."
  (execute-batch-operations-using-web-api.md, "Handling errors");
* an attribute not valid for create/update: accepted and ignored (not stored);
* other columns of a closed activity (statecode 1 Completed / 2 Canceled) updated.
"""

from __future__ import annotations

from typing import Any

from .model import CLOSED_STATES, STATE_COLUMNS, EntitySet
from .schema import Attribute, Navigation

OWNER_TARGETS = frozenset({"systemuser", "team"})


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
    """An unknown name in a query option ($select, $filter, $orderby)."""
    return ODataError(
        400,
        "0x80060888",
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{es.logical}'.",
    )


def read_property(es: EntitySet, name: str) -> Attribute:
    """The attribute a ``$select``/``$orderby`` name reads: lookups only as ``_x_value``."""
    attribute = es.schema.property(name)
    if attribute is None or not attribute.read:
        if name == es.key:
            return es.schema.attributes[es.key]
        raise bad_property(es, name)
    return attribute


def filter_property(es: EntitySet, name: str, in_function: bool = False) -> Attribute:
    """A ``$filter`` name: ``_x_value`` for a lookup in a comparison; query functions such as
    ``Microsoft.Dynamics.CRM.In`` take the logical name (``PropertyName='objectid'``)."""
    attribute = es.schema.attributes.get(name)
    if in_function and attribute is not None and attribute.read:
        return attribute
    return read_property(es, name)


def payload_property(es: EntitySet, name: str) -> Attribute:
    """A structural property in a create/update body."""
    attribute = es.schema.property(name)
    if attribute is None:
        raise ODataError(
            400,
            "0x80060888",
            f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{es.logical}'. "
            "Make sure to only use property names that are defined by the type.",
        )
    return attribute


def navigation(es: EntitySet, name: str) -> Navigation:
    """A single-valued navigation property of ``<name>@odata.bind``: exact, case-sensitive."""
    found = es.navigation.get(name)
    if found is None:
        # An Owner is bound as ``ownerid`` on every entity in the docs' examples, though the
        # activity pages name the relationship's navigation ``ownerid_<entity>``; both pass.
        owner = es.schema.attributes.get(name)
        if owner is not None and owner.type == "Owner":
            return Navigation(name, name, "owner", derived=True)
        raise ODataError(
            400,
            "0x80060888",
            f"An undeclared property '{name}' which only has property annotations in the payload "
            "but no property value was found in the payload. In OData, only declared navigation "
            "properties and declared named streams can be represented as properties without "
            "values.",
        )
    return found


def check_bind_target(es: EntitySet, nav: Navigation, target: EntitySet) -> None:
    expected = OWNER_TARGETS if nav.target == "owner" else {nav.target}
    if nav.target == "activitypointer" or target.logical in expected:
        return
    raise ODataError(
        400,
        "0x80060888",
        f"The navigation property '{nav.name}' of 'Microsoft.Dynamics.CRM.{es.logical}' binds "
        f"'Microsoft.Dynamics.CRM.{nav.target}', not 'Microsoft.Dynamics.CRM.{target.logical}'.",
    )


def writable(attribute: Attribute, creating: bool) -> bool:
    return attribute.create if creating else attribute.update


def check_length(es: EntitySet, attribute: Attribute, value: Any) -> None:
    limit = attribute.max_length
    if limit is None or not isinstance(value, str) or attribute.name in es.binary:
        return
    if len(value) > limit:
        raise ODataError(
            400,
            "0x80044331",
            f"A validation error occurred.  The length of the '{attribute.name}' attribute of the "
            f"'{es.logical}' entity exceeded the maximum allowed length of '{limit}'.",
        )


def check_closed_activity(es: EntitySet, row: Any, values: dict[str, Any]) -> None:
    """Only statecode/statuscode may change on a Completed or Canceled activity (SetState)."""
    if row is None or "statecode" not in set(row.keys()) or row["statecode"] not in CLOSED_STATES:
        return
    others = sorted(set(values) - STATE_COLUMNS - {"modifiedon"})
    if others and values.get("statecode", row["statecode"]) in CLOSED_STATES:
        raise ODataError(
            400,
            "0x80040203",
            f"Cannot update Closed or Cancelled Activity: {es.logical} "
            f"{row[es.key]} is statecode {row['statecode']}; attributes {', '.join(others)}.",
        )
