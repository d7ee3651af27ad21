"""The host ``autodiscover``: the EWS endpoint found by SOAP Autodiscover (GetUserSettings, what
exchangelib 5 sends) on the fake Exchange, over HTTPS with ``cafile=``, kept per mailbox in the
process, and failures that say what to write instead. ``autodiscover=HOST:PORT`` names the
Autodiscover server, so no DNS is involved."""

from __future__ import annotations

import pytest
from ews_server.soap import fault
from fixtures_ews import (
    SUPPORT_BOX,
    USERS,
    autodiscover_url,
)
from routing_helpers import demo_crm, message, route

from emailrouter_lib.errors import (
    MailboxAuthError,
    MailboxConnectError,
    MailboxError,
    MailboxThrottledError,
    MailboxTLSError,
    MailboxURLError,
)
from emailrouter_lib.mailboxes import open_source, parse_mailbox_url
from emailrouter_lib.mailboxes.ews_autodiscover import cached_endpoints, clear_autodiscover_cache

SUPPORT = "queue:support@contoso.example"


def test_url_autodiscover_server_parameter():
    s = parse_mailbox_url(
        "ewss://CONTOSO%5Csvc@autodiscover?mailbox=a@contoso.com&password=env:P"
        "&autodiscover=Autodiscover.Contoso.com:8443"
    )
    assert s.autodiscover and s.autodiscover_server == "autodiscover.contoso.com:8443"
    with pytest.raises(MailboxURLError, match="host autodiscover only"):
        parse_mailbox_url(
            "ewss://svc%40contoso.com@mail.contoso.com?password=env:P&autodiscover=ad.contoso.com"
        )
    with pytest.raises(MailboxURLError, match="HOST or HOST:PORT"):
        parse_mailbox_url(
            "ewss://svc%40contoso.com@autodiscover?password=env:P&autodiscover=https://ad/x"
        )


def test_autodiscover_finds_the_endpoint_over_tls(ews_tls, ews_ca):
    ews_tls.deliver(SUPPORT_BOX, message("Found by Autodiscover"))
    with open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)) as source:
        assert len(source.list_items()) == 1
    [asked] = ews_tls.requests("GetUserSettings")
    assert asked.logon == "svc@contoso.example" and asked.mailboxes == (SUPPORT_BOX,)
    assert b"ExternalEwsUrl" in asked.body and b"InternalEwsUrl" in asked.body
    assert cached_endpoints()[SUPPORT_BOX] == ews_tls.url


def test_the_endpoint_is_cached_per_mailbox(ews_tls, ews_ca, tmp_path):
    crm_url = demo_crm(tmp_path)
    url = autodiscover_url(ews_tls, owner=SUPPORT, cafile=ews_ca.ca_file)
    for n in range(2):
        ews_tls.deliver(SUPPORT_BOX, message(f"Batch {n}"))
        assert route(crm_url, url).counts == {"created": 1}
    assert len(ews_tls.requests("GetUserSettings")) == 1  # two batches, one Autodiscover request
    with open_source(autodiscover_url(ews_tls, USERS[0], cafile=ews_ca.ca_file)):
        pass
    assert len(ews_tls.requests("GetUserSettings")) == 2  # another mailbox is asked about anew
    clear_autodiscover_cache()
    with open_source(url):
        pass
    assert len(ews_tls.requests("GetUserSettings")) == 3


def test_the_endpoint_autodiscover_names_is_used(ews_tls, ews_ca):
    # Exchange answers the URL of the server that holds the mailbox, which may be another one.
    ews_tls.autodiscover_settings["ExternalEwsUrl"] = ews_tls.url.replace("127.0.0.1", "localhost")
    with open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)) as source:
        source.list_items()
    assert cached_endpoints()[SUPPORT_BOX].startswith("https://localhost:")


def test_internal_url_when_there_is_no_external_one(ews_tls, ews_ca):
    ews_tls.autodiscover_settings["ExternalEwsUrl"] = ""
    with open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)) as source:
        source.list_items()
    assert cached_endpoints()[SUPPORT_BOX] == ews_tls.url


def test_a_redirect_to_another_address_is_followed(ews_tls, ews_ca):
    ews_tls.autodiscover_redirects[SUPPORT_BOX] = "support-new@contoso.example"
    ews_tls.add_user("support-new@contoso.example")
    with open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)) as source:
        source.list_items()
    asked = [r.mailboxes for r in ews_tls.requests("GetUserSettings")]
    assert asked == [(SUPPORT_BOX,), ("support-new@contoso.example",)]


def test_circular_redirects_fail_with_advice(ews_tls, ews_ca):
    ews_tls.autodiscover_redirects[SUPPORT_BOX] = USERS[0]
    ews_tls.autodiscover_redirects[USERS[0]] = SUPPORT_BOX
    with pytest.raises(MailboxConnectError, match="circle") as caught:
        open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)).__enter__()
    assert "autodiscover=HOST" in str(caught.value) and "/EWS/Exchange.asmx" in str(caught.value)


def test_an_unknown_mailbox_says_to_check_mailbox(ews_tls, ews_ca):
    url = autodiscover_url(ews_tls, "nobody@contoso.example", cafile=ews_ca.ca_file)
    with pytest.raises(MailboxError, match=r"knows no mailbox nobody@contoso\.example") as caught:
        open_source(url).__enter__()
    assert "mailbox=" in str(caught.value)
    assert cached_endpoints() == {}  # failures are not cached


def test_a_server_without_autodiscover_fails_with_advice(ews_tls, ews_ca):
    ews_tls.inject("status", op="GetUserSettings", status=404)
    with pytest.raises(MailboxConnectError) as caught:
        open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)).__enter__()
    text = str(caught.value)
    assert f"https://127.0.0.1:{ews_tls.port}/autodiscover/autodiscover.svc" in text
    assert (
        "(HTTP 404)" in text
        and "autodiscover=HOST" in text
        and "ewss://USER@mail.contoso.com/EWS/Exchange.asmx" in text
    )
    assert caught.value.mailbox == "ews://support@contoso.example/Inbox"


def test_nothing_listening_fails_with_advice(ews_ca):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = (
        "ewss://CONTOSO%5Csvc@autodiscover?mailbox=support@contoso.example&password=env:EWS_PASSWORD"
        f"&autodiscover=127.0.0.1:{port}&cafile={ews_ca.ca_file}&timeout=3"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EWS_PASSWORD", "x")
        with pytest.raises(MailboxConnectError, match="found no EWS endpoint"):
            open_source(url).__enter__()


def test_autodiscover_without_cafile_is_a_tls_error(ews_tls):
    with pytest.raises(MailboxTLSError) as caught:
        open_source(autodiscover_url(ews_tls)).__enter__()
    text = str(caught.value)
    assert f"127.0.0.1:{ews_tls.port}/autodiscover/autodiscover.svc" in text and "cafile=" in text


def test_wrong_password_at_autodiscover_is_an_auth_error(ews_tls, ews_ca, monkeypatch):
    monkeypatch.setenv("EWS_PASSWORD", "wrong")
    with pytest.raises(MailboxAuthError, match="CONTOSO"):
        open_source(autodiscover_url(ews_tls, cafile=ews_ca.ca_file)).__enter__()


def test_autodiscover_over_plain_http_on_loopback(ews):
    ews.deliver(SUPPORT_BOX, message("Plain"))
    with open_source(autodiscover_url(ews)) as source:
        assert len(source.list_items()) == 1
    assert ews.counts()["GetUserSettings"] == 1


def test_a_busy_autodiscover_server_is_throttling_not_a_wrong_host(ews):
    busy = fault("ErrorServerBusy", "The server cannot service this request right now.")
    ews.inject("status", op="GetUserSettings", status=500, body=busy)
    with pytest.raises(MailboxThrottledError, match="ErrorServerBusy") as caught:
        open_source(autodiscover_url(ews)).__enter__()
    assert isinstance(caught.value, MailboxConnectError)  # old `except` clauses still catch it
    assert cached_endpoints() == {}
