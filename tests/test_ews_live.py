"""Opt-in tests against a real Exchange (on-premises or Exchange Online): read-only, one mailbox.

They carry the ``live`` marker, which the project's pytest settings deselect (``-m "not live"``),
so a plain ``make test`` neither runs nor skips them. Select them with ``-m live`` and these
variables (without the variables they skip, saying which to set):

    EMAILROUTER_LIVE_EWS_URL    an ``ewss://`` mailbox URL whose password is a reference to an
                                environment variable, e.g.
        ewss://CONTOSO%5Csvc-crm@mail.contoso.com/EWS/Exchange.asmx?mailbox=crm-test@contoso.com&password=env:EMAILROUTER_LIVE_EWS_PASSWORD
                                (``cafile=PATH`` for an on-premises CA; ``auth=``, ``access=``,
                                ``folder=``, ``autodiscover`` as for any ews URL)
    EMAILROUTER_LIVE_EWS_PASSWORD   (or whatever ``password=env:NAME`` names) the secret itself

    EMAILROUTER_LIVE_EWS_URL='ewss://…' EMAILROUTER_LIVE_EWS_PASSWORD='…' \\
        .venv/bin/python -m pytest -m live tests/test_ews_live.py -v

Use a test mailbox with at least one message in the folder read. Nothing is changed: the tests
list the folder, fetch one message's MIME content (checking afterwards that its change key and
read flag are what they were), and read the mailbox's inbox rules. They check what the fake server
cannot prove (tests/ews_server/README.md): real ids, real MIME conversion, real permissions for
the access kind configured, GetInboxRules against the real schema.
"""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

import pytest
from exchangelib.properties import ItemId
from fixtures_ews import SUPPORT_BOX, ews_url
from routing_helpers import message

from emailrouter_lib.mailboxes import open_source, parse_mailbox_url
from emailrouter_lib.mailboxes.ews_account import connect, ews_errors
from emailrouter_lib.mailboxes.ews_http import close_ews_connections
from emailrouter_lib.mailboxes.ews_rules import EwsRules
from emailrouter_lib.secrets import resolve_secret

URL_VARIABLE = "EMAILROUTER_LIVE_EWS_URL"
LIVE_URL = os.environ.get(URL_VARIABLE, "").strip()

_skip_without_exchange = pytest.mark.skipif(
    not LIVE_URL,
    reason=(
        f"live Exchange tests are opt-in: set {URL_VARIABLE} to an ewss:// mailbox URL with "
        "password=env:NAME, and NAME to its password (see the top of tests/test_ews_live.py)"
    ),
)


@pytest.fixture(name="live", scope="module")
def live_fixture():
    """The checked URL settings and the secret; a wrongly set variable fails, it does not skip."""
    settings = parse_mailbox_url(LIVE_URL)
    assert settings.scheme == "ewss", f"{URL_VARIABLE} must be an ewss:// URL (HTTPS)"
    assert settings.password_ref.startswith("env:"), (
        f"{URL_VARIABLE} must refer to its password with password=env:NAME"
    )
    name = settings.password_ref[4:]
    assert os.environ.get(name), f"{URL_VARIABLE} says password=env:{name}; set {name}"
    yield settings, resolve_secret(settings.password_ref)
    close_ews_connections()


def _state(settings, secret, key: str) -> tuple[str, bool]:
    """(change key, read flag) of one item, read with a separate account."""
    account = connect(settings, secret)
    with ews_errors(settings, "reading an item's state"):
        [item] = list(account.fetch(ids=[ItemId(id=key)], only_fields=["is_read"]))
    assert not isinstance(item, Exception), item
    return item.changekey, item.is_read


@pytest.mark.live
@_skip_without_exchange
def test_list_the_folder(live):
    settings, _ = live
    with open_source(LIVE_URL) as source:
        items = source.list_items()
        classes = {source.item_class(ref.key) for ref in items}
    assert all(ref.key and ref.size >= 0 for ref in items)
    assert len({ref.key for ref in items}) == len(items)
    print(
        f"{settings.mailbox_id}: {len(items)} item(s), classes {sorted(c or '' for c in classes)}"
    )


@pytest.mark.live
@_skip_without_exchange
def test_fetch_one_message_without_changing_it(live):
    settings, secret = live
    with open_source(LIVE_URL) as source:
        items = source.list_items()
        if not items:
            pytest.skip(f"{settings.mailbox_id} is empty: deliver one message to it to run this")
        key = items[0].key
        before = _state(settings, secret, key)
        [(got_key, mime)] = list(source.fetch([key]))
        after_items = source.list_items()
    assert got_key == key and mime
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    assert parsed["From"] or parsed["Subject"] is not None
    assert _state(settings, secret, key) == before, "fetching changed the item"
    assert key in {ref.key for ref in after_items}, "fetching moved or deleted the item"


@pytest.mark.live
@_skip_without_exchange
def test_read_the_inbox_rules(live):
    settings, secret = live
    found = EwsRules(settings, secret).read()
    assert found.mailbox == settings.mailbox
    assert all(rule.name is not None for rule in found.rules)
    print(
        f"{settings.mailbox_id}: {len(found.rules)} rule(s), Outlook-only rules: "
        f"{found.outlook_rules_exist}"
    )


# -- keeping the opt-in tests honest ---------------------------------------------------------------
def test_the_live_tests_pass_against_the_fake_exchange_over_tls(ews_tls, ews_ca):
    """The tests above, run in a child pytest pointed at the fake over HTTPS: they work, and they
    leave the mailbox as it was. (A real Exchange is what they are for; this keeps them from
    rotting where none is configured.)"""
    for n in range(2):
        ews_tls.deliver(SUPPORT_BOX, message(f"Live {n}"))
    ews_tls.seed_rule(
        SUPPORT_BOX,
        '<t:Rule xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        "<t:DisplayName>Outlook rule</t:DisplayName><t:Priority>1</t:Priority>"
        "<t:IsEnabled>true</t:IsEnabled><t:Actions><t:StopProcessingRules>true"
        "</t:StopProcessingRules></t:Actions></t:Rule>",
    )
    before = [(i.id, i.folder_id, i.change_key) for i in ews_tls.items(SUPPORT_BOX)]
    env = {**os.environ, URL_VARIABLE: ews_url(ews_tls, cafile=ews_ca.ca_file)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider",
         "-m", "live"],
        cwd=Path(__file__).parent.parent, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
    assert [(i.id, i.folder_id, i.change_key) for i in ews_tls.items(SUPPORT_BOX)] == before
    ops = set(ews_tls.counts())
    assert ops <= {"GetFolder", "FindItem", "GetItem", "GetInboxRules"}, ops
