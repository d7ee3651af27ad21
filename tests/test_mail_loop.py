"""The whole loop through real servers: CRM → Postfix (SMTP AUTH) → Dovecot → replies → CRM.

A Pending Send email of the demo CRM is sent through Postfix with SMTP AUTH (checked by Dovecot)
and lands in the customer's Dovecot mailbox. The customer answers three times through Postfix:
with In-Reply-To, with only the tracking token in the subject, and with neither (smart matching).
The incoming batch reads the CRM user's mailbox over IMAP, and each reply is linked to the
original's regarding record with the method that found it (3, 4, 6). Root only (Postfix).
"""

from __future__ import annotations

import smtplib
import time
from email import message_from_bytes, policy
from email.utils import make_msgid

import pytest
from fixtures_smtp import send_pending
from routing_helpers import crm_store, demo_crm, message, route
from servers import Dovecot

from emailrouter_lib.crm import demo as seed

pytestmark = pytest.mark.dovecot


def wait_for_messages(dovecot: Dovecot, user: str, count: int, timeout: float = 20) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        conn = dovecot.imap(user)
        try:
            _, data = conn.select("INBOX")
            if int(data[0]) >= count:
                found = []
                for n in range(1, int(data[0]) + 1):
                    _, parts = conn.fetch(str(n), "(RFC822)")
                    found.append(parts[0][1])
                return found
        finally:
            conn.logout()
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} has fewer than {count} message(s) after {timeout} s")
        time.sleep(0.1)


def test_crm_email_and_three_replies_go_round_the_loop(tmp_path, dovecot, postfix):
    crm_url = demo_crm(tmp_path)
    crm = crm_store(crm_url)
    with crm.transaction() as conn:
        conn.execute("UPDATE organization SET enablesmartmatching = 1")
    for user in ("alice", "crm", "outbox"):
        dovecot.reset(user)

    result = send_pending(crm_url, postfix.url("crm"))
    assert result.outgoing_counts == {"sent": 3}, result.outgoing_table.to_dict("records")
    original = crm.email(seed.PENDING_SHIPPING.activityid)
    assert original["statuscode"] == 3
    (delivered,) = wait_for_messages(dovecot, "alice", 1)  # carol@fabrikam -> Dovecot alice
    got = message_from_bytes(delivered, policy=policy.default)
    assert got["Message-ID"] == original["messageid"]
    assert got["Subject"] == original["subject"] and original["trackingtoken"] in got["Subject"]
    assert "sasl_username=crm" in postfix.log()  # the CRM authenticated to Postfix

    token = original["trackingtoken"]
    replies = {
        3: message("Re: delivery date", in_reply_to=original["messageid"]),
        4: message(f"Thanks! {token}"),
        6: message("RE: Your replacement printer ships today"),
    }
    with smtplib.SMTP(postfix.host, postfix.port, timeout=10) as smtp:
        smtp.login("alice", dovecot.users["alice"])
        for reply in replies.values():
            del reply["To"], reply["Message-ID"]
            reply["To"] = seed.ALICE_ADDRESS
            reply["Message-ID"] = make_msgid(domain="fabrikam.example")
            smtp.send_message(reply, from_addr=seed.CAROL_ADDRESS, to_addrs=[seed.ALICE_ADDRESS])
    wait_for_messages(dovecot, "crm", 3)  # alice@contoso.example -> Dovecot crm

    incoming = route(crm_url, dovecot.url("imap", "crm", owner=f"user:{seed.ALICE_ADDRESS}"))
    assert incoming.counts == {"created": 3}, incoming.table.to_dict("records")
    for method, reply in replies.items():
        (row,) = crm.emails_with_message_id(reply["Message-ID"])
        assert row["correlationmethod"] == method, (method, reply["Subject"])
        assert row["correlatedactivityid"] == seed.PENDING_SHIPPING.activityid
        assert (row["regardingobjectid"], row["regardingobjecttypecode"]) == (
            seed.CAROL.id,
            "contact",
        )
