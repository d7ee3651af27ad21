"""Crash points for the exactly-once tests.

The tests kill the routing process for real (SIGKILL, no cleanup, no ``finally``) at a named point
of the batch, then rerun it and count what reached the CRM. The point is named by the environment
variable ``EMAILROUTER_CRASH_AT``; unset, every checkpoint is a no-op.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
    "after-crm-commit",  # the CRM has the activities, the ledger still says pending
    "after-ledger-commit",  # the ledger says committed, the source items are not yet deleted/moved
    "after-source-action",  # the source items are handled, the ledger does not say done yet
)


def checkpoint(name: str) -> None:
    if os.environ.get("EMAILROUTER_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
