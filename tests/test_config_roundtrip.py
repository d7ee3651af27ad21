"""Round trips through the Configuration Manager: read, (edit,) publish, compare.

Unedited: the canonical XML (C14N) of what is published equals the input's, unknown elements,
comments and odd spellings included, for the reference sample and variants of it. Edited: the
bytes change only where the edit is.
"""

from __future__ import annotations

import codecs
import difflib
import shutil
from pathlib import Path

import pytest
from lxml import etree

from emailrouter_lib.config import load_config
from emailrouter_lib.config.edit import ConfigEditor, Profile
from emailrouter_lib.config.publish import apply_publish, plan_publish

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "emailrouter_lib/demo/data/config/Microsoft.Crm.Tools.EmailAgent.xml"
DATA = ROOT / "tests/data/config"
NAME = "Microsoft.Crm.Tools.EmailAgent.xml"


def c14n(data: bytes) -> bytes:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.tostring(etree.fromstring(data, parser).getroottree(), method="c14n")


def _unknowns(text: str) -> str:
    """The sample with unknown elements at every level, a processing instruction and comments."""
    text = text.replace(
        "<Configuration>",
        '<Configuration>\n  <RouterInstance id="7">EMEA-2<!-- kept --></RouterInstance>',
    )
    text = text.replace(
        "<LogLevel>1</LogLevel>", "<LogLevel>1</LogLevel>\n    <TraceFlags>0x1F</TraceFlags>"
    )
    text = text.replace(
        "<BatchSize>5</BatchSize>",
        '<BatchSize>5</BatchSize>\n      <?router-hint fast?>\n      <Throttle ms="50"/>',
    )
    return text.replace(
        "<MaxMessageCount>500</MaxMessageCount>",
        '<MaxMessageCount>500</MaxMessageCount>\n    <Polling><Interval unit="s">30</Interval>'
        "<Jitter/></Polling>\n    <SecretHash>abc</SecretHash>",
    )


def _mixed_case(text: str) -> str:
    for name in ("ProfileName", "UserId", "EmailServerUrl", "UseSsl", "IsForwardMailbox"):
        text = text.replace(f"<{name}>", f"<{name.lower()}>").replace(
            f"</{name}>", f"</{name.lower()}>"
        )
    return text


VARIANTS = {
    "sample": lambda text: text.encode("utf-8"),
    "unknown-elements": lambda text: _unknowns(text).encode("utf-8"),
    "mixed-case": lambda text: _mixed_case(text).encode("utf-8"),
    "crlf-bom": lambda text: codecs.BOM_UTF8 + text.replace("\n", "\r\n").encode("utf-8"),
    "utf16": lambda text: (
        codecs.BOM_UTF16_LE
        + _unknowns(text).replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16-le")
    ),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, tmp_path) -> Path:
    path = tmp_path / NAME
    path.write_bytes(VARIANTS[request.param](SAMPLE.read_text(encoding="utf-8")))
    return path


def test_unedited_round_trip_is_canonically_equal_and_publishes_nothing(variant, tmp_path):
    original = variant.read_bytes()
    config = load_config(variant)
    ConfigEditor(config)  # looking at profiles, deployments and entries changes nothing
    out = tmp_path / "out" / NAME
    out.parent.mkdir()
    result = apply_publish(plan_publish(config, out))
    assert result.written and result.backup is None
    assert c14n(out.read_bytes()) == c14n(original)
    assert out.read_bytes() == original  # and in fact byte for byte
    assert not plan_publish(config, variant).changed


@pytest.mark.parametrize(
    "name",
    [
        "basic.xml",
        "bom-utf8.xml",
        "windows-utf16.xml",
        "mixed-case.xml",
        "unknown-elements.xml",
        "bad-values.xml",
        "problems.xml",
        "no-providers.xml",
    ],
)
def test_the_reader_test_files_round_trip_through_the_editor(name, tmp_path):
    path = tmp_path / NAME
    shutil.copyfile(DATA / name, path)
    config = load_config(path)
    ConfigEditor(config)
    plan = plan_publish(config)
    assert not plan.changed, plan.diff
    assert c14n(plan.new) == c14n((DATA / name).read_bytes())


def _line_diff(before: bytes, after: bytes, codec: str = "utf-8") -> list[str]:
    return [
        line
        for line in difflib.ndiff(
            before.decode(codec).splitlines(), after.decode(codec).splitlines()
        )
        if line[:1] in "+-"
    ]


def test_a_profile_edit_changes_only_its_lines(variant):
    original = variant.read_bytes()
    codec = load_config(variant).xml.codec
    config = load_config(variant)
    editor = ConfigEditor(config)
    profile = editor.profile("POP3 incoming", "incoming")
    editor.set_profile(Profile(**{**profile.__dict__, "email_server_url": "pop.contoso.net:995"}))
    apply_publish(plan_publish(config))
    text_codec = "utf-16" if "16" in codec else "utf-8-sig"
    changed = _line_diff(original, variant.read_bytes(), text_codec)
    tag = "emailserverurl" if b"<emailserverurl>" in original else "EmailServerUrl"
    assert [line.replace(" ", "") for line in changed] == [
        f"-<{tag}>pop.contoso-mail.net:995</{tag}>",
        f"+<{tag}>pop.contoso.net:995</{tag}>",
    ]


def test_adding_a_forward_mailbox_only_adds_lines_and_keeps_unknown_elements(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(VARIANTS["unknown-elements"](SAMPLE.read_text(encoding="utf-8")))
    original = path.read_bytes()
    config = load_config(path)
    editor = ConfigEditor(config)
    editor.add_forward_mailbox("Second sink", "sink2@contoso.com", profile="POP3 incoming")
    plan = plan_publish(config)
    assert plan.removed == 0 and plan.added == 17  # one provider: 15 values, open, close
    apply_publish(plan)
    changed = _line_diff(original, path.read_bytes())
    assert changed and all(line.startswith("+") for line in changed)
    assert '<Interval unit="s">30</Interval>' in path.read_text(encoding="utf-8")
    assert "<?router-hint fast?>" in path.read_text(encoding="utf-8")
    # remove it again: back to the original document
    editor.remove_forward_mailbox("sink2@contoso.com")
    apply_publish(plan_publish(config))
    assert c14n(path.read_bytes()) == c14n(original)
