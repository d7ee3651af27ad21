"""The contract gate: every name and value a request carries, checked against the schema.

Each check answers as Dataverse does: status, hex code and message as "Troubleshoot Dataverse Web
API client errors" shows them (SupportArticles-docs
``support/power-platform/dataverse/dataverse-web-api-and-sdk/web-api-client-errors.md`` @0d44799b)
and "Execute batch operations using the Web API" (powerapps-docs @07bda7ad):

* a property the entity type lacks in ``$select``/``$filter``/``$orderby``: 400 ``0x0`` "Could
  not find a property named 'x' on type 'Microsoft.Dynamics.CRM.<entity>'." (names are
  case-sensitive; clients against live orgs also report ``0x80060888`` with that message);
* a property the entity type lacks in a body: 400 ``0x0`` "An error occurred while validating
  input parameters: Microsoft.Crm.CrmException: Invalid property 'x' was found in entity ...";
* a navigation property the entity type lacks in ``<nav>@odata.bind`` (case-sensitive):
  400 ``0x80048d19`` "Error identified in Payload provided by the user for Entity :'<set>' ---->
  InnerException : Microsoft.OData.ODataException: An undeclared property 'x' which only has
  property annotations in the payload ...";
* a resource (entity set, function, action) that does not exist: 404 ``0x8006088a`` "Resource
  not found for the segment 'x'."; a function called with POST or an action with GET: 404, code
  "", "No HTTP resource was found that matches the request URI '...'.";
* a string longer than MaxLength: 400 ``0x80044331`` "A validation error occurred.  The length of
  the 'subject' attribute of the 'task' entity exceeded the maximum allowed length of '200'.";
* an attribute not valid for create/update: accepted and ignored (not stored);
* other columns of a closed activity (statecode 1 Completed / 2 Canceled): 400 (code assumed).
"""

from __future__ import annotations

from typing import Any

from .model import CLOSED_CHANGEABLE, CLOSED_STATES, EntitySet
from .schema import Attribute, Navigation

OWNER_TARGETS = frozenset({"systemuser", "team"})
UNKNOWN_PROPERTY = "0x0"  # documented for $select and for bodies (see the module docstring)
UNDECLARED_NAVIGATION = "0x80048d19"
SEGMENT_NOT_FOUND = "0x8006088a"
MAX_LENGTH = "0x80044331"
RECORD_NOT_FOUND = "0x80040217"
BAD_REQUEST = "0x80060888"  # assumed for other malformed requests (filter syntax, ...)
CLOSED_ACTIVITY = "0x80040203"  # assumed: the message is reported, the code is not
# InvalidStateCodeStatusCode (-2147187704 reported by a Web API client with "State code is
# invalid or state code is valid but status code is invalid for a specified state code."; the
# platform's text "<n> is not a valid status code for state code <Entity>State.<State> ...").
INVALID_STATUS = "0x80048408"


class ODataError(Exception):
    """An error the Web API would answer, with its HTTP status and hex code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(es: EntitySet, record_id: str) -> ODataError:
    return ODataError(404, RECORD_NOT_FOUND, f"{es.logical} With Id = {record_id} Does Not Exist")


def segment_not_found(segment: str) -> ODataError:
    return ODataError(404, SEGMENT_NOT_FOUND, f"Resource not found for the segment '{segment}'.")


def no_resource(uri: str) -> ODataError:
    """A function called with POST, an action with GET (documented with an empty code)."""
    return ODataError(404, "", f"No HTTP resource was found that matches the request URI '{uri}'.")


def bad_property(es: EntitySet, name: str) -> ODataError:
    """An unknown name in a query option ($select, $filter, $orderby)."""
    return ODataError(
        400,
        UNKNOWN_PROPERTY,
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
            UNKNOWN_PROPERTY,
            "An error occurred while validating input parameters: Microsoft.Crm.CrmException: "
            f"Invalid property '{name}' was found in entity 'Microsoft.Dynamics.CRM.{es.logical}'."
            " ---> Microsoft.OData.ODataException: Does not support untyped value in non-open "
            "type.",
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
            UNDECLARED_NAVIGATION,
            f"Error identified in Payload provided by the user for Entity :'{es.name}'  ---->  "
            "InnerException : Microsoft.OData.ODataException: An undeclared property "
            f"'{name}' which only has property annotations in the payload but no property value "
            "was found in the payload. In OData, only declared navigation properties and "
            "declared named streams can be represented as properties without values.",
        )
    return found


def check_bind_target(es: EntitySet, nav: Navigation, target: EntitySet) -> None:
    expected = OWNER_TARGETS if nav.target == "owner" else {nav.target}
    if nav.target == "activitypointer" or target.logical in expected:
        return
    raise ODataError(
        400,
        BAD_REQUEST,
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
            MAX_LENGTH,
            f"A validation error occurred.  The length of the '{attribute.name}' attribute of the "
            f"'{es.logical}' entity exceeded the maximum allowed length of '{limit}'.",
        )


def check_closed_activity(es: EntitySet, row: Any, values: dict[str, Any]) -> None:
    """On a Completed or Canceled activity only its state (SetState), regarding and owner may
    change; reopening it (statecode 0) in the same request allows the rest."""
    if row is None or "statecode" not in set(row.keys()) or row["statecode"] not in CLOSED_STATES:
        return
    others = sorted(set(values) - CLOSED_CHANGEABLE)
    if others and values.get("statecode", row["statecode"]) in CLOSED_STATES:
        raise ODataError(
            400,
            CLOSED_ACTIVITY,
            f"Cannot update Closed or Cancelled Activity: {es.logical} "
            f"{row[es.key]} is statecode {row['statecode']}; attributes {', '.join(others)}.",
        )


def settle_state(es: EntitySet, values: dict[str, Any], row: Any, record_id: str) -> None:
    """The statecode/statuscode pair after this write, as the platform settles it: a new state
    without a status gets the state's default status; a status must belong to its state
    (statuscode options with their State, from the page)."""
    status_attr = es.schema.raw.get("attributes", {}).get("statuscode") or {}
    state_attr = es.schema.raw.get("attributes", {}).get("statecode") or {}
    to_state = {int(k): v for k, v in (status_attr.get("status_to_state") or {}).items()}
    if not to_state or ("statecode" not in values and "statuscode" not in values):
        return
    defaults = {int(k): v for k, v in (state_attr.get("state_default_status") or {}).items()}
    current = dict(zip(row.keys(), tuple(row), strict=True)) if row is not None else {}
    state = values.get("statecode", current.get("statecode", 0))
    if "statuscode" not in values:
        if "statecode" in values and state in defaults:
            values["statuscode"] = defaults[state]
        return
    status = values["statuscode"]
    if status is None or to_state.get(status) == state:
        return
    names = state_attr.get("state_invariant_names") or state_attr.get("options") or {}
    name = names.get(str(state), state)
    raise ODataError(
        400,
        INVALID_STATUS,
        f"{status} is not a valid status code for state code {es.schema.schema_name}State."
        f"{name} on {es.logical} with Id {record_id}.",
    )
