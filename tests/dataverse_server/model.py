"""Which entity sets the fake serves, over which SQLite tables, with which lookups.

Names follow the Dataverse table reference (dataverse-research.md §1): entity sets, the
``_<attr>_value`` read side of lookups, and the navigation-property names a client binds with
``<nav>@odata.bind``. Only what the router uses is modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PARTY_TARGETS = ("account", "contact", "lead", "queue", "systemuser")
REGARDING_TARGETS = (*PARTY_TARGETS, "incident", "opportunity")


@dataclass(frozen=True)
class Lookup:
    column: str  # the attribute (and SQLite column)
    typecolumn: str | None = None  # where a polymorphic lookup keeps the target's logical name
    target: str | None = None  # the one target of a single-target lookup
    writable: bool = True


@dataclass(frozen=True)
class Collection:
    """A collection-valued navigation property a create may deep-insert into."""

    entity_set: str
    foreign_key: str


@dataclass(frozen=True)
class EntitySet:
    name: str
    logical: str
    table: str
    key: str
    lookups: tuple[Lookup, ...] = ()
    navigation: dict[str, str] = field(default_factory=dict)  # bind name -> lookup column
    collections: dict[str, Collection] = field(default_factory=dict)
    booleans: frozenset[str] = frozenset()
    binary: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()  # SQLite columns that are not Dataverse attributes
    only: tuple[str, ...] = ()  # when set: the only columns this set exposes
    creatable: bool = True

    def lookup(self, column: str) -> Lookup | None:
        return next((lk for lk in self.lookups if lk.column == column), None)


def _nav(prefix: str, column: str, targets: tuple[str, ...], suffix: str = "") -> dict[str, str]:
    return {f"{prefix}_{t}{suffix}": column for t in targets}


EMAIL = EntitySet(
    "emails",
    "email",
    "email",
    "activityid",
    lookups=(
        Lookup("regardingobjectid", typecolumn="regardingobjecttypecode"),
        Lookup("parentactivityid", target="email"),
        Lookup("correlatedactivityid", target="email"),
        Lookup("acceptingentityid", typecolumn="acceptingentitytypecode"),
        Lookup("receivingmailboxid", target="mailbox"),
        Lookup("ownerid", typecolumn="owneridtype"),
    ),
    navigation={
        **_nav("regardingobjectid", "regardingobjectid", REGARDING_TARGETS, "_email"),
        **_nav("acceptingentityid", "acceptingentityid", ("queue", "systemuser")),
        "parentactivityid": "parentactivityid",
        "correlatedactivityid": "correlatedactivityid",
        "receivingmailboxid": "receivingmailboxid",
        "ownerid": "ownerid",
    },
    collections={
        "email_activity_parties": Collection("activityparties", "activityid"),
        "email_activity_mime_attachment": Collection("activitymimeattachments", "objectid"),
    },
    booleans=frozenset({"directioncode"}),
    hidden=frozenset({"emailrouter_attemptid", "emailrouter_lasterror"}),
)

ACTIVITY_PARTY = EntitySet(
    "activityparties",
    "activityparty",
    "activityparty",
    "activitypartyid",
    lookups=(
        Lookup("partyid", typecolumn="partyobjecttypecode"),
        Lookup("activityid", target="email"),
    ),
    navigation={**_nav("partyid", "partyid", PARTY_TARGETS), "activityid_email": "activityid"},
    creatable=False,  # only through its activity (deep insert), as in Dataverse
)

ATTACHMENT = EntitySet(
    "activitymimeattachments",
    "activitymimeattachment",
    "activitymimeattachment",
    "activitymimeattachmentid",
    lookups=(Lookup("objectid", target="email"),),
    navigation={"objectid_email": "objectid", "objectid_activitypointer": "objectid"},
    binary=frozenset({"body"}),
)

ORGANIZATION_BOOLEANS = frozenset(
    {
        "emailcorrelationenabled",
        "enablesmartmatching",
        "ignoreinternalemail",
        "unresolveemailaddressifmultiplematch",
        "resolvesimilarunresolvedemailaddress",
        "allowunresolvedpartiesonemailsend",
        "requireapprovalforuseremail",
        "requireapprovalforqueueemail",
    }
)

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EMAIL,
        ACTIVITY_PARTY,
        ATTACHMENT,
        EntitySet(
            "organizations",
            "organization",
            "organization",
            "organizationid",
            lookups=(Lookup("defaultemailserverprofileid", target="emailserverprofile"),),
            navigation={"defaultemailserverprofileid": "defaultemailserverprofileid"},
            booleans=ORGANIZATION_BOOLEANS,
            creatable=False,
        ),
        EntitySet(
            "systemusers",
            "systemuser",
            "systemuser",
            "systemuserid",
            lookups=(Lookup("defaultmailbox", target="mailbox", writable=False),),
            booleans=frozenset({"isdisabled"}),
            # These live on usersettings (and trackingusernumber is ours).
            hidden=frozenset(
                {"incomingemailfilteringmethod", "autocreatecontactonpromote", "trackingusernumber"}
            ),
        ),
        EntitySet(
            "usersettingscollection",
            "usersettings",
            "systemuser",
            "systemuserid",
            booleans=frozenset({"autocreatecontactonpromote"}),
            only=("systemuserid", "incomingemailfilteringmethod", "autocreatecontactonpromote"),
            creatable=False,
        ),
        EntitySet(
            "queues",
            "queue",
            "queue",
            "queueid",
            lookups=(
                Lookup("defaultmailbox", target="mailbox", writable=False),
                Lookup("ownerid", target="systemuser"),
            ),
            navigation={"ownerid": "ownerid"},
        ),
        EntitySet(
            "contacts",
            "contact",
            "contact",
            "contactid",
            lookups=(Lookup("parentcustomerid", typecolumn="parentcustomeridtype"),),
            navigation=_nav("parentcustomerid", "parentcustomerid", ("account", "contact")),
        ),
        EntitySet("accounts", "account", "account", "accountid"),
        EntitySet("leads", "lead", "lead", "leadid"),
        EntitySet(
            "mailboxes",
            "mailbox",
            "mailbox",
            "mailboxid",
            lookups=(
                Lookup("emailserverprofile", target="emailserverprofile"),
                Lookup("regardingobjectid", typecolumn="regardingobjecttypecode"),
                Lookup("ownerid", target="systemuser"),
            ),
            navigation={
                "emailserverprofile": "emailserverprofile",
                "ownerid": "ownerid",
                **_nav("regardingobjectid", "regardingobjectid", ("queue", "systemuser")),
            },
            booleans=frozenset(
                {
                    "enabledforincomingemail",
                    "enabledforoutgoingemail",
                    "isforwardmailbox",
                    "processanddeleteemails",
                    "testemailconfigurationscheduled",
                }
            ),
        ),
        EntitySet(
            "emailserverprofiles",
            "emailserverprofile",
            "emailserverprofile",
            "emailserverprofileid",
            booleans=frozenset(
                {
                    "incomingusessl",
                    "outgoingusessl",
                    "incominguseimpersonation",
                    "outgoinguseimpersonation",
                    "useautodiscover",
                    "usesamesettingsforoutgoingconnections",
                    "moveundeliveredemails",
                    "sendemailalert",
                    "timeoutmailboxconnection",
                }
            ),
        ),
    )
}

BY_LOGICAL = {s.logical: s for s in SETS.values() if s.name != "usersettingscollection"}
