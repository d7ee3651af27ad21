"""The CRM the router writes to, behind one protocol (:class:`CrmBackend`).

Open one by URL with :func:`open_crm`; create the embedded one with :func:`init_crm`
(``demo=True`` seeds the Contoso demo of :mod:`emailrouter_lib.crm.demo`)::

    init_crm("sqlite:///runs/demo/crm.db", demo=True)
    crm = open_crm("sqlite:///runs/demo/crm.db")
    crm.parties_by_address(["carol@fabrikam.example"])
"""

from __future__ import annotations

from emailrouter_lib.crm.base import (
    CrmBackend,
    EmailRef,
    NewAttachment,
    NewEmail,
    NewParty,
    Organization,
    Party,
    Recipient,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.crm.sqlite import SqliteCrm
from emailrouter_lib.crm.url import init_crm, open_crm, sqlite_path

__all__ = [
    "CrmBackend",
    "EmailRef",
    "NewAttachment",
    "NewEmail",
    "NewParty",
    "Organization",
    "Party",
    "Recipient",
    "SqliteCrm",
    "base_conversation_index_hash",
    "init_crm",
    "open_crm",
    "sqlite_path",
]
