"""Where each sender's email leaves by, and which setting said so (routing/transports.py).

The order: ``transports[ADDRESS]`` → ``transports["*"]`` → the router configuration's outgoing
provider listing the user/queue GUID → the CRM mailbox's email server profile (tested and enabled)
→ the pickup folder. Resolution is checked directly, then end to end against a real aiosmtpd: a
configuration or a CRM profile pointing at the sink, its rows naming the rule, a broken rule
leaving the email in Pending Send. The approval decision (organisation switch) is tested last.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fixtures_smtp import PASSWORD_ENV, parse, send_pending
from routing_helpers import crm_store, demo_crm

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.crm.base import SendingMailbox
from emailrouter_lib.errors import RoutingError
from emailrouter_lib.routing.transports import TransportResolver

ALICE = SendingMailbox("systemuser", seed.ALICE.id, "Alice Admin", seed.ALICE_ADDRESS)
BOB = SendingMailbox("systemuser", seed.BOB.id, "Bob Sales", seed.BOB_ADDRESS)
SUPPORT = SendingMailbox("queue", seed.SUPPORT.id, "Support", seed.SUPPORT_ADDRESS)


def provider(server: str, *ids: str, queue_ids: tuple[str, ...] = (), **elements: str) -> str:
    """One outgoing SMTP ``<ProviderConfiguration>`` listing these user (and queue) GUIDs."""
    values = {
        "ProviderClass": "Microsoft.Crm.Tools.Email.Providers.SmtpPollingSendEmailProvider",
        "ProfileName": "SMTP outgoing",
        "Direction": "Outbound",
        "EmailServerType": "SMTP",
        "EmailServerUrl": server,
        "EmailAuthMode": "Anonymous",
        "UseSsl": "false",
        "AccessType": "SendAs",
        **elements,
    }
    body = "".join(f"<{k}>{v}</{k}>" for k, v in values.items())
    body += "".join(f"<UserId>{i}</UserId>" for i in ids)
    body += "".join(f"<QueueId>{i}</QueueId>" for i in queue_ids)
    return f"<ProviderConfiguration>{body}</ProviderConfiguration>"


def write_config(folder: Path, *providers: str) -> str:
    path = folder / "Microsoft.Crm.Tools.EmailAgent.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<Configuration>\n'
        "<SystemConfiguration><LogLevel>1</LogLevel></SystemConfiguration>\n"
        + "\n".join(providers)
        + "\n</Configuration>\n"
    )
    return str(path)


def sql(crm_url: str, statement: str, *params) -> None:
    conn = sqlite3.connect(crm_url.removeprefix("sqlite:///"))
    with conn:
        conn.execute(statement, params)
    conn.close()


def mark_tested(crm_url: str, *records) -> None:
    """Mark these users'/queues' CRM mailboxes as tested and enabled for outgoing email."""
    for record in records:
        sql(crm_url, "UPDATE mailbox SET outgoingemailstatus = 1 WHERE regardingobjectid = ?",
            record.id)  # fmt: skip


def resolver(tmp_path, crm_url=None, config=None, transports=None, password=None):
    return TransportResolver(
        transports=transports or {},
        pickup_dir=str(tmp_path / "outbox"),
        crm=crm_store(crm_url) if crm_url else None,
        config=load_config(config) if config else None,
        password=password,
    )


# -- resolution ----------------------------------------------------------------------------------


def test_the_first_rule_that_knows_the_sender_wins(tmp_path):
    crm_url = demo_crm(tmp_path)
    mark_tested(crm_url, seed.ALICE, seed.BOB, seed.SUPPORT)
    relay = provider("relay.contoso.example:25", seed.ALICE.id, seed.BOB.id)
    config = write_config(tmp_path, relay)
    explicit = {seed.ALICE_ADDRESS: "smtp://alice-relay.example:25"}
    r = resolver(tmp_path, crm_url, config, explicit, password="env:PW_{local}")
    assert (r.choose(ALICE).rule, r.choose(ALICE).url) == ("address", explicit[seed.ALICE_ADDRESS])
    bob = r.choose(BOB)
    assert bob.rule == "config" and bob.url == "smtp://relay.contoso.example:25"
    assert bob.explained.startswith("config: outgoing provider 'SMTP outgoing'")
    assert "Microsoft.Crm.Tools.EmailAgent.xml:" in bob.detail  # file and line
    support = r.choose(SUPPORT)  # not in the configuration: its CRM mailbox's profile
    assert support.rule == "crm-profile" and "'Contoso POP3/SMTP'" in support.detail
    assert support.url == (
        "smtp://crm-queues@smtp.contoso.example:587?starttls=1&password=env:PW_support"
    )
    star = resolver(tmp_path, crm_url, config, {"*": "smtp://all.example:25"})
    assert {star.choose(s).rule for s in (ALICE, BOB, SUPPORT)} == {"default"}
    nothing = resolver(tmp_path)
    assert nothing.choose(ALICE).rule == "pickup"
    assert nothing.choose(ALICE).url == f"pickup://{tmp_path / 'outbox'}"


@pytest.mark.parametrize(
    ("elements", "url"),
    [
        ({"UseSsl": "true", "EmailServerUrl": "smtp.contoso.example:465"},
         "smtps://smtp.contoso.example:465"),
        ({"UseSsl": "true", "EmailServerUrl": "smtp.contoso.example"},
         "smtps://smtp.contoso.example"),
        ({"UseSsl": "true", "EmailServerUrl": "smtp.contoso.example:587"},
         "smtp://smtp.contoso.example:587?starttls=1"),
        ({"UseSsl": "true", "EmailAuthMode": "ClearText",
          "EmailAccessCredentials": "OtherSpecified", "EmailUser": "crm-relay@contoso.example",
          "EmailServerUrl": "smtp.contoso.example:587"},
         "smtp://crm-relay%40contoso.example@smtp.contoso.example:587?starttls=1"
         "&password=env:PW_alice"),
        ({"UseSsl": "true", "EmailAuthMode": "ClearText",
          "EmailAccessCredentials": "UserSpecified", "EmailServerUrl": "smtp.contoso.example:465"},
         "smtps://alice%40contoso.example@smtp.contoso.example:465?password=env:PW_alice"),
        ({"AccessType": "Delegate", "EmailAddress": "crm@contoso.example"},
         "smtp://smtp.contoso.example:25?access=delegate&sender=crm@contoso.example"),
    ],
)  # fmt: skip
def test_an_outgoing_provider_becomes_an_smtp_url(tmp_path, elements, url):
    base = {"EmailServerUrl": "smtp.contoso.example:25", **elements}
    config = write_config(tmp_path, provider(base.pop("EmailServerUrl"), seed.ALICE.id, **base))
    choice = resolver(tmp_path, config=config, password="env:PW_{local}").choose(ALICE)
    assert (choice.rule, choice.url, choice.problem) == ("config", url, None)


@pytest.mark.parametrize(
    ("elements", "password", "problem"),
    [
        ({"EmailAuthMode": "WindowsAuthentication"}, None, "Windows (NTLM)"),
        ({"EmailAuthMode": "ClearText", "EmailAccessCredentials": "UserSpecified"}, None,
         "transport_password"),
        ({"EmailAuthMode": "ClearText", "EmailAccessCredentials": "LocalSystem"}, "env:X",
         "Local System"),
        ({"AccessType": "Delegate"}, None, "AccessType Delegate"),
        ({"EmailAuthMode": "ClearText", "EmailAccessCredentials": "UserSpecified"}, "env:X",
         "clear text"),  # UseSsl false to a host on the network: the password would leak
    ],
)  # fmt: skip
def test_a_provider_that_cannot_work_is_a_problem_not_a_fallback(
    tmp_path, elements, password, problem
):
    config = write_config(tmp_path, provider("smtp.contoso.example:25", seed.ALICE.id, **elements))
    choice = resolver(tmp_path, config=config, password=password).choose(ALICE)
    assert choice.rule == "config" and choice.url is None
    assert problem in choice.problem and "SMTP outgoing" in choice.problem


def test_an_exchange_provider_sends_from_the_users_mailbox(tmp_path):
    xml = provider(
        "https://mail.contoso.example/EWS/Exchange.asmx",
        seed.ALICE.id,
        ProviderClass="Microsoft.Crm.Tools.Email.Providers.ExchangeSendEmailProvider",
        EmailServerType="Exchange2010",
        EmailAuthMode="WindowsAuthentication",
        EmailAccessCredentials="OtherSpecified",
        EmailUser="CONTOSO\\svc",
        UseSsl="true",
    )
    choice = resolver(tmp_path, config=write_config(tmp_path, xml), password="env:EWS_PW")
    got = choice.choose(ALICE)
    assert got.problem is None and got.url == (
        "ewss://CONTOSO%5Csvc@mail.contoso.example/EWS/Exchange.asmx?mailbox=alice@contoso.example"
        "&auth=ntlm&access=delegate&password=env:EWS_PW"
    )


def test_a_crm_profile_is_used_only_for_a_mailbox_tested_and_enabled(tmp_path):
    crm_url = demo_crm(tmp_path)
    untested = resolver(tmp_path, crm_url, password="env:PW").choose(ALICE)
    assert untested.rule == "pickup" and "never tested" in untested.detail  # the demo CRM as is
    mark_tested(crm_url, seed.ALICE)
    alice = resolver(tmp_path, crm_url, password="env:PW").choose(ALICE)
    assert alice.rule == "crm-profile" and "'Contoso Exchange'" in alice.detail
    assert alice.url.startswith("ewss://CONTOSO%5Csvc-crm-email@")
    assert "mailbox=alice@contoso.example" in alice.url and "access=delegate" in alice.url
    sql(crm_url, "UPDATE mailbox SET outgoingemailstatus = 2 WHERE regardingobjectid = ?",
        seed.ALICE.id)  # fmt: skip
    failed = resolver(tmp_path, crm_url, password="env:PW").choose(ALICE)
    assert failed.url is None and "Test & Enable" in failed.problem
    sql(crm_url, "UPDATE emailserverprofile SET outgoingcredentialretrieval = 2")
    mark_tested(crm_url, seed.BOB)
    s2s = resolver(tmp_path, crm_url, password="env:PW").choose(BOB)
    assert s2s.url is None and "Server to Server" in s2s.problem


def test_a_password_template_must_be_a_reference(tmp_path):
    with pytest.raises(RoutingError, match="secret reference template"):
        resolver(tmp_path, password="hunter2")


# -- end to end, through a real SMTP server ------------------------------------------------------


def test_the_configurations_provider_sends_through_its_server(tmp_path, smtp_sink_auth):
    crm_url = demo_crm(tmp_path)
    xml = provider(
        f"{smtp_sink_auth.host}:{smtp_sink_auth.port}",
        seed.ALICE.id,
        seed.BOB.id,
        queue_ids=(seed.SUPPORT.id,),
        EmailAuthMode="ClearText",
        EmailAccessCredentials="OtherSpecified",
        EmailUser="crm",
    )
    result = send_pending(
        crm_url,
        config=write_config(tmp_path, xml),
        transport_password=f"env:{PASSWORD_ENV}",
    )
    assert result.outgoing_counts == {"sent": 3}, result.outgoing_table.to_string()
    assert len(smtp_sink_auth.messages) == 3
    assert {m.login for m in smtp_sink_auth.messages} == {"crm"}
    rules = set(result.outgoing_table["transport_rule"])
    assert len(rules) == 1 and rules.pop().startswith("config: outgoing provider 'SMTP outgoing'")


def test_a_crm_profile_sends_and_a_broken_one_leaves_the_email_pending(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    # The queues' POP3/SMTP profile points at the sink, anonymously; Alice's Exchange profile
    # uses Windows integrated credentials, which cannot work from here.
    sql(crm_url, "UPDATE emailserverprofile SET outgoingserverlocation = ?, outgoingportnumber = ?,"
        " outgoingusessl = 0, outgoingcredentialretrieval = 4 WHERE name = 'Contoso POP3/SMTP'",
        smtp_sink.host, smtp_sink.port)  # fmt: skip
    sql(crm_url, "UPDATE emailserverprofile SET outgoingcredentialretrieval = 3"
        " WHERE name = 'Contoso Exchange'")  # fmt: skip
    mark_tested(crm_url, seed.SUPPORT, seed.ALICE)  # Bob's mailbox stays untested: pickup
    result = send_pending(crm_url)
    rows = {r.activityid: r for r in result.outgoing}
    case = rows[seed.PENDING_CASE.activityid]
    assert case.outcome == "sent" and case.transport_rule.startswith("crm-profile: mailbox")
    assert [parse(m)["From"] for m in smtp_sink.messages] == ["Support <support@contoso.example>"]
    shipping = rows[seed.PENDING_SHIPPING.activityid]
    assert shipping.outcome == "skipped:no-transport"
    assert "Windows Integrated" in shipping.reason
    pricing = rows[seed.PENDING_PRICING.activityid]
    assert pricing.outcome == "sent" and pricing.transport_rule.startswith("pickup:")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    left = crm_store(crm_url).email(seed.PENDING_SHIPPING.activityid)
    assert (left["statuscode"], left["deliveryattempts"]) == (6, 0)  # untouched, not failed


# -- approval (the organisation's switch; see the routing.outgoing docstring) -------------------


def test_queues_must_be_approved_when_the_organisation_requires_it(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    sql(crm_url, "UPDATE queue SET emailrouteraccessapproval = 2 WHERE queueid = ?",
        seed.SUPPORT.id)  # fmt: skip
    sql(
        crm_url,
        "UPDATE systemuser SET emailrouteraccessapproval = 3 WHERE systemuserid = ?",
        seed.BOB.id,
    )  # fmt: skip  (rejected, but users need no approval here)
    sql(crm_url, "UPDATE organization SET requireapprovalforqueueemail = 1")
    result = send_pending(crm_url, smtp_sink.url(None))
    rows = {r.activityid: r for r in result.outgoing}
    assert rows[seed.PENDING_CASE.activityid].outcome == "skipped:not-approved"
    assert "support@contoso.example is not approved" in rows[seed.PENDING_CASE.activityid].reason
    assert rows[seed.PENDING_PRICING.activityid].outcome == "sent"
    assert len(smtp_sink.messages) == 2


def test_without_the_organisations_requirement_approval_is_not_consulted(tmp_path, smtp_sink):
    crm_url = demo_crm(tmp_path)
    sql(crm_url, "UPDATE systemuser SET emailrouteraccessapproval = 2")
    sql(crm_url, "UPDATE queue SET emailrouteraccessapproval = 3")
    result = send_pending(crm_url, smtp_sink.url(None))
    assert result.outgoing_counts == {"sent": 3} and len(smtp_sink.messages) == 3
    sql(crm_url, "UPDATE email SET statuscode = 6, statecode = 1 WHERE activityid = ?",
        seed.PENDING_PRICING.activityid)  # fmt: skip
    sql(crm_url, "UPDATE organization SET requireapprovalforuseremail = 1")
    again = send_pending(crm_url, smtp_sink.url(None), pending_status_delay=0)
    assert again.outgoing_counts == {"skipped:not-approved": 1} and len(smtp_sink.messages) == 3
