"""The EWS mailbox source against the fake Exchange: URLs, auth kinds, access kinds, faults,
throttling isolation, the scoped read-chunk fix, and what the fake server itself must get right."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import requests
from exchangelib import DELEGATE, IMPERSONATION, Account, Configuration, Credentials, Version
from exchangelib.properties import Actions, Address, Rule
from exchangelib.version import EXCHANGE_2016
from fixtures_ews import FORWARD_BOX, PASSWORD, SUPPORT_BOX, ews_url
from routing_helpers import message

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxThrottledError,
    MailboxURLError,
)
from emailrouter_lib.mailboxes import open_source, parse_mailbox_url, redact_url
from emailrouter_lib.mailboxes.ews_source import EwsSource, enter_all

BASE = "ewss://CONTOSO%5Csvc@mail.contoso.com/EWS/Exchange.asmx"


# -- URLs ------------------------------------------------------------------------------------------
def test_url_defaults_and_mailbox_id():
    s = parse_mailbox_url(
        f"{BASE}?mailbox=Support@Contoso.com&password=env:P&owner=queue:support@contoso.com"
    )
    assert (s.user, s.mailbox, s.access, s.auth, s.version) == (
        "CONTOSO\\svc",
        "support@contoso.com",
        "impersonation",
        "ntlm",
        "2016",
    )
    assert s.service_endpoint == "https://mail.contoso.com:443/EWS/Exchange.asmx"
    assert s.mailbox_id == "ews://support@contoso.com/Inbox"
    own = parse_mailbox_url("ewss://me%40contoso.com@mail.contoso.com?password=env:P&auth=basic")
    assert (own.mailbox, own.access, own.endpoint_path) == (
        "me@contoso.com",
        "delegate",
        "/EWS/Exchange.asmx",
    )
    auto = parse_mailbox_url(
        "ewss://CONTOSO%5Csvc@autodiscover?mailbox=a@contoso.com&password=env:P"
    )
    assert auto.autodiscover and auto.service_endpoint is None
    oauth = parse_mailbox_url(
        "ewss://app-id@outlook.office365.com/EWS/Exchange.asmx?auth=oauth&tenant=t1"
        "&mailbox=a@contoso.com&password=env:SECRET"
    )
    assert (oauth.user, oauth.access, oauth.tenant) == ("app-id", "impersonation", "t1")


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ("mailbox=a@b.c&password=hunter2", "must be a reference"),
        ("mailbox=a@b.c", "no password reference"),
        ("password=env:P", "no mailbox"),
        ("mailbox=a@b.c&password=env:P&auth=kerberos", "auth= must be one of"),
        ("mailbox=a@b.c&password=env:P&auth=oauth", "needs tenant="),
        ("mailbox=a@b.c&password=env:P&page=0", "page= must be a whole number"),
        ("mailbox=a@b.c&password=env:P&starttls=1", "unknown parameter 'starttls'"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(query, complaint):
    with pytest.raises(MailboxURLError, match=complaint) as info:
        parse_mailbox_url(f"{BASE}?{query}")
    assert "hunter2" not in str(info.value)


def test_basic_auth_over_plain_http_is_refused_off_loopback():
    with pytest.raises(MailboxURLError, match="in clear"):
        parse_mailbox_url("ews://u%40c.com@mail.contoso.com?password=env:P&auth=basic")


def test_redaction_keeps_ews_parameters_and_hides_literals():
    shown = redact_url(f"{BASE}?mailbox=a@contoso.com&password=oops&access=delegate")
    assert "mailbox=a@contoso.com" in shown and "access=delegate" in shown and "oops" not in shown


# -- reading a mailbox -----------------------------------------------------------------------------
def test_list_fetch_item_class_and_vanished_items(ews):
    first = ews.deliver(SUPPORT_BOX, message("one"))
    ews.deliver(SUPPORT_BOX, message("invite"), item_class="IPM.Schedule.Meeting.Request")
    source = open_source(ews_url(ews))
    assert isinstance(source, EwsSource)
    with source:
        items = source.list_items()
        assert [source.item_class(i.key) for i in items] == [
            "IPM.Note",
            "IPM.Schedule.Meeting.Request",
        ]
        assert items[0].key == first.id and items[0].size == first.size
        ews.store.delete(ews.store.item(first.id), "HardDelete")
        fetched = list(source.fetch([i.key for i in items]))
        assert [k for k, _ in fetched] == [items[1].key]  # the vanished one is skipped
        assert b"Subject: invite" in fetched[0][1]
        source.delete([first.id])  # already gone: fine


def test_attached_originals_come_from_item_attachments(ews):
    original = message("the original", to="frank@contoso.example")
    wrapper = message("FW: the original", sender="frank@contoso.example", to=FORWARD_BOX)
    wrapper.add_attachment(original)
    item = ews.deliver(FORWARD_BOX, wrapper)
    with open_source(ews_url(ews, FORWARD_BOX, forward="1")) as source:
        (raw,) = source.attached_originals(item.id)
    assert original["Message-ID"].encode() in raw
    assert ews.counts()["GetAttachment"] == 1


def test_basic_auth_delegate_access_and_a_non_inbox_folder(ews):
    ews.deliver(SUPPORT_BOX, message("archived"), folder="inbox")
    ews.store.create_folder(ews.store.distinguished(SUPPORT_BOX, "inbox"), "CRM", None)
    ews.deliver(SUPPORT_BOX, message("in CRM folder"), folder="Inbox/CRM")
    url = ews_url(ews, auth="basic", access="delegate", folder="Inbox/CRM")
    with open_source(url) as source:
        assert len(source.list_items()) == 1
    assert {r.impersonated for r in ews.requests()} == {None}  # delegate: no impersonation header
    assert all(r.mailboxes == (SUPPORT_BOX,) for r in ews.requests())


def test_delegate_without_full_access_is_an_auth_error_naming_the_fix(ews):
    source = open_source(ews_url(ews, "alice@contoso.example", access="delegate"))
    with pytest.raises(MailboxAuthError, match="FullAccess"), source:
        pass


def test_impersonation_without_the_role_is_refused(ews, monkeypatch):
    ews.add_user("svc2@contoso.example", "Other-1", logons=("CONTOSO\\svc2",))
    monkeypatch.setenv("SVC2", "Other-1")
    url = ews_url(ews).replace("CONTOSO%5Csvc@", "CONTOSO%5Csvc2@").replace("EWS_PASSWORD", "SVC2")
    with pytest.raises(MailboxAuthError, match="ApplicationImpersonation"), open_source(url):
        pass


def test_oauth_client_credentials(ews, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake's token endpoint is http
    monkeypatch.setenv("APP_SECRET", "app-secret")
    ews.add_app("app-1", "app-secret")
    ews.deliver(SUPPORT_BOX, message("via oauth"))
    url = (
        f"ews://app-1@{ews.host}:{ews.port}/EWS/Exchange.asmx?auth=oauth&tenant=t1"
        f"&authority={ews.authority}&mailbox={SUPPORT_BOX}&password=env:APP_SECRET"
    )
    with open_source(url) as source:
        assert len(source.list_items()) == 1
    assert ews.log[0].op == "token" and {r.impersonated for r in ews.requests("FindItem")} == {
        SUPPORT_BOX
    }


# -- faults and throttling -------------------------------------------------------------------------
def test_slow_server_beyond_timeout_is_a_connect_error(ews):
    ews.inject("slow", op="FindItem", seconds=1.5)
    with open_source(ews_url(ews, timeout="0.5")) as source, pytest.raises(MailboxConnectError):
        source.list_items()


def test_busy_beyond_max_wait_is_a_throttled_error(ews):
    ews.inject("busy", op="FindItem", mailbox=SUPPORT_BOX, back_off_ms=2000, times=100)
    started = time.monotonic()
    throttled = pytest.raises(MailboxThrottledError, match="kept throttling")
    with open_source(ews_url(ews, max_wait="1")) as source, throttled as caught:
        source.list_items()
    assert time.monotonic() - started < 2  # gave up instead of backing off 2 s
    assert isinstance(caught.value, MailboxConnectError)  # old `except` clauses still catch it
    assert caught.value.mailbox == source.mailbox_id


def test_transient_http_500_is_retried(ews):
    ews.deliver(SUPPORT_BOX, message("x"))
    ews.inject(
        "status", op="FindItem", status=500, body=b"<html>Server Error in '/EWS' Application</html>"
    )
    with open_source(ews_url(ews)) as source:
        assert len(source.list_items()) == 1
    assert [r.status for r in ews.requests("FindItem")] == [500, 200]


def test_unknown_http_500_is_an_error_not_a_hang(ews):
    ews.inject("status", op="FindItem", status=500, body=b"boom")
    with open_source(ews_url(ews)) as source, pytest.raises(MailboxError):
        source.list_items()


def test_back_off_is_per_mailbox_when_mailboxes_run_in_parallel(ews):
    boxes = [SUPPORT_BOX, "alice@contoso.example", "bob@contoso.example"]
    for box in boxes:
        for n in range(3):
            ews.deliver(box, message(f"{n} to {box}", to=box))
    # A sleeping back-off holds its connection: isolation needs a connection per worker. One item
    # per page, so the other mailboxes keep sending while the support mailbox backs off.
    sources = [open_source(ews_url(ews, box, connections="3", page="1")) for box in boxes]
    with ExitStack() as stack:
        entered = enter_all(sources, stack)  # folders warmed one by one, before the pool
        ews.clear_log()
        ews.inject("busy", op="FindItem", mailbox=SUPPORT_BOX, back_off_ms=1500, times=1)
        done: dict[str, float] = {}
        started = time.monotonic()

        def run(source):
            source.list_items()
            done[source.settings.mailbox] = time.monotonic() - started

        with ThreadPoolExecutor(3) as pool:
            list(pool.map(run, entered))
    assert done[SUPPORT_BOX] >= 1.5  # waited as the server asked
    assert done["alice@contoso.example"] < 1.0 and done["bob@contoso.example"] < 1.0
    assert ews.counts() == {"FindItem": 10}  # 3 pages each + the busy one; no folder lookups


def test_read_chunk_fix_gives_the_same_bytes_and_is_scoped(ews):
    for n in range(5):
        ews.deliver(SUPPORT_BOX, message(f"m{n}", body="x" * 5000))
    results = []
    for read_chunk in (0, 65536):
        settings = parse_mailbox_url(ews_url(ews))
        from dataclasses import replace

        with EwsSource(replace(settings, read_chunk=read_chunk)) as source:
            keys = [i.key for i in source.list_items()]
            results.append(list(source.fetch(keys)))
            adapter = source._account.protocol.adapter()
            assert (type(adapter).__name__ == "EwsAdapter") == bool(read_chunk)
    assert results[0] == results[1]
    assert requests.Response.iter_content.__defaults__ == (1, False)  # nothing patched globally


# -- the fake server itself: semantics a faithful fake must get right ------------------------------
def _account(ews, address, access, auth="NTLM"):
    config = Configuration(
        service_endpoint=ews.url,
        credentials=Credentials("CONTOSO\\svc", PASSWORD),
        auth_type=auth,
        version=Version(build=EXCHANGE_2016),
    )
    return Account(address, config=config, autodiscover=False, access_type=access)


def test_ntlm_authenticates_the_connection_once(ews):
    ews.deliver(SUPPORT_BOX, message("x"))
    acc = _account(ews, SUPPORT_BOX, IMPERSONATION)
    list(acc.inbox.all().only("subject"))
    statuses = [r.status for r in ews.log]
    assert statuses[:2] == [401, 401] and set(statuses[2:]) == {200}  # challenge, then no more
    assert len({r.connection for r in ews.log[1:]}) == 1


def test_mailbox_comes_from_the_soap_body_never_from_x_anchor_mailbox(ews):
    ews.deliver(SUPPORT_BOX, message("support mail"))
    body = (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope '
        'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body>'
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        '</m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
        "</m:ParentFolderIds></m:FindItem></s:Body></s:Envelope>"
    )
    auth = "Basic " + base64.b64encode(f"CONTOSO\\svc:{PASSWORD}".encode()).decode()
    reply = requests.post(
        ews.url,
        data=body,
        headers={"Authorization": auth, "X-AnchorMailbox": SUPPORT_BOX, "Content-Type": "text/xml"},
        timeout=5,
    )
    assert reply.status_code == 200 and b'TotalItemsInView="0"' in reply.content
    (logged,) = ews.requests("FindItem")
    assert logged.anchor == SUPPORT_BOX and logged.mailboxes == ("svc@contoso.example",)


def test_inbox_rules_impersonation_writes_the_target_and_delegate_shows_the_trap(ews):
    rid = ews.seed_rule(
        SUPPORT_BOX,
        '<t:Rule xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        "<t:DisplayName>Outlook rule</t:DisplayName><t:Priority>1</t:Priority>"
        "<t:IsEnabled>true</t:IsEnabled><t:Actions><t:MarkAsRead>true</t:MarkAsRead>"
        "</t:Actions></t:Rule>",
    )
    rule = lambda acc, name="CRM Email Router": Rule(  # noqa: E731
        account=acc,
        display_name=name,
        priority=2,
        is_enabled=True,
        actions=Actions(forward_as_attachment_to_recipients=[Address(email_address=FORWARD_BOX)]),
    )
    acc = _account(ews, SUPPORT_BOX, IMPERSONATION)
    assert [r.id for r in acc.rules] == [rid]
    rule(acc).save()
    assert [r.display_name for r in acc.rules] == ["Outlook rule", "CRM Email Router"]
    assert (
        ews.rules(SUPPORT_BOX)[1]
        .find("{*}Actions/{*}ForwardAsAttachmentToRecipients/{*}Address/{*}EmailAddress")
        .text
        == FORWARD_BOX
    )
    delegate = _account(ews, SUPPORT_BOX, DELEGATE)
    with pytest.raises(Exception, match="Failed to create rule"):
        rule(
            delegate, "CRM rule (delegate)"
        ).save()  # UpdateInboxRules without MailboxSmtpAddress: the logged-on user's
    assert len(ews.rules("svc@contoso.example")) == 1 and len(ews.rules(SUPPORT_BOX)) == 2


def test_paging_follows_the_server_find_count_limit(ews):
    ews.find_count_limit = 3
    for n in range(7):
        ews.deliver(SUPPORT_BOX, message(f"m{n}"))
    with open_source(ews_url(ews, page="100")) as source:
        assert len(source.list_items()) == 7
    assert ews.counts()["FindItem"] == 3


def test_convert_id_and_version_probe(ews):
    item = ews.deliver(SUPPORT_BOX, message("x"))
    config = Configuration(
        service_endpoint=ews.url,
        credentials=Credentials("CONTOSO\\svc", PASSWORD),
        auth_type="NTLM",
    )
    acc = Account(SUPPORT_BOX, config=config, autodiscover=False, access_type=IMPERSONATION)
    assert acc.version.build.major_version == 15  # probed with ConvertId(DUMMY)
    from exchangelib.properties import AlternateId

    (converted,) = acc.protocol.convert_ids(
        [AlternateId(id=item.id, format="EwsId", mailbox=SUPPORT_BOX)],
        destination_format="HexEntryId",
    )
    assert converted.id == base64.b64decode(item.id).hex().upper()
    assert ews.requests()[0].op == "ConvertId"


def test_requests_are_served_concurrently(ews):
    ews.inject("slow", op="FindItem", seconds=0.5, times=2)
    sources = [open_source(ews_url(ews, box)) for box in (SUPPORT_BOX, "alice@contoso.example")]
    with ExitStack() as stack:
        entered = enter_all(sources, stack)
        started = time.monotonic()
        threads = [threading.Thread(target=s.list_items) for s in entered]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # one connection per service account by default: the two calls queue on it
    assert time.monotonic() - started >= 1.0
