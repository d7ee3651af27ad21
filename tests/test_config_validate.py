"""Validation of router configuration files: checks, report format, exit codes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from emailrouter_lib.config import (
    Finding,
    ValidationReport,
    load_config,
    main_validate,
    validate_config,
    validate_file,
)
from emailrouter_lib.errors import ConfigSyntaxError

DATA = Path(__file__).parent / "data" / "config"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLE = SHARED / "reference" / "samples" / "Microsoft.Crm.Tools.EmailAgent.xml"
LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>\d+): (?P<sev>error|warning|info) \[(?P<code>[a-z0-9-]+)\] .+$"
)


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    text = path.read_bytes().decode("utf-8-sig")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<Configuration>\n{body}\n</Configuration>\n'
    )
    return path


PROVIDER = """  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.{cls}</ProviderClass>
    <ProfileName>{name}</ProfileName>
    <CrmServerUrl>https://crm.fabrikam.test/Fabrikam</CrmServerUrl>
{extra}
  </ProviderConfiguration>"""


def provider(cls="ExchangePollingMailboxProvider", name="P", **elements: str) -> str:
    extra = "\n".join(f"    <{k}>{v}</{k}>" for k, v in elements.items())
    return PROVIDER.format(cls=cls, name=name, extra=extra)


def test_clean_file_is_ok():
    report = validate_file(DATA / "basic.xml")
    assert report.ok and report.findings == [] and str(report) == ""
    assert report.summary() == f"{DATA / 'basic.xml'}: 0 errors, 0 warnings, 0 notes"


@pytest.mark.skipif(not SAMPLE.exists(), reason="../shared/reference is not beside the repo")
def test_reference_sample_is_ok():
    report = validate_file(SAMPLE)
    assert report.ok
    assert report.codes() == ["no-ssl"]  # the anonymous SMTP relay on port 25


def test_problems_file():
    path = DATA / "problems.xml"
    report = validate_file(path)
    got = {(f.severity, f.code, f.line) for f in report.findings}
    fax = line_of(path, "<ProviderConfiguration>", 5)
    assert got == {
        ("error", "local-system-on-exchange-online", line_of(path, "LocalSystem")),
        ("warning", "cleartext-without-ssl", line_of(path, "<UseSsl>false")),
        (
            "error",
            "user-in-two-incoming-providers",
            line_of(path, "11111111-2222-3333-4444-000000000001", 2),
        ),
        ("error", "duplicate-forward-mailbox", line_of(path, "SINK@fabrikam.test")),
        ("warning", "custom-provider", fax),
        ("warning", "provider-without-mailbox", fax),
        ("warning", "no-crm-server-url", fax),
    }
    assert not report.ok and len(report.errors) == 3 and len(report.warnings) == 4
    lines = [f.line for f in report.findings]
    assert lines == sorted(lines)
    duplicate = next(f for f in report.findings if f.code == "duplicate-forward-mailbox")
    assert f"line {line_of(path, '<ProviderConfiguration>', 3)}" in duplicate.message


def test_report_prints_one_line_per_finding():
    report = validate_file(DATA / "problems.xml")
    lines = str(report).splitlines()
    assert len(lines) == len(report.findings)
    for text, finding in zip(lines, report.findings, strict=True):
        match = LINE.match(text)
        assert match, text
        assert match["file"] == str(DATA / "problems.xml")
        assert (int(match["line"]), match["sev"], match["code"]) == (
            finding.line,
            finding.severity,
            finding.code,
        )


def test_reader_findings_are_in_the_report():
    report = validate_file(DATA / "bad-values.xml")
    codes = set(report.codes())
    assert {"bad-number", "bad-guid", "bad-boolean", "out-of-range", "empty-value"} <= codes
    out_of_range = next(f for f in report.findings if f.code == "out-of-range")
    assert out_of_range.line == line_of(DATA / "bad-values.xml", "<LogLevel>7")
    assert not report.ok


def test_unknown_elements_alone_do_not_fail():
    report = validate_file(DATA / "unknown-elements.xml")
    assert report.ok and set(report.codes()) == {"unknown-element"}
    assert [f.severity for f in report.findings].count("warning") == 1


def test_no_providers():
    report = validate_file(DATA / "no-providers.xml")
    assert report.codes() == ["no-providers"] and report.ok


@pytest.mark.parametrize(
    ("body", "code", "severity"),
    [
        (
            provider(
                EmailServerType="ExchangeOnline",
                EmailServerUrl="https://outlook.office365.com/EWS/Exchange.asmx",
                UseSsl="false",
                EmailAddress="a@fabrikam.test",
            ),
            "exchange-online-without-ssl",
            "error",
        ),
        (
            provider(
                EmailServerUrl="https://outlook.office365.com/EWS/Exchange.asmx",
                EmailAccessCredentials="Local System Account",
                EmailAddress="a@fabrikam.test",
            ),
            "local-system-on-exchange-online",
            "error",
        ),
        (
            provider(
                "Pop3PollingMailboxProvider",
                EmailAccessCredentials="LocalSystem",
                EmailAddress="a@fabrikam.test",
            ),
            "local-system-not-supported",
            "warning",
        ),
        (
            provider(
                EmailServerUrl="http://ex.fabrikam.test/EWS/Exchange.asmx", EmailAddress="a@x"
            ),
            "no-ssl",
            "info",
        ),
        (
            provider(EmailServerType="Exchange2003", EmailAddress="a@fabrikam.test"),
            "legacy-server-type",
            "warning",
        ),
        (
            provider(EmailAuthMode="Digest", EmailAddress="a@fabrikam.test"),
            "unknown-value",
            "warning",
        ),
        (
            provider(IsForwardMailbox="true", UserId="11111111-2222-3333-4444-000000000001"),
            "forward-mailbox-without-address",
            "warning",
        ),
        (
            provider(EmailAddress="q@fabrikam.test", name="one")
            + "\n"
            + provider(EmailAddress="Q@Fabrikam.test", name="two"),
            "duplicate-mailbox",
            "error",
        ),
        (
            provider("SmtpPollingSendEmailProvider", QueueId="aaaaaaaa-bbbb-cccc-dddd-000000000001")
            + "\n"
            + provider(
                "SmtpPollingSendEmailProvider", QueueId="aaaaaaaa-bbbb-cccc-dddd-000000000001"
            ),
            "queue-in-two-outgoing-providers",
            "warning",
        ),
        (
            provider(QueueId="aaaaaaaa-bbbb-cccc-dddd-000000000001")
            + "\n"
            + provider(
                "Pop3PollingMailboxProvider", QueueId="aaaaaaaa-bbbb-cccc-dddd-000000000001"
            ),
            "queue-in-two-incoming-providers",
            "error",
        ),
        (
            "<SystemConfiguration><MaxThreads>0</MaxThreads></SystemConfiguration>",
            "out-of-range",
            "warning",
        ),
    ],
)
def test_single_checks(tmp_path, body, code, severity):
    report = validate_file(write(tmp_path, body))
    matching = [f for f in report.findings if f.code == code]
    assert matching, str(report)
    assert matching[0].severity == severity
    assert matching[0].line is not None


def test_the_same_user_in_an_incoming_and_an_outgoing_provider_is_fine(tmp_path):
    guid = "11111111-2222-3333-4444-000000000001"
    body = provider(UserId=guid) + "\n" + provider("SmtpPollingSendEmailProvider", UserId=guid)
    assert validate_file(write(tmp_path, body)).findings == []


def test_passwords_never_reach_the_report():
    for name in ("problems.xml", "unknown-elements.xml", "basic.xml"):
        report = validate_file(DATA / name)
        assert "NOTAREALSECRET" not in str(report)
        assert "NOTAREALSECRET" not in report._repr_html_()
        assert "NOTAREALSECRET" not in repr(report)


def test_html_rendering_escapes():
    report = ValidationReport(
        path="f.xml",
        findings=[Finding("warning", "x", "<b>unknown</b> & more", file="f.xml", line=3)],
    )
    html = report._repr_html_()
    assert "&lt;b&gt;unknown&lt;/b&gt; &amp; more" in html and "<b>unknown</b>" not in html
    assert report.to_records() == [
        {
            "severity": "warning",
            "code": "x",
            "message": "<b>unknown</b> & more",
            "where": "f.xml:3",
            "file": "f.xml",
            "line": 3,
        }
    ]


def test_finding_rejects_unknown_severity():
    with pytest.raises(ValueError):
        Finding("fatal", "x", "y")


def test_validate_config_on_an_edited_model():
    config = load_config(DATA / "basic.xml")
    config.providers[1].email_address = config.providers[2].email_address
    report = validate_config(config)
    assert report.codes() == ["duplicate-forward-mailbox"]


def test_validate_file_raises_on_malformed():
    with pytest.raises(ConfigSyntaxError):
        validate_file(DATA / "malformed.xml")


# --- main_validate: the CLI entry ---------------------------------------------------------------


def test_main_validate_exit_0(capsys):
    assert main_validate(str(DATA / "basic.xml")) == 0
    assert capsys.readouterr().out == f"{DATA / 'basic.xml'}: 0 errors, 0 warnings, 0 notes\n"


def test_main_validate_exit_1(capsys):
    assert main_validate(str(DATA / "problems.xml")) == 1
    out = capsys.readouterr().out.splitlines()
    assert all(LINE.match(line) for line in out[:-1])
    assert out[-1].endswith("3 errors, 4 warnings, 0 notes")


def test_main_validate_exit_0_with_warnings(capsys):
    assert main_validate(str(DATA / "unknown-elements.xml")) == 0
    assert "warning [unknown-element]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "code", "line"),
    [("malformed.xml", "malformed-xml", 5), ("billion-laughs.xml", "unsafe-xml", 2)],
)
def test_main_validate_exit_2(capsys, name, code, line):
    assert main_validate(str(DATA / name)) == 2
    out = capsys.readouterr().err  # an error that stops the check goes to stderr
    assert out.startswith(f"{DATA / name}:{line}: error [{code}] ")
    assert out.count(str(DATA / name)) == 1 and len(out.splitlines()) == 1


def test_main_validate_unreadable(capsys, tmp_path):
    missing = tmp_path / "missing.xml"
    assert main_validate(str(missing)) == 2
    assert capsys.readouterr().err.startswith(f"{missing}: error [unreadable] cannot read")


def test_main_validate_on_a_copy_in_a_directory_with_spaces(capsys, tmp_path):
    folder = tmp_path / "Microsoft CRM Email" / "Service"
    folder.mkdir(parents=True)
    target = folder / "Microsoft.Crm.Tools.EmailAgent.xml"
    shutil.copyfile(DATA / "windows-utf16.xml", target)
    assert main_validate(str(target)) == 0
