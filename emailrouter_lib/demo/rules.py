"""The rules demo: the demo CRM and the sample router configuration, nothing to connect to.

The sample configuration's forward-mailbox provider lists user ``…a03``; here it is Frank Field,
whose mail the demo CRM already sends through the forward mailbox. The demo also sets the Sales
queue (on the POP3 profile) and Bob Sales (moved to an Exchange Online profile) to Forward
Mailbox, so the plan shows the skips and the manual artifacts (instructions, EMS script).
Everything is made inside *workdir*; nothing else is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.config import CONFIG_NAME
from emailrouter_lib.config.edit import SAMPLE_CONFIG
from emailrouter_lib.crm import SqliteCrm, init_crm, sqlite_path
from emailrouter_lib.crm.demo import (
    BOB,
    FORWARD_MAILBOX,
    SALES,
    SEED_TIME,
)

# The one value the sample and the demo CRM spell differently: the forward mailbox's address (the
# sample is a file of contoso.com; the demo organisation's mail domain is contoso.example).
_SWAPS = {"crm-sink@contoso.com": FORWARD_MAILBOX.address}


@dataclass(frozen=True)
class RulesDemo:
    crm_url: str
    config: Path


def prepare_rules_demo(workdir: str | Path) -> RulesDemo:
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    crm_url = f"sqlite:///{workdir / 'crm.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    crm = SqliteCrm(sqlite_path(crm_url))
    try:
        crm.save_mailbox({"regardingobjectid": SALES.id, "incomingemaildeliverymethod": 3})
        online = crm.save_email_server_profile(
            {
                "name": "Contoso Exchange Online",
                "servertype": 0,
                "incomingserverlocation": "https://outlook.office365.com/EWS/Exchange.asmx",
                "createdon": SEED_TIME,
            }
        )
        crm.save_mailbox(
            {
                "regardingobjectid": BOB.id,
                "incomingemaildeliverymethod": 3,
                "emailserverprofile": online.id,
            }
        )
    finally:
        crm.close()
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    for old, new in _SWAPS.items():
        text = text.replace(old, new)
    config = workdir / CONFIG_NAME
    config.write_text(text, encoding="utf-8", newline="")
    return RulesDemo(crm_url, config)


__all__ = ["RulesDemo", "prepare_rules_demo"]
