"""The CRM seen by the router: one protocol, with rows named as Dataverse names them.

Every backend (the embedded SQLite store, the Dataverse Web API client) implements
:class:`CrmBackend`. Lookups are batched (a set of addresses or Message-IDs per call) so that a
remote backend can answer a whole routing batch in a few requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

# Dataverse option-set values used by the router (reference/email-router.md, dataverse-research.md).
STATUS_DRAFT, STATUS_COMPLETED, STATUS_SENT, STATUS_RECEIVED = 1, 2, 3, 4
STATUS_CANCELED, STATUS_PENDING_SEND, STATUS_SENDING, STATUS_FAILED = 5, 6, 7, 8
STATE_OPEN, STATE_COMPLETED = 0, 1

PARTICIPATION_SENDER, PARTICIPATION_TO, PARTICIPATION_CC, PARTICIPATION_BCC = 1, 2, 3, 4

CORRELATION_NONE, CORRELATION_INREPLYTO, CORRELATION_TRACKINGTOKEN = 0, 3, 4
CORRELATION_CONVERSATIONINDEX, CORRELATION_SMARTMATCHING = 5, 6

FILTER_ALL, FILTER_RESPONSES, FILTER_LEADS_CONTACTS_ACCOUNTS = 0, 1, 2
FILTER_EMAIL_ENABLED, FILTER_NONE = 3, 4

APPROVAL_EMPTY, APPROVAL_APPROVED, APPROVAL_PENDING, APPROVAL_REJECTED = 0, 1, 2, 3

DELIVERY_NONE, DELIVERY_OUTLOOK, DELIVERY_ROUTER, DELIVERY_FORWARD_MAILBOX = 0, 1, 2, 3

# Party resolution order (reference/email-router.md §3 step 7).
PARTY_ENTITIES: tuple[str, ...] = ("systemuser", "contact", "account", "lead", "queue")

EntityName = Literal["systemuser", "contact", "account", "lead", "queue"]


@dataclass(frozen=True)
class Organization:
    """The organisation's tracking, correlation and routing settings (``organization`` row)."""

    organizationid: str
    name: str
    trackingprefix: str = "CRM"
    trackingtokenidbase: int = 0
    trackingtokeniddigits: int = 3  # digits of the user number
    maximumtrackingnumber: int = 999  # counter wraps after this; its digits are the counter digits
    emailcorrelationenabled: bool = True
    enablesmartmatching: bool = False
    hashfilterkeywords: str = r"^[\s]*([\w]+\s?:[\s]*)+"
    hashmaxcount: int = 20
    hashdeltasubjectcount: int = 0
    hashminaddresscount: int = 2
    ignoreinternalemail: bool = False
    unresolveemailaddressifmultiplematch: bool = False
    requireapprovalforuseremail: bool = False
    requireapprovalforqueueemail: bool = False
    maxuploadfilesize: int = 5_242_880  # bytes
    emailconnectionchannel: int = 1  # 0 server-side sync, 1 Email Router


@dataclass(frozen=True)
class Party:
    """A CRM record that an email address resolves to."""

    entity: EntityName
    id: str
    name: str
    emailaddress: str


@dataclass(frozen=True)
class Recipient:
    """A user or queue whose mailbox the router reads, with its routing settings."""

    entity: Literal["systemuser", "queue"]
    id: str
    name: str
    emailaddress: str
    incomingemailfilteringmethod: int = FILTER_ALL
    emailrouteraccessapproval: int = APPROVAL_APPROVED
    incomingemaildeliverymethod: int = DELIVERY_ROUTER
    outgoingemaildeliverymethod: int = DELIVERY_ROUTER
    isdisabled: bool = False
    autocreatecontact: bool = False  # usersettings.autocreatecontactonpromote


@dataclass(frozen=True)
class EmailRef:
    """Just enough of a stored email to correlate a new one with it."""

    activityid: str
    messageid: str | None
    subject: str | None
    trackingtoken: str | None
    conversationindex: str | None
    regardingobjectid: str | None
    regardingobjecttypecode: str | None
    directioncode: bool  # True = outgoing


@dataclass
class NewParty:
    participationtypemask: int
    addressused: str
    partyid: str | None = None
    partyobjecttypecode: str | None = None  # entity logical name of partyid
    unresolvedpartyname: str | None = None


@dataclass
class NewAttachment:
    filename: str
    mimetype: str
    body: bytes
    attachmentcontentid: str | None = None


@dataclass
class NewEmail:
    """An email activity to create; ``activityid`` is chosen by the caller (a uuid4 string)."""

    activityid: str
    subject: str
    description: str
    messageid: str | None  # None for outgoing emails not yet sent
    directioncode: bool = False
    statecode: int = STATE_COMPLETED
    statuscode: int = STATUS_RECEIVED
    sender: str | None = None
    torecipients: str | None = None
    inreplyto: str | None = None
    conversationindex: str | None = None
    baseconversationindexhash: int | None = None
    trackingtoken: str | None = None
    correlationmethod: int = CORRELATION_NONE
    correlatedactivityid: str | None = None
    regardingobjectid: str | None = None
    regardingobjecttypecode: str | None = None
    acceptingentityid: str | None = None
    acceptingentitytypecode: str | None = None
    senton: str | None = None  # ISO 8601 UTC
    mimetype: str | None = None
    notifications: int = 0  # 1 = not all attachments saved
    parties: list[NewParty] = field(default_factory=list)
    attachments: list[NewAttachment] = field(default_factory=list)


@runtime_checkable
class CrmBackend(Protocol):
    """What routing needs from a CRM. Addresses are compared case-insensitively."""

    url: str  # printable, password-free

    def organization(self) -> Organization: ...

    def recipients_by_address(self, addresses: Iterable[str]) -> dict[str, list[Recipient]]:
        """Users (by internalemailaddress) and queues (by emailaddress) owning each address.

        Keys are the lower-cased addresses that matched; unknown addresses are absent.
        """
        ...

    def recipients_by_id(self, ids: Iterable[str]) -> dict[str, Recipient]:
        """Users and queues by ``systemuserid`` / ``queueid`` (the GUIDs a router config lists).

        Keys are the lower-cased ids that matched; unknown ids are absent.
        """
        ...

    def parties_by_address(self, addresses: Iterable[str]) -> dict[str, list[Party]]:
        """Every record of PARTY_ENTITIES with that address (any of its email columns), in
        resolution order (systemuser, contact, account, lead, queue). Keys lower-cased."""
        ...

    def emails_by_message_id(self, message_ids: Iterable[str]) -> dict[str, EmailRef]:
        """Stored emails by exact ``messageid`` (as given, angle brackets included)."""
        ...

    def email_by_tracking_token(self, token: str) -> EmailRef | None:
        """The newest email whose ``trackingtoken`` equals *token* (case-insensitive)."""
        ...

    def email_by_conversation(self, baseconversationindexhash: int) -> EmailRef | None:
        """The newest email of the conversation whose Thread-Index base hashes to this value."""
        ...

    def create_emails(self, emails: Sequence[NewEmail]) -> None:
        """Create the emails with their parties and attachments in one transaction: all or none."""
        ...

    def create_contact(self, emailaddress: str, fullname: str | None) -> Party:
        """Create a contact for an unknown sender (when the receiving user asks for it)."""
        ...

    def close(self) -> None: ...
