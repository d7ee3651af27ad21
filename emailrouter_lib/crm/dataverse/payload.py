"""Request bodies built from what the org has (see :mod:`.metadata`).

Every value the router wants to write goes through :class:`PayloadRules`:

* an attribute the org lacks is left out (CRM 2016 / on-premises have no
  ``email.acceptingentityid``, ``receivingmailboxid``, ``correlatedactivityid`` nor
  ``activityparty.unresolvedpartyname``; sending one fails the whole change set with 400);
* an attribute that is not valid for create (or update) is left out: the platform would ignore
  it anyway ("The system will ignore any attribute values that are not allowed", Microsoft
  Dynamics CRM team blog, "Locating attributes that are valid for creating or updating
  records", 2007), so sending it only hides that the value is lost;
* a string longer than the org's ``MaxLength`` is cut to it, with a note for the routing result
  row (one over-long value would fail the change set with 0x80044331 and keep the batch out);
* a lookup is bound through the navigation property the org names
  (``ReceivingMailboxId_Email``, case-sensitive), or not at all when the org has no such lookup.

What was left out for the whole org is collected once in :attr:`PayloadRules.skipped`; what was
cut in one record goes to that record's note list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emailrouter_lib.crm.dataverse.metadata import EntityInfo, OrgSchema, known_columns


class PayloadRules:
    """Filters and binds values for one org's schema."""

    def __init__(self, schema: OrgSchema, *, send_readonly: bool = False):
        self.schema = schema
        self.send_readonly = send_readonly
        self.skipped: set[str] = set()  # "email.inreplyto: read-only", once per org

    def has(self, entity: str, attribute: str) -> bool:
        info = self.schema.get(entity)
        return info is None or info.has(attribute)

    def writes(self, entity: str, attribute: str, *, create: bool = True) -> bool:
        """Whether a value of *attribute* is sent (and so stored by the org)."""
        info = self.schema.get(entity)
        if info is None:
            return True
        return info.has(attribute) and (
            info.writable(attribute, create=create) or self.send_readonly
        )

    def select(self, entity: str, columns: tuple[str, ...]) -> tuple[str, ...]:
        """The *columns* of a ``$select`` the org has (CRM 2016 has no
        ``activityparty.unresolvedpartyname``; selecting it fails the query)."""
        return known_columns(self.schema.get(entity), columns)

    def values(
        self,
        entity: str,
        values: Mapping[str, Any],
        *,
        create: bool,
        notes: list[str],
    ) -> dict[str, Any]:
        """*values* (plain attributes, ``None`` already dropped) as the org accepts them."""
        info = self.schema.get(entity)
        if info is None:
            return dict(values)
        kept: dict[str, Any] = {}
        for name, value in values.items():
            if not info.has(name):
                self.skipped.add(f"{entity}.{name}: not in this org")
                continue
            if not info.writable(name, create=create) and not self.send_readonly:
                self.skipped.add(f"{entity}.{name}: read-only")
                continue
            kept[name] = self.cut(info, name, value, notes)
        return kept

    def cut(self, info: EntityInfo, name: str, value: Any, notes: list[str]) -> Any:
        limit = info.max_length(name)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            notes.append(
                f"{info.logical_name}.{name} cut from {len(value)} to {limit} characters "
                "(the org's MaxLength)"
            )
            return value[:limit]
        return value

    def bind(self, entity: str, attribute: str, target: str, default: str) -> str | None:
        """The ``<navigation property>@odata.bind`` key binding *attribute* to a *target*
        record, or None when the org has no such lookup.

        *default* is the conventional name, used only when the org's metadata records no
        relationship at all for the attribute (an incomplete definition)."""
        info = self.schema.get(entity)
        if info is None:
            return f"{default}@odata.bind"
        if not info.has(attribute):
            self.skipped.add(f"{entity}.{attribute}: not in this org")
            return None
        name = info.nav(attribute, target)
        if name is None and not any(a == attribute for a, _ in info.navigation):
            name = default
        if name is None:
            self.skipped.add(f"{entity}.{attribute} -> {target}: no such relationship")
            return None
        return f"{name}@odata.bind"


__all__ = ["PayloadRules"]
