"""A known password must never be written anywhere: every notebook is run with its demo
parameters plus real Dovecot mailboxes whose password is given by an env: reference, and no
executed notebook, report, CSV, workbook, database, log or exception text may contain it.

Two passwords are in play: the right one for a good mailbox (the server accepts it) and a
distinctive wrong one for another account (the server refuses it; an error path is where a
careless message would quote it).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from servers import Dovecot

from emailrouter_lib import audit
from emailrouter_lib.crm import init_crm
from emailrouter_lib.errors import EmailRouterError, MailboxAuthError
from emailrouter_lib.mailboxes import open_source
from emailrouter_lib.runner import load_params_file, notebook_parameters, run_notebook

pytestmark = pytest.mark.dovecot

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GOOD_ENV, WRONG_ENV = "EMAILROUTER_LEAK_GOOD_PW", "EMAILROUTER_LEAK_WRONG_PW"
CANARY = "Canary-Pw-7f3a9c51-do-not-print"


@pytest.fixture
def secrets(dovecot: Dovecot, monkeypatch) -> dict[str, str]:
    """The two passwords, put into the environment, and the mailbox URLs that reference them."""
    good_password = dovecot.users["crm"]
    monkeypatch.setenv(GOOD_ENV, good_password)
    monkeypatch.setenv(WRONG_ENV, CANARY)
    dovecot.reset("crm")
    dovecot.deliver(b"Subject: hello\r\nFrom: carol@fabrikam.example\r\n\r\nHi\r\n", to="crm")
    return {
        "good_password": good_password,
        "good": dovecot.url("pop3", "crm").replace(dovecot.password_env("crm"), GOOD_ENV),
        "wrong": dovecot.url("imap", "bob").replace(dovecot.password_env("bob"), WRONG_ENV),
    }


def readable(path: Path) -> bytes:
    """A file's bytes, with zip containers (xlsx) opened so their members are searched too."""
    data = path.read_bytes()
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return data + b"".join(archive.read(name) for name in archive.namelist())
        except zipfile.BadZipFile:
            pass
    return data


def assert_nowhere(passwords: list[str], folder: Path, *texts: str) -> int:
    """No file under *folder* and none of *texts* holds a password; returns files searched."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        data = readable(path)
        for password in passwords:
            assert password.encode() not in data, f"{password!r} leaked into {path}"
    for text in texts:
        for password in passwords:
            assert password not in text, f"{password!r} leaked into output: {text[:200]}"
    return len(files)


def mentions(folder: Path, needle: str) -> bool:
    return any(
        needle.encode() in p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".ipynb", ".json", ".csv", ".html")
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_writes_no_password(notebook, secrets, dovecot, tmp_path, capfd):
    known = notebook_parameters(notebook)
    params = load_params_file(ROOT / "params" / f"{notebook.stem}.demo.yaml")
    if "mailboxes" in known:
        params["mailboxes"] = [*(params.get("mailboxes") or []), secrets["good"], secrets["wrong"]]
    passwords = [secrets["good_password"], CANARY]
    errors: list[str] = []

    def run(parameters: dict, run_id: str) -> Path:
        try:
            run_notebook(notebook, parameters, run_root=tmp_path, run_id=run_id, timeout=300)
        except EmailRouterError as exc:  # a failure is allowed here; a leak in it is not
            errors.append(str(exc))
        return tmp_path / run_id

    folder = run(params, "demo")
    port = str(dovecot.ports["pop3"])
    if "mailboxes" in known and not mentions(folder, port) and "crm" in known:
        # This notebook's demo mode replaces the mailboxes: run it on a fresh demo CRM instead.
        crm_url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
        init_crm(crm_url, demo=True, force=True)
        params = {"mailboxes": [secrets["good"], secrets["wrong"]], "crm": crm_url}
        folder = run(params, "mailboxes")
    if "mailboxes" in known:
        assert mentions(folder, port), "the Dovecot mailboxes were not used; the test proves little"
    captured = capfd.readouterr()
    searched = assert_nowhere(passwords, tmp_path, captured.out, captured.err, *errors)
    assert searched >= 3


def test_audit_result_artifacts_and_errors_hold_no_password(secrets, tmp_path):
    passwords = [secrets["good_password"], CANARY]
    result = audit.run({"mailboxes": [secrets["good"], secrets["wrong"]], "since": None})
    assert result.counts == {"auth-failed": 1, "ok": 1}
    result.write_artifacts(tmp_path / "run")
    texts = [str(result), repr(result), result._repr_html_(), result.table.to_csv()]
    with pytest.raises(MailboxAuthError) as caught, open_source(secrets["wrong"]):
        pass
    import traceback

    texts += [str(caught.value), "".join(traceback.format_exception(caught.value))]
    assert_nowhere(passwords, tmp_path, *texts)
