"""Shared fixtures for tests that need real servers (see servers.py for what each one runs).

``dovecot`` and ``dovecot_tls`` are started once per session and stopped (and waited for) at the
end; call ``server.reset(user)`` in a test that needs an empty mailbox. Without Dovecot on the
machine they skip, saying how to install it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from servers import HOST, Dovecot, ServerUnavailable, start_dovecot

# Every fixture module, registered once for the whole suite: a test names a fixture as an
# argument and pytest finds it here, instead of each test file importing it (and silencing the
# linter about the import that only looks unused).
pytest_plugins = [
    "fixtures_audit",
    "fixtures_dataverse",
    "fixtures_ews",
    "fixtures_migration",
    "fixtures_rules",
    "fixtures_smtp",
    "fixtures_smtp_sink",
]


def _start(tls: bool) -> Iterator[Dovecot]:
    try:
        server = start_dovecot(tls=tls)
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot with plaintext POP3, IMAP and LMTP on loopback; users alice, bob, crm, outbox."""
    yield from _start(tls=False)


@pytest.fixture(scope="session")
def dovecot_tls() -> Iterator[Dovecot]:
    """Dovecot with STARTTLS on the plain ports plus pop3s/imaps; ``ca_file`` is its test CA."""
    yield from _start(tls=True)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (for "connection refused" tests)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _forget_resolved_secrets() -> Iterator[None]:
    """Each test starts with no remembered secret values: a password one test resolved (say
    "nope") must not be masked in another test's messages, as it would be in one long process."""
    from emailrouter_lib.known_secrets import forget_secrets

    forget_secrets()
    yield
    forget_secrets()
