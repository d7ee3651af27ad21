"""The migration demo: the bundled sample configuration beside a fresh demo CRM.

The demo CRM's users and queues carry the sample's GUIDs (``crm.demo.SAMPLE_CONFIG_IDS``), and
were chosen so the plan shows the interesting cases:

* user a01 → Alice Admin (approved, Exchange + SMTP),
* user a02 → Gina Pending (approval pending: a ``not-approved`` warning),
* user a03 → Frank Field (his mail arrives through the forward mailbox),
* queue b01 → Support, queue b02 → Sales (POP3 + SMTP without SSL: a ``non-ssl`` warning).

Bob Sales is not in the file, so the CRM-but-not-in-config check has something to find.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.config import CONFIG_NAME
from emailrouter_lib.config.edit import SAMPLE_CONFIG
from emailrouter_lib.crm import init_crm

# The sample's encrypted-looking password: tests check it never appears in any output.
SAMPLE_PASSWORD_TEXT = "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA"


@dataclass(frozen=True)
class MigrationDemo:
    """A fresh demo CRM and the sample-derived router configuration beside it."""

    workdir: Path
    crm_url: str
    config: Path


def prepare_migration_demo(workdir: str | Path) -> MigrationDemo:
    """Create (or recreate) the demo CRM and the demo configuration under *workdir*."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    crm_url = f"sqlite:///{workdir / 'crm.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    config = workdir / CONFIG_NAME
    shutil.copyfile(SAMPLE_CONFIG, config)
    return MigrationDemo(workdir, crm_url, config)
