"""Secrets by reference at every front, and never in a file or on the screen (issue 12, item 8).

A password in a URL's user part (``imaps://crm:PW@host``) or under any spelling of a credential
parameter (``pass%77ord=``, ``PASSWORD=``, ``client_secret=``, ``token=``, ``pwd=``) is refused,
naming the parameter and the URL redacted, before anything is written: by the notebook runner, by
every ``emailrouter`` subcommand, by the routing / audit parameters, and by the mailbox, transport
and CRM URL parsers. A server that echoes the login line has the resolved password masked in
every artifact and in what ``emailrouter route`` prints (a real loopback IMAP server and aiosmtpd,
the command as its own process).

Also the smaller hostile-input items of 9: migration-plan CSVs formula-defused under pandas 3's
``str`` dtype, a config integer of more than 4,300 digits, and a publish target whose DOCTYPE
declares entities, each through the command as its own process.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from routing_helpers import demo_crm
from servers import HOST, free_ports

from emailrouter_lib.errors import CrmURLError, MailboxURLError, SecretError
from emailrouter_lib.mailboxes import open_sender, open_source
from emailrouter_lib.runner import check_parameters, notebook_parameters

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "config"
ROUTING_NOTEBOOK = ROOT / "notebooks" / "04_run_routing_batch.ipynb"
PW = "Leak-Pw-5b1e7d"  # a literal password; it must never be echoed
SERVER_PW = "THEPASSWORD-9c2f41"  # the resolved secret a hostile server echoes back

# Every spelling of a literal secret in a URL that must be refused.
LEAKY_URLS = [
    f"imaps://crm:{PW}@mail.contoso.test/INBOX?password=env:X",
    f"pop3s://crm:{PW}@mail.contoso.test?password=env:X",
    f"imap://crm%3A{PW}@mail.contoso.test/INBOX?password=env:X",  # an encoded ':'
    f"smtp://crm:{PW}@mail.contoso.test:587?starttls=1",
    f"ewss://svc:{PW}@mail.contoso.test/EWS/Exchange.asmx?mailbox=a@contoso.test",
    f"dataverse+https://u:{PW}@crm.contoso.test/org",
    f"postgresql://router:{PW}@db.contoso.test/ledger",
    f"imaps://crm@mail.contoso.test/INBOX?pass%77ord={PW}",
    f"imaps://crm@mail.contoso.test/INBOX?pass%2577ord={PW}",  # encoded twice
    f"imaps://crm@mail.contoso.test/INBOX?PASSWORD={PW}",
    f"imaps://crm@mail.contoso.test/INBOX?pass%3D{PW}=1",  # the value hidden in the name
    f"imaps://crm@mail.contoso.test/INBOX?owner=user:a@b.test;password={PW}",
    f"pop3s://crm@mail.contoso.test?pwd={PW}",
    f"smtps://crm@mail.contoso.test?Token={PW}",
    f"ewss://svc@mail.contoso.test/EWS/Exchange.asmx?mailbox=a@contoso.test&secret={PW}",
    f"dataverse+https://crm.contoso.test/org?auth=client_credentials&Client-Secret={PW}",
    f"dataverse+https://crm.contoso.test/org?auth=ntlm&user=u&client_secret={PW}",
]
IDS = [u.split("://")[0] + "-" + str(i) for i, u in enumerate(LEAKY_URLS)]


def emailrouter(*args: str, cwd: Path = ROOT, env: dict | None = None):
    """``emailrouter ARGS`` as its own process, the way cron runs it."""
    return subprocess.run(
        [sys.executable, "-m", "emailrouter_lib.cli", *args],
        cwd=cwd,
        env={**os.environ, "TQDM_DISABLE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def emailrouter_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The same command through ``cli.main`` in this process (faster; the exit code, stdout and
    stderr are what the process would give)."""
    from emailrouter_lib.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def assert_one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- refused at every front, before anything is written ------------------------------------------
@pytest.mark.parametrize("url", LEAKY_URLS, ids=IDS)
def test_the_runner_refuses_a_literal_secret_in_any_url_naming_the_parameter(url):
    known = notebook_parameters(ROUTING_NOTEBOOK)
    with pytest.raises(SecretError) as caught:
        check_parameters(ROUTING_NOTEBOOK, {"mailboxes": ["maildir:///ok", url]}, known)
    text = str(caught.value)
    assert PW not in text and "mailboxes[1]" in text and "env:NAME" in text


@pytest.mark.parametrize(
    "url",
    [u for u in LEAKY_URLS if u.startswith(("imap", "pop3", "ewss"))],
    ids=[i for u, i in zip(LEAKY_URLS, IDS, strict=True) if u.startswith(("imap", "pop3", "ewss"))],
)
def test_mailbox_urls_refuse_every_spelling_without_echo(url):
    with pytest.raises(MailboxURLError) as caught:
        open_source(url)
    assert PW not in str(caught.value) and PW not in repr(caught.value)
    assert "reference" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"smtp://crm:{PW}@127.0.0.1:25",
        f"smtp://crm@127.0.0.1:25?PassWord={PW}",
        f"smtps://crm@mail.contoso.test?pass%77ord={PW}",
        f"pickup:///tmp/out?token={PW}",
    ],
)
def test_transport_urls_refuse_every_spelling_without_echo(url):
    with pytest.raises(MailboxURLError) as caught:
        open_sender(url)
    assert PW not in str(caught.value) and "reference" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"sqlite://u:{PW}@/var/lib/crm.sqlite",
        f"postgresql://u:{PW}@db/crm",
        f"dataverse+https://crm.contoso.test/org?auth=ntlm&user=u&PASSWORD={PW}",
        f"dataverse+https://crm.contoso.test/org?auth=client_credentials&Client_Secret={PW}",
    ],
)
def test_crm_urls_refuse_every_spelling_without_echo(url):
    from emailrouter_lib.crm import open_crm

    with pytest.raises(CrmURLError) as caught:
        open_crm(url)
    assert PW not in str(caught.value)


def test_routing_parameters_refuse_a_transport_password_before_anything_runs(tmp_path):
    from emailrouter_lib import routing

    crm = demo_crm(tmp_path)
    before = {p.name for p in files_under(tmp_path)}
    with pytest.raises(SecretError) as caught:
        routing.run(
            {
                "crm": crm,
                "directions": ["outgoing"],
                "transports": {"*": f"smtp://crm:{PW}@127.0.0.1:1"},
                "progress": False,
            }
        )
    assert PW not in str(caught.value) and "transports.*" in str(caught.value)
    assert {p.name for p in files_under(tmp_path)} == before  # no ledger, no outbox, no row


def test_the_runner_command_refuses_before_the_run_folder_exists(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emailrouter_lib.runner",
            str(ROUTING_NOTEBOOK),
            "-f",
            str(ROOT / "params" / "04_run_routing_batch.demo.yaml"),
            "-p",
            "mailboxes",
            f'["imaps://crm:{PW}@mail.contoso.test/INBOX?password=env:X"]',
            "--run-root",
            str(tmp_path / "runs"),
            "--run-id",
            "leak",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = assert_one_line_error(result)
    assert PW not in line and "mailboxes[0]" in line and "crm:***@" in line
    assert not (tmp_path / "runs" / "leak").exists()  # no run.json, no executed notebook


@pytest.fixture(scope="module")
def shared_crm(tmp_path_factory) -> str:
    """One demo CRM for the refusals: none of them may open it, so none changes it."""
    return demo_crm(tmp_path_factory.mktemp("crm"))


OWN_PROCESS = True  # as its own process, the way cron runs it; else through cli.main (faster)


@pytest.mark.parametrize(
    "own_process, args",
    [
        (OWN_PROCESS, ["route", "--mailbox", f"imaps://crm@mail.test/INBOX?pass%77ord={PW}"]),
        (False, ["route", "--mailbox", f"pop3s://crm:{PW}@mail.contoso.test?password=env:X"]),
        (OWN_PROCESS, ["route", "--transport", f"smtp://crm:{PW}@127.0.0.1:25"]),
        (False, ["route", "--transport", f"support@contoso.test=smtp://crm@127.0.0.1?pwd={PW}"]),
        (False, ["route", "--config", str(DATA / "basic.xml"), "--config-password", PW]),
        (False, ["route", "--outgoing", "--mailbox", "maildir:///x", "--transport-password", PW]),
        (False, ["route", "--mailbox", "maildir:///x", "--ledger", f"postgresql://u:{PW}@db/l"]),
        (False, ["audit", "--url-template", f"imaps://{{address}}@mail.test/?PASSWORD={PW}"]),
        (OWN_PROCESS, ["rules", "plan", "--ews", f"ewss://svc:{PW}@mail.test/EWS/Exchange.asmx"]),
    ],
    ids=lambda v: v if isinstance(v, bool) else "-".join(a for a in v if a[:2] == "--")[:40],
)
def test_every_command_refuses_a_literal_secret_in_one_line(
    own_process, args, shared_crm, tmp_path
):
    crm = shared_crm  # a working CRM: only the secret can make the command refuse
    run_dir = tmp_path / "run"
    extra = ["--crm", crm, "--run-dir", str(run_dir)] if args[0] in ("route", "audit") else []
    if args[0] == "rules":
        extra = ["--crm", crm]
    run = emailrouter if own_process else emailrouter_in_process
    result = run(*args, *extra, cwd=tmp_path)
    line = assert_one_line_error(result)
    assert PW not in result.stdout + result.stderr
    assert "literal secret" in line and "env:" in line
    assert not run_dir.exists()
    assert not any(PW.encode() in p.read_bytes() for p in files_under(tmp_path))


def test_a_crm_url_with_a_password_is_refused_by_the_command_without_echo(tmp_path):
    result = emailrouter("route", "--crm", f"postgresql://router:{PW}@db/crm", cwd=tmp_path)
    line = assert_one_line_error(result)
    assert PW not in result.stdout + result.stderr and "router:***@db" in line


def test_references_and_ordinary_values_pass_and_redaction_keeps_them():
    from emailrouter_lib.secrets import literal_secrets, redact_url

    fine = {
        "mailboxes": [
            "imaps://crm@mail.test/INBOX?owner=queue:a@b.test&password=env:PW",
            "ewss://CONTOSO%5Csvc@autodiscover?mailbox=a@b.test&password=keyring:er/svc",
            "maildir:///srv/mail/support",
        ],
        "crm": "dataverse+https://crm.test/org?auth=client_credentials&client_secret=file:/s",
        "config_password": "env:PW_{local}",
        "transports": {"*": "smtp://crm@mail.test:587?starttls=1&password=env:SMTP_PW"},
        "files": ["password=notes.eml", "a;b.eml"],
        "batch_size": 200,
        "insecure_auth": True,
    }
    assert literal_secrets(fine) == []
    url = f"smtp://crm:{PW}@mail.test:587?starttls=1&pass%77ord={PW}&password=env:OK#{PW}"
    assert (
        redact_url(url)
        == "smtp://crm:***@mail.test:587?starttls=1&pass%77ord=***&password=env:OK#***"
    )


# -- a server that echoes the secret -------------------------------------------------------------
class _EchoingImap(socketserver.StreamRequestHandler):
    """An IMAP server that refuses every login quoting the login line, password included (as
    some servers' debug modes and proxies do)."""

    def handle(self) -> None:
        self.wfile.write(b"* OK IMAP4rev1 echo server ready\r\n")
        for raw in self.rfile:
            tag, _, rest = raw.decode("utf-8", "replace").strip().partition(" ")
            command = rest.split(" ", 1)[0].upper()
            if command == "CAPABILITY":
                self.wfile.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                self.wfile.write(f"{tag} OK CAPABILITY done\r\n".encode())
            elif command == "LOGIN":
                self.wfile.write(f"{tag} NO [AUTHENTICATIONFAILED] {rest} failed\r\n".encode())
            elif command == "LOGOUT":
                self.wfile.write(f"* BYE\r\n{tag} OK LOGOUT done\r\n".encode())
                return
            else:
                self.wfile.write(f"{tag} BAD unexpected {command}\r\n".encode())


@pytest.fixture
def echoing_imap() -> Iterator[int]:
    (port,) = free_ports(1)
    server = socketserver.ThreadingTCPServer((HOST, port), _EchoingImap)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def echoing_smtp() -> Iterator[int]:
    """aiosmtpd that refuses every AUTH quoting the login and the password it was sent."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(server, session, envelope, mechanism, auth_data):
        said = ""
        if isinstance(auth_data, LoginPassword):
            said = f"{auth_data.login.decode()} {auth_data.password.decode()}"
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 AUTH {said} refused")

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    (port,) = free_ports(1)
    controller = Controller(
        Handler(),
        hostname=HOST,
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.mark.timeout(120)
def test_a_server_echoing_the_password_has_it_masked_in_every_output(
    echoing_imap, echoing_smtp, tmp_path
):
    crm = demo_crm(tmp_path)
    run_dir = tmp_path / "run"
    env = {"EMAILROUTER_ECHO_PW": SERVER_PW}
    mailbox = (
        f"imap://crm@{HOST}:{echoing_imap}/INBOX?owner=queue:support@contoso.example"
        "&password=env:EMAILROUTER_ECHO_PW&timeout=10"
    )
    transport = f"smtp://crm@{HOST}:{echoing_smtp}?password=env:EMAILROUTER_ECHO_PW&timeout=10"
    result = emailrouter(
        "route",
        "--mailbox",
        mailbox,
        "--crm",
        crm,
        "--outgoing",
        "--transport",
        transport,
        "--run-dir",
        str(run_dir),
        "--quiet",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    written = {p.name: p.read_bytes() for p in files_under(tmp_path)}
    assert {"report.html", "results.csv", "summary.json", "outgoing.csv"} <= set(written)
    for name, data in written.items():
        assert SERVER_PW.encode() not in data, f"the echoed password is in {name}"
    assert SERVER_PW not in result.stdout + result.stderr
    # The servers did echo it, and what they said is kept, masked: the test proves something.
    assert "AUTHENTICATIONFAILED" in written["report.html"].decode()
    assert 'LOGIN crm \\"***\\" failed' in written["summary.json"].decode()
    assert "535 5.7.8 AUTH crm *** refused" in written["outgoing.csv"].decode()
    assert 'LOGIN crm "***" failed' in result.stdout


def test_masking_covers_the_usual_spellings_of_a_resolved_secret(monkeypatch, tmp_path):
    from emailrouter_lib.errors import MailboxAuthError
    from emailrouter_lib.reports.artifacts import write_run_artifacts
    from emailrouter_lib.secrets import resolve_secret

    secret = 'Qu0te"d\\&<pw>'
    monkeypatch.setenv("EMAILROUTER_MASK_PW", secret)
    assert resolve_secret("env:EMAILROUTER_MASK_PW") == secret
    imap_quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
    error = MailboxAuthError(f'NO LOGIN crm "{imap_quoted}" failed; {secret!r}', mailbox="m")
    assert "Qu0te" not in str(error) and "Qu0te" not in repr(error.args)
    frame = pd.DataFrame({"reason": [f"server said {secret}"], "n": [1]})
    write_run_artifacts(
        tmp_path / "run", summary={"error": secret}, tables={"results": frame}, title="t"
    )
    for path in files_under(tmp_path / "run"):
        assert b"Qu0te" not in path.read_bytes(), path


# -- item 9: hostile files through the command ------------------------------------------------
def test_migration_plan_csvs_are_formula_defused_under_the_str_dtype(tmp_path):
    formulas = ['=HYPERLINK("http://x.test","open")', "+1+1", "-2+3", "@SUM(1)", "\tx", "\rx"]
    assert pd.Series(formulas).dtype != object  # pandas 3: text is a str dtype, not object
    from emailrouter_lib.migration.model import MigrationPlan
    from emailrouter_lib.migration.writers import write_plan

    written = write_plan(
        MigrationPlan(),
        tmp_path / "tables",
        "csv",
        extra_tables={"hostile": pd.DataFrame({"name": formulas, "n": range(6)})},
    )
    hostile = next(p for p in written if p.name == "hostile.csv")
    with hostile.open(newline="", encoding="utf-8") as handle:
        names = [row["name"] for row in csv.DictReader(handle)]
    assert names == ["'" + f for f in formulas]

    text = (DATA / "basic.xml").read_text(encoding="utf-8")
    hostile_config = tmp_path / "EmailAgent.xml"
    hostile_config.write_text(
        text.replace("Fabrikam POP3 in", '=HYPERLINK("http://x.test","y")').replace(
            "Fabrikam Exchange in", "@SUM(1)"
        ),
        encoding="utf-8",
    )
    result = emailrouter(
        "migrate", "plan", "--config", str(hostile_config), "--format", "csv", "--output", "plan"
        , cwd=tmp_path
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cells = [
        cell
        for path in (tmp_path / "plan").glob("*.csv")
        for row in csv.reader(path.open(newline="", encoding="utf-8"))
        for cell in row
        if "HYPERLINK" in cell or "SUM(1)" in cell
    ]
    assert cells and all(cell.startswith("'") for cell in cells), cells


def test_a_config_integer_of_5000_digits_is_a_finding_naming_file_and_line(tmp_path):
    text = (DATA / "basic.xml").read_text(encoding="utf-8")
    line = text[: text.index("<MaxThreads>")].count("\n") + 1
    path = tmp_path / "EmailAgent.xml"
    path.write_text(re.sub(r"<MaxThreads>\d+<", f"<MaxThreads>{'9' * 5000}<", text), "utf-8")
    result = emailrouter("config", "validate", str(path), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # 1: the file has errors
    assert "Traceback" not in result.stdout + result.stderr and not result.stderr
    assert f"{path}:{line}: error [bad-number] <MaxThreads> is a number of 5,000 digits" in (
        result.stdout
    )
    planned = emailrouter_in_process("migrate", "plan", "--config", str(path), cwd=tmp_path)
    assert "Traceback" not in planned.stdout + planned.stderr


@pytest.mark.parametrize("hostile", ["billion-laughs.xml", "xxe-file.xml", "external-dtd.xml"])
def test_publish_refuses_a_target_whose_doctype_declares_entities(hostile, tmp_path):
    target = tmp_path / "Microsoft.Crm.Tools.EmailAgent.xml"
    data = (DATA / hostile).read_bytes()
    target.write_bytes(data)
    run = emailrouter if hostile == "billion-laughs.xml" else emailrouter_in_process
    result = run(
        "config", "publish", str(DATA / "basic.xml"), "--to", str(target), "--apply", cwd=tmp_path
    )
    line = assert_one_line_error(result)
    assert str(target) in line and "DOCTYPE" in line
    assert target.read_bytes() == data  # untouched, and no backup of it either
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
