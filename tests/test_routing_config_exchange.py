"""Routing and auditing the Exchange providers a router configuration lists (issue 15.2): the
users' and queues' mailboxes over EWS, a service account ("Other specified", impersonation) or each
user's own login ("User specified"), the forward mailbox, against the protocol-level fake Exchange;
Local System and Anonymous are skipped with what to do instead."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

from fixtures_ews import FORWARD_BOX, PASSWORD, SUPPORT_BOX
from routing_helpers import crm_store, demo_crm, message, route

from emailrouter_lib import audit
from emailrouter_lib.config import load_config
from emailrouter_lib.crm import demo
from emailrouter_lib.routing.config_sources import mailboxes_from_config

PROVIDER = """
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>{name}</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>Exchange2010</EmailServerType>
    <EmailServerUrl>{server}</EmailServerUrl>
    <EmailAuthMode>{auth}</EmailAuthMode>
    <EmailAccessCredentials>{credentials}</EmailAccessCredentials>
    {extra}
  </ProviderConfiguration>"""


def write_config(tmp_path, *providers: str) -> str:
    path = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    body = "".join(providers)
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<Configuration>{body}\n</Configuration>\n',
        encoding="utf-8",
    )
    return str(path)


def provider(
    name: str,
    server: str,
    *,
    credentials="OtherSpecified",
    auth="WindowsAuthentication",
    extra: str = "",
) -> str:
    return PROVIDER.format(
        name=name, server=server, auth=auth, credentials=credentials, extra=extra
    )


def service_account(server: str) -> str:
    """The service account of tests/fixtures_ews.py reading Alice's and the support queue's
    mailboxes, as the sample configuration's Exchange provider does."""
    return provider(
        "Exchange incoming",
        server,
        extra=f"<EmailUser>CONTOSO\\svc</EmailUser><UserId>{demo.ALICE.id}</UserId>"
        f"<QueueId>{demo.SUPPORT.id}</QueueId>",
    )


def forward_mailbox(server: str) -> str:
    return provider(
        "Exchange forward mailbox",
        server,
        extra=f"<EmailUser>CONTOSO\\svc</EmailUser><IsForwardMailbox>true</IsForwardMailbox>"
        f"<EmailAddress>{FORWARD_BOX}</EmailAddress><DeleteEmails>true</DeleteEmails>"
        f"<UserId>{demo.FRANK.id}</UserId>",
    )


def endpoint(ews) -> str:
    return f"http://{ews.host}:{ews.port}/EWS/Exchange.asmx"


def test_exchange_providers_become_ews_urls(tmp_path):
    crm = crm_store(demo_crm(tmp_path))
    config = write_config(
        tmp_path,
        service_account("https://mail.contoso.example/EWS/Exchange.asmx"),
        provider(
            "Autodiscover, own logins",
            "",
            credentials="UserSpecified",
            auth="ClearText",
            extra=f"<UserId>{demo.BOB.id}</UserId>",
        ),
        provider(
            "Local system", "", credentials="LocalSystem", extra=f"<UserId>{demo.GINA.id}</UserId>"
        ),
        forward_mailbox("https://mail.contoso.example/EWS/Exchange.asmx"),
    )
    found = mailboxes_from_config(load_config(config), crm, password="env:PW_{local}")
    urls = {m.label.split(" / ")[-1]: m.url for m in found}
    alice = urlsplit(urls[demo.ALICE.address])
    assert (alice.scheme, alice.hostname, alice.path) == (
        "ewss",
        "mail.contoso.example",
        "/EWS/Exchange.asmx",
    )
    assert alice.username == "CONTOSO%5Csvc"
    query = parse_qs(alice.query)
    assert query["mailbox"] == [demo.ALICE.address]
    assert query["owner"] == [f"user:{demo.ALICE.address}"]
    assert query["password"] == ["env:PW_svc"]  # the secret belongs to the service account
    assert "access" not in query  # another's mailbox: impersonation, the URL's default
    assert parse_qs(urlsplit(urls[demo.SUPPORT.address]).query)["owner"] == [
        f"queue:{demo.SUPPORT.address}"
    ]
    bob = urlsplit(urls[demo.BOB.address])
    assert bob.hostname == "autodiscover" and parse_qs(bob.query)["auth"] == ["basic"]
    assert parse_qs(bob.query)["password"] == ["env:PW_bob"]
    forward = parse_qs(urlsplit(urls[FORWARD_BOX]).query)
    assert forward["forward"] == ["1"] and forward["after"] == ["delete"]
    skipped = {m.label.split(" / ")[-1]: m.skipped for m in found if m.skipped}
    assert list(skipped) == [demo.GINA.address]
    assert "Local System" in skipped[demo.GINA.address]
    assert all("not routed yet" not in (m.skipped or "") for m in found)


def test_route_from_config_reads_exchange_mailboxes_with_the_service_account(ews, tmp_path):
    crm_url = demo_crm(tmp_path)
    to_alice = message("For Alice over EWS", to=demo.ALICE.address)
    to_support = message("For support over EWS", to=SUPPORT_BOX)
    ews.deliver(demo.ALICE.address, to_alice)
    ews.deliver(SUPPORT_BOX, to_support)
    config = write_config(tmp_path, service_account(endpoint(ews)))
    result = route(crm_url, config=config, config_password="env:EWS_PASSWORD")
    assert [m.status for m in result.mailboxes] == ["ok", "ok"], result.mailboxes
    assert result.counts == {"created": 2}
    store = crm_store(crm_url)
    alice = store.emails_with_message_id(to_alice["Message-ID"])[0]
    support = store.emails_with_message_id(to_support["Message-ID"])[0]
    assert alice["acceptingentityid"] == demo.ALICE.id
    assert support["acceptingentityid"] == demo.SUPPORT.id
    # impersonation: the service account acts as each mailbox
    assert {e.impersonated for e in ews.log if e.impersonated} >= {
        demo.ALICE.address,
        SUPPORT_BOX,
    }
    again = route(crm_url, config=config, config_password="env:EWS_PASSWORD")
    assert again.rows == [] and [m.already_done for m in again.mailboxes] == [1, 1]


def test_route_from_config_with_user_specified_logins(ews, tmp_path, monkeypatch):
    crm_url = demo_crm(tmp_path)
    ews.add_user("bob@contoso.example", "Bobs-Own-1")  # Bob logs in to his own mailbox
    monkeypatch.setenv("PW_bob", "Bobs-Own-1")
    msg = message("Bob reads his own", to=demo.BOB.address)
    ews.deliver(demo.BOB.address, msg)
    config = write_config(
        tmp_path,
        provider(
            "Own logins",
            endpoint(ews),
            credentials="UserSpecified",
            auth="ClearText",
            extra=f"<UserId>{demo.BOB.id}</UserId>",
        ),
    )
    result = route(crm_url, config=config, config_password="env:PW_{local}")
    assert [m.status for m in result.mailboxes] == ["ok"], result.mailboxes
    assert result.counts == {"filtered:not-a-response": 1}  # read; Bob tracks replies only


def test_route_from_config_reads_the_exchange_forward_mailbox(ews, tmp_path):
    crm_url = demo_crm(tmp_path)
    original = message("Forwarded by Frank's rule", to=demo.FRANK.address)
    wrapper = message(f"FW: {original['Subject']}", sender=demo.FRANK.address, to=FORWARD_BOX)
    wrapper.add_attachment(original.as_bytes(), maintype="message", subtype="rfc822")
    ews.add_user(FORWARD_BOX)  # already there; the service account has impersonation
    ews.deliver(FORWARD_BOX, wrapper)
    config = write_config(tmp_path, forward_mailbox(endpoint(ews)))
    result = route(crm_url, config=config, config_password="env:EWS_PASSWORD")
    assert result.counts == {"created": 1}, result.rows
    assert ews.items(FORWARD_BOX) == []  # DeleteEmails: handled items leave the forward mailbox


def test_the_cli_routes_an_exchange_config(ews, tmp_path, monkeypatch):
    crm_url = demo_crm(tmp_path)
    ews.deliver(SUPPORT_BOX, message("Through the command", to=SUPPORT_BOX))
    config = write_config(tmp_path, service_account(endpoint(ews)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "emailrouter_lib.cli",
            "route",
            "--config",
            config,
            "--config-password",
            "env:EWS_PASSWORD",
            "--crm",
            crm_url,
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "EWS_PASSWORD": PASSWORD},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not routed yet" not in done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert crm_store(crm_url).emails(directioncode=0)


def test_the_audit_counts_exchange_mailboxes_from_the_config(ews, tmp_path):
    crm_url = demo_crm(tmp_path)
    ews.deliver(SUPPORT_BOX, message("Waiting in the queue", to=SUPPORT_BOX))
    config = write_config(tmp_path, service_account(endpoint(ews)))
    result = audit.run(
        {
            "crm": crm_url,
            "config": config,
            "config_password": "env:EWS_PASSWORD",
            "since": None,
            "run_dir": str(tmp_path / "audit"),
        }
    )
    rows = {r.target.address: r.probe for r in result.rows if r.target.address}
    assert rows[SUPPORT_BOX].state == "ok", rows[SUPPORT_BOX]
    assert rows[SUPPORT_BOX].items == 1
    assert rows[demo.ALICE.address].state == "ok", rows[demo.ALICE.address]
