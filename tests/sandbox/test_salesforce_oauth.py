"""OAuth and sessions of the Salesforce sandbox, driven by simple-salesforce and plain HTTPS."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed, SalesforceExpiredSession

from tests.sandbox.sf_fixtures import client, login_session, sandbox, sf  # noqa: F401


def _token(sandbox, **form):  # noqa: F811
    with sandbox.session() as sess:
        return sess.post(sandbox.info["token_url"], data=form, timeout=30)


def test_password_grant_through_simple_salesforce_login(sandbox):  # noqa: F811
    info = sandbox.info
    sf_login = Salesforce(username=info["username"], password=info["password"], consumer_key=info["client_id"],
                          consumer_secret=info["client_secret"], session=login_session(sandbox))
    assert sf_login.sf_instance == info["instance_url"].removeprefix("https://")
    assert sf_login.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1


def test_password_grant_refuses_a_wrong_password_with_the_oauth_error_body(sandbox):  # noqa: F811
    info = sandbox.info
    resp = _token(sandbox, grant_type="password", client_id=info["client_id"], client_secret=info["client_secret"],
                  username=info["username"], password="wrong")
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    resp = _token(sandbox, grant_type="password", client_id="nope", client_secret=info["client_secret"],
                  username=info["username"], password=info["password"])
    assert resp.json()["error"] == "invalid_client_id"


def test_soap_login_with_security_token(sandbox):  # noqa: F811
    info = sandbox.info
    sf_soap = Salesforce(username=info["username"], password=info["password"], security_token=info["security_token"],
                         session=login_session(sandbox))
    assert sf_soap.query("SELECT COUNT() FROM Contact")["totalSize"] > 0
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(username=info["username"], password="bad", security_token="x", session=login_session(sandbox))
    assert exc.value.code == "INVALID_LOGIN"


def test_jwt_bearer_through_simple_salesforce_and_checks(sandbox):  # noqa: F811
    info = sandbox.info
    key = open(info["jwt_private_key"]).read()
    sf_jwt = Salesforce(username=info["username"], consumer_key=info["client_id"], privatekey=key,
                        session=login_session(sandbox))
    assert sf_jwt.query("SELECT Id FROM User LIMIT 1")["records"]

    def assertion(**claims):
        base = {"iss": info["client_id"], "sub": info["username"], "aud": "https://login.salesforce.com",
                "exp": int((datetime.now(UTC) + timedelta(minutes=3)).timestamp())}
        return jwt.encode({**base, **claims}, key, algorithm="RS256")

    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ok = _token(sandbox, grant_type=grant, assertion=assertion())
    assert ok.status_code == 200 and ok.json()["instance_url"] == info["instance_url"]
    assert "refresh_token" not in ok.json()
    expired = _token(sandbox, grant_type=grant, assertion=assertion(exp=int(time.time()) - 60))
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"
    assert _token(sandbox, grant_type=grant, assertion=assertion(aud="https://evil.example.com")).json() == {
        "error": "invalid_grant", "error_description": "audience is invalid"}
    assert _token(sandbox, grant_type=grant, assertion=assertion(iss="someone-else")).json()["error"] == "invalid_client_id"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = jwt.encode({"iss": info["client_id"], "sub": info["username"], "aud": "https://login.salesforce.com",
                         "exp": int(time.time()) + 60}, other, algorithm="RS256")
    assert _token(sandbox, grant_type=grant, assertion=forged).json()["error_description"] == "invalid assertion"


def test_authorization_code_flow_click_through_then_refresh(sandbox):  # noqa: F811
    info = sandbox.info
    redirect = "http://127.0.0.1:5000/oauth/salesforce/callback"
    with sandbox.session() as sess:
        page = sess.get(info["authorize_url"], params={"response_type": "code", "client_id": info["client_id"],
                                                        "redirect_uri": redirect, "state": "xyz"}, timeout=30)
        assert page.status_code == 200 and "Allow" in page.text
        form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        allowed = sess.post(info["authorize_url"], data={**form, "decision": "allow"}, allow_redirects=False, timeout=30)
        denied = sess.post(info["authorize_url"], data={**form, "decision": "deny"}, allow_redirects=False, timeout=30)
    assert allowed.status_code == 302
    location = urlsplit(allowed.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    assert parse_qs(urlsplit(denied.headers["Location"]).query)["error"] == ["access_denied"]

    code = query["code"][0]
    token = _token(sandbox, grant_type="authorization_code", code=code, client_id=info["client_id"],
                   client_secret=info["client_secret"], redirect_uri=redirect)
    assert token.status_code == 200
    body = token.json()
    assert body["refresh_token"] and body["id"].endswith(info["user_id"])
    reused = _token(sandbox, grant_type="authorization_code", code=code, client_id=info["client_id"],
                    client_secret=info["client_secret"], redirect_uri=redirect)
    assert reused.json()["error"] == "invalid_grant"

    refreshed = _token(sandbox, grant_type="refresh_token", refresh_token=body["refresh_token"],
                       client_id=info["client_id"], client_secret=info["client_secret"])
    assert refreshed.status_code == 200
    assert client(sandbox, refreshed.json()["access_token"]).query("SELECT Id FROM Case LIMIT 1")["records"]
    bad = _token(sandbox, grant_type="refresh_token", refresh_token="5Aep861nope", client_id=info["client_id"])
    assert bad.json() == {"error": "invalid_grant", "error_description": "expired access/refresh token"}


def test_expired_session_is_a_401_array_and_login_clients_log_in_again(sandbox):  # noqa: F811
    info = sandbox.info
    direct = client(sandbox, _token(sandbox, grant_type="password", client_id=info["client_id"],
                                    client_secret=info["client_secret"], username=info["username"],
                                    password=info["password"]).json()["access_token"])
    relogin = Salesforce(username=info["username"], password=info["password"], consumer_key=info["client_id"],
                         consumer_secret=info["client_secret"], session=login_session(sandbox))
    first_token = relogin.session_id
    assert sandbox.hook("POST", "sessions", {"expire": True})["expired"] >= 2
    with pytest.raises(SalesforceExpiredSession) as exc:
        direct.query("SELECT Id FROM Account LIMIT 1")
    assert exc.value.status == 401
    assert exc.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    # a client built from credentials refreshes on INVALID_SESSION_ID and retries
    assert relogin.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
    assert relogin.session_id != first_token
    sandbox.info["access_token"] = sandbox.sb.auth.new_session()  # the module's other tests keep a live token


def test_tokens_expire_after_the_configured_lifetime(sandbox):  # noqa: F811
    sandbox.hook("POST", "sessions", {"ttl": 0.3})
    try:
        token = sandbox.sb.auth.new_session()
        short = client(sandbox, token)
        assert short.query("SELECT Id FROM Account LIMIT 1")["totalSize"] == 1
        time.sleep(0.4)
        with pytest.raises(SalesforceExpiredSession):
            short.query("SELECT Id FROM Account LIMIT 1")
    finally:
        sandbox.hook("POST", "sessions", {"ttl": 7200})
