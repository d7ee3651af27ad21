"""Load Data over the Web API: every user and queue with an email address, as ``Recipient``.

The Configuration Manager's Load Data (``configure``, notebook 01, ``emailrouter config
load-data``) starts from the list :meth:`SqliteCrm.recipients` gives; this is the same list read
from a Dataverse / Dynamics 365 organisation, so the plan it makes does not depend on the backend.

What is read, and why these names (Microsoft's entity reference, vendored in
``tests/contracts/dataverse/``: ``systemuser``, ``queue``, ``usersettings``):

* ``systemusers``: ``internalemailaddress`` (the "Primary Email" the router serves), ``isdisabled``,
  ``emailrouteraccessapproval`` (0 empty, 1 approved, 2 pending, 3 rejected) and the delivery
  methods ``incomingemaildeliverymethod`` / ``outgoingemaildeliverymethod`` (0 none, 1 Dynamics
  365 for Outlook, 2 server-side synchronization or Email Router, 3 forward mailbox, incoming
  only).
* ``queues``: the same approval and delivery columns, ``incomingemailfilteringmethod``, and
  ``statecode`` (1 inactive: the queue counts as disabled, as in the SQLite store).
* ``usersettingscollection``: a user's ``incomingemailfilteringmethod`` and
  ``autocreatecontactonpromote`` live there, not on ``systemuser``.

The three collections are read in one ``$batch`` of GETs, each paged with ``Prefer:
odata.maxpagesize`` and followed through ``@odata.nextLink`` as the server gives it (the reader the
backend passes in does both), so an organisation with 50,000 users costs 1 + its pages requests.
Users and queues without an address are not asked for (``ne null``): the router cannot serve them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from emailrouter_lib.crm.base import FILTER_ALL, Recipient
from emailrouter_lib.crm.dataverse.odata import query_path

Rows = list[dict[str, Any]]
ReadMany = Callable[[Sequence[str]], list[Rows]]

USER_COLUMNS = (
    "systemuserid",
    "fullname",
    "internalemailaddress",
    "isdisabled",
    "emailrouteraccessapproval",
    "incomingemaildeliverymethod",
    "outgoingemaildeliverymethod",
)
QUEUE_COLUMNS = (
    "queueid",
    "name",
    "emailaddress",
    "incomingemailfilteringmethod",
    "emailrouteraccessapproval",
    "incomingemaildeliverymethod",
    "outgoingemaildeliverymethod",
    "statecode",
)
USER_SETTINGS_COLUMNS = (
    "systemuserid",
    "incomingemailfilteringmethod",
    "autocreatecontactonpromote",
)
USER_SETTINGS_SET = "usersettingscollection"


def load_data_queries() -> list[str]:
    """The three GETs of a Load Data: users, queues, user settings (in this order)."""
    return [
        query_path("systemusers", select=USER_COLUMNS, filter="internalemailaddress ne null"),
        query_path("queues", select=QUEUE_COLUMNS, filter="emailaddress ne null"),
        query_path(USER_SETTINGS_SET, select=USER_SETTINGS_COLUMNS),
    ]


def read_recipients(read_many: ReadMany) -> list[Recipient]:
    """Every user and queue with an address, ordered as :meth:`SqliteCrm.recipients` orders them
    (users before queues, then by address), so both backends give Load Data the same list."""
    users, queues, settings = read_many(load_data_queries())
    by_user = {str(row.get("systemuserid") or "").lower(): row for row in settings}
    found = [user_recipient(row, by_user.get(str(row["systemuserid"]).lower())) for row in users]
    found += [queue_recipient(row) for row in queues]
    found = [r for r in found if r.emailaddress]
    found.sort(key=lambda r: (r.entity, r.emailaddress))
    return found


def user_recipient(row: dict[str, Any], settings: dict[str, Any] | None) -> Recipient:
    """A ``systemusers`` row (with its ``usersettings`` row, when readable) as a Recipient."""
    settings = settings or {}
    return Recipient(
        entity="systemuser",
        id=row["systemuserid"],
        name=row.get("fullname") or "",
        emailaddress=row.get("internalemailaddress") or "",
        incomingemailfilteringmethod=_option(
            settings.get("incomingemailfilteringmethod"), FILTER_ALL
        ),
        emailrouteraccessapproval=_option(row.get("emailrouteraccessapproval"), 0),
        incomingemaildeliverymethod=_option(row.get("incomingemaildeliverymethod"), 0),
        outgoingemaildeliverymethod=_option(row.get("outgoingemaildeliverymethod"), 0),
        isdisabled=bool(row.get("isdisabled")),
        autocreatecontact=bool(settings.get("autocreatecontactonpromote")),
    )


def queue_recipient(row: dict[str, Any]) -> Recipient:
    """A ``queues`` row as a Recipient; an inactive queue (statecode 1) is disabled."""
    return Recipient(
        entity="queue",
        id=row["queueid"],
        name=row.get("name") or "",
        emailaddress=row.get("emailaddress") or "",
        incomingemailfilteringmethod=_option(row.get("incomingemailfilteringmethod"), FILTER_ALL),
        emailrouteraccessapproval=_option(row.get("emailrouteraccessapproval"), 0),
        incomingemaildeliverymethod=_option(row.get("incomingemaildeliverymethod"), 0),
        outgoingemaildeliverymethod=_option(row.get("outgoingemaildeliverymethod"), 0),
        isdisabled=_option(row.get("statecode"), 0) != 0,
        autocreatecontact=False,
    )


def _option(value: Any, default: int) -> int:
    """An option-set value as int (the Web API sends numbers; null means "not set")."""
    return default if value is None else int(value)


__all__ = ["load_data_queries", "queue_recipient", "read_recipients", "user_recipient"]
