"""Safe parsing, encodings and the lossless write-back of router configuration files."""

from __future__ import annotations

import codecs
import shutil
import time
from pathlib import Path

import pytest
from lxml import etree

from emailrouter_lib.config import (
    MAX_CONFIG_BYTES,
    ProviderConfig,
    RouterConfig,
    load_config,
    write_config,
)
from emailrouter_lib.errors import ConfigError, ConfigSyntaxError

DATA = Path(__file__).parent / "data" / "config"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE = SHARED / "reference" / "samples" / "Microsoft.Crm.Tools.EmailAgent.xml"
READABLE = [
    "basic.xml",
    "bom-utf8.xml",
    "windows-utf16.xml",
    "mixed-case.xml",
    "unknown-elements.xml",
    "bad-values.xml",
    "problems.xml",
    "no-providers.xml",
]


def c14n(path: Path) -> bytes:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.tostring(etree.parse(str(path), parser), method="c14n")


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    shutil.copyfile(DATA / name, target)
    return target


# --- encodings --------------------------------------------------------------------------------


def test_utf8_bom_and_utf16_read_like_plain_utf8():
    plain = load_config(DATA / "basic.xml")
    bom = load_config(DATA / "bom-utf8.xml")
    utf16 = load_config(DATA / "windows-utf16.xml")
    assert bom.findings == [] and utf16.findings == []
    assert bom.system == plain.system and bom.providers == plain.providers
    assert utf16.providers == plain.providers
    assert utf16.system.log_file == r"D:\Logs\Ärger-router.log"
    assert utf16.xml.codec == "utf-16-le" and utf16.xml.bom and utf16.xml.newline == "\r\n"
    assert bom.xml.codec == "utf-8" and bom.xml.bom


def test_utf16_without_bom_and_big_endian(tmp_path):
    text = (DATA / "basic.xml").read_text(encoding="utf-8").replace("utf-8", "utf-16")
    for codec, bom in (("utf-16-le", b""), ("utf-16-be", codecs.BOM_UTF16_BE)):
        path = tmp_path / f"{codec}.xml"
        path.write_bytes(bom + text.encode(codec))
        config = load_config(path)
        assert len(config.providers) == 4 and config.findings == []
        write_config(config, path, backup=False)
        assert path.read_bytes() == bom + text.encode(codec)


# --- lossless round trip ----------------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_unedited_round_trip_is_canonically_equal(tmp_path, name):
    config = load_config(DATA / name)
    out = tmp_path / name
    write_config(config, out)
    assert c14n(out) == c14n(DATA / name)
    assert out.read_bytes()[:3] == (DATA / name).read_bytes()[:3]  # same BOM / encoding start


@pytest.mark.parametrize("name", ["basic.xml", "bom-utf8.xml", "windows-utf16.xml"])
def test_unedited_round_trip_is_byte_identical_for_clean_files(tmp_path, name):
    out = tmp_path / name
    write_config(load_config(DATA / name), out)
    assert out.read_bytes() == (DATA / name).read_bytes()


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/reference is not beside the repo")
def test_reference_sample_round_trip(tmp_path):
    out = tmp_path / "sample.xml"
    write_config(load_config(SAMPLE), out)
    assert c14n(out) == c14n(SAMPLE)
    assert out.read_bytes() == SAMPLE.read_bytes()


def test_unknown_elements_survive_an_edit(tmp_path):
    path = copy("unknown-elements.xml", tmp_path)
    config = load_config(path)
    config.system.log_level = 3
    config.providers[0].user_ids.append("11111111-2222-3333-4444-000000000009")
    write_config(config, path, backup=False)
    text = path.read_text(encoding="utf-8")
    for kept in (
        '<TraceSwitch level="4">verbose</TraceSwitch>',
        "<MailboxLockTimeout>120000</MailboxLockTimeout>",
        '<Deployment name="Fabrikam" type="MyCompany">',
        "<ProxyPassword>NOTAREALSECRET-proxy</ProxyPassword>",
        "<SmtpPort>465</SmtpPort>",
    ):
        assert kept in text
    again = load_config(path)
    assert again.system.log_level == 3
    assert again.providers[0].user_ids[-1] == "11111111-2222-3333-4444-000000000009"
    assert [u.name for u in again.unknown_elements] == [u.name for u in config.unknown_elements]


# --- edits --------------------------------------------------------------------------------------


def test_an_edit_changes_only_its_own_line(tmp_path):
    path = copy("basic.xml", tmp_path)
    before = path.read_text(encoding="utf-8").splitlines()
    config = load_config(path)
    config.system.log_level = 0
    config.providers[2].use_ssl = False
    backup = write_config(config, path)
    after = path.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        ("    <LogLevel>2</LogLevel>", "    <LogLevel>0</LogLevel>"),
        ("    <UseSsl>true</UseSsl>", "    <UseSsl>false</UseSsl>"),
    ]
    assert backup is not None and backup.read_text(encoding="utf-8").splitlines() == before
    assert backup.name.startswith("Microsoft.Crm.Tools.EmailAgent.xml.") and backup.suffix == ".bak"


def test_list_edits_new_elements_and_removals_keep_the_layout(tmp_path):
    path = copy("basic.xml", tmp_path)
    config = load_config(path)
    exchange, sink, pop3, smtp = config.providers
    exchange.user_ids.remove("11111111-2222-3333-4444-000000000001")
    exchange.user_ids.append("11111111-2222-3333-4444-00000000000b")
    sink.email_address = None  # removes the element
    pop3.max_message_count = 100  # adds an element, indented like its siblings
    config.providers.remove(smtp)
    write_config(config, path, backup=False)
    text = path.read_text(encoding="utf-8")
    assert (
        "    <MaxMessageCount>250</MaxMessageCount>\n"
        "    <UserId>11111111-2222-3333-4444-000000000002</UserId>\n"
        "    <UserId>11111111-2222-3333-4444-00000000000b</UserId>\n"
        "  </ProviderConfiguration>"
    ) in text
    assert "<EmailAddress>crm-sink@fabrikam.test</EmailAddress>" not in text
    assert "    <MaxMessageCount>100</MaxMessageCount>\n  </ProviderConfiguration>" in text
    assert "SmtpPollingSendEmailProvider" not in text
    again = load_config(path)
    assert again.findings == []
    assert again.providers[0].user_ids == [
        "11111111-2222-3333-4444-000000000002",
        "11111111-2222-3333-4444-00000000000b",
    ]
    assert again.providers[1].email_address is None
    assert again.providers[2].max_message_count == 100
    assert len(again.providers) == 3


def test_a_list_at_the_top_keeps_its_place_and_spelling(tmp_path):
    path = copy("mixed-case.xml", tmp_path)
    config = load_config(path)
    config.providers[0].user_ids.insert(0, "11111111-2222-3333-4444-000000000001")
    write_config(config, path, backup=False)
    text = path.read_text(encoding="utf-8")
    assert (
        "  <PROVIDERCONFIGURATION>\n"
        "    <userid>11111111-2222-3333-4444-000000000001</userid>\n"
        "    <userid>11111111-2222-3333-4444-00000000000a</userid>\n"
        "    <EMAILADDRESS>"
    ) in text
    assert load_config(path).providers[0].user_ids == config.providers[0].user_ids


def test_a_new_provider_is_written_with_the_builtin_class(tmp_path):
    path = copy("basic.xml", tmp_path)
    config = load_config(path)
    config.providers.append(
        ProviderConfig(
            profile_name="New queue",
            kind="pop3",
            direction="incoming",
            email_server_type="POP3",
            crm_server_url="https://crm.fabrikam.test/Fabrikam",
            email_server_url="pop.fabrikam.test:995",
            use_ssl=True,
            email_address="sales@fabrikam.test",
            queue_ids=["aaaaaaaa-bbbb-cccc-dddd-000000000002"],
        )
    )
    write_config(config, path, backup=False)
    again = load_config(path)
    new = again.providers[-1]
    assert again.findings == []
    assert new.kind == "pop3" and new.direction == "incoming"
    assert new.provider_class == "Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider"
    assert new.queue_ids == ["aaaaaaaa-bbbb-cccc-dddd-000000000002"]
    assert new.is_forward_mailbox is False and new.use_ssl is True
    text = path.read_text(encoding="utf-8")
    assert "<IsForwardMailbox>" not in text.split("New queue")[1]  # defaults are not spelled out
    assert text.endswith("  </ProviderConfiguration>\n</Configuration>\n")


def test_fixing_a_bad_value_replaces_it(tmp_path):
    path = copy("bad-values.xml", tmp_path)
    config = load_config(path)
    write_config(config, path, backup=False)
    assert "<MaxThreads>abc</MaxThreads>" in path.read_text(encoding="utf-8")  # untouched
    config.system.max_threads = 60
    write_config(config, path, backup=False)
    assert "<MaxThreads>60</MaxThreads>" in path.read_text(encoding="utf-8")
    assert load_config(path).system.max_threads == 60


def test_passwords_can_be_removed_but_never_written(tmp_path):
    path = copy("basic.xml", tmp_path)
    config = load_config(path)
    config.providers[0].has_password = False
    write_config(config, path, backup=False)
    assert load_config(path).providers[0].has_password is False
    assert load_config(path).providers[1].has_password is True
    config.providers[2].has_password = True
    with pytest.raises(ConfigError, match="encrypted with the router's own key"):
        write_config(config, path, backup=False)


def test_a_config_built_from_scratch(tmp_path):
    path = tmp_path / "new.xml"
    config = RouterConfig()
    config.system.log_file = r"C:\router.log"
    config.providers.append(
        ProviderConfig(
            kind="smtp",
            direction="outgoing",
            profile_name="SMTP out",
            user_ids=["11111111-2222-3333-4444-000000000001"],
        )
    )
    assert write_config(config, path) is None  # nothing to back up
    text = path.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<Configuration>\n')
    assert "    <MaxThreads>50</MaxThreads>" in text
    again = load_config(path)
    assert again.findings == [] and again.system == config.system
    assert again.providers[0].kind == "smtp" and again.providers[0].direction == "outgoing"


# --- safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line"),
    [("xxe-file.xml", 2), ("xxe-parameter.xml", 3), ("billion-laughs.xml", 2)],
)
def test_entity_declarations_are_refused(name, line):
    started = time.monotonic()
    with pytest.raises(ConfigSyntaxError, match="declares entities") as caught:
        load_config(DATA / name)
    assert time.monotonic() - started < 1
    assert caught.value.line == line and caught.value.file == str(DATA / name)
    assert str(caught.value).startswith(f"{DATA / name}:{line}: ")


def test_xxe_never_reads_the_target_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("NOTAREALSECRET-file-contents", encoding="utf-8")
    path = tmp_path / "evil.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!-- innocent -->\n<?pi x?>\n<!DOCTYPE Configuration [\n'
        f'<!ENTITY x SYSTEM "{secret.as_uri()}">]>\n'
        "<Configuration><SystemConfiguration><LogFile>&x;</LogFile></SystemConfiguration>"
        "</Configuration>",
        encoding="utf-8",
    )
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert caught.value.line == 4
    assert "NOTAREALSECRET" not in str(caught.value)


def test_external_dtd_and_internal_subsets_are_refused(tmp_path):
    with pytest.raises(ConfigSyntaxError, match="external DTD"):
        load_config(DATA / "external-dtd.xml")
    path = tmp_path / "subset.xml"
    path.write_text("<!DOCTYPE Configuration [<!ELEMENT Configuration ANY>]><Configuration/>")
    with pytest.raises(ConfigSyntaxError, match="internal DTD subset"):
        load_config(path)


def test_a_bare_doctype_is_harmless_and_kept(tmp_path):
    path = tmp_path / "doctype.xml"
    path.write_text("<!DOCTYPE Configuration>\n<Configuration/>\n", encoding="utf-8")
    config = load_config(path)
    write_config(config, path, backup=False)
    assert path.read_text(encoding="utf-8") == "<!DOCTYPE Configuration>\n<Configuration/>\n"


def test_oversize_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.xml"
    with path.open("wb") as handle:  # sparse: costs no disk and no time
        handle.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigSyntaxError, match="limit") as caught:
        load_config(path)
    assert caught.value.code == "too-large"
    small = tmp_path / "small.xml"
    small.write_text("<Configuration>" + " " * 200 + "</Configuration>")
    with pytest.raises(ConfigSyntaxError, match="100-byte limit"):
        load_config(small, max_bytes=100)


def test_malformed_xml_names_file_line_and_remedy():
    path = DATA / "malformed.xml"
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    error = caught.value
    assert error.file == str(path) and error.line == 5
    assert "LogLevel" in str(error) and "Configuration Manager" in str(error)
    assert ", column" not in str(error)  # lxml's own position suffix is dropped


def test_malformed_utf16_reports_the_right_line(tmp_path):
    text = "<?xml version='1.0' encoding='utf-16'?>\r\n<Configuration>\r\n\r\n<Oops>\r\n"
    path = tmp_path / "broken16.xml"
    path.write_bytes(codecs.BOM_UTF16_LE + (text + "</Configuration>\r\n").encode("utf-16-le"))
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert caught.value.line == 5


@pytest.mark.parametrize("content", [b"", b"   \n", b"not xml at all"])
def test_empty_or_non_xml_files(tmp_path, content):
    path = tmp_path / "x.xml"
    path.write_bytes(content)
    with pytest.raises(ConfigSyntaxError) as caught:
        load_config(path)
    assert caught.value.line is not None


def test_missing_file_is_a_config_error_not_a_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="check the path") as caught:
        load_config(tmp_path / "nope.xml")
    assert not isinstance(caught.value, ConfigSyntaxError)
