"""The embedded demo: the scenario messages and the demo Maildir (:mod:`.scenarios`), the
routing and audit environments (:mod:`.environment`), the migration's and the rules' demos
(:mod:`.migration`, :mod:`.rules`); the Contoso CRM seed still lives in
:mod:`emailrouter_lib.crm.demo`, because ``crm init --demo`` seeds from the CRM layer.

Nothing here is needed in production; it lets ``make demo`` and the tests run the whole router
with no Exchange and no Dynamics server.
"""

from __future__ import annotations
