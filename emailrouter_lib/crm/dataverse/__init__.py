"""The Dataverse / Dynamics 365 Web API backend of the router's CRM.

Open it by URL through :func:`emailrouter_lib.crm.open_crm` (``dataverse+https://...``; the
forms are in :mod:`emailrouter_lib.crm.dataverse.settings`)::

    crm = open_crm("dataverse+https://crm.contoso.local/Contoso?api=v8.2&auth=ntlm"
                   "&user=CONTOSO%5Csvc-crm&password=env:CRM_PASSWORD")

Modules, one idea each: ``settings`` (the URL), ``auth`` (NTLM, Negotiate, MSAL), ``session``
(HTTP, Retry-After, error texts), ``odata`` (query text), ``batch`` (the ``$batch`` wire format),
``backend`` (:class:`DataverseCrm`, the :class:`~emailrouter_lib.crm.base.CrmBackend`).
"""

from __future__ import annotations

from emailrouter_lib.crm.dataverse.backend import DataverseCrm, open_dataverse
from emailrouter_lib.crm.dataverse.settings import DataverseSettings, parse_dataverse_url

__all__ = ["DataverseCrm", "DataverseSettings", "open_dataverse", "parse_dataverse_url"]
