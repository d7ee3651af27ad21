"""Smart matching (reference §6): normalisation, the four Hash* settings, and its place last in
the correlation order, off by default."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from routing_helpers import crm_store, demo_crm, drop, maildir_url, message, route

from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.base import Organization
from emailrouter_lib.mail.message import ParsedMessage
from emailrouter_lib.tracking.smartmatch import (
    HashSettings,
    SmartMatcher,
    email_hashes,
    subject_words,
    subjects_match,
)
from emailrouter_lib.tracking.tokens import TrackingTokenFormat

ORG = Organization(organizationid="o", name="Contoso", enablesmartmatching=True)
TOKENS = TrackingTokenFormat.from_organization(ORG)
SETTINGS = HashSettings.from_organization(ORG)


def test_prefixes_case_and_tokens_are_ignored():
    words = subject_words("RE: Fw:  Printer OFFLINE since Monday CRM:0001001", SETTINGS, TOKENS)
    assert words == ["printer", "offline", "since", "monday"]
    assert subject_words("Printer offline since Monday", SETTINGS, TOKENS) == words


def test_hash_max_count_limits_words_and_addresses():
    settings = HashSettings.from_organization(replace(ORG, hashmaxcount=2))
    hashes = email_hashes("one two three", ["a@x", "B@x", "b@x", "c@x"], settings, TOKENS)
    assert len(hashes.subject) == 2 and len(hashes.addresses) == 2


def test_subject_delta():
    mine = email_hashes("a b c", [], SETTINGS, TOKENS).subject
    longer = email_hashes("a b c d", [], SETTINGS, TOKENS).subject
    other = email_hashes("a b x", [], SETTINGS, TOKENS).subject
    assert subjects_match(mine, mine, 0)
    assert not subjects_match(mine, longer, 0) and subjects_match(mine, longer, 1)
    assert not subjects_match(mine, other, 5)  # the same count of other words is no match


def _prepare(tmp_path, **org):
    crm_url = demo_crm(tmp_path)
    conn = sqlite3.connect(crm_url.removeprefix("sqlite:///"))
    with conn:
        sets = ", ".join(f"{k} = ?" for k in org)
        conn.execute(f"UPDATE organization SET {sets}", list(org.values()))
    conn.close()
    crm = crm_store(crm_url)
    tokens = TrackingTokenFormat.from_organization(crm.organization())
    matcher = SmartMatcher(crm, crm.organization(), tokens)
    sent = seed.SENT_PRINTER  # Alice -> Carol, "Printer offline since Monday CRM:0001001"
    crm.store_email_hashes(
        {sent.activityid: matcher.hashes(sent.subject, [seed.ALICE_ADDRESS, seed.CAROL_ADDRESS])}
    )
    return crm_url, crm, matcher


def test_min_address_count_and_the_stored_hashes(tmp_path):
    matcher = _prepare(tmp_path, enablesmartmatching=1)[2]
    reply = message("RE: Printer offline since Monday", to=seed.ALICE_ADDRESS)
    parsed = ParsedMessage.from_bytes(reply.as_bytes())
    assert matcher(parsed).activityid == seed.SENT_PRINTER.activityid
    stranger = ParsedMessage.from_bytes(
        message(
            "RE: Printer offline since Monday", sender="x@y.example", to=seed.ALICE_ADDRESS
        ).as_bytes()
    )
    assert matcher(stranger) is None  # only one address in common, HashMinAddressCount = 2
    lenient = _prepare(tmp_path / "b", enablesmartmatching=1, hashminaddresscount=1)[2]
    assert lenient(stranger).activityid == seed.SENT_PRINTER.activityid


def test_routing_links_by_smart_matching_only_when_switched_on(tmp_path):
    reply = message("Re: Printer offline since Monday", to=seed.ALICE_ADDRESS)
    for enabled, expected in ((0, 0), (1, 6)):
        crm_url = _prepare(tmp_path / str(enabled), enablesmartmatching=enabled)[0]
        box = tmp_path / str(enabled) / "Maildir"
        drop(box, reply)
        result = route(crm_url, maildir_url(box, owner=f"user:{seed.ALICE_ADDRESS}"))
        (created,) = crm_store(crm_url).emails_with_message_id(reply["Message-ID"])
        assert created["correlationmethod"] == expected, result.table.to_dict("records")
        if expected:
            assert created["regardingobjectid"] == seed.CAROL.id
            assert result.table["correlation"][0] == "smart-matching"
