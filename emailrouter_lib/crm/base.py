"""The CRM seen by the router: one protocol, with rows named as Dataverse names them.

Every backend (the embedded SQLite store, the Dataverse Web API client) implements
:class:`CrmBackend`. Lookups are batched (a set of addresses or Message-IDs per call) so that a
remote backend can answer a whole routing batch in a few requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from emailrouter_lib.errors import CrmError

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


# Smart matching hash types (Dataverse EmailHash.hashtype).
HASH_SUBJECT, HASH_ADDRESS = 1, 2


@dataclass(frozen=True)
class SendingMailbox:
    """The user or queue an outgoing email is sent from, with what decides whether we send it."""

    entity: Literal["systemuser", "queue"]
    id: str
    name: str
    emailaddress: str | None
    outgoingemaildeliverymethod: int = DELIVERY_ROUTER
    emailrouteraccessapproval: int = APPROVAL_APPROVED
    isdisabled: bool = False
    trackingusernumber: int | None = None  # users only: the user number inside tracking tokens


@dataclass(frozen=True)
class OutgoingParty:
    """A To/Cc/Bcc party of an outgoing email (``partyid`` None when unresolved)."""

    participationtypemask: int
    addressused: str | None
    name: str | None = None
    partyid: str | None = None
    partyobjecttypecode: str | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    """An outgoing email in Pending Send or Sending, with everything needed to build the message.

    ``sender`` is the sending user or queue (the Sender party, else the owner); None when it
    resolves to neither. Attachments are read separately (``attachments_by_activity``) so that
    a batch only loads the bytes it is about to send.
    """

    activityid: str
    subject: str
    description: str
    mimetype: str | None
    statuscode: int
    deliveryattempts: int
    modifiedon: str  # ISO 8601 UTC; with deliveryattempts it decides when a retry is due
    trackingtoken: str | None
    inreplyto: str | None  # Message-ID this email answers, when the CRM recorded one
    parentactivityid: str | None  # the email this one replies to
    regardingobjectid: str | None
    regardingobjecttypecode: str | None
    ownerid: str | None
    attemptid: str | None  # the send attempt holding it in Sending
    sender: SendingMailbox | None
    parties: tuple[OutgoingParty, ...] = ()


@dataclass(frozen=True)
class EmailStatusChange:
    """A compare-and-set status write: applied only while the email still has
    ``expected_statuscode`` (and, when given, ``expected_attemptid``). None leaves a column."""

    activityid: str
    expected_statuscode: int
    statuscode: int
    statecode: int
    expected_attemptid: str | None = None
    attemptid: str | None = None  # set when claiming (Sending), cleared otherwise
    messageid: str | None = None
    senton: str | None = None
    deliveryattempts: int | None = None
    subject: str | None = None
    trackingtoken: str | None = None
    error: str | None = None  # the last delivery error; "" clears it


@dataclass(frozen=True)
class EmailHashes:
    """The smart-matching hashes of one email."""

    subject: tuple[int, ...]
    addresses: tuple[int, ...]


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

    def create_emails(self, emails: Sequence[NewEmail]) -> set[str] | None:
        """Create the emails with their parties and attachments in one transaction: all or none.

        A backend that checks Message-IDs as it writes returns the activity ids of the received
        emails it did not create because one with the same Message-ID is stored already (another
        run created it meanwhile); None: no such check (routing's own lookup before is all)."""
        ...

    def create_contact(self, emailaddress: str, fullname: str | None) -> Party:
        """Create a contact for an unknown sender (when the receiving user asks for it)."""
        ...

    def write_notes(self, activityids: Iterable[str]) -> dict[str, str]:
        """What writing these emails changed in them (a value cut to the CRM's column length),
        by activity id, for the routing result rows; each note is handed out once. A backend
        that stores every value as given returns {}."""
        ...

    # -- outgoing (reference/email-router.md §4) ---------------------------------------------

    def outgoing_emails(self, statuscodes: Iterable[int], *, limit: int) -> list[OutgoingEmail]:
        """Outgoing emails (``directioncode`` true) in these statuses, least recently modified
        first, at most *limit*, each with its sending user/queue and its To/Cc/Bcc parties."""
        ...

    def attachments_by_activity(self, activityids: Iterable[str]) -> dict[str, list[NewAttachment]]:
        """The ``activitymimeattachment`` rows of these emails, by ``attachmentnumber``."""
        ...

    def update_email_status(self, changes: Sequence[EmailStatusChange]) -> set[str]:
        """Apply compare-and-set status changes; return the ids that changed.

        A change whose email no longer has the expected status (another router took it, a user
        cancelled it) is skipped, never forced. Dataverse backends use the row's ETag.
        """
        ...

    def issue_tracking_tokens(self, subjects: Mapping[str, str]) -> dict[str, str] | None:
        """Tracking tokens the CRM issues itself, by activity id (*subjects*: activity id ->
        subject); None when it issues none to this caller, and routing numbers them with
        :meth:`allocate_tracking_numbers` instead."""
        ...

    def allocate_tracking_numbers(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """Reserve the next *n* per-user tracking counters for each ``systemuserid``.

        Counters wrap after ``organization.maximumtrackingnumber`` back to 0; a reserved number
        is never handed out again before the wrap, even if the email is never sent.
        """
        ...

    def emails_by_activity_id(self, activityids: Iterable[str]) -> dict[str, EmailRef]:
        """Stored emails by ``activityid`` (keys as stored)."""
        ...

    # -- smart matching (reference/email-router.md §6) --------------------------------------

    def store_email_hashes(self, hashes: Mapping[str, EmailHashes]) -> None:
        """Replace the smart-matching hashes of these emails (by activity id)."""
        ...

    def email_hash_candidates(
        self, address_hashes: Iterable[int], *, limit: int = 200
    ) -> dict[str, EmailHashes]:
        """Emails sharing at least one address hash, newest first, with all their hashes."""
        ...

    def close(self) -> None: ...


# -- mailbox settings: what migration to server-side synchronization reads and writes ----------

EMAILCONNECTIONCHANNEL_SSS, EMAILCONNECTIONCHANNEL_ROUTER = 0, 1

# The user and queue columns a migration may write with ``update_recipient``. Which of the
# mailbox and its user/queue is authoritative for the delivery methods is not documented, so the
# migration writes both (dataverse-research.md §1.5).
RECIPIENT_COLUMNS: dict[str, frozenset[str]] = {
    entity: frozenset({"incomingemaildeliverymethod", "outgoingemaildeliverymethod"})
    for entity in ("systemuser", "queue")
}


def check_recipient_update(url: str, entity: str, values: Mapping[str, Any]) -> None:
    """Refuse an ``update_recipient`` outside :data:`RECIPIENT_COLUMNS` (every backend, alike)."""
    if entity not in RECIPIENT_COLUMNS:
        raise CrmError(f"{url}: {entity!r} is not systemuser or queue")
    unknown = sorted(set(values) - RECIPIENT_COLUMNS[entity])
    if unknown:
        raise CrmError(
            f"{url}: update_recipient writes only "
            f"{', '.join(sorted(RECIPIENT_COLUMNS[entity]))}, not {', '.join(unknown)}"
        )


@dataclass(frozen=True)
class RowChange:
    """What one create-or-update did to a row.

    ``before`` holds the previous values of exactly the columns that changed (empty when the row
    was created or nothing changed), so that writing them back undoes the change.
    """

    id: str
    action: Literal["created", "updated", "unchanged"]
    before: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


@runtime_checkable
class MailboxSettingsStore(Protocol):
    """``mailbox`` and ``emailserverprofile`` rows and the organisation's channel switch.

    Rows are plain dicts keyed by Dataverse column names (Booleans as 0/1 or bool; lookups as the
    referenced id). Writes are create-or-update by a natural key, so applying the same values twice
    changes nothing the second time.
    """

    url: str

    def email_server_profiles(self) -> list[dict[str, Any]]:
        """Every ``emailserverprofile`` row."""
        ...

    def mailboxes(self) -> list[dict[str, Any]]:
        """Every ``mailbox`` row."""
        ...

    def save_email_server_profile(self, values: Mapping[str, Any]) -> RowChange:
        """Create or update the profile whose ``name`` equals ``values["name"]`` (any case),
        writing only the columns given."""
        ...

    def save_mailbox(self, values: Mapping[str, Any]) -> RowChange:
        """Create or update a mailbox by owner: the one whose ``regardingobjectid`` is given, or,
        without one, the forward mailbox (``isforwardmailbox``) with that ``emailaddress``."""
        ...

    def delete_email_server_profile(self, emailserverprofileid: str) -> bool:
        """Delete a profile; no error when it is already gone. True when a row was deleted."""
        ...

    def delete_mailbox(self, mailboxid: str) -> bool:
        """Delete a mailbox; no error when it is already gone. True when a row was deleted."""
        ...

    def set_email_connection_channel(self, value: int) -> RowChange:
        """Set ``organization.emailconnectionchannel`` (0 server-side sync, 1 Email Router)."""
        ...

    def update_recipient(
        self, entity: str, recipientid: str, values: Mapping[str, Any]
    ) -> RowChange:
        """Update columns of one existing ``systemuser`` or ``queue`` (*entity*), by id.

        Only the :data:`RECIPIENT_COLUMNS` of that entity may be given; only those that differ are
        written, and ``before`` holds their previous values. Never creates a row: a missing one is
        a :class:`~emailrouter_lib.errors.CrmError`.
        """
        ...

    def atomic(self) -> AbstractContextManager[bool]:
        """Group the writes made inside into one all-or-nothing unit where the backend can.

        Yields True when it really does (SQLite: one transaction, rolled back when the block
        raises); a backend that cannot yields False and each write stands alone, so the caller
        keeps its own record of what was written (the migration's apply record).
        """
        ...


@runtime_checkable
class RecipientDirectory(Protocol):
    """Every user and queue with an address and its routing settings: what Load Data (the
    Configuration Manager) and the audit start from."""

    url: str

    def recipients(self) -> list[Recipient]:
        """Users and queues with an email address, users first, each with its delivery methods,
        approval, filtering method and disabled state."""
        ...


# What a flow may ask a CRM for, by the words its error names.
CAPABILITIES: dict[str, type] = {
    "route email": CrmBackend,
    "list its users and queues": RecipientDirectory,
    "read and write mailbox settings": MailboxSettingsStore,
}


def require(crm: Any, capability: str) -> Any:
    """*crm* when its backend declares *capability* (a key of :data:`CAPABILITIES`); else a
    :class:`~emailrouter_lib.errors.CrmError` naming the backend and the capability, before
    the flow has done anything."""
    role = CAPABILITIES[capability]
    if not isinstance(crm, role):
        url = getattr(crm, "url", type(crm).__name__)
        raise CrmError(
            f"{url}: this CRM backend cannot {capability} ({role.__name__}); use a sqlite:// or "
            "dataverse+https:// CRM URL"
        )
    return crm
