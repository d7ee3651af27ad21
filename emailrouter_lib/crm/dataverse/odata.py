"""OData query text for the Web API: literals, filters, and the query string of a GET.

Lists of values go through the ``Microsoft.Dynamics.CRM.In`` query function, which CRM 2016
(v8.x) and Dataverse both accept, so a whole routing batch's addresses fit in one filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from urllib.parse import quote

# Characters left as they are in a query string; everything else is percent-encoded ("+" too,
# which IIS would read as a space).
_SAFE = "$'(),=[]:@/*-._~!;"


def literal(value: object) -> str:
    """An OData literal: strings quoted with '' for ', numbers and Booleans as they are."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def eq(attribute: str, value: object) -> str:
    return f"{attribute} eq {literal(value)}"


def is_in(attribute: str, values: Iterable[object]) -> str:
    """``attribute`` is one of *values* (the ``In`` query function of the Web API).

    ``PropertyValues`` is a JSON array of strings: Microsoft's query docs ("Manage single quotes",
    https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows)
    require double-quoted values there, since a value holding ``'`` (``o'brien@...``, legal in
    addresses and Message-IDs) fails the OData form with "Invalid JSON. A comma character ','
    was expected in scope 'Array'". ``json.dumps`` also escapes ``"`` and ``\\``.
    """
    items = json.dumps([str(v) for v in values], ensure_ascii=False, separators=(",", ":"))
    return f"Microsoft.Dynamics.CRM.In(PropertyName='{attribute}',PropertyValues={items})"


def any_of(*clauses: str) -> str:
    return clauses[0] if len(clauses) == 1 else "(" + " or ".join(clauses) + ")"


def all_of(*clauses: str) -> str:
    return " and ".join(c for c in clauses if c)


def query_path(
    entity_set: str,
    *,
    select: Sequence[str] = (),
    filter: str | None = None,
    orderby: str | None = None,
    top: int | None = None,
) -> str:
    """``entityset?$select=...&$filter=...`` with the values percent-encoded."""
    options = []
    if select:
        options.append(f"$select={','.join(select)}")
    if filter:
        options.append(f"$filter={quote(filter, safe=_SAFE)}")
    if orderby:
        options.append(f"$orderby={quote(orderby, safe=_SAFE)}")
    if top is not None:
        options.append(f"$top={int(top)}")
    return entity_set + ("?" + "&".join(options) if options else "")


def record_path(entity_set: str, record_id: str) -> str:
    return f"{entity_set}({record_id})"


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["all_of", "any_of", "chunks", "eq", "is_in", "literal", "query_path", "record_path"]
