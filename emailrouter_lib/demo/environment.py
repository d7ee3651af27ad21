"""The embedded default: a seeded SQLite CRM and local mailboxes, made fresh in a folder.

The demo routes two mailboxes: the support queue's Maildir (real-world messages from the vendored
corpus: notes, auto-replies, bounces, odd charsets) and a shared Maildir of scenario messages whose
owner is decided by their To/Cc addresses (replies, tokens, filters, unknown senders).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.crm import init_crm
from emailrouter_lib.demo.scenarios import write_demo_maildir

CORPUS_DIR = Path(__file__).parent / "data" / "corpus"
SUPPORT_QUEUE = "support@contoso.example"


@dataclass(frozen=True)
class DemoEnvironment:
    workdir: Path
    crm_url: str
    mailbox_urls: list[str]


def prepare_demo_environment(workdir: str | Path) -> DemoEnvironment:
    """Create (or recreate) the demo CRM and mailboxes under *workdir*."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    crm_url = f"sqlite:///{workdir / 'crm.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    for ledger in workdir.glob("crm.ledger.sqlite*"):
        ledger.unlink()
    support = workdir / "mail" / "support"
    scenarios = workdir / "mail" / "scenarios"
    write_demo_maildir(support, CORPUS_DIR if CORPUS_DIR.is_dir() else None, scenarios=False)
    write_demo_maildir(scenarios, None, scenarios=True)
    return DemoEnvironment(
        workdir=workdir,
        crm_url=crm_url,
        mailbox_urls=[
            f"maildir://{support}?owner=queue:{SUPPORT_QUEUE}",
            f"maildir://{scenarios}",
        ],
    )
