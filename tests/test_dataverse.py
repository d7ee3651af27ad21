"""The Dataverse Web API client against the fake server: URLs, auth, throttling, batches, paging,
upserts and error texts. (The CrmBackend contract is in test_crm_contract.py; routing end to end
in test_dataverse_routing.py.)"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from dataverse_server import Fault
from fixtures_dataverse import (
    NTLM_ENV,
    ntlm_url,
    start_fake,
)

from emailrouter_lib.crm import demo, open_crm
from emailrouter_lib.crm.dataverse import DataverseCrm, parse_dataverse_url
from emailrouter_lib.crm.dataverse.auth import BearerAuth, build_auth
from emailrouter_lib.crm.dataverse.batch import BatchRequest
from emailrouter_lib.errors import (
    CrmAuthError,
    CrmError,
    CrmHTTPError,
    CrmThrottledError,
    CrmURLError,
)

# -- URLs -------------------------------------------------------------------------------------


def test_on_premises_url_names_org_version_and_auth():
    s = parse_dataverse_url(
        "dataverse+https://crm.contoso.local/Contoso?api=v8.2&user=CONTOSO%5Csvc&password=env:PW"
        "&batch=500&pagesize=250&max_wait=60"
    )
    assert s.base_url == "https://crm.contoso.local/Contoso/api/data/v8.2/"
    assert (s.auth, s.user, s.password) == ("ntlm", "CONTOSO\\svc", "env:PW")
    assert (s.batch, s.pagesize, s.max_wait, s.continue_on_error) == (500, 250, 60.0, False)


def test_online_url_with_client_credentials():
    s = parse_dataverse_url(
        "dataverse+https://contoso.crm4.dynamics.com/?auth=client_credentials&tenant=T"
        "&client_id=C&client_secret=keyring:crm/app"
    )
    assert s.base_url == "https://contoso.crm4.dynamics.com/api/data/v9.2/"
    assert s.oauth_scope == "https://contoso.crm4.dynamics.com/.default"
    assert s.oauth_authority == "https://login.microsoftonline.com/T"
    auth = build_auth(s)  # no network and no secret read until the first request
    assert isinstance(auth, BearerAuth) and "keyring" not in repr(auth)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("dataverse+https://h/org?user=u&password=hunter2", "must be a reference"),
        ("dataverse+https://h/org?auth=client_credentials&tenant=t&client_id=c", "client_secret"),
        ("dataverse+https://h/org?api=9.2", "api="),
        ("dataverse+https://h/org?colour=blue", "unknown option 'colour'"),
        ("dataverse+https://h/org?batch=5000", "batch="),
        ("dataverse+https://u:pw@h/org", "credentials before the host"),
        ("dataverse+ftp://h/org", "not a Dataverse URL"),
    ],
)
def test_bad_urls_are_refused_with_the_fix_and_without_the_secret(url, says):
    with pytest.raises(CrmURLError, match=says) as caught:
        open_crm(url)
    assert "hunter2" not in str(caught.value) and ":pw@" not in str(caught.value)


# -- auth -------------------------------------------------------------------------------------


def test_ntlm_handshake_against_pyspnego(ntlm_dataverse):
    with open_crm(ntlm_url(ntlm_dataverse)) as crm:
        assert crm.organization().name == "Contoso"
        assert demo.CAROL.address in crm.parties_by_address([demo.CAROL.address])
    statuses = [e.status for e in ntlm_dataverse.log]
    assert statuses[:2] == [401, 401] and 200 in statuses


def test_wrong_ntlm_password_says_what_to_check(ntlm_dataverse, monkeypatch):
    monkeypatch.setenv(NTLM_ENV, "not-the-password")
    with pytest.raises(CrmAuthError, match="credentials were refused") as caught:
        open_crm(ntlm_url(ntlm_dataverse)).organization()
    assert caught.value.status == 401  # a CrmError too: `except CrmError` still catches it
    assert "not-the-password" not in str(caught.value)


def test_negotiate_falls_back_to_ntlm(ntlm_dataverse):
    url = ntlm_url(ntlm_dataverse).replace("auth=ntlm", "auth=negotiate")
    with open_crm(url) as crm:
        assert crm.organization().name == "Contoso"


def test_bearer_token_from_a_provider(tmp_path):
    server = start_fake(tmp_path, bearer_token="token-123")
    try:
        crm = open_crm(server.crm_url())
        with pytest.raises(CrmAuthError, match="HTTP 401") as caught:
            crm.organization()
        assert caught.value.status == 401
        crm.session.http.auth = BearerAuth(lambda: "token-123")
        assert crm.organization().name == "Contoso"
    finally:
        server.stop()


# -- throttling, timeouts, errors ---------------------------------------------------------------


def test_retry_after_is_honoured_then_the_request_goes_through(fake_dataverse):
    fake_dataverse.faults.queue.extend([Fault(429, 0.3), Fault(503, 0.2)])
    crm = open_crm(fake_dataverse.crm_url())
    started = time.perf_counter()
    assert crm.organization().name == "Contoso"
    assert time.perf_counter() - started >= 0.5
    assert crm.stats["throttled"] == 1 and crm.stats["retries"] == 2
    assert crm.stats["waited_ms"] == 500


def test_the_total_wait_is_bounded(fake_dataverse):
    fake_dataverse.faults.throttle_every = 1
    fake_dataverse.faults.throttle_retry_after = 30
    crm = open_crm(fake_dataverse.crm_url(max_wait="5"))
    started = time.perf_counter()
    with pytest.raises(CrmThrottledError, match=r"max_wait=5 s") as caught:
        crm.organization()
    assert time.perf_counter() - started < 2  # gave up at once instead of sleeping 30 s
    assert "run the batch later" in str(caught.value)
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (429, "0x80072322", 30)


def test_a_429_storm_beyond_the_retries_is_a_throttled_error(fake_dataverse):
    fake_dataverse.faults.throttle_every = 1
    fake_dataverse.faults.throttle_retry_after = 0.01
    crm = open_crm(fake_dataverse.crm_url(retries="2"))
    with pytest.raises(CrmThrottledError, match="HTTP 429 after 3 attempts") as caught:
        crm.organization()
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (429, "0x80072322", 0.01)
    assert isinstance(error, CrmError) and crm.stats["throttled"] == 3


def test_gateway_failures_beyond_the_wait_are_not_throttling(fake_dataverse):
    fake_dataverse.faults.queue.extend([Fault(502, 30)])
    crm = open_crm(fake_dataverse.crm_url(max_wait="5"))
    with pytest.raises(CrmHTTPError, match=r"answered 502") as caught:
        crm.organization()
    assert caught.value.status == 502
    assert not isinstance(caught.value, CrmThrottledError | CrmAuthError)


def test_dropped_connections_are_retried(fake_dataverse):
    fake_dataverse.faults.queue.append(Fault(kind="drop"))
    crm = open_crm(fake_dataverse.crm_url())
    assert crm.organization().name == "Contoso"
    assert crm.stats["timeouts"] == 1


def test_a_malformed_request_names_the_server_error_and_what_to_do(fake_dataverse):
    crm = open_crm(fake_dataverse.crm_url())
    with pytest.raises(CrmHTTPError) as caught:
        crm._get("contacts?$select=nosuchcolumn")
    code = caught.value.code  # the code the strict fake has for this refusal (errors.json)
    assert caught.value.status == 400 and code
    assert not isinstance(caught.value, CrmThrottledError | CrmAuthError)
    text = str(caught.value)
    assert "HTTP 400" in text and code in text and "nosuchcolumn" in text
    assert "$metadata" in text


# -- $batch, paging, upserts --------------------------------------------------------------------


def _bad_then_good(crm: DataverseCrm) -> list:
    return crm._post_batch(
        [
            BatchRequest("GET", crm.session.url("contacts?$select=nosuchcolumn")),
            BatchRequest("GET", crm.session.url("contacts?$select=fullname")),
        ],
        {"Prefer": "odata.continue-on-error"},
        what="test",
    )


def test_v9_continues_on_error_when_asked_and_v8_stops(tmp_path):
    v9 = start_fake(tmp_path / "v9")
    v8 = start_fake(tmp_path / "v8", api="v8.2")
    try:
        answers9 = _bad_then_good(open_crm(v9.crm_url()))
        answers8 = _bad_then_good(open_crm(v8.crm_url()))
    finally:
        v9.stop()
        v8.stop()
    assert [a.status for a in answers9] == [400, 200]
    assert [a.status for a in answers8] == [400]  # CRM 2016 ignores continue-on-error


def test_a_change_set_rolls_back_and_names_the_failing_request(fake_dataverse):
    crm = open_crm(fake_dataverse.crm_url())
    contact = str(uuid.uuid4())
    answers = crm._post_batch(
        [
            [
                BatchRequest(
                    "POST",
                    crm.session.url("contacts"),
                    {"contactid": contact, "fullname": "A", "lastname": "A"},
                    content_id="1",
                ),
                BatchRequest("PATCH", "$1", {"emailaddress1": "a@x.example"}, content_id="2"),
                BatchRequest(
                    "POST",
                    crm.session.url("activityparties"),
                    {"participationtypemask": 1},
                    content_id="3",
                ),
            ]
        ],
        {},
        what="test",
    )
    assert [(a.status, a.content_id) for a in answers] == [(400, "3")]
    assert (
        "does not support entities of type 'activityparty'" in answers[0].json()["error"]["message"]
    )
    assert crm.session.json("GET", f"contacts?$filter=contactid eq {contact}")["value"] == []


def test_paging_follows_next_links(fake_dataverse):
    crm = open_crm(fake_dataverse.crm_url(pagesize="3"))
    rows = crm._get("contacts?$select=fullname&$orderby=fullname asc")
    everyone = open_crm(fake_dataverse.crm_url())._get(
        "contacts?$select=fullname&$orderby=fullname asc"
    )
    assert rows == everyone and len(rows) > 3
    pages = [e for e in fake_dataverse.log if "$skiptoken" in e.query]
    assert len(pages) == (len(rows) - 1) // 3


def test_upserts_with_if_match_and_if_none_match(fake_dataverse):
    crm = open_crm(fake_dataverse.crm_url())
    new = str(uuid.uuid4())
    body = json.dumps({"fullname": "Up Sert", "lastname": "Sert"}).encode()
    json_type = {"Content-Type": "application/json"}

    def patch(record: str, **headers: str) -> int:
        response, _ = crm.session.send(
            "PATCH", f"contacts({record})", body=body, headers={**json_type, **headers}
        )
        return response.status_code

    assert patch(new, **{"If-Match": "*"}) == 404  # update only: nothing to update
    assert patch(new, **{"If-None-Match": "*"}) == 204  # create only
    assert patch(new, **{"If-None-Match": "*"}) == 412  # exists now
    row = crm.session.json("GET", f"contacts({new})?$select=fullname")
    assert patch(new, **{"If-Match": row["@odata.etag"]}) == 204
    assert patch(new, **{"If-Match": 'W/"0"'}) == 412


def test_version_and_whoami(fake_dataverse):
    crm = open_crm(fake_dataverse.crm_url(api="v8.2"))
    assert crm.session.json("GET", "RetrieveVersion()")["Version"].startswith("8.2")
    assert crm.session.json("GET", "WhoAmI()")["OrganizationId"] == demo.ORG_ID
