"""The demo organisation "Contoso": who is in the embedded CRM when the demo runs.

Every value other code or a test relies on (addresses, ids, Message-IDs, tracking tokens,
conversation indexes) is a constant here, so the scenario messages, the notebooks and the tests
all speak about the same records. Ids are derived from names (uuid5), or are the bundled sample
configuration's GUIDs for the users and queues it lists, and dates are fixed, so two seeds hold the
same records with the same ids (only activity-party and attachment ids differ).

Who is who:

* users: Alice Admin (filter 0 All), Bob Sales (filter 1 responses only), Dana Former (disabled),
  Frank Field (incoming through the forward mailbox), Gina Pending (approval pending);
* queues: support@ (filter 0 All, approved, Email Router in and out) and sales@ (filter 2);
* customers at fabrikam / northwind / adventure-works / litware ``.example``;
  ``info@northwind.example`` belongs to a contact, an account and a lead at once;
* emails the CRM already sent (with tokens ``CRM:0001001``.. and Thread-Index values) for replies to
  correlate with, one received email, and three emails waiting in Pending Send.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    APPROVAL_EMPTY,
    APPROVAL_PENDING,
    DELIVERY_FORWARD_MAILBOX,
    DELIVERY_NONE,
    DELIVERY_ROUTER,
    FILTER_ALL,
    FILTER_LEADS_CONTACTS_ACCOUNTS,
    FILTER_RESPONSES,
    PARTICIPATION_SENDER,
    PARTICIPATION_TO,
    STATE_COMPLETED,
    STATUS_PENDING_SEND,
    STATUS_RECEIVED,
    STATUS_SENT,
    NewAttachment,
    NewEmail,
    NewParty,
)
from emailrouter_lib.crm.conversation import make_conversation_index
from emailrouter_lib.crm.sqlite import SqliteCrm, insert_rows, new_id, utcnow
from emailrouter_lib.crm.sqlite_url import sqlite_path
from emailrouter_lib.errors import CrmError

_NAMESPACE = uuid.UUID("5f0c8a4e-3b7d-4c1e-9a52-6d0e2f7b8c31")


def demo_id(kind: str, name: str) -> str:
    """The fixed id of a demo record (the same in every seed)."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{name}"))


SEED_TIME = "2024-03-01T08:00:00Z"
DOMAIN = "contoso.example"

# -- the organisation ---------------------------------------------------------------------------
ORG_ID = demo_id("organization", "contoso")
ORG_NAME = "Contoso"
TRACKING_PREFIX = "CRM"


@dataclass(frozen=True)
class DemoRecord:
    """A seeded user, queue, contact, account or lead: entity, fixed id, name, main address."""

    entity: str
    id: str
    name: str
    address: str


def _record(entity: str, key: str, name: str, address: str) -> DemoRecord:
    return DemoRecord(
        entity, SAMPLE_CONFIG_IDS.get(f"{entity}/{key}") or demo_id(entity, key), name, address
    )


# The bundled sample ``Microsoft.Crm.Tools.EmailAgent.xml`` names users and queues by these GUIDs;
# the demo CRM's records carry them, so every flow run on "the demo" (audit, rules, migration,
# Load Data, from the notebooks or the command) finds the mailboxes the file lists. One set of ids.
SAMPLE_CONFIG_IDS: dict[str, str] = {
    "systemuser/alice": "0a1b2c3d-13d8-e011-9077-00155d012a01",
    "systemuser/gina": "0a1b2c3d-13d8-e011-9077-00155d012a02",
    "systemuser/frank": "0a1b2c3d-13d8-e011-9077-00155d012a03",
    "queue/support": "5e6f7a8b-19d8-e011-9077-00155d012b01",
    "queue/sales": "5e6f7a8b-19d8-e011-9077-00155d012b02",
}


# -- users --------------------------------------------------------------------------------------
ALICE = _record("systemuser", "alice", "Alice Admin", "alice@contoso.example")  # filter 0 All
BOB = _record("systemuser", "bob", "Bob Sales", "bob@contoso.example")  # filter 1 responses
DANA = _record("systemuser", "dana", "Dana Former", "dana@contoso.example")  # disabled
FRANK = _record("systemuser", "frank", "Frank Field", "frank@contoso.example")  # forward mailbox
GINA = _record("systemuser", "gina", "Gina Pending", "gina@contoso.example")  # approval pending
ALICE_TRACKING_NUMBER, BOB_TRACKING_NUMBER = 1, 2

# -- queues and the forward mailbox -------------------------------------------------------------
SUPPORT = _record("queue", "support", "Support", "support@contoso.example")  # filter 0 All
SALES = _record("queue", "sales", "Sales", "sales@contoso.example")  # filter 2
FORWARD_MAILBOX = _record(
    "mailbox", "forward", "Contoso forward mailbox", "crm-forward@contoso.example"
)

EXCHANGE_PROFILE_ID = demo_id("emailserverprofile", "exchange")
POP3_PROFILE_ID = demo_id("emailserverprofile", "pop3smtp")

# -- customers ----------------------------------------------------------------------------------
FABRIKAM = _record("account", "fabrikam", "Fabrikam, Inc.", "billing@fabrikam.example")
NORTHWIND = _record("account", "northwind", "Northwind Traders", "info@northwind.example")
ADVENTURE = _record("account", "adventure", "Adventure Works", "hello@adventure-works.example")

CAROL = _record("contact", "carol", "Carol Customer", "carol@fabrikam.example")
DAN = _record("contact", "dan", "Dan Buyer", "dan.buyer@fabrikam.example")
DAN_PERSONAL_ADDRESS = "Dan.Buyer@Personal.example"  # Dan's emailaddress2, stored in mixed case
ERIN = _record("contact", "erin", "Erin Walker", "erin@adventure-works.example")
NORA = _record("contact", "nora", "Nora North", "nora@northwind.example")
OLAF = _record("contact", "olaf", "Olaf Oldman", "olaf@fabrikam.example")  # inactive (statecode 1)

GRACE = _record("lead", "grace", "Grace Prospect", "grace@litware.example")
NILS = _record("lead", "nils", "Nils Northwind", "nils@northwind.example")

# The addresses other code and tests use most.
ALICE_ADDRESS, BOB_ADDRESS = ALICE.address, BOB.address
SUPPORT_ADDRESS, SALES_ADDRESS = SUPPORT.address, SALES.address
CAROL_ADDRESS, DAN_ADDRESS, ERIN_ADDRESS, GRACE_ADDRESS = (
    CAROL.address,
    DAN.address,
    ERIN.address,
    GRACE.address,
)

# One address, three records: contact Nora (emailaddress2), account Northwind (emailaddress1),
# lead Nils (emailaddress3, stored upper-case). Resolution order: contact, account, lead.
SHARED_ADDRESS = NORTHWIND.address
SHARED_ADDRESS_MATCHES = (("contact", NORA.id), ("account", NORTHWIND.id), ("lead", NILS.id))

# An address no record has (for the unknown-sender scenario).
UNKNOWN_ADDRESS = "pat@unknown-sender.example"


def filetime(iso: str) -> int:
    """A Windows FILETIME (100 ns ticks since 1601) for an ISO 8601 UTC time."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (int(moment.timestamp()) + 11_644_473_600) * 10_000_000


@dataclass(frozen=True)
class SeedEmail:
    """An email the demo CRM holds, as the scenario messages and the tests refer to it."""

    name: str
    subject: str
    sender: DemoRecord
    to: DemoRecord
    regarding: DemoRecord | None
    statuscode: int
    senton: str | None = None
    trackingtoken: str | None = None
    messageid: str | None = None
    conversationindex: str | None = None
    body: str = ""
    attachment: tuple[str, str, bytes] | None = None  # filename, mimetype, bytes
    deliveryattempts: int = 0

    @property
    def activityid(self) -> str:
        return demo_id("email", self.name)

    @property
    def incoming(self) -> bool:
        return self.statuscode == STATUS_RECEIVED


def _sent(
    name: str,
    token: str,
    subject: str,
    sender: DemoRecord,
    to: DemoRecord,
    regarding: DemoRecord,
    senton: str,
) -> SeedEmail:
    """An email the CRM sent: subject with its token, Message-ID and Thread-Index fixed."""
    number = token.split(":", 1)[1]
    return SeedEmail(
        name=name,
        subject=f"{subject} {token}",
        sender=sender,
        to=to,
        regarding=regarding,
        statuscode=STATUS_SENT,
        senton=senton,
        trackingtoken=token,
        messageid=f"<crm.{number}.seed@{DOMAIN}>",
        conversationindex=make_conversation_index(
            filetime(senton), uuid.uuid5(_NAMESPACE, f"conversation/{name}").bytes
        ),
        body=f"<p>{subject}</p><p>Kind regards,<br>{sender.name}, Contoso</p>",
    )


# -- emails the CRM already sent (outgoing, Sent): replies to them correlate ------------------
TOKEN_PRINTER, TOKEN_WELCOME = "CRM:0001001", "CRM:0001002"
TOKEN_QUOTE, TOKEN_PILOT = "CRM:0001003", "CRM:0002001"
SENT_PRINTER = _sent(
    "printer",
    TOKEN_PRINTER,
    "Printer offline since Monday",
    ALICE,
    CAROL,
    CAROL,
    "2024-03-04T09:00:00Z",
)
SENT_WELCOME = _sent(
    "welcome",
    TOKEN_WELCOME,
    "Welcome to Contoso support",
    ALICE,
    ERIN,
    ERIN,
    "2024-03-04T10:15:00Z",
)
SENT_QUOTE = _sent(
    "quote",
    TOKEN_QUOTE,
    "Quote Q-1042 for 20 licences",
    ALICE,
    DAN,
    FABRIKAM,
    "2024-03-05T14:30:00Z",
)
SENT_PILOT = _sent(
    "pilot",
    TOKEN_PILOT,
    "Litware pilot follow-up",
    BOB,
    GRACE,
    GRACE,
    "2024-03-06T16:45:00Z",
)
SENT_EMAILS = (SENT_PRINTER, SENT_WELCOME, SENT_QUOTE, SENT_PILOT)

# -- an email the CRM received earlier (incoming, Received) ------------------------------------
RECEIVED_TONER = SeedEmail(
    name="toner",
    subject="Toner order for the 3rd floor",
    sender=CAROL,
    to=SUPPORT,
    regarding=FABRIKAM,
    statuscode=STATUS_RECEIVED,
    senton="2024-03-01T11:20:00Z",
    messageid="<toner.20240301@fabrikam.example>",
    body="Please send two black toner cartridges. Carol",
)

# -- emails waiting to be sent (outgoing, Pending Send) -----------------------------------------
PENDING_SHIPPING = SeedEmail(
    "shipping",
    "Your replacement printer ships today",
    ALICE,
    CAROL,
    CAROL,
    STATUS_PENDING_SEND,
    body="<p>The replacement printer leaves our warehouse today.</p>",
)
PENDING_CASE = SeedEmail(
    "case",
    "Case 4711: portal access restored",
    SUPPORT,
    ERIN,
    ERIN,
    STATUS_PENDING_SEND,
    body="<p>You can log in to the portal again.</p>",
)
PENDING_PRICING = SeedEmail(
    "pricing",
    "Litware pilot: pricing sheet",
    BOB,
    GRACE,
    GRACE,
    STATUS_PENDING_SEND,
    body="<p>The pricing sheet is attached.</p>",
    attachment=("pricing.csv", "text/csv", b"item,seats,price\npilot,20,0\nstandard,20,4800\n"),
    deliveryattempts=2,
)
PENDING_EMAILS = (PENDING_SHIPPING, PENDING_CASE, PENDING_PRICING)

SEED_EMAILS = (*SENT_EMAILS, RECEIVED_TONER, *PENDING_EMAILS)


@dataclass(frozen=True)
class _UserSeed:
    record: DemoRecord
    trackingusernumber: int
    isdisabled: int = 0
    approval: int = APPROVAL_APPROVED
    incoming: int = DELIVERY_ROUTER
    outgoing: int = DELIVERY_ROUTER
    filtering: int = FILTER_LEADS_CONTACTS_ACCOUNTS  # the usersettings default


_USERS = (
    _UserSeed(ALICE, ALICE_TRACKING_NUMBER, filtering=FILTER_ALL),
    _UserSeed(BOB, BOB_TRACKING_NUMBER, filtering=FILTER_RESPONSES),
    _UserSeed(DANA, 3, 1, APPROVAL_EMPTY, DELIVERY_NONE, DELIVERY_NONE, FILTER_ALL),
    _UserSeed(FRANK, 4, incoming=DELIVERY_FORWARD_MAILBOX),
    _UserSeed(GINA, 5, approval=APPROVAL_PENDING),
)
_QUEUES = ((SUPPORT, FILTER_ALL), (SALES, FILTER_LEADS_CONTACTS_ACCOUNTS))
_EWS_URL = "https://mail.contoso.example/EWS/Exchange.asmx"


def seed_demo(crm: SqliteCrm) -> None:
    """Fill a new, empty embedded CRM with the Contoso demo."""
    if crm.count("organization"):
        raise CrmError(f"{crm.url}: already holds an organisation; seed only a new database")
    with crm.transaction() as conn:
        insert_rows(conn, "organization", [_organization()])
        insert_rows(conn, "emailserverprofile", _profiles())
        insert_rows(conn, "mailbox", _mailboxes())
        insert_rows(conn, "systemuser", [_user(u) for u in _USERS])
        insert_rows(conn, "queue", [_queue(q, f) for q, f in _QUEUES])
        insert_rows(conn, "account", [_account(a) for a in (FABRIKAM, NORTHWIND, ADVENTURE)])
        insert_rows(conn, "contact", _contacts())
        insert_rows(conn, "lead", _leads())
    _seed_emails(crm)


def _organization() -> dict[str, object]:
    return {
        "organizationid": ORG_ID,
        "name": ORG_NAME,
        "trackingprefix": TRACKING_PREFIX,
        "trackingtokenidbase": 0,
        "trackingtokeniddigits": 3,
        "maximumtrackingnumber": 999,
        "nexttrackingnumber": 4,
        "emailcorrelationenabled": 1,
        "enablesmartmatching": 0,
        "requireapprovalforuseremail": 0,
        "requireapprovalforqueueemail": 0,
        "emailconnectionchannel": 1,
        "defaultemailserverprofileid": EXCHANGE_PROFILE_ID,
        "createdon": SEED_TIME,
    }


def _profiles() -> list[dict[str, object]]:
    exchange = {
        "emailserverprofileid": EXCHANGE_PROFILE_ID,
        "name": "Contoso Exchange",
        "description": "On-premises Exchange 2013 over EWS (users and the forward mailbox)",
        "servertype": 0,
        "incomingserverlocation": _EWS_URL,
        "outgoingserverlocation": _EWS_URL,
        "incomingportnumber": 443,
        "outgoingportnumber": 443,
        "incomingcredentialretrieval": 1,
        "outgoingcredentialretrieval": 1,
        "incomingauthenticationprotocol": 2,
        "outgoingauthenticationprotocol": 2,
        "incomingusername": "CONTOSO\\svc-crm-email",
        "outgoingusername": "CONTOSO\\svc-crm-email",
        "useautodiscover": 0,
        "exchangeversion": 5,
        "createdon": SEED_TIME,
    }
    pop3 = {
        **exchange,
        "emailserverprofileid": POP3_PROFILE_ID,
        "name": "Contoso POP3/SMTP",
        "description": "Queue mailboxes on the POP3 host, sent through SMTP",
        "servertype": 1,
        "incomingserverlocation": "pop.contoso.example",
        "outgoingserverlocation": "smtp.contoso.example",
        "incomingportnumber": 995,
        "outgoingportnumber": 587,
        "incomingauthenticationprotocol": 3,
        "outgoingauthenticationprotocol": 3,
        "incomingusername": "crm-queues",
        "outgoingusername": "crm-queues",
        "exchangeversion": None,
    }
    return [exchange, pop3]


def _mailbox(record: DemoRecord, profile: str, **settings: object) -> dict[str, object]:
    owned = record.entity != "mailbox"
    return {
        "mailboxid": _mailbox_id(record),
        "name": record.name,
        "emailaddress": record.address,
        "emailserverprofile": profile,
        "incomingemaildeliverymethod": DELIVERY_ROUTER,
        "outgoingemaildeliverymethod": DELIVERY_ROUTER,
        "emailrouteraccessapproval": APPROVAL_APPROVED,
        "enabledforincomingemail": 1,
        "isforwardmailbox": 0,
        "processanddeleteemails": 0,
        "regardingobjectid": record.id if owned else None,
        "regardingobjecttypecode": record.entity if owned else None,
        "ewsurl": _EWS_URL if profile == EXCHANGE_PROFILE_ID else None,
        "ownerid": ALICE.id,
        "createdon": SEED_TIME,
        **settings,
    }


def _mailboxes() -> list[dict[str, object]]:
    users = [
        _mailbox(
            u.record,
            EXCHANGE_PROFILE_ID,
            incomingemaildeliverymethod=u.incoming,
            outgoingemaildeliverymethod=u.outgoing,
            emailrouteraccessapproval=u.approval,
            enabledforincomingemail=1 - u.isdisabled,
        )
        for u in _USERS
    ]
    queues = [_mailbox(q, POP3_PROFILE_ID, processanddeleteemails=1) for q, _ in _QUEUES]
    forward = _mailbox(
        FORWARD_MAILBOX,
        EXCHANGE_PROFILE_ID,
        outgoingemaildeliverymethod=DELIVERY_NONE,
        isforwardmailbox=1,
        processanddeleteemails=1,
    )
    return [*users, *queues, forward]


def _user(u: _UserSeed) -> dict[str, object]:
    first, last = u.record.name.split(" ", 1)
    return {
        "systemuserid": u.record.id,
        "fullname": u.record.name,
        "firstname": first,
        "lastname": last,
        "domainname": "CONTOSO\\" + u.record.address.split("@")[0],
        "internalemailaddress": u.record.address,
        "trackingusernumber": u.trackingusernumber,
        "isdisabled": u.isdisabled,
        "emailrouteraccessapproval": u.approval,
        "incomingemaildeliverymethod": u.incoming,
        "outgoingemaildeliverymethod": u.outgoing,
        "incomingemailfilteringmethod": u.filtering,
        "defaultmailbox": _mailbox_id(u.record),
        "createdon": SEED_TIME,
    }


def _queue(q: DemoRecord, filtering: int) -> dict[str, object]:
    return {
        "queueid": q.id,
        "name": q.name,
        "emailaddress": q.address,
        "emailrouteraccessapproval": APPROVAL_APPROVED,
        "incomingemaildeliverymethod": DELIVERY_ROUTER,
        "outgoingemaildeliverymethod": DELIVERY_ROUTER,
        "incomingemailfilteringmethod": filtering,
        "defaultmailbox": _mailbox_id(q),
        "ownerid": ALICE.id,
        "createdon": SEED_TIME,
    }


def _account(a: DemoRecord) -> dict[str, object]:
    return {
        "accountid": a.id,
        "name": a.name,
        "emailaddress1": a.address,
        "websiteurl": "https://" + a.address.split("@")[1],
        "createdon": SEED_TIME,
    }


def _contacts() -> list[dict[str, object]]:
    rows = []
    for contact, second, parent, active in (
        (CAROL, None, FABRIKAM, True),
        (DAN, DAN_PERSONAL_ADDRESS, FABRIKAM, True),
        (ERIN, None, ADVENTURE, True),
        (NORA, SHARED_ADDRESS, NORTHWIND, True),
        (OLAF, None, FABRIKAM, False),
    ):
        first, last = contact.name.split(" ", 1)
        rows.append(
            {
                "contactid": contact.id,
                "fullname": contact.name,
                "firstname": first,
                "lastname": last,
                "emailaddress1": contact.address,
                "emailaddress2": second,
                "parentcustomerid": parent.id,
                "parentcustomeridtype": parent.entity,
                "statecode": 0 if active else 1,
                "statuscode": 1 if active else 2,
                "createdon": SEED_TIME,
            }
        )
    return rows


def _leads() -> list[dict[str, object]]:
    rows = []
    for lead, company, topic, third in (
        (GRACE, "Litware", "Pilot for 20 seats", None),
        (NILS, NORTHWIND.name, "Web enquiry", SHARED_ADDRESS.upper()),
    ):
        first, last = lead.name.split(" ", 1)
        rows.append(
            {
                "leadid": lead.id,
                "fullname": lead.name,
                "firstname": first,
                "lastname": last,
                "companyname": company,
                "subject": topic,
                "emailaddress1": lead.address,
                "emailaddress3": third,
                "createdon": SEED_TIME,
            }
        )
    return rows


def _mailbox_id(record: DemoRecord) -> str:
    return record.id if record.entity == "mailbox" else demo_id("mailbox", record.address)


def _party(mask: int, record: DemoRecord) -> NewParty:
    return NewParty(mask, record.address, record.id, record.entity)


def _seed_emails(crm: SqliteCrm) -> None:
    emails = []
    for seed in SEED_EMAILS:
        receiver = seed.to if seed.incoming else None
        attachments = [NewAttachment(*seed.attachment)] if seed.attachment else []
        emails.append(
            NewEmail(
                activityid=seed.activityid,
                subject=seed.subject,
                description=seed.body,
                messageid=seed.messageid,  # type: ignore[arg-type]  # None until it is sent
                directioncode=not seed.incoming,
                statecode=STATE_COMPLETED,
                statuscode=seed.statuscode,
                sender=seed.sender.address,
                torecipients=seed.to.address,
                conversationindex=seed.conversationindex,
                trackingtoken=seed.trackingtoken,
                regardingobjectid=seed.regarding.id if seed.regarding else None,
                regardingobjecttypecode=seed.regarding.entity if seed.regarding else None,
                acceptingentityid=receiver.id if receiver else None,
                acceptingentitytypecode=receiver.entity if receiver else None,
                senton=seed.senton,
                mimetype="text/plain" if seed.incoming else "text/html",
                parties=[
                    _party(PARTICIPATION_SENDER, seed.sender),
                    _party(PARTICIPATION_TO, seed.to),
                ],
                attachments=attachments,
            )
        )
    crm.create_emails(emails)
    # Fixed dates and owners, so that two seeds are identical and "newest" is well defined.
    with crm.transaction() as conn:
        conn.executemany(
            "UPDATE email SET createdon = ?, modifiedon = ?, ownerid = ?, owneridtype = ?, "
            "deliveryattempts = ? WHERE activityid = ?",
            [
                (
                    seed.senton or "2024-03-07T08:00:00Z",
                    seed.senton or "2024-03-07T08:00:00Z",
                    (seed.to if seed.incoming else seed.sender).id,
                    (seed.to if seed.incoming else seed.sender).entity,
                    seed.deliveryattempts,
                    seed.activityid,
                )
                for seed in SEED_EMAILS
            ],
        )


def add_bulk_contacts(
    crm_or_path: SqliteCrm | str | Path, n: int, *, domain: str = "bulk.example"
) -> None:
    """Insert *n* contacts ``bulk-<k>@<domain>`` in one transaction (100,000 in about a second).

    k counts on from earlier bulk contacts of the domain. For benchmarks that check lookups do not
    slow down as the CRM grows. Accepts an open :class:`SqliteCrm`, a path, or a ``sqlite:`` URL.
    """
    if isinstance(crm_or_path, SqliteCrm):
        _add_bulk_contacts(crm_or_path, n, domain)
        return
    text = str(crm_or_path)
    path = sqlite_path(text) if text.lower().startswith("sqlite:") else Path(text)
    with SqliteCrm(path) as crm:
        _add_bulk_contacts(crm, n, domain)


def _add_bulk_contacts(crm: SqliteCrm, n: int, domain: str) -> None:
    if n <= 0:
        return
    now = utcnow()
    with crm.transaction() as conn:
        # Number on from earlier bulk contacts of this domain, so addresses stay unique.
        start = conn.execute(
            "SELECT count(*) FROM contact WHERE emailaddress1 LIKE ?", (f"bulk-%@{domain}",)
        ).fetchone()[0]
        conn.executemany(
            "INSERT INTO contact (contactid, fullname, firstname, lastname, emailaddress1, "
            "createdon) VALUES (?, ?, 'Bulk', ?, ?, ?)",
            (
                (new_id(), f"Bulk Contact {k}", f"Contact {k}", f"bulk-{k}@{domain}", now)
                for k in range(start, start + n)
            ),
        )
