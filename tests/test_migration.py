"""Planning the migration: the reference sample, variants, several routers, hostile XML.

The plan is checked by its Dataverse column values (Microsoft's mapping, option sets), by the
warnings it carries, and by what it must never carry: a password or ciphertext from the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_migration import (
    DATA,
    SAMPLE,
    assert_no_secret,
    variant,
)

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import demo as seed
from emailrouter_lib.demo.migration import SAMPLE_PASSWORD_TEXT, prepare_migration_demo
from emailrouter_lib.errors import ConfigError, ConfigSyntaxError
from emailrouter_lib.migration import (
    PlanOptions,
    RouterInput,
    build_plan,
    build_schedule,
    load_routers,
    write_plan,
)
from emailrouter_lib.migration import mapping as m
from emailrouter_lib.migration.model import MailboxPlan, MigrationPlan

FIXED = PlanOptions(created="2024-03-08T00:00:00Z")


def plan_of(*names: str, crm=None, **options) -> MigrationPlan:
    routers = [load_config(variant(n)) for n in names]
    return build_plan(routers, crm, PlanOptions(created="2024-03-08T00:00:00Z", **options))


def codes(plan: MigrationPlan) -> list[str]:
    return [w.code for w in plan.warnings]


def mailbox(plan: MigrationPlan, owner: str) -> MailboxPlan:
    return next(mb for mb in plan.mailboxes if mb.owner == owner)


# --- the reference sample ----------------------------------------------------------------------


def test_reference_sample_plans_microsofts_mapping(sample):
    plan = build_plan([load_config(sample)], options=FIXED)
    profiles = {p.name: p for p in plan.profiles}
    assert set(profiles) == {
        "Exchange 2010 incoming + SMTP outgoing",
        "Exchange 2010 incoming",
        "POP3 incoming + SMTP outgoing",
    }
    exchange = profiles["Exchange 2010 incoming + SMTP outgoing"]
    assert exchange.servertype == m.SERVERTYPE_EXCHANGE
    assert exchange.incomingcredentialretrieval == m.CREDENTIALS_PROFILE  # Other specified
    assert exchange.incomingserverlocation == "https://mail.contoso.local/EWS/Exchange.asmx"
    assert exchange.outgoingserverlocation == exchange.incomingserverlocation  # sent through EWS
    assert exchange.incomingusessl and not exchange.useautodiscover
    assert exchange.exchangeversion == 2
    assert exchange.password_reference.startswith("env:")
    pop3 = profiles["POP3 incoming + SMTP outgoing"]
    assert pop3.servertype == m.SERVERTYPE_OTHER
    assert (pop3.incomingcredentialretrieval, pop3.outgoingcredentialretrieval) == (0, 4)
    assert (pop3.incomingserverlocation, pop3.incomingportnumber) == ("pop.contoso-mail.net", 995)
    assert (pop3.outgoingserverlocation, pop3.outgoingportnumber) == ("smtp.contoso.local", 25)
    assert pop3.incomingusessl and not pop3.outgoingusessl

    by_owner = {mb.owner: mb for mb in plan.mailboxes}
    a01, a03 = f"user:{seed.ALICE.id}", f"user:{seed.FRANK.id}"
    assert by_owner[a01].emailserverprofile == exchange.name
    alice = by_owner[a01]
    assert (alice.incomingemaildeliverymethod, alice.outgoingemaildeliverymethod) == (2, 2)
    assert by_owner[a03].incomingemaildeliverymethod == 3  # reads through the forward mailbox
    forward = by_owner["forward:crm-sink@contoso.com"]
    assert forward.isforwardmailbox and forward.name == "CRM sink"
    assert forward.processanddeleteemails is True and forward.outgoingemaildeliverymethod == 0
    assert by_owner[f"queue:{seed.SALES.id}"].emailserverprofile == pop3.name
    assert len(plan.mailboxes) == 6 and not plan.not_migrated
    assert {"non-ssl", "exchange-smtp", "no-crm"} <= set(codes(plan))


def test_plan_json_has_the_dataverse_fields_and_no_secret(sample, tmp_path):
    plan = build_plan([load_config(sample)], options=FIXED)
    written = write_plan(plan, tmp_path / "plan.json", "json")
    data = json.loads(written[0].read_text(encoding="utf-8"))
    for profile in data["profiles"]:
        for key in (
            "name",
            "servertype",
            "incomingcredentialretrieval",
            "outgoingcredentialretrieval",
            "incomingserverlocation",
            "outgoingserverlocation",
            "incomingusessl",
            "outgoingusessl",
            "useautodiscover",
            "incoming_profile",
            "outgoing_profile",
        ):
            assert key in profile
    for mb in data["mailboxes"]:
        assert mb["owner"].split(":")[0] in ("user", "queue", "forward")
        for key in (
            "emailserverprofile",
            "incomingemaildeliverymethod",
            "outgoingemaildeliverymethod",
            "isforwardmailbox",
        ):
            assert key in mb
    assert set(data["warnings"][0]) >= {"code", "profile", "message"}
    assert "not_migrated" in data and data["organization"]["emailconnectionchannel"] == 0
    text = written[0].read_text(encoding="utf-8")
    assert SAMPLE_PASSWORD_TEXT in sample.read_text(encoding="utf-8")
    assert SAMPLE_PASSWORD_TEXT not in text
    for fmt, target in (("csv", tmp_path / "csv"), ("xlsx", tmp_path / "plan.xlsx")):
        for path in write_plan(plan, target, fmt):
            assert SAMPLE_PASSWORD_TEXT.encode() not in _content(path)


def _content(path: Path) -> bytes:
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path)
        cells = [str(c.value) for ws in book for row in ws.iter_rows() for c in row]
        return "\n".join(cells).encode()
    return path.read_bytes()


def test_reference_sample_against_the_demo_crm_finds_every_mailbox(sample, demo_crm):
    """`emailrouter crm init --demo` creates the records the bundled sample names (issue 15.6)."""
    plan = build_plan([load_config(sample)], demo_crm, FIXED)
    assert [mb.owner for mb in plan.mailboxes if mb.action == "skip"] == []
    assert "not-in-crm" not in codes(plan)
    assert mailbox(plan, "forward:crm-sink@contoso.com").action == "create"


def test_demo_config_is_the_bundled_sample(sample, tmp_path):
    demo = prepare_migration_demo(tmp_path)
    assert demo.config.read_bytes() == sample.read_bytes()


# --- variants of one router ----------------------------------------------------------------------


def comparable(plan: MigrationPlan) -> dict:
    data = plan.to_dict()
    data.pop("sources")  # the file names differ, nothing else may
    return data


@pytest.mark.parametrize(
    "name", ["case-order-comments.xml", "bom-crlf.xml", "unknown-elements.xml"]
)
def test_variants_plan_like_the_canonical_router(name):
    canonical, other = plan_of("router-a.xml"), plan_of(name)
    key = lambda items: sorted(json.dumps(i, sort_keys=True, default=str) for i in items)  # noqa: E731
    for part in ("profiles", "not_migrated"):
        assert key(comparable(other)[part]) == key(comparable(canonical)[part]), part
    assert {mb.owner: mb for mb in other.mailboxes} == {mb.owner: mb for mb in canonical.mailboxes}
    assert sorted(codes(other)) == sorted(codes(canonical))
    assert_no_secret(other.to_json(), name)


def test_unknown_elements_are_kept_out_of_the_plan():
    plan = plan_of("unknown-elements.xml")
    text = plan.to_json() + "".join(t.to_csv() for t in plan.tables().values())
    assert "unknown-element-value" not in text and "telemetry.invalid" not in text


def test_missing_optional_parts_get_defaults_and_warnings():
    plan = plan_of("minimal.xml")
    (profile,) = plan.profiles
    assert profile.servertype == m.SERVERTYPE_OTHER
    assert (profile.incomingserverlocation, profile.incomingportnumber) == (
        "pop.contoso.example",
        110,
    )
    assert profile.incomingusessl is False  # port 110 is plain POP3
    assert {"unknown-credentials", "non-ssl"} <= set(codes(plan))
    (only,) = plan.mailboxes
    assert (only.incomingemaildeliverymethod, only.outgoingemaildeliverymethod) == (2, None)


def test_state_file_is_read_when_given(tmp_path):
    routers = load_routers([variant("router-a.xml")], [variant("SystemState.xml")])
    plan = build_plan(routers, options=FIXED)
    assert plan.sources[0].state.endswith("SystemState.xml") and plan.sources[0].state_records == 2
    assert_no_secret(plan.to_json(), "plan with a state file")
    with pytest.raises(ConfigError, match="no such state file"):
        load_routers([variant("router-a.xml")], [tmp_path / "missing.xml"])


# --- several routers ---------------------------------------------------------------------------


def test_several_routers_with_overlapping_users(demo_crm):
    plan = plan_of("router-a.xml", "router-b.xml", crm=demo_crm)
    found = codes(plan)
    assert found.count("in-several-routers") == 2  # Bob and the Sales queue
    assert "mixed-online-onpremises" in found and "profile-name-clash" in found
    bob = mailbox(plan, "user:5fbcb4b1-4f0a-5f49-9fef-46e426a2f6a0")
    assert bob.emailserverprofile == "Contoso Exchange in + Relay"  # the first router decides
    assert bob.routers == ["router 1", "router 2"]
    names = {p.name for p in plan.profiles}
    assert {"Queue POP3 + Relay", "Queue POP3 + Relay (2)"} <= names
    online = plan.profile("Contoso Exchange in + Online out")
    assert online.servertype == m.SERVERTYPE_EXCHANGE_ONLINE_HYBRID  # router A's CRM is on premises
    assert online.incomingcredentialretrieval == m.CREDENTIALS_SERVER_TO_SERVER
    assert online.incomingusername is None and online.useautodiscover
    assert online.password_reference is None  # no credentials carried
    pop3_online = plan.profile("Partner POP3 + Online out")
    assert pop3_online.servertype == m.SERVERTYPE_EXCHANGE_ONLINE_HYBRID
    assert {"pop3-exchange", "exchange-online-forward-mailbox", "credentials-dropped"} <= set(found)
    assert mailbox(plan, "user:11111111-2222-3333-4444-555555555555").action == "skip"
    assert "not-in-crm" in found
    assert_no_secret(plan.to_json(), "two routers")


def test_online_only_crm_gets_servertype_0():
    plan = plan_of("router-b.xml")
    assert plan.profile("Online forward").servertype == m.SERVERTYPE_EXCHANGE
    forced = plan_of("router-b.xml", crm_on_premises=True)
    assert forced.profile("Online forward").servertype == m.SERVERTYPE_EXCHANGE_ONLINE_HYBRID


def test_legacy_profiles_are_not_migrated_with_reasons():
    plan = plan_of("legacy.xml")
    reasons = {n.incoming_profile: n.reason for n in plan.not_migrated}
    assert "Exchange 2003" in reasons["Old Exchange"]
    assert "WebDAV" in reasons["WebDAV Exchange"]
    assert "custom" in reasons["Fax gateway"]
    assert not plan.profiles
    assert all(mb.action == "skip" and "not migrated" in mb.reason for mb in plan.mailboxes)


def test_crm_checks_warn_about_approval_disabled_and_unlisted(demo_crm):
    plan = plan_of("router-a.xml", "minimal.xml", crm=demo_crm)
    found = {(w.code, w.owner) for w in plan.warnings}
    assert ("mailbox-disabled", "user:de4ba532-b6b5-544c-9b3c-eae548223396") in found  # Dana
    assert ("not-approved", "user:0a1b2c3d-13d8-e011-9077-00155d012a02") in found  # Gina
    unlisted = plan_of("minimal.xml", crm=demo_crm)
    assert "not-in-config" in codes(unlisted)  # Alice, Bob, Frank, the queues…
    assert plan.organization.current == 1 and plan.organization.action == "update"


# --- the mapping table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "outgoing", "outcome"),
    [
        ("exchange", "smtp", "exchange"),
        ("exchange", "exchange-online", "exchange"),
        ("exchange-online", "smtp", "exchange-online"),
        ("exchange-online", "exchange-online", "exchange-online"),
        ("pop3", "smtp", "pop3-smtp"),
        ("pop3", "exchange-online", "exchange-online"),
        ("exchange-2003", "smtp", "not-migrated"),
        ("exchange-webdav", "exchange-online", "not-migrated"),
        ("custom", "smtp", "not-migrated"),
        ("pop3", "custom", "not-migrated"),
    ],
)
def test_microsofts_merge_table(incoming, outgoing, outcome):
    rule, reason = m.merge_rule(incoming, outgoing)
    assert rule.outcome == outcome
    assert (reason is not None) == (outcome == "not-migrated")


def test_credentials_mapping():
    provider = load_config(variant("router-a.xml")).providers
    exchange, _, pop3, smtp = provider
    assert m.credential_retrieval(exchange) == 1  # Other specified
    assert m.credential_retrieval(pop3) == 0  # User specified
    assert m.credential_retrieval(smtp) == 4  # Anonymous wins over Local System
    smtp.email_auth_mode = "WindowsAuthentication"
    assert m.credential_retrieval(smtp) == 3  # Local System -> Windows Integrated


# --- malformed and hostile XML -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("hostile-billion-laughs.xml", "entities"),
        ("hostile-xxe.xml", "entities"),
        ("hostile-external-dtd.xml", "external DTD"),
        ("malformed.xml", "not well-formed"),
    ],
)
def test_malformed_and_hostile_files_are_refused_clearly(name, words, tmp_path):
    with pytest.raises(ConfigSyntaxError) as caught:
        load_routers([variant(name)])
    message = str(caught.value)
    assert name in message and words in message
    if name == "malformed.xml":
        assert caught.value.line == 5
    from emailrouter_lib.cli import main

    out = tmp_path / "plan.json"
    assert main(["migrate", "plan", "--config", str(variant(name)), "--output", str(out)]) == 2
    assert not out.exists()


def test_no_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="no router configuration given"):
        load_routers([])


# --- the Test & Enable schedule ------------------------------------------------------------------


def test_schedule_batches_queues_first():
    mailboxes = [MailboxPlan(f"user:{i:04d}", "P", 2, 2) for i in range(300)]
    mailboxes += [MailboxPlan(f"queue:{i:04d}", "P", 2, 2) for i in range(150)]
    mailboxes.append(MailboxPlan("forward:f@x.example", "P", 2, 0, True))
    mailboxes.append(MailboxPlan("user:skipped", None, 2, 2, action="skip"))
    rows = build_schedule(MigrationPlan(mailboxes=mailboxes), start="2024-06-01T18:00:00Z")
    assert len(rows) == 451
    assert [r.kind for r in rows[:151]] == ["queue"] * 150 + ["forward"]
    sizes = {b: sum(1 for r in rows if r.batch == b) for b in {r.batch for r in rows}}
    assert sizes == {1: 200, 2: 200, 3: 51}
    first, last = rows[0], rows[-1]
    assert first.start == "2024-06-01T18:00:00Z"
    assert first.process_email_from == "2024-05-31T18:00:00Z"  # 24 hours back
    assert (last.batch, last.starts_after_hours, last.start) == (3, 10, "2024-06-02T04:00:00Z")


def test_router_input_accepts_configs_and_inputs():
    config = load_config(DATA / "router-a.xml")
    a = build_plan([config], options=FIXED).to_dict()
    b = build_plan([RouterInput(config)], options=FIXED).to_dict()
    assert a == b
    assert SAMPLE.name == "Microsoft.Crm.Tools.EmailAgent.xml"
