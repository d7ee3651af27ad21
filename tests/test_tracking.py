"""Tracking tokens, Thread-Index, party resolution and the incoming filters, as pure decisions."""

from __future__ import annotations

import base64

import pytest

from emailrouter_lib.crm.base import (
    APPROVAL_PENDING,
    FILTER_ALL,
    FILTER_EMAIL_ENABLED,
    FILTER_LEADS_CONTACTS_ACCOUNTS,
    FILTER_NONE,
    FILTER_RESPONSES,
    Organization,
    Party,
    Recipient,
)
from emailrouter_lib.tracking.filtering import filter_rule
from emailrouter_lib.tracking.resolve import resolve_parties
from emailrouter_lib.tracking.threadindex import conversation_base, conversation_hash
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

ORG = Organization(organizationid="o", name="Contoso")


def test_token_with_default_settings_reads_like_the_router():
    fmt = TrackingTokenFormat.from_organization(ORG)
    assert fmt.format(1, 1) == "CRM:0001001"
    assert fmt.format(1, 1000) == "CRM:0001000"  # the counter wraps at its digits


def test_token_uses_organisation_settings():
    org = Organization(
        organizationid="o",
        name="x",
        trackingprefix="CAS;CRM",
        trackingtokenidbase=12,
        trackingtokeniddigits=2,
        maximumtrackingnumber=99999,
    )
    fmt = TrackingTokenFormat.from_organization(org)
    assert fmt.format(7, 42) == "CAS:120700042"
    assert fmt.find("RE: hello crm:0001003") == "CRM:0001003"  # an older prefix still counts


@pytest.mark.parametrize(
    ("subject", "token"),
    [
        ("RE: Your order CRM:0001003", "CRM:0001003"),
        ("AW: [CRM:0001003] Rechnung", "CRM:0001003"),
        ("RE: RE: crm:0001003 again", "CRM:0001003"),
        ("no token here", None),
        ("XCRM:0001003 is not a token", None),
        ("CRM:12 too short", None),
        (None, None),
    ],
)
def test_token_found_anywhere_in_subject(subject, token):
    assert TrackingTokenFormat().find(subject) == token


def _thread_index(base: bytes, replies: int = 0) -> str:
    return base64.b64encode(base + b"\x01\x02\x03\x04\x05" * replies).decode()


def test_thread_index_base_is_shared_by_replies():
    base = bytes(range(22))
    first, reply = _thread_index(base), _thread_index(base, replies=2)
    assert conversation_base(first) == conversation_base(reply) == base
    assert conversation_hash(first) == conversation_hash(reply)
    assert conversation_hash(_thread_index(bytes(range(1, 23)))) != conversation_hash(first)


@pytest.mark.parametrize("value", [None, "", "not base64 !!", base64.b64encode(b"short").decode()])
def test_thread_index_rejects_garbage(value):
    assert conversation_hash(value) is None


CONTACT = Party("contact", "c1", "Carol", "carol@fabrikam.example")
ACCOUNT = Party("account", "a1", "Fabrikam", "carol@fabrikam.example")
USER = Party("systemuser", "u1", "Alice", "alice@contoso.example")


def _queue(method: int, **kw) -> Recipient:
    return Recipient(
        "queue",
        "q1",
        "Support",
        "support@contoso.example",
        incomingemailfilteringmethod=method,
        **kw,
    )


@pytest.mark.parametrize(
    ("method", "correlated", "sender", "rule"),
    [
        (FILTER_ALL, False, [], None),
        (FILTER_RESPONSES, False, [CONTACT], "not-a-response"),
        (FILTER_RESPONSES, True, [], None),
        (FILTER_LEADS_CONTACTS_ACCOUNTS, False, [CONTACT], None),
        (FILTER_LEADS_CONTACTS_ACCOUNTS, False, [USER], "sender-not-lead-contact-account"),
        (FILTER_LEADS_CONTACTS_ACCOUNTS, False, [], "sender-not-lead-contact-account"),
        (FILTER_EMAIL_ENABLED, False, [USER], None),
        (FILTER_EMAIL_ENABLED, False, [], "sender-not-in-crm"),
        (FILTER_NONE, True, [CONTACT], "no-email-tracked"),
    ],
)
def test_each_filtering_method(method, correlated, sender, rule):
    assert (
        filter_rule(_queue(method), org=ORG, correlated=correlated, sender_parties=sender) == rule
    )


def test_approval_and_internal_mail():
    strict = Organization(
        organizationid="o", name="x", requireapprovalforqueueemail=True, ignoreinternalemail=True
    )
    pending = _queue(FILTER_ALL, emailrouteraccessapproval=APPROVAL_PENDING)
    assert filter_rule(pending, org=strict, correlated=False, sender_parties=[]) == "not-approved"
    assert filter_rule(pending, org=ORG, correlated=False, sender_parties=[]) is None
    approved = _queue(FILTER_ALL)
    assert (
        filter_rule(approved, org=strict, correlated=False, sender_parties=[USER])
        == "internal-email"
    )
    disabled = _queue(FILTER_ALL, isdisabled=True)
    assert (
        filter_rule(disabled, org=ORG, correlated=False, sender_parties=[]) == "recipient-disabled"
    )


def test_multiple_matches_link_all_or_stay_unresolved():
    parties = {"carol@fabrikam.example": [CONTACT, ACCOUNT]}
    sender = ("Carol", "carol@fabrikam.example")
    rows = resolve_parties(sender, [], [], [], parties=parties, org=ORG)
    assert [(r.participationtypemask, r.partyobjecttypecode) for r in rows] == [
        (1, "contact"),
        (1, "account"),
    ]
    strict = Organization(organizationid="o", name="x", unresolveemailaddressifmultiplematch=True)
    rows = resolve_parties(sender, [], [], [], parties=parties, org=strict)
    assert [(r.partyid, r.addressused) for r in rows] == [(None, "carol@fabrikam.example")]


def test_unresolved_addresses_keep_addressused():
    rows = resolve_parties(
        (None, "stranger@nowhere.example"),
        [("Alice", "alice@contoso.example"), ("", "ghost@nowhere.example")],
        [("", "alice@contoso.example")],
        [],
        parties={"alice@contoso.example": [USER]},
        org=ORG,
    )
    assert [(r.participationtypemask, r.addressused, r.partyid) for r in rows] == [
        (1, "stranger@nowhere.example", None),
        (2, "alice@contoso.example", "u1"),
        (2, "ghost@nowhere.example", None),
        (3, "alice@contoso.example", "u1"),
    ]
