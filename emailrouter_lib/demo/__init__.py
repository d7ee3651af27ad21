"""The embedded demo: the Contoso CRM seed lives in :mod:`emailrouter_lib.crm.demo`; the scenario
messages and the demo Maildir in :mod:`emailrouter_lib.demo.scenarios`.

Nothing here is needed in production; it lets ``make demo`` and the tests run the whole router
with no Exchange and no Dynamics server.
"""

from __future__ import annotations
