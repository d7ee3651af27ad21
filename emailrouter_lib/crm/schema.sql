-- The embedded CRM: a small subset of Dataverse, with Dataverse logical names for tables and
-- columns so that rows map one-to-one onto Web API records.
--
-- Conventions: ids are GUID strings; Booleans are 0/1; dates are ISO 8601 UTC strings
-- ("2024-03-01T09:30:00Z"); option sets hold their Dataverse integer values.
-- Email-address columns are COLLATE NOCASE and indexed, so lookups are case-insensitive
-- (ASCII case folding, as SQLite does it) and stay logarithmic in the number of records.
-- Columns that are ours, not Dataverse's, are marked "(emailrouter)".

CREATE TABLE schema_version (
    version   INTEGER NOT NULL,
    appliedon TEXT    NOT NULL
);

CREATE TABLE organization (
    organizationid                       TEXT PRIMARY KEY,
    name                                 TEXT NOT NULL,
    trackingprefix                       TEXT NOT NULL DEFAULT 'CRM',
    trackingtokenidbase                  INTEGER NOT NULL DEFAULT 0,
    trackingtokeniddigits                INTEGER NOT NULL DEFAULT 3,
    maximumtrackingnumber                INTEGER NOT NULL DEFAULT 999,
    nexttrackingnumber                   INTEGER NOT NULL DEFAULT 1,
    emailcorrelationenabled              INTEGER NOT NULL DEFAULT 1,
    enablesmartmatching                  INTEGER NOT NULL DEFAULT 0,
    hashfilterkeywords                   TEXT NOT NULL DEFAULT '^[\s]*([\w]+\s?:[\s]*)+',
    hashmaxcount                         INTEGER NOT NULL DEFAULT 20,
    hashdeltasubjectcount                INTEGER NOT NULL DEFAULT 0,
    hashminaddresscount                  INTEGER NOT NULL DEFAULT 2,
    ignoreinternalemail                  INTEGER NOT NULL DEFAULT 0,
    unresolveemailaddressifmultiplematch INTEGER NOT NULL DEFAULT 0,
    resolvesimilarunresolvedemailaddress INTEGER NOT NULL DEFAULT 0,
    allowunresolvedpartiesonemailsend    INTEGER NOT NULL DEFAULT 0,
    requireapprovalforuseremail          INTEGER NOT NULL DEFAULT 0,
    requireapprovalforqueueemail         INTEGER NOT NULL DEFAULT 0,
    maxuploadfilesize                    INTEGER NOT NULL DEFAULT 5242880,
    blockedattachments                   TEXT,
    emailconnectionchannel               INTEGER NOT NULL DEFAULT 1,
    defaultemailserverprofileid          TEXT,
    createdon                            TEXT NOT NULL
);

CREATE TABLE emailserverprofile (
    emailserverprofileid                  TEXT PRIMARY KEY,
    name                                  TEXT NOT NULL,
    description                           TEXT,
    servertype                            INTEGER NOT NULL DEFAULT 0,
    incomingserverlocation                TEXT,
    outgoingserverlocation                TEXT,
    incomingportnumber                    INTEGER,
    outgoingportnumber                    INTEGER,
    incomingusessl                        INTEGER NOT NULL DEFAULT 1,
    outgoingusessl                        INTEGER NOT NULL DEFAULT 1,
    incomingcredentialretrieval           INTEGER NOT NULL DEFAULT 0,
    outgoingcredentialretrieval           INTEGER NOT NULL DEFAULT 0,
    incomingauthenticationprotocol        INTEGER NOT NULL DEFAULT 0,
    outgoingauthenticationprotocol        INTEGER NOT NULL DEFAULT 0,
    -- User names only: passwords are never stored here (secrets are passed by reference).
    incomingusername                      TEXT,
    outgoingusername                      TEXT,
    incominguseimpersonation              INTEGER NOT NULL DEFAULT 0,
    outgoinguseimpersonation              INTEGER NOT NULL DEFAULT 0,
    useautodiscover                       INTEGER NOT NULL DEFAULT 0,
    usesamesettingsforoutgoingconnections INTEGER NOT NULL DEFAULT 1,
    exchangeversion                       INTEGER,
    maxconcurrentconnections              INTEGER,
    minpollingintervalinminutes           INTEGER,
    moveundeliveredemails                 INTEGER NOT NULL DEFAULT 0,
    processemailsreceivedafter            TEXT,
    sendemailalert                        INTEGER NOT NULL DEFAULT 0,
    timeoutmailboxconnection              INTEGER NOT NULL DEFAULT 1,
    timeoutmailboxconnectionafteramount   INTEGER,
    statecode                             INTEGER NOT NULL DEFAULT 0,
    createdon                             TEXT NOT NULL
);

CREATE TABLE mailbox (
    mailboxid                       TEXT PRIMARY KEY,
    name                            TEXT NOT NULL,
    emailaddress                    TEXT COLLATE NOCASE,
    emailserverprofile              TEXT REFERENCES emailserverprofile (emailserverprofileid),
    incomingemaildeliverymethod     INTEGER NOT NULL DEFAULT 2,
    outgoingemaildeliverymethod     INTEGER NOT NULL DEFAULT 2,
    emailrouteraccessapproval       INTEGER NOT NULL DEFAULT 0,
    incomingemailstatus             INTEGER NOT NULL DEFAULT 0,
    outgoingemailstatus             INTEGER NOT NULL DEFAULT 0,
    enabledforincomingemail         INTEGER NOT NULL DEFAULT 1,
    enabledforoutgoingemail         INTEGER NOT NULL DEFAULT 1,
    isforwardmailbox                INTEGER NOT NULL DEFAULT 0,
    regardingobjectid               TEXT,
    regardingobjecttypecode         TEXT,
    processanddeleteemails          INTEGER NOT NULL DEFAULT 0,
    processemailreceivedafter       TEXT,
    ewsurl                          TEXT,
    undeliverablefolder             TEXT,
    testemailconfigurationscheduled INTEGER NOT NULL DEFAULT 0,
    ownerid                         TEXT,
    statecode                       INTEGER NOT NULL DEFAULT 0,
    statuscode                      INTEGER NOT NULL DEFAULT 1,
    createdon                       TEXT NOT NULL
);
CREATE INDEX mailbox_emailaddress ON mailbox (emailaddress);
CREATE INDEX mailbox_regardingobjectid ON mailbox (regardingobjectid);

CREATE TABLE systemuser (
    systemuserid                 TEXT PRIMARY KEY,
    fullname                     TEXT NOT NULL,
    firstname                    TEXT,
    lastname                     TEXT,
    domainname                   TEXT,
    internalemailaddress         TEXT COLLATE NOCASE,
    personalemailaddress         TEXT COLLATE NOCASE,
    isdisabled                   INTEGER NOT NULL DEFAULT 0,
    accessmode                   INTEGER NOT NULL DEFAULT 0,
    emailrouteraccessapproval    INTEGER NOT NULL DEFAULT 0,
    incomingemaildeliverymethod  INTEGER NOT NULL DEFAULT 2,
    outgoingemaildeliverymethod  INTEGER NOT NULL DEFAULT 2,
    defaultmailbox               TEXT REFERENCES mailbox (mailboxid),
    -- usersettings columns, kept on the user row: 0 All .. 4 None; create contacts for unknown senders.
    incomingemailfilteringmethod INTEGER NOT NULL DEFAULT 2,
    autocreatecontactonpromote   INTEGER NOT NULL DEFAULT 0,
    -- (emailrouter) the user number inside outgoing tracking tokens (CRM:0 001 003 -> 1).
    trackingusernumber           INTEGER,
    createdon                    TEXT NOT NULL
);
CREATE INDEX systemuser_internalemailaddress ON systemuser (internalemailaddress);
CREATE INDEX systemuser_personalemailaddress ON systemuser (personalemailaddress);
CREATE UNIQUE INDEX systemuser_trackingusernumber ON systemuser (trackingusernumber);

CREATE TABLE queue (
    queueid                      TEXT PRIMARY KEY,
    name                         TEXT NOT NULL,
    emailaddress                 TEXT COLLATE NOCASE,
    emailrouteraccessapproval    INTEGER NOT NULL DEFAULT 0,
    incomingemaildeliverymethod  INTEGER NOT NULL DEFAULT 2,
    outgoingemaildeliverymethod  INTEGER NOT NULL DEFAULT 2,
    incomingemailfilteringmethod INTEGER NOT NULL DEFAULT 0,
    defaultmailbox               TEXT REFERENCES mailbox (mailboxid),
    queueviewtype                INTEGER NOT NULL DEFAULT 0,
    ownerid                      TEXT,
    statecode                    INTEGER NOT NULL DEFAULT 0,
    statuscode                   INTEGER NOT NULL DEFAULT 1,
    createdon                    TEXT NOT NULL
);
CREATE INDEX queue_emailaddress ON queue (emailaddress);

CREATE TABLE account (
    accountid     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    emailaddress1 TEXT COLLATE NOCASE,
    emailaddress2 TEXT COLLATE NOCASE,
    emailaddress3 TEXT COLLATE NOCASE,
    telephone1    TEXT,
    websiteurl    TEXT,
    statecode     INTEGER NOT NULL DEFAULT 0,
    statuscode    INTEGER NOT NULL DEFAULT 1,
    createdon     TEXT NOT NULL
);
CREATE INDEX account_emailaddress1 ON account (emailaddress1);
CREATE INDEX account_emailaddress2 ON account (emailaddress2);
CREATE INDEX account_emailaddress3 ON account (emailaddress3);

CREATE TABLE contact (
    contactid             TEXT PRIMARY KEY,
    fullname              TEXT NOT NULL,
    firstname             TEXT,
    lastname              TEXT,
    emailaddress1         TEXT COLLATE NOCASE,
    emailaddress2         TEXT COLLATE NOCASE,
    emailaddress3         TEXT COLLATE NOCASE,
    parentcustomerid      TEXT,
    parentcustomeridtype  TEXT,
    statecode             INTEGER NOT NULL DEFAULT 0,
    statuscode            INTEGER NOT NULL DEFAULT 1,
    createdon             TEXT NOT NULL
);
CREATE INDEX contact_emailaddress1 ON contact (emailaddress1);
CREATE INDEX contact_emailaddress2 ON contact (emailaddress2);
CREATE INDEX contact_emailaddress3 ON contact (emailaddress3);

CREATE TABLE lead (
    leadid        TEXT PRIMARY KEY,
    fullname      TEXT NOT NULL,
    firstname     TEXT,
    lastname      TEXT,
    companyname   TEXT,
    subject       TEXT,
    emailaddress1 TEXT COLLATE NOCASE,
    emailaddress2 TEXT COLLATE NOCASE,
    emailaddress3 TEXT COLLATE NOCASE,
    statecode     INTEGER NOT NULL DEFAULT 0,
    statuscode    INTEGER NOT NULL DEFAULT 1,
    createdon     TEXT NOT NULL
);
CREATE INDEX lead_emailaddress1 ON lead (emailaddress1);
CREATE INDEX lead_emailaddress2 ON lead (emailaddress2);
CREATE INDEX lead_emailaddress3 ON lead (emailaddress3);

CREATE TABLE email (
    activityid                TEXT PRIMARY KEY,
    subject                   TEXT,
    description               TEXT,
    sender                    TEXT,
    torecipients              TEXT,
    messageid                 TEXT,
    inreplyto                 TEXT,
    conversationindex         TEXT,
    baseconversationindexhash INTEGER,
    trackingtoken             TEXT COLLATE NOCASE,
    directioncode             INTEGER NOT NULL DEFAULT 1,
    statecode                 INTEGER NOT NULL DEFAULT 0,
    statuscode                INTEGER NOT NULL DEFAULT 1,
    correlationmethod         INTEGER NOT NULL DEFAULT 0,
    correlatedactivityid      TEXT,
    parentactivityid          TEXT,
    regardingobjectid         TEXT,
    regardingobjecttypecode   TEXT,
    acceptingentityid         TEXT,
    acceptingentitytypecode   TEXT,
    receivingmailboxid        TEXT,
    ownerid                   TEXT,
    owneridtype               TEXT,
    mimetype                  TEXT,
    notifications             INTEGER NOT NULL DEFAULT 0,
    deliveryattempts          INTEGER NOT NULL DEFAULT 0,
    prioritycode              INTEGER NOT NULL DEFAULT 1,
    senton                    TEXT,
    createdon                 TEXT NOT NULL,
    modifiedon                TEXT NOT NULL
);
CREATE INDEX email_messageid ON email (messageid);
-- create_emails looks a received email's Message-ID up here, case-insensitively, inside its write
-- transaction: one received email per Message-ID even when two runs overlap (sqlite.py keeps the
-- same statement for databases made before it; not UNIQUE, so their earlier doubles still open)
CREATE INDEX email_received_messageid ON email (messageid COLLATE NOCASE) WHERE directioncode = 0;
CREATE INDEX email_trackingtoken ON email (trackingtoken);
CREATE INDEX email_baseconversationindexhash ON email (baseconversationindexhash);
CREATE INDEX email_statuscode ON email (statuscode);
CREATE INDEX email_regardingobjectid ON email (regardingobjectid);

CREATE TABLE activityparty (
    activitypartyid       TEXT PRIMARY KEY,
    activityid            TEXT NOT NULL REFERENCES email (activityid) ON DELETE CASCADE,
    participationtypemask INTEGER NOT NULL,
    partyid               TEXT,
    partyobjecttypecode   TEXT,
    addressused           TEXT COLLATE NOCASE,
    unresolvedpartyname   TEXT
);
CREATE INDEX activityparty_activityid ON activityparty (activityid);
CREATE INDEX activityparty_partyid ON activityparty (partyid);

CREATE TABLE activitymimeattachment (
    activitymimeattachmentid TEXT PRIMARY KEY,
    objectid                 TEXT NOT NULL REFERENCES email (activityid) ON DELETE CASCADE,
    objecttypecode           TEXT NOT NULL DEFAULT 'email',
    filename                 TEXT,
    mimetype                 TEXT,
    -- The raw bytes (the Web API carries them base64-encoded; here they are stored as they are).
    body                     BLOB,
    filesize                 INTEGER NOT NULL DEFAULT 0,
    attachmentcontentid      TEXT,
    attachmentnumber         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX activitymimeattachment_objectid ON activitymimeattachment (objectid);

-- (emailrouter) Outgoing email: the send attempt that holds an email in Sending (7), and the text
-- of the last delivery error (shown for Failed emails). Dataverse has no such columns; a remote
-- backend keeps them where it can.
ALTER TABLE email ADD COLUMN emailrouter_attemptid TEXT;
ALTER TABLE email ADD COLUMN emailrouter_lasterror TEXT;
CREATE INDEX email_outgoing_queue ON email (statuscode, directioncode, modifiedon);

-- (emailrouter) The per-user counter inside outgoing tracking tokens (CRM:0 001 004 -> 4).
CREATE TABLE emailrouter_trackingcounter (
    systemuserid TEXT PRIMARY KEY,
    lastnumber   INTEGER NOT NULL
);

-- Smart matching (Dataverse's EmailHash): hashes of an email's subject words (hashtype 1) and of
-- its unique addresses (hashtype 2).
CREATE TABLE emailhash (
    activityid TEXT NOT NULL REFERENCES email (activityid) ON DELETE CASCADE,
    hashtype   INTEGER NOT NULL,
    hash       INTEGER NOT NULL
);
CREATE INDEX emailhash_hash ON emailhash (hashtype, hash);
CREATE INDEX emailhash_activityid ON emailhash (activityid);
