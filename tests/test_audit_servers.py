"""Test Access against a real Dovecot: a good mailbox, a wrong password, a port nobody listens
on and a certificate nobody vouched for; each row says which, in the server's own words."""

from __future__ import annotations

import pandas as pd
import pytest
from routing_helpers import demo_crm, message, route
from servers import Dovecot

from emailrouter_lib import audit

pytestmark = pytest.mark.dovecot

SUPPORT = "queue:support@contoso.example"


def test_good_wrong_password_and_unreachable(dovecot: Dovecot, free_port, monkeypatch):
    dovecot.reset("crm")
    for n in range(3):
        dovecot.deliver(message(f"Question {n}"), to="crm@example.test")
    good = dovecot.url("imap", "crm", owner=SUPPORT)
    monkeypatch.setenv("AUDIT_WRONG_PW", "not-the-password")
    wrong = dovecot.url("pop3", "bob").replace(dovecot.password_env("bob"), "AUDIT_WRONG_PW")
    unreachable = f"pop3://nobody@127.0.0.1:{free_port}?password=env:AUDIT_WRONG_PW"

    result = audit.run(
        {"mailboxes": [good, wrong, unreachable], "since": None, "max_concurrency": 3}
    )

    rows = list(result.table.to_dict("records"))
    states = {row["connection"].split("@", 1)[0]: row for row in rows}
    ok = states["imap://crm"]
    assert ok["state"] == "ok" and pd.isna(ok["error"])
    assert ok["items"] == 3 and ok["unprocessed"] == 3 and ok["tracked"] == 3
    assert ok["oldest_unprocessed_subject"] == "Question 0"
    refused = states["pop3://bob"]
    assert refused["state"] == "auth-failed"
    assert "[AUTH] Authentication failed." in refused["error"]  # Dovecot's own words
    assert pd.isna(refused["items"])  # no counts for a mailbox we could not open
    down = states["pop3://nobody"]
    assert down["state"] == "unreachable"
    assert f"127.0.0.1:{free_port} refused" in down["error"]
    assert result.counts == {"auth-failed": 1, "unreachable": 1, "ok": 1}
    assert not result.ok
    assert "not-the-password" not in str(result) + result.table.to_csv()


def test_unprocessed_counts_only_what_no_routing_run_has_handled(dovecot: Dovecot, tmp_path):
    crm_url = demo_crm(tmp_path)
    dovecot.reset("crm")
    dovecot.deliver(message("Routed already"), to="crm@example.test")
    url = dovecot.url("imap", "crm", owner=SUPPORT)
    routed = route(crm_url, url)
    assert routed.counts == {"created": 1}
    dovecot.deliver(message("Arrived later"), to="crm@example.test")

    result = audit.run({"mailboxes": [url], "crm": crm_url, "since": None})

    row = next(
        r for r in result.table.to_dict("records") if str(r["connection"]).startswith("imap")
    )
    assert row["state"] == "ok" and row["items"] == 2 and row["unprocessed"] == 1
    assert row["oldest_unprocessed_subject"] == "Arrived later"
    assert row["last_run_outcomes"] == "created: 1"
    assert row["name"] == "Support" and row["incoming_delivery"] == "Email Router"


def test_untrusted_certificate_is_a_tls_failure(dovecot_tls: Dovecot):
    url = dovecot_tls.url("imaps", "crm", cafile=False)  # the system CAs do not know the test CA
    result = audit.run({"mailboxes": [url], "since": None})
    row = result.table.to_dict("records")[0]
    assert row["state"] == "tls-failed"
    assert "certificate" in row["error"].lower()
    trusted = audit.run({"mailboxes": [dovecot_tls.url("imaps", "crm")], "since": None})
    assert trusted.table.loc[0, "state"] == "ok"
