"""Reading Microsoft.Crm.Tools.EmailAgent.xml into the model: vocabulary, leniency, findings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from emailrouter_lib.config import (
    ProviderConfig,
    ProviderOverrides,
    RouterConfig,
    SystemConfiguration,
    classify,
    load_config,
    parse_guid,
    validate_config,
)
from emailrouter_lib.config import vocabulary as vocab

DATA = Path(__file__).parent / "data" / "config"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE = SHARED / "reference" / "samples" / "Microsoft.Crm.Tools.EmailAgent.xml"
SECRET_MARK = "NOTAREALSECRET"


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``needle`` (so tests do not hard-code lines)."""
    text = path.read_bytes().decode("utf-8-sig")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def codes_at(config: RouterConfig) -> set[tuple[str, int | None]]:
    return {(f.code, f.line) for f in config.findings}


# --- the reference sample (needs ../shared) --------------------------------------------------


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/reference is not beside the repo")
def test_reference_sample_reads_completely():
    config = load_config(SAMPLE)
    assert config.findings == []
    assert config.system == SystemConfiguration(log_file=r"C:\EmailRouter\emailRouterLog.txt")
    kinds = [(p.kind, p.direction, p.is_forward_mailbox) for p in config.providers]
    assert kinds == [
        ("exchange", "incoming", False),
        ("exchange", "incoming", True),
        ("pop3", "incoming", False),
        ("smtp", "outgoing", False),
    ]
    exchange, sink, pop3, smtp = config.providers
    assert exchange.user_ids == [
        "0a1b2c3d-13d8-e011-9077-00155d012a01",
        "0a1b2c3d-13d8-e011-9077-00155d012a02",
    ]
    assert exchange.has_password and exchange.credentials_kind == "other_specified"
    assert sink.email_address == "crm-sink@contoso.com" and sink.delete_emails and sink.move_emails
    assert pop3.queue_ids == ["5e6f7a8b-19d8-e011-9077-00155d012b02"] and not pop3.has_password
    assert smtp.access_type_kind == "send_as" and smtp.auth_mode_kind == "anonymous"
    assert smtp.use_ssl is False and smtp.line == line_of(SAMPLE, "<ProviderConfiguration>", 4)
    assert validate_config(config).ok


# --- the project's own files ------------------------------------------------------------------


def test_basic_file_values():
    config = load_config(DATA / "basic.xml")
    assert config.findings == []
    system = config.system
    assert (system.max_threads, system.config_update_period, system.log_level) == (40, 0, 2)
    assert system.log_file == r"D:\Logs\router.log"
    assert system.overrides == ProviderOverrides(
        cache_capacity=2048, maximum_delivery_attempts=7, ews_retrieve_message_count=20
    )
    exchange, sink, pop3, smtp = config.providers
    assert exchange.profile_name == "Fabrikam Exchange in"
    assert exchange.email_server_url == "https://ex.fabrikam.test/EWS/Exchange.asmx"
    assert exchange.email_user == r"FABRIKAM\svc-router"
    assert exchange.max_message_count == 250 and exchange.use_ssl is True
    assert exchange.auth_mode_kind == "windows" and not exchange.is_exchange_online
    assert sink.is_forward_mailbox and sink.forward_mailbox_name == "Fabrikam sink"
    assert config.forward_mailboxes == [sink]
    # {B}-format and N-format GUIDs, upper case, are normalised
    assert pop3.queue_ids == ["aaaaaaaa-bbbb-cccc-dddd-000000000001"]
    assert smtp.queue_ids == ["aaaaaaaa-bbbb-cccc-dddd-000000000001"]
    assert smtp.access_type_kind == "delegate" and smtp.credentials_kind == "local_system"
    assert config.incoming == [exchange, sink, pop3] and config.outgoing == [smtp]
    assert config.providers_for("{11111111-2222-3333-4444-000000000001}") == [exchange, smtp]
    assert [p.line for p in config.providers] == [
        line_of(DATA / "basic.xml", "<ProviderConfiguration>", n) for n in range(1, 5)
    ]


def test_defaults_when_sections_are_missing(tmp_path):
    path = tmp_path / "empty.xml"
    path.write_text("<Configuration/>", encoding="utf-8")
    config = load_config(path)
    system = config.system
    assert (system.max_threads, system.max_thread_execution, system.scheduling_period) == (
        50,
        600_000,
        1000,
    )
    assert (system.config_refresh_period, system.config_update_period, system.log_level) == (
        5000,
        3_600_000,
        1,
    )
    assert system.log_file is None
    o = system.overrides
    assert (o.cache_capacity, o.pending_status_delay, o.sending_status_delay) == (
        1024,
        300_000,
        1_800_000,
    )
    assert (o.maximum_delivery_attempts, o.ews_retrieve_message_count) == (10, 10)
    assert (o.batch_size, o.request_batch_size) == (5, 5)
    assert config.providers == [] and config.findings == []


def _recase(text: str, how) -> str:
    return re.sub(r"(</?)([A-Za-z]+)", lambda m: m.group(1) + how(m.group(2)), text)


@pytest.mark.parametrize(
    "how", [str.lower, str.upper, str.swapcase], ids=["lower", "upper", "mixed"]
)
def test_element_names_are_case_insensitive(tmp_path, how):
    original = (DATA / "basic.xml").read_text(encoding="utf-8")
    recased = _recase(original, how).replace("<?XML", "<?xml")
    assert recased != original
    path = tmp_path / "recased.xml"
    path.write_text(recased, encoding="utf-8")
    config = load_config(path)
    reference = load_config(DATA / "basic.xml")
    assert config.findings == []
    assert config.system == reference.system
    assert config.providers == reference.providers


def test_mixed_case_reordered_file_with_comments_inside_values():
    path = DATA / "mixed-case.xml"
    config = load_config(path)
    assert config.findings == []
    assert config.system.max_threads == 25  # "2<!-- was 50 -->5"
    assert config.system.log_level == 3 and config.system.scheduling_period == 2000
    assert config.system.overrides.batch_size == 9
    assert config.system.overrides.cache_capacity == 512
    assert config.system.overrides.pending_status_delay == 300_000  # default kept
    (online,) = config.providers
    assert online.kind == "exchange" and online.direction == "incoming"
    assert online.is_exchange_online and online.use_ssl is True
    assert online.is_forward_mailbox is False
    assert online.user_ids == ["11111111-2222-3333-4444-00000000000a"]
    assert online.email_address == "Sales@Fabrikam.test"
    assert online.credentials_kind == "other_specified"
    assert online.line == line_of(path, "<PROVIDERCONFIGURATION>")
    assert online.lines["user_ids"] == line_of(path, "<userid>")


def test_default_namespace_is_tolerated(tmp_path):
    path = tmp_path / "ns.xml"
    path.write_text(
        '<Configuration xmlns="urn:example:router"><SystemConfiguration><LogLevel>3</LogLevel>'
        "</SystemConfiguration><ProviderConfiguration><ProviderClass>Microsoft.Crm.Tools.Email."
        "Providers.SmtpPollingSendEmailProvider</ProviderClass><QueueId>"
        "aaaaaaaa-bbbb-cccc-dddd-000000000001</QueueId></ProviderConfiguration></Configuration>",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.system.log_level == 3
    assert config.providers[0].kind == "smtp" and config.providers[0].direction == "outgoing"


def test_bad_values_are_findings_with_lines_and_defaults_are_used():
    path = DATA / "bad-values.xml"
    config = load_config(path)
    found = codes_at(config)
    assert ("bad-number", line_of(path, "<MaxThreads>abc")) in found
    assert ("bad-number", line_of(path, "<SchedulingPeriod>1_000")) in found
    assert ("bad-number", line_of(path, "<BatchSize>5.5")) in found
    assert ("bad-number", line_of(path, "<MaxMessageCount>lots")) in found
    assert ("bad-boolean", line_of(path, "<UseSsl>maybe")) in found
    assert ("bad-guid", line_of(path, "xxxxxxxx-13d8")) in found
    assert ("bad-guid", line_of(path, "not-a-guid")) in found
    assert ("empty-value", line_of(path, "<ConfigRefreshPeriod>")) in found
    assert ("duplicate-element", line_of(path, "<BatchSize>6")) in found
    assert ("duplicate-id", line_of(path, "000000000001", 2)) in found
    assert all(f.file == str(path) for f in config.findings)
    assert config.system.max_threads == 50 and config.system.scheduling_period == 1000
    assert config.system.config_refresh_period == 5000
    assert config.system.log_level == 7  # a number, out of range: the validator warns
    assert config.system.overrides.batch_size == 5  # first one wins, and it was bad
    (provider,) = config.providers
    assert provider.use_ssl is None and provider.max_message_count is None
    assert provider.user_ids == ["11111111-2222-3333-4444-000000000001"]
    assert provider.queue_ids == []
    first = config.findings[0]
    assert first.code == "bad-number" and "'abc'" in first.message
    assert "using the default (50)" in first.message
    assert str(first).startswith(f"{path}:{first.line}: error [bad-number] <MaxThreads>")


def test_unknown_elements_are_kept_and_reported():
    path = DATA / "unknown-elements.xml"
    config = load_config(path)
    names = [(u.name, u.line) for u in config.unknown_elements]
    assert names == [
        ("TraceSwitch", line_of(path, "<TraceSwitch")),
        ("MailboxLockTimeout", line_of(path, "<MailboxLockTimeout")),
        ("DeploymentSettings", line_of(path, "<DeploymentSettings")),
        ("ProxyPassword", line_of(path, "<ProxyPassword")),
        ("SmtpPort", line_of(path, "<SmtpPort")),
    ]
    severities = {f.message.split("<")[1].split(">")[0]: f.severity for f in config.findings}
    assert severities["DeploymentSettings"] == "warning"  # a whole unknown section
    assert severities["SmtpPort"] == "info"
    assert {f.code for f in config.findings} == {"unknown-element"}
    (provider,) = config.providers
    assert [u.name for u in provider.unknown_elements] == ["ProxyPassword", "SmtpPort"]
    assert provider.kind == "smtp" and provider.direction == "outgoing"  # from the class alone
    # the tree still holds them
    tags = [el.tag for el in config.tree.iter() if isinstance(el.tag, str)]
    assert "DeploymentSettings" in tags and "Url" in tags


@pytest.mark.parametrize("name", ["basic.xml", "unknown-elements.xml", "problems.xml"])
def test_password_values_never_show(name):
    config = load_config(DATA / name)
    assert SECRET_MARK in (DATA / name).read_text(encoding="utf-8")
    assert any(p.has_password for p in config.providers)
    shown = [repr(config), str(config), str(validate_config(config))]
    shown += [repr(p) for p in config.providers] + [str(f) for f in config.findings]
    shown += [repr(f) for f in validate_config(config).findings]
    for text in shown:
        assert SECRET_MARK not in text
    # the model has no field that could hold a password, only flags
    secretish = [f.name for f in dataclasses.fields(ProviderConfig) if "password" in f.name]
    assert secretish == ["has_crm_password", "has_password"]


def test_every_vocabulary_field_has_a_model_attribute():
    for cls, specs in (
        (SystemConfiguration, vocab.SYSTEM_FIELDS),
        (ProviderOverrides, vocab.OVERRIDE_FIELDS),
        (ProviderConfig, vocab.PROVIDER_FIELDS),
    ):
        names = {f.name for f in dataclasses.fields(cls)}
        for spec in specs:
            assert spec.attr in names, (cls.__name__, spec.attr)
            if spec.default is not None:
                assert getattr(cls(), spec.attr) == spec.default


@pytest.mark.parametrize(
    ("provider_class", "server_type", "direction", "expected"),
    [
        (
            "Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider, "
            "Microsoft.Crm.Tools.EmailProviders",
            None,
            None,
            ("pop3", "incoming", []),
        ),
        (None, "Exchange 2010 or 2013", "Outbound", ("exchange", "outgoing", [])),
        (None, "SMTP", None, ("smtp", "outgoing", [])),
        (
            "Microsoft.Crm.Tools.Email.Providers.ExchangeOnlineSendEmailProvider",
            "ExchangeOnline",
            None,
            ("exchange", "outgoing", ["unknown-provider-class"]),
        ),
        (
            "Contoso.Fax.FaxProvider",
            "Exchange2010",
            "Inbound",
            ("custom", "incoming", ["custom-provider"]),
        ),
        (None, None, None, ("custom", None, ["unknown-provider-kind"])),
        (
            "Microsoft.Crm.Tools.Email.Providers.SmtpPollingSendEmailProvider",
            None,
            "Inbound",
            ("smtp", "outgoing", ["direction-conflict"]),
        ),
        (None, "POP3", "sideways", ("pop3", "incoming", ["bad-direction"])),
    ],
)
def test_classify(provider_class, server_type, direction, expected):
    kind, got_direction, notes = classify(provider_class, server_type, direction)
    assert (kind, got_direction, [code for code, _ in notes]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0A1B2C3D-13D8-E011-9077-00155D012A01", "0a1b2c3d-13d8-e011-9077-00155d012a01"),
        ("{0a1b2c3d-13d8-e011-9077-00155d012a01}", "0a1b2c3d-13d8-e011-9077-00155d012a01"),
        ("(0a1b2c3d-13d8-e011-9077-00155d012a01)", "0a1b2c3d-13d8-e011-9077-00155d012a01"),
        (" 0a1b2c3d13d8e011907700155d012a01 ", "0a1b2c3d-13d8-e011-9077-00155d012a01"),
        ("xxxxxxxx-13d8-e011-9077-xxxxxxxx", None),
        ("0a1b2c3d-13d8-e011-9077-00155d012a0", None),
        ("0a1b2c3d-13d8e-011-9077-00155d012a01", None),
        ("{0a1b2c3d-13d8-e011-9077-00155d012a01", None),
        ("", None),
    ],
)
def test_parse_guid(text, expected):
    assert parse_guid(text) == expected


def test_wrong_root_is_an_error_finding(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<?xml version='1.0'?>\n<appSettings><add key='x'/></appSettings>\n")
    config = load_config(path)
    assert ("wrong-root", 2) in codes_at(config)
    assert not validate_config(config).ok
