"""Routing the mailboxes a router configuration lists: owners from the CRM by GUID, POP3 servers
from the providers, passwords by a reference template; what cannot be routed is said, not lost."""

from __future__ import annotations

import pytest
from routing_helpers import crm_store, demo_crm, message, route
from servers import Dovecot

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import demo
from emailrouter_lib.errors import RoutingError
from emailrouter_lib.routing.config_sources import mailboxes_from_config

CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<Configuration>
  <SystemConfiguration><MaxThreads>5</MaxThreads></SystemConfiguration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider</ProviderClass>
    <ProfileName>POP3 incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>POP3</EmailServerType>
    <EmailServerUrl>{server}</EmailServerUrl>
    <EmailAuthMode>ClearText</EmailAuthMode>
    <EmailAccessCredentials>UserSpecified</EmailAccessCredentials>
    <UseSsl>false</UseSsl>
    <UserId>{alice}</UserId>
    <UserId>0a1b2c3d-0000-0000-0000-000000000000</UserId>
  </ProviderConfiguration>
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>Exchange incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerUrl>https://127.0.0.1:1/EWS/Exchange.asmx</EmailServerUrl>
    <UserId>{bob}</UserId>
  </ProviderConfiguration>
</Configuration>
"""


def write_config(tmp_path, server: str) -> str:
    path = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    path.write_text(CONFIG.format(server=server, alice=demo.ALICE.id.upper(), bob=demo.BOB.id))
    return str(path)


def test_config_mailboxes_become_urls_owned_by_the_listed_users(tmp_path):
    crm_url = demo_crm(tmp_path)
    config = load_config(write_config(tmp_path, "pop.contoso.example:110"))
    found = mailboxes_from_config(config, crm_store(crm_url), password="env:PW_{local}")
    urls = [m.url for m in found if m.url]
    assert urls == [
        "pop3://alice%40contoso.example@pop.contoso.example:110"
        "?owner=user:alice@contoso.example&password=env:PW_alice",
        "ewss://bob%40contoso.example@127.0.0.1:1/EWS/Exchange.asmx"
        "?mailbox=bob@contoso.example&owner=user:bob@contoso.example&password=env:PW_bob",
    ]
    skipped = [m.skipped for m in found if m.skipped]
    assert len(skipped) == 1 and "not in the CRM" in skipped[0]


def test_a_literal_password_template_is_refused(tmp_path):
    crm_url = demo_crm(tmp_path)
    config = load_config(write_config(tmp_path, "pop.contoso.example"))
    with pytest.raises(RoutingError, match="secret reference"):
        mailboxes_from_config(config, crm_store(crm_url), password="hunter2")


@pytest.mark.dovecot
def test_route_from_config_reads_the_users_pop3_mailbox(dovecot: Dovecot, tmp_path, monkeypatch):
    crm_url = demo_crm(tmp_path)
    dovecot.reset("alice")
    msg = message("From the config", to=demo.ALICE.address)
    dovecot.deliver(msg, to="alice@example.test")
    monkeypatch.setenv("PW_alice", dovecot.users["alice"])
    config = write_config(tmp_path, f"{dovecot.host}:{dovecot.ports['pop3']}")
    result = route(crm_url, config=config, config_password="env:PW_{local}")
    assert result.counts == {"created": 1}
    # the unknown user is skipped; Exchange on port 1 refuses the connection: reported, not lost
    assert [m.status for m in result.mailboxes] == ["skipped", "ok", "error"]
    email = crm_store(crm_url).emails_with_message_id(msg["Message-ID"])[0]
    assert email["acceptingentityid"] == demo.ALICE.id
