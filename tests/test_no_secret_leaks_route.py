"""``env:`` passwords in no output of the ``emailrouter route`` command: what held in issue 12
must keep holding.

``test_no_secret_leaks.py`` runs every notebook and the audit with passwords given by ``env:``
references; this runs the routing command as its own process, as cron does, on a real Dovecot:
one mailbox whose password the server accepts and one whose (distinctive) password it refuses,
a message routed and deleted, the run's artifacts written. Neither password may appear in the
command's stdout or stderr, nor in any file it wrote (artifacts, CRM, ledgers, quarantine).
"""

from __future__ import annotations

import pytest
from routing_helpers import crm_store, demo_crm, message, route_in_subprocess
from servers import Dovecot
from test_no_secret_leaks import CANARY, GOOD_ENV, WRONG_ENV, assert_nowhere

pytestmark = pytest.mark.dovecot


def test_route_command_prints_and_writes_no_password(dovecot: Dovecot, tmp_path, monkeypatch):
    good_password = dovecot.users["crm"]
    monkeypatch.setenv(GOOD_ENV, good_password)
    monkeypatch.setenv(WRONG_ENV, CANARY)
    dovecot.reset("crm")
    dovecot.deliver(message("routed with an env: password"), to="crm")
    good = dovecot.url("pop3", "crm", owner="queue:support@contoso.example", after="delete")
    wrong = dovecot.url("imap", "bob")
    good = good.replace(dovecot.password_env("crm"), GOOD_ENV)
    wrong = wrong.replace(dovecot.password_env("bob"), WRONG_ENV)
    crm_url = demo_crm(tmp_path)
    done = route_in_subprocess(crm_url, good, wrong, extra=("--run-dir", str(tmp_path / "run")))
    assert done.returncode == 1, done.stdout + done.stderr  # the refused mailbox fails the run
    assert "created" in done.stdout and (tmp_path / "run" / "report.html").exists()
    assert len(crm_store(crm_url).emails_with_message_id(_routed_id(crm_url))) == 1
    searched = assert_nowhere([good_password, CANARY], tmp_path, done.stdout, done.stderr)
    assert searched >= 5  # CRM, ledger, summary, results, report at least


def _routed_id(crm_url: str) -> str:
    emails = [e for e in crm_store(crm_url).emails(directioncode=0) if e["subject"]]
    return next(e["messageid"] for e in emails if "env: password" in e["subject"])
