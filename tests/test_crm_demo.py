"""The Contoso demo seed: what the demo and the routing tests rely on is really in the CRM."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from emailrouter_lib.crm import demo, init_crm, open_crm
from emailrouter_lib.crm.base import (
    APPROVAL_APPROVED,
    DELIVERY_FORWARD_MAILBOX,
    DELIVERY_ROUTER,
    FILTER_ALL,
    FILTER_LEADS_CONTACTS_ACCOUNTS,
    FILTER_RESPONSES,
    STATE_COMPLETED,
    STATUS_PENDING_SEND,
    STATUS_RECEIVED,
    STATUS_SENT,
)
from emailrouter_lib.crm.conversation import base_conversation_index_hash
from emailrouter_lib.crm.sqlite import SqliteCrm
from emailrouter_lib.errors import CrmError


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return init_crm(f"sqlite:///{tmp_path_factory.mktemp('demo') / 'crm.db'}", demo=True)


@pytest.fixture
def crm(demo_url: str):
    backend = open_crm(demo_url)
    yield backend
    backend.close()


def test_organisation_defaults(crm: SqliteCrm) -> None:
    org = crm.organization()
    assert (org.name, org.organizationid) == ("Contoso", demo.ORG_ID)
    assert (org.trackingprefix, org.trackingtokenidbase, org.trackingtokeniddigits) == ("CRM", 0, 3)
    assert org.maximumtrackingnumber == 999
    assert org.emailcorrelationenabled and not org.enablesmartmatching
    assert not org.requireapprovalforuseremail and not org.requireapprovalforqueueemail
    assert org.emailconnectionchannel == 1
    (row,) = crm.rows("organization")
    assert row["nexttrackingnumber"] == 4


def test_support_queue_accepts_all_mail_and_is_approved(crm: SqliteCrm) -> None:
    (support,) = crm.recipients_by_address(["Support@Contoso.example"])["support@contoso.example"]
    assert (support.entity, support.id, support.name) == ("queue", demo.SUPPORT.id, "Support")
    assert support.incomingemailfilteringmethod == FILTER_ALL
    assert support.emailrouteraccessapproval == APPROVAL_APPROVED
    assert support.incomingemaildeliverymethod == DELIVERY_ROUTER
    assert not support.isdisabled
    (sales,) = crm.recipients_by_address([demo.SALES_ADDRESS])[demo.SALES_ADDRESS]
    assert sales.incomingemailfilteringmethod == FILTER_LEADS_CONTACTS_ACCOUNTS


def test_users(crm: SqliteCrm) -> None:
    found = crm.recipients_by_address(
        [u.address for u in (demo.ALICE, demo.BOB, demo.DANA, demo.FRANK)]
    )
    assert found[demo.BOB_ADDRESS][0].incomingemailfilteringmethod == FILTER_RESPONSES
    assert found[demo.ALICE_ADDRESS][0].incomingemailfilteringmethod == FILTER_ALL
    assert found[demo.DANA.address][0].isdisabled
    assert found[demo.FRANK.address][0].incomingemaildeliverymethod == DELIVERY_FORWARD_MAILBOX
    (alice,) = crm.rows("systemuser", systemuserid=demo.ALICE.id)
    (bob,) = crm.rows("systemuser", systemuserid=demo.BOB.id)
    assert (alice["trackingusernumber"], bob["trackingusernumber"]) == (1, 2)
    (mailbox,) = crm.rows("mailbox", mailboxid=alice["defaultmailbox"])
    assert (
        mailbox["emailaddress"] == demo.ALICE_ADDRESS
        and mailbox["regardingobjectid"] == demo.ALICE.id
    )


def test_mailboxes_and_profiles(crm: SqliteCrm) -> None:
    mailboxes = crm.rows("mailbox")
    forward = [m for m in mailboxes if m["isforwardmailbox"]]
    assert [m["emailaddress"] for m in forward] == [demo.FORWARD_MAILBOX.address]
    assert forward[0]["regardingobjectid"] is None
    profiles = {p["emailserverprofileid"]: p for p in crm.rows("emailserverprofile")}
    assert {p["servertype"] for p in profiles.values()} == {0, 1}
    assert all(m["emailserverprofile"] in profiles for m in mailboxes)


def test_shared_address_matches_three_records_in_order(crm: SqliteCrm) -> None:
    parties = crm.parties_by_address([demo.SHARED_ADDRESS.upper()])[demo.SHARED_ADDRESS]
    assert [(p.entity, p.id) for p in parties] == list(demo.SHARED_ADDRESS_MATCHES)


def test_customers_resolve_and_the_inactive_one_does_not(crm: SqliteCrm) -> None:
    addresses = [
        demo.CAROL_ADDRESS,
        demo.DAN_PERSONAL_ADDRESS.lower(),
        demo.GRACE_ADDRESS,
        demo.OLAF.address,
    ]
    found = crm.parties_by_address(addresses)
    assert found[demo.CAROL_ADDRESS][0].id == demo.CAROL.id
    assert found[demo.DAN_PERSONAL_ADDRESS.lower()][0].id == demo.DAN.id
    assert found[demo.GRACE_ADDRESS][0].entity == "lead"
    assert demo.OLAF.address not in found
    assert demo.UNKNOWN_ADDRESS not in crm.parties_by_address([demo.UNKNOWN_ADDRESS])


@pytest.mark.parametrize("seeded", demo.SENT_EMAILS, ids=lambda s: s.name)
def test_sent_emails_correlate_by_every_method(crm: SqliteCrm, seeded: demo.SeedEmail) -> None:
    assert seeded.messageid and seeded.trackingtoken and seeded.conversationindex
    by_id = crm.emails_by_message_id([seeded.messageid])[seeded.messageid]
    by_token = crm.email_by_tracking_token(seeded.trackingtoken)
    hashed = base_conversation_index_hash(seeded.conversationindex)
    assert hashed is not None
    by_conversation = crm.email_by_conversation(hashed)
    for ref in (by_id, by_token, by_conversation):
        assert ref is not None
        assert ref.activityid == seeded.activityid
        assert ref.directioncode is True
        assert seeded.regarding is not None
        assert (ref.regardingobjectid, ref.regardingobjecttypecode) == (
            seeded.regarding.id,
            seeded.regarding.entity,
        )
    assert seeded.trackingtoken in seeded.subject
    row = crm.email(seeded.activityid)
    assert row is not None
    assert (row["statuscode"], row["statecode"], row["senton"]) == (
        STATUS_SENT,
        STATE_COMPLETED,
        seeded.senton,
    )


def test_the_token_of_the_issue(crm: SqliteCrm) -> None:
    ref = crm.email_by_tracking_token("CRM:0001003")
    assert ref is not None and ref.activityid == demo.SENT_QUOTE.activityid


def test_pending_send_and_received(crm: SqliteCrm) -> None:
    assert crm.email_counts_by_status() == {
        STATUS_SENT: 4,
        STATUS_RECEIVED: 1,
        STATUS_PENDING_SEND: 3,
    }
    pending = crm.emails(statuscode=STATUS_PENDING_SEND)
    assert {row["activityid"] for row in pending} == {e.activityid for e in demo.PENDING_EMAILS}
    assert all(row["directioncode"] == 1 and row["messageid"] is None for row in pending)
    (pricing,) = [row for row in pending if row["activityid"] == demo.PENDING_PRICING.activityid]
    assert pricing["deliveryattempts"] == 2
    (attachment,) = crm.email_attachments(demo.PENDING_PRICING.activityid)
    assert attachment["filename"] == "pricing.csv"
    senders = crm.email_parties(demo.PENDING_CASE.activityid)
    assert (senders[0]["participationtypemask"], senders[0]["partyobjecttypecode"]) == (1, "queue")
    received = crm.email(demo.RECEIVED_TONER.activityid)
    assert received is not None and received["directioncode"] == 0
    assert received["acceptingentityid"] == demo.SUPPORT.id
    assert received["receivingmailboxid"] is not None


def test_two_seeds_hold_the_same_records(tmp_path: Path, demo_url: str) -> None:
    other = init_crm(f"sqlite:///{tmp_path / 'again.db'}", demo=True)
    with open_crm(demo_url) as first, open_crm(other) as second:
        for table in (
            "organization",
            "systemuser",
            "queue",
            "contact",
            "account",
            "lead",
            "email",
            "mailbox",
        ):
            assert first.rows(table) == second.rows(table), table


def test_seed_refuses_a_database_with_an_organisation(crm: SqliteCrm) -> None:
    with pytest.raises(CrmError, match="already holds an organisation"):
        demo.seed_demo(crm)


def test_bulk_contacts_are_fast_and_findable(tmp_path: Path) -> None:
    url = init_crm(f"sqlite:///{tmp_path / 'bulk.db'}", demo=True)
    started = time.perf_counter()
    demo.add_bulk_contacts(url, 100_000)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"100,000 contacts took {elapsed:.1f} s"
    demo.add_bulk_contacts(tmp_path / "bulk.db", 10, domain="more.example")  # by path as well
    with open_crm(url) as crm:
        assert crm.count("contact") == 5 + 100_000 + 10
        found = crm.parties_by_address(
            ["bulk-0@bulk.example", "BULK-99999@bulk.example", "bulk-9@more.example"]
        )
        assert len(found) == 3


def test_add_bulk_contacts_to_missing_database(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="emailrouter crm init"):
        demo.add_bulk_contacts(tmp_path / "missing.db", 5)
