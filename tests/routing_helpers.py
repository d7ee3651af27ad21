"""Small helpers shared by the routing tests: a seeded CRM, a Maildir to drop messages in, a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from emailrouter_lib import routing
from emailrouter_lib.crm import SqliteCrm, init_crm, sqlite_path
from emailrouter_lib.mailboxes.url import local_mailbox_url

ROOT = Path(__file__).resolve().parents[1]


def demo_crm(folder: Path) -> str:
    url = f"sqlite:///{folder / 'crm.sqlite'}"
    init_crm(url, demo=True, force=True)
    return url


def crm_store(url: str) -> SqliteCrm:
    return SqliteCrm(sqlite_path(url))


def message(
    subject: str = "Hello",
    *,
    sender: str = "carol@fabrikam.example",
    to: str = "support@contoso.example",
    body: str = "Hello from a customer.\n",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 04 Mar 2024 12:00:00 +0000"
    msg["Message-ID"] = headers.pop("message_id", None) or make_msgid(domain="test.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def drop(maildir: Path, *messages: EmailMessage | bytes) -> list[Path]:
    """Write messages into a Maildir's new/ as a delivery agent would."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for msg in messages:
        raw = msg if isinstance(msg, bytes) else msg.as_bytes()
        n = len(list((maildir / "new").iterdir())) + len(list((maildir / "cur").iterdir()))
        path = maildir / "new" / f"17000000{n:02d}.M{n}P{os.getpid()}.test"
        path.write_bytes(raw)
        paths.append(path)
    return paths


def maildir_url(maildir: Path, **params: str) -> str:
    return local_mailbox_url(maildir, "maildir", **params)


def route(crm_url: str, *mailboxes: str, **params) -> routing.RoutingResult:
    return routing.run({"mailboxes": list(mailboxes), "crm": crm_url, "progress": False, **params})


def route_command(
    crm_url: str, *mailboxes: str, crash_at: str | None = None, extra: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``emailrouter route`` on these mailboxes."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("EMAILROUTER_CRASH_AT", None)
    if crash_at:
        env["EMAILROUTER_CRASH_AT"] = crash_at
    args = [sys.executable, "-m", "emailrouter_lib.cli", "route", "--crm", crm_url, "--quiet"]
    for url in mailboxes:
        args += ["--mailbox", url]
    return [*args, *extra], env


def route_in_subprocess(
    crm_url: str, *mailboxes: str, crash_at: str | None = None, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``emailrouter route`` as its own process, optionally killed (SIGKILL) at a crash point.

    A killed run holds its mailboxes' leases until they expire: it runs with one-second leases
    and this returns once they expired, so the next run takes the mailboxes over."""
    if crash_at:
        extra = ("--lease-seconds", str(CRASH_LEASE_SECONDS), *extra)
    args, env = route_command(crm_url, *mailboxes, crash_at=crash_at, extra=extra)
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if crash_at and done.returncode == -signal.SIGKILL:
        time.sleep(CRASH_LEASE_SECONDS + 0.1)
    return done


CRASH_LEASE_SECONDS = 1
