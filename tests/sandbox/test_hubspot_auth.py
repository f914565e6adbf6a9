"""OAuth (authorize page, code, refresh, dead refresh token), 401s, and the rate limits with their headers."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfoNotFoundError

import pytest
import requests
from hubspot.crm.contacts import ApiException
from hubspot.oauth import ApiException as OAuthError

from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.ratelimit import Limits
from tests.sandbox.hs_fixtures import client, fresh_sandbox, raw  # noqa: F401

REDIRECT = "https://app.example.com/oauth/callback"


class Clock:
    """A settable epoch clock for the sandbox's rate limiter."""

    def __init__(self, at: datetime) -> None:
        self.t = at.timestamp()

    def __call__(self) -> float:
        return self.t


def _authorize(sb, scope="oauth crm.objects.contacts.read tickets"):
    """Click through the consent page as a browser would; returns the code from the redirect."""
    page = requests.get(sb.api_base + "/oauth/authorize", params={
        "client_id": sb.info["client_id"], "redirect_uri": REDIRECT, "scope": scope, "state": "xyz"}, timeout=10)
    assert page.status_code == 200 and "Grant access" in page.text
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    action = re.search(r'form method="post" action="([^"]+)"', page.text).group(1)
    answer = requests.post(sb.api_base + action, data={**form, "decision": "grant"}, allow_redirects=False,
                           timeout=10)
    assert answer.status_code == 302
    location = urlparse(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def test_authorization_code_refresh_and_dead_refresh_token(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    api = client(sb)
    code = _authorize(sb)
    tokens = api.oauth.tokens_api.create(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                                        client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    assert tokens.token_type == "bearer" and tokens.expires_in == 1800 and tokens.refresh_token
    with pytest.raises(OAuthError) as err:  # a code works once
        api.oauth.tokens_api.create(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                                   client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    assert err.value.status == 400 and json.loads(err.value.body)["status"] == "BAD_AUTH_CODE"
    user = client(sb, tokens.access_token)
    assert user.crm.contacts.basic_api.get_page(limit=1).results
    info = api.oauth.access_tokens_api.get(tokens.access_token)
    assert info.hub_id == sb.info["portal_id"] and "tickets" in info.scopes and 0 < info.expires_in <= 1800
    refreshed = api.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=tokens.refresh_token,
                                           client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    assert refreshed.access_token != tokens.access_token
    assert client(sb, refreshed.access_token).crm.contacts.basic_api.get_page(limit=1).results
    api.oauth.refresh_tokens_api.archive(tokens.refresh_token)  # the app is uninstalled
    with pytest.raises(OAuthError) as err:
        api.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=tokens.refresh_token,
                                   client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["status"] == "BAD_REFRESH_TOKEN" and body["correlationId"]


def test_token_endpoint_refuses_wrong_client_secret_and_redirect(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    code = _authorize(sb)
    base = {"grant_type": "authorization_code", "code": code, "client_id": sb.info["client_id"]}
    r = requests.post(sb.api_base + "/oauth/v1/token", data={**base, "client_secret": "wrong", "redirect_uri": REDIRECT},
                      timeout=10)
    assert r.status_code == 400 and r.json()["status"] == "BAD_CLIENT_SECRET"
    r = requests.post(sb.api_base + "/oauth/v1/token", timeout=10, data={
        **base, "client_secret": sb.info["client_secret"], "redirect_uri": "https://elsewhere.example.com/cb"})
    assert r.status_code == 400 and r.json()["status"] == "BAD_REDIRECT_URI"
    page = requests.get(sb.api_base + "/oauth/authorize", params={"client_id": "nope", "redirect_uri": REDIRECT},
                        timeout=10)
    assert page.status_code == 400


def test_expired_and_missing_tokens_get_401(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    sb.configure(token_ttl_s=1)
    api = client(sb)
    tokens = api.oauth.tokens_api.create(grant_type="authorization_code", code=_authorize(sb), redirect_uri=REDIRECT,
                                        client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    assert tokens.expires_in == 1
    time.sleep(1.1)
    with pytest.raises(ApiException) as err:
        client(sb, tokens.access_token).crm.contacts.basic_api.get_page()
    body = json.loads(err.value.body)
    assert err.value.status == 401 and body["category"] == "EXPIRED_AUTHENTICATION" and "expired" in body["message"]
    r = raw(sb, "GET", "/crm/v3/objects/contacts", token="")
    assert r.status_code == 401 and r.json()["category"] == "INVALID_AUTHENTICATION"
    r = raw(sb, "GET", "/crm/v3/objects/contacts", token="pat-na1-not-a-real-token")
    assert r.status_code == 401 and r.json()["category"] == "INVALID_AUTHENTICATION"


def test_rate_limit_headers_and_the_ten_second_429(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    sb.limiter.limits.burst = 5
    first = raw(sb, "GET", "/crm/v3/objects/companies?limit=1")
    h = first.headers
    assert h["X-HubSpot-RateLimit-Max"] == "5" and h["X-HubSpot-RateLimit-Remaining"] == "4"
    assert h["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert int(h["X-HubSpot-RateLimit-Daily"]) - int(h["X-HubSpot-RateLimit-Daily-Remaining"]) == 1
    for _ in range(4):
        assert raw(sb, "GET", "/crm/v3/objects/companies?limit=1").status_code == 200
    refused = raw(sb, "GET", "/crm/v3/objects/companies?limit=1")
    assert refused.status_code == 429
    body = refused.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit." and body["correlationId"]
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    api = client(sb)
    with pytest.raises(ApiException) as err:
        api.crm.contacts.basic_api.get_page()
    assert err.value.status == 429


def test_search_has_its_own_secondly_limit_without_headers(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    answers = [raw(sb, "POST", "/crm/v3/objects/contacts/search", json={"limit": 1}) for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert answers[5].status_code == 429
    assert answers[5].json()["message"] == "You have reached your secondly limit."
    assert not any(k.lower().startswith("x-hubspot-ratelimit") for a in answers for k in a.headers)
    assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").status_code == 200  # the burst window is separate
    time.sleep(1.05)
    assert raw(sb, "POST", "/crm/v3/objects/contacts/search", json={"limit": 1}).status_code == 200


def test_daily_limit_and_oauth_headers(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    api = client(sb)
    tokens = api.oauth.tokens_api.create(grant_type="authorization_code", code=_authorize(sb), redirect_uri=REDIRECT,
                                        client_id=sb.info["client_id"], client_secret=sb.info["client_secret"])
    oauth = raw(sb, "GET", "/crm/v3/objects/contacts?limit=1", token=tokens.access_token)
    assert oauth.headers["X-HubSpot-RateLimit-Max"] == "110"
    assert "X-HubSpot-RateLimit-Daily" not in oauth.headers  # no daily headers for OAuth apps
    sb.limiter.limits.daily = sb.limiter.usage()["daily_used"] + 1
    assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").status_code == 200
    refused = raw(sb, "GET", "/crm/v3/objects/contacts?limit=1")
    assert refused.status_code == 429 and refused.json()["policyName"] == "DAILY"


def test_the_daily_count_restarts_at_the_portals_midnight_not_utcs():
    """23:30 UTC is 15:30 in Los Angeles: UTC's midnight comes first, but the portal's day goes on."""
    clock = Clock(datetime(2025, 1, 15, 23, 30, tzinfo=UTC))
    sb = HubSpotSandbox("small", seed=5, accounts=1, engagements=False, time_zone="America/Los_Angeles")
    sb.limiter.clock = clock
    with sb:
        sb.limiter.limits.daily = sb.limiter.usage()["daily_used"] + 1
        assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").status_code == 200
        assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").json()["policyName"] == "DAILY"
        clock.t = datetime(2025, 1, 16, 0, 30, tzinfo=UTC).timestamp()  # a new day in UTC only
        assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").status_code == 429
        clock.t = datetime(2025, 1, 16, 7, 59, 59, tzinfo=UTC).timestamp()
        assert raw(sb, "GET", "/crm/v3/objects/contacts?limit=1").status_code == 429
        clock.t = datetime(2025, 1, 16, 8, 0, tzinfo=UTC).timestamp()  # midnight in Los Angeles
        fresh = raw(sb, "GET", "/crm/v3/objects/contacts?limit=1")
        assert fresh.status_code == 200 and fresh.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert Limits().time_zone == "America/New_York"
    with pytest.raises(ZoneInfoNotFoundError):
        Limits(time_zone="America/Atlantis")


def test_limits_can_be_turned_off(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    r = requests.put(sb.api_base + "/__sandbox__/limits", json={"enabled": False, "burst": 2}, timeout=10)
    assert r.status_code == 200 and r.json()["enabled"] is False
    answers = [raw(sb, "GET", "/crm/v3/objects/contacts?limit=1") for _ in range(5)]
    assert all(a.status_code == 200 and "X-HubSpot-RateLimit-Max" not in a.headers for a in answers)
    bad = requests.put(sb.api_base + "/__sandbox__/limits", json={"burts": 3}, timeout=10)
    assert bad.status_code == 400 and "burts" in bad.json()["message"]
