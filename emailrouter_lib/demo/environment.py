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


def wants_demo(demo: bool | None, *given: object) -> bool:
    """Whether a notebook runs on the demo: when asked (``demo=True``), or, with ``demo=None``,
    when none of *given* (mailboxes, CRM, configuration) is set, so a notebook opened and run
    as it is shows the demo instead of an error about missing parameters."""
    return bool(demo) or (demo is None and not any(given))


def prepare_demo_environment(workdir: str | Path) -> DemoEnvironment:
    """Create (or recreate) the demo CRM and mailboxes under *workdir*."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    crm_url = f"sqlite:///{workdir / 'crm.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    for pattern in ("crm.ledger.sqlite*", "crm.sendledger.sqlite*"):
        for ledger in workdir.glob(pattern):
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


# -- the audit demo ---------------------------------------------------------------------------

AUDIT_CONFIG_PASSWORD = "env:EMAILROUTER_DEMO_PW_{local}"  # referenced, never set: nothing logs in


@dataclass(frozen=True)
class AuditDemo:
    """The routing demo after one routing run, plus what makes an audit worth reading: new mail
    no run has seen, user mailboxes, a missing mailbox, a configuration file naming a server
    that does not answer, Exchange providers, a disabled user and a user listed twice."""

    workdir: Path
    crm_url: str
    mailbox_urls: list[str]
    config_path: Path
    config_password: str = AUDIT_CONFIG_PASSWORD


def prepare_audit_demo(workdir: str | Path) -> AuditDemo:
    """Create (or recreate) the audit demo under *workdir*; it runs one routing batch first."""
    from emailrouter_lib import routing
    from emailrouter_lib.crm import demo as seed

    env = prepare_demo_environment(workdir)
    routing.run(
        {
            "mailboxes": env.mailbox_urls,
            "crm": env.crm_url,
            "run_id": "demo-routing",
            "progress": False,
        }
    )
    support = env.workdir / "mail" / "support"
    _add_messages(
        support,
        [
            ("Printer still offline", seed.CAROL_ADDRESS, None),
            ("Invoice question", seed.DAN_ADDRESS, None),
        ],
    )
    alice = env.workdir / "mail" / "alice"
    _add_messages(
        alice,
        [
            ("Lunch on Friday?", seed.BOB_ADDRESS, None),
            ("Quarterly review", seed.ERIN_ADDRESS, "REQUEST"),
            ("Re: your quote", seed.GRACE_ADDRESS, None),
        ],
    )
    config = env.workdir / "Microsoft.Crm.Tools.EmailAgent.xml"
    config.write_text(
        _AUDIT_CONFIG.format(
            pop3="127.0.0.1:1",  # nothing listens on port 1: "connection refused" at once
            ews="https://127.0.0.1:1/EWS/Exchange.asmx",  # the same for Exchange
            bob=seed.BOB.id,
            gina=seed.GINA.id,
            alice=seed.ALICE.id,
            dana=seed.DANA.id,
            frank=seed.FRANK.id,
            forward=seed.FORWARD_MAILBOX.address,
        ),
        encoding="utf-8",
    )
    return AuditDemo(
        workdir=env.workdir,
        crm_url=env.crm_url,
        mailbox_urls=[
            *env.mailbox_urls,
            f"maildir://{alice}?owner=user:{seed.ALICE_ADDRESS}",
            f"maildir://{env.workdir / 'mail' / 'moved-away'}?owner=queue:{seed.SALES_ADDRESS}",
        ],
        config_path=config,
    )


def _add_messages(maildir: Path, messages: list[tuple[str, str, str | None]]) -> None:
    """Deliver small messages into *maildir* (created if needed), dated today."""
    import mailbox
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    box = mailbox.Maildir(maildir, create=True)
    for subject, sender, meeting in messages:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, "crm@contoso.example", subject
        msg["Date"], msg["Message-ID"] = formatdate(), make_msgid(domain="audit.demo.example")
        msg.set_content("Hello,\n\nplease see above.\n")
        if meeting:
            msg.add_alternative(
                f"BEGIN:VCALENDAR\r\nMETHOD:{meeting}\r\nBEGIN:VEVENT\r\nSUMMARY:{subject}"
                "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                subtype="calendar",
                params={"method": meeting},
            )
        box.add(msg)


_AUDIT_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<!-- The audit demo's router configuration (this project's reconstruction of the format). -->
<Configuration>
  <SystemConfiguration><MaxThreads>10</MaxThreads></SystemConfiguration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider</ProviderClass>
    <ProfileName>POP3 incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>POP3</EmailServerType>
    <EmailServerUrl>{pop3}</EmailServerUrl>
    <EmailAuthMode>ClearText</EmailAuthMode>
    <EmailAccessCredentials>UserSpecified</EmailAccessCredentials>
    <UseSsl>false</UseSsl>
    <UserId>{bob}</UserId>
    <UserId>{gina}</UserId>
  </ProviderConfiguration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>Exchange incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>Exchange2010</EmailServerType>
    <EmailServerUrl>{ews}</EmailServerUrl>
    <EmailAccessCredentials>OtherSpecified</EmailAccessCredentials>
    <EmailUser>CONTOSO\\svc-emailrouter</EmailUser>
    <UseSsl>true</UseSsl>
    <UserId>{alice}</UserId>
    <UserId>{dana}</UserId>
    <UserId>{bob}</UserId>
  </ProviderConfiguration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>Exchange forward mailbox</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>Exchange2010</EmailServerType>
    <EmailServerUrl>{ews}</EmailServerUrl>
    <IsForwardMailbox>true</IsForwardMailbox>
    <EmailAddress>{forward}</EmailAddress>
    <DeleteEmails>true</DeleteEmails>
    <UserId>{frank}</UserId>
  </ProviderConfiguration>
</Configuration>
"""
