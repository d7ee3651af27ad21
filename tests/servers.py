"""Real test servers on loopback: a throw-away Dovecot (POP3, IMAP, LMTP) and a dropping proxy.

Dovecot runs from its own generated config file in a short directory under /tmp (never pytest's
``tmp_path``: as root, Dovecot's auth process must traverse the directory, and unix socket paths
must stay under 108 bytes). Ports come from ``bind(0)``. As root, the master drops to ``dovecot``
/ ``dovenull`` and mail is owned by ``vmail``; as a normal user every process runs as that user.
The recipe and its pitfalls are measured in ``../shared/reference/test-servers.md`` (§2, §8).

Nothing here imports the project: the module works with any Python 3.11, so a non-root user can
run it with /usr/bin/python3 to check the non-root variant.
"""

from __future__ import annotations

import contextlib
import email.message
import grp
import imaplib
import os
import pwd
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

HOST = "127.0.0.1"
DOMAIN = "example.test"
USERS = {"alice": "alicepw", "bob": "bobpw", "crm": "crmpw", "outbox": "outboxpw"}
MAIL_USER = "vmail"  # owns the mail files when Dovecot runs as root (it refuses uid 0 for mail)
PASSWORD_ENV = "EMAILROUTER_TEST_PW_{user}"  # where url() puts each user's password


# Debian's Chromium, as the browser tests launch it: sandbox and GPU off (root, no display), and
# no background networking, which this machine's closed network would refuse again and again.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


class ServerUnavailable(RuntimeError):
    """The server cannot run on this machine (the fixtures turn this into a skip)."""


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


def free_ports(count: int) -> list[int]:
    """*count* distinct loopback ports that were free a moment ago (all bound at once)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def sample_message(subject: str, body: str = "Hello.\n", **headers: str) -> EmailMessage:
    """A small, well-formed message with a unique Message-ID."""
    msg = EmailMessage()
    msg["From"] = headers.pop("From", f"customer@{DOMAIN}")
    msg["To"] = headers.pop("To", f"alice@{DOMAIN}")
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = headers.pop("Message_ID", make_msgid(domain=DOMAIN))
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


@dataclass
class Dovecot:
    """A running Dovecot. ``ports`` has pop3, imap, lmtp (and pop3s, imaps with TLS)."""

    root: Path
    ports: dict[str, int]
    process: subprocess.Popen
    tls: bool = False
    ca_file: str | None = None
    host: str = HOST
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "dovecot.log"

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def user_maildir(self, user: str) -> Path:
        return self.root / "mail" / user / "Maildir"

    def password_env(self, user: str) -> str:
        """Name of the environment variable holding *user*'s password (set while running)."""
        return PASSWORD_ENV.format(user=user.upper())

    def url(
        self,
        protocol: str,
        user: str = "alice",
        folder: str | None = None,
        *,
        starttls: bool = False,
        cafile: bool = True,
        **params: str,
    ) -> str:
        """A mailbox URL for *user* (``imap``, ``imaps``, ``pop3``, ``pop3s``), password by env."""
        port = self.ports[protocol]
        query = {"password": f"env:{self.password_env(user)}"}
        if starttls:
            query["starttls"] = "1"
        if cafile and self.ca_file and (starttls or protocol.endswith("s")):
            query["cafile"] = self.ca_file
        query.update(params)
        path = f"/{folder}" if folder else ""
        return f"{protocol}://{user}@{self.host}:{port}{path}?" + "&".join(
            f"{k}={v}" for k, v in query.items()
        )

    def deliver(
        self,
        message: bytes | str | email.message.Message,
        to: str | list[str] = f"alice@{DOMAIN}",
        sender: str = f"sender@{DOMAIN}",
    ) -> None:
        """Deliver over LMTP like a real MTA (Dovecot writes the Maildir, with the right owner)."""
        if isinstance(message, email.message.Message):
            data = message.as_bytes()
        elif isinstance(message, str):
            data = message.encode()
        else:
            data = bytes(message)
        data = re.sub(rb"\r?\n", b"\r\n", data)
        for rcpt in [to] if isinstance(to, str) else to:
            if "@" not in rcpt:
                rcpt = f"{rcpt}@{DOMAIN}"
            with smtplib.LMTP(self.host, self.ports["lmtp"], timeout=10) as lmtp:
                lmtp.sendmail(sender, [rcpt], data)

    def imap(self, user: str) -> imaplib.IMAP4:
        """A logged-in plain imaplib connection, for looking behind a source's back."""
        conn = imaplib.IMAP4(self.host, self.ports["imap"], timeout=10)
        conn.login(user, self.users[user])
        return conn

    def reset(self, user: str) -> None:
        """Empty *user*'s mailbox: every folder but INBOX deleted, INBOX expunged.

        Done over IMAP, so UIDVALIDITY stays and UIDs keep growing, as on a real server.
        """
        conn = self.imap(user)
        try:
            _, listing = conn.list()
            names = [_list_name(line) for line in listing if line]
            for name in sorted((n for n in names if n and n.upper() != "INBOX"), key=len)[::-1]:
                conn.unsubscribe(_imap_quote(name))
                conn.delete(_imap_quote(name))
            typ, data = conn.select("INBOX")
            if typ == "OK" and int(data[0] or 0):
                conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                conn.expunge()
        finally:
            conn.logout()

    def stop(self) -> None:
        """SIGTERM the master and wait for it (≈1 s: every child exits, the ports are free)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for user in self.users:
            os.environ.pop(self.password_env(user), None)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot(*, tls: bool = False, attempts: int = 3, extra_config: str = "") -> Dovecot:
    """Start a Dovecot in a fresh directory; ready when every listener greets.

    *extra_config* is appended to the config (``{root}`` is the server's directory), e.g. the
    namespaces of a server whose folders live under ``INBOX.``.
    """
    binary = dovecot_binary()
    if not binary:
        raise ServerUnavailable(
            "the dovecot binary is not installed; run `make test` (it installs Dovecot through "
            ".ci/system-packages.sh) or apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(MAIL_USER)
        except KeyError:
            raise ServerUnavailable(
                f"running as root, Dovecot needs the system user {MAIL_USER!r} to own mail; "
                "run `make test` (.ci/system-packages.sh creates it)"
            ) from None
    if tls and not shutil.which("openssl"):
        raise ServerUnavailable("openssl is needed to make the test CA; apt-get install openssl")
    last_error = ""
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        os.chmod(root, 0o755)  # Dovecot's auth process (user dovecot) must traverse it
        names = ["pop3", "imap", "lmtp", "auth"] + (["pop3s", "imaps"] if tls else [])
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        ca_file = _make_certificates(root) if tls else None
        _write_config(root, ports, tls, extra_config.replace("{root}", str(root)))
        stdout = open(root / "log" / "stdout", "wb")  # noqa: SIM115 - lives as long as the server
        process = subprocess.Popen(
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stdout.close()
        server = Dovecot(root, ports, process, tls=tls, ca_file=ca_file)
        try:
            _wait_ready(server)
        except ServerUnavailable as exc:
            last_error = str(exc)
            server.cleanup()
            if "Address already in use" in last_error:
                continue  # another process took a port between bind(0) and listen: retry
            raise
        for user, password in server.users.items():
            os.environ[server.password_env(user)] = password
        return server
    raise ServerUnavailable(last_error)


def _wait_ready(server: Dovecot, timeout: float = 20.0) -> None:
    greetings = {"pop3": b"+OK", "imap": b"* OK", "lmtp": b"220"}
    deadline = time.monotonic() + timeout
    pending = dict(server.ports)
    pending.pop("auth", None)
    while pending:
        if server.process.poll() is not None:
            raise ServerUnavailable(f"dovecot exited at start:\n{_log_tail(server)}")
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"dovecot not ready after {timeout:g} s:\n{_log_tail(server)}")
        for name, port in list(pending.items()):
            try:
                with socket.create_connection((server.host, port), timeout=2) as s:
                    if name in greetings:
                        s.settimeout(3)
                        if not s.recv(64).startswith(greetings[name]):
                            continue
                pending.pop(name)
            except OSError:
                pass
        if pending:
            time.sleep(0.05)


def _log_tail(server: Dovecot, lines: int = 30) -> str:
    text = ""
    for path in (server.root / "log" / "stdout", server.log_path):
        with contextlib.suppress(OSError):
            text += path.read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _write_config(root: Path, ports: dict[str, int], tls: bool, extra: str = "") -> None:
    for sub in ("run", "state", "mail", "log"):
        (root / sub).mkdir(exist_ok=True)
    if os.geteuid() == 0:
        mail = pwd.getpwnam(MAIL_USER)
        os.chown(root / "mail", mail.pw_uid, mail.pw_gid)
        privileges = f"""default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 100
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}"""
    else:  # every process runs as the invoking user, no privilege switching
        me = pwd.getpwuid(os.getuid())
        privileges = f"""default_login_user = {me.pw_name}
default_internal_user = {me.pw_name}
default_internal_group = {grp.getgrgid(os.getgid()).gr_name}
first_valid_uid = {os.getuid()}"""
    ssl = "ssl = no"
    if tls:
        ssl = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"

    def listener(name: str, kind: str) -> str:
        port = ports.get(name, 0)  # 0: listener off
        return f"  inet_listener {kind} {{\n    address = {HOST}\n    port = {port}\n  }}"

    config = f"""# self-contained test config: nothing from /etc/dovecot is read
protocols = imap pop3 lmtp
listen = {HOST}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
instance_name = dovecot-test-{root.name}
{privileges}
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests try wrong passwords: answer at once instead of after the default 2 s
auth_failure_delay = 0
mail_max_userip_connections = 100
mail_fsync = never
mail_location = maildir:{root}/mail/%u/Maildir
mail_home = {root}/mail/%u
# "alice@{DOMAIN}" (LMTP RCPT, login) -> local user "alice"
auth_username_format = %n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {root}/users
}}
userdb {{
  driver = static
}}
# chroot needs root; off so the same config runs as a normal user
service imap-login {{
  chroot =
{listener("imap", "imap")}
{listener("imaps", "imaps")}
}}
service pop3-login {{
  chroot =
{listener("pop3", "pop3")}
{listener("pop3s", "pop3s")}
}}
service lmtp {{
{listener("lmtp", "lmtp")}
}}
service auth {{
{listener("auth", "")}
}}
# no auth penalty: after failed logins every login from 127.0.0.1 would wait 2..15 s
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
    (root / "dovecot.conf").write_text(config + extra)
    (root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items()))
    os.chmod(root / "dovecot.conf", 0o644)
    os.chmod(root / "users", 0o644)


def _make_certificates(root: Path) -> str:
    """A throw-away CA and a server certificate it signs (localhost, 127.0.0.1); returns the CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (root / "server.ext").write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    steps = [
        ["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=emailrouter test CA",
         "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *ec, "-subj", "/CN=localhost", "-keyout", "key.pem",
         "-out", "server.csr"],
        ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
         "-extfile", "server.ext", "-out", "cert.pem"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, cwd=root, capture_output=True, text=True, check=False)
        if done.returncode:
            raise ServerUnavailable(f"{' '.join(step[:2])} failed: {done.stderr.strip()}")
    for name in ("ca.pem", "cert.pem"):
        os.chmod(root / name, 0o644)
    for name in ("ca.key", "key.pem"):
        os.chmod(root / name, 0o600)
    return str(root / "ca.pem")


def _list_name(line: bytes) -> str | None:
    """The mailbox name at the end of an IMAP LIST reply line."""
    text = line.decode("utf-8", "replace")
    quoted = re.search(r'"((?:[^"\\]|\\.)*)"\s*$', text)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted[1])
    return text.rsplit(" ", 1)[-1] or None


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DroppingProxy:
    """A TCP proxy in front of a real server that can cut the connection mid-response.

    ``cut_after(n)`` closes both sides once *n* more bytes went from the server to the client:
    the way a NAT timeout or a crashed server looks to a client in the middle of a download.
    ``cut_now()`` closes every connection at once, so the server never sees what comes next
    (a POP3 QUIT, for instance).
    """

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.downloaded = 0
        self._limit: int | None = None
        self._closed = threading.Event()
        self._open: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, more_bytes: int) -> None:
        self._limit = self.downloaded + more_bytes

    def cut_now(self) -> None:
        for pair in list(self._open):
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as upstream:
            self._open.append((client, upstream))
            while not self._closed.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if sock is upstream:
                        if self._limit is not None and self.downloaded + len(data) > self._limit:
                            allowed = max(0, self._limit - self.downloaded)
                            client.sendall(data[:allowed])
                            self.downloaded += allowed
                            client.shutdown(socket.SHUT_RDWR)
                            return
                        self.downloaded += len(data)
                        client.sendall(data)
                    else:
                        upstream.sendall(data)


__all__ = [
    "DOMAIN",
    "USERS",
    "Dovecot",
    "DroppingProxy",
    "ServerUnavailable",
    "dovecot_binary",
    "free_ports",
    "sample_message",
    "start_dovecot",
]
