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
from emailrouter_lib.crm import SqliteCrm, init_crm, sqlite_path
from emailrouter_lib.crm.demo import (
    ALICE,
    BOB,
    FORWARD_MAILBOX,
    FRANK,
    GINA,
    SALES,
    SEED_TIME,
    SUPPORT,
)

SAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "data" / "config" / CONFIG_NAME
_SWAPS = {
    "0a1b2c3d-13d8-e011-9077-00155d012a01": ALICE.id,
    "0a1b2c3d-13d8-e011-9077-00155d012a02": GINA.id,
    "0a1b2c3d-13d8-e011-9077-00155d012a03": FRANK.id,
    "5e6f7a8b-19d8-e011-9077-00155d012b01": SUPPORT.id,
    "5e6f7a8b-19d8-e011-9077-00155d012b02": SALES.id,
    "crm-sink@contoso.com": FORWARD_MAILBOX.address,
}


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
