"""Both OAuth flows end to end against the sandboxes' consent pages, and token/JWT connections."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connector import auth
from connector.connections import get_connection, open_adapter
from connector.model import Connection
from sandbox.hubspot import HubSpotSandbox
from sandbox.salesforce.server import SalesforceSandbox
from tests.web.support import PASSWORD, sign_in

pytestmark = pytest.mark.redis


def _consent(url: str, *, session: requests.Session, button: str) -> str:
    """Open the CRM's consent page like a browser and press a button; the redirect it sends back."""
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form = {k: unescape(v) for k, v in form.items()}
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    parts = urlsplit(url)
    decision = re.search(rf'name="decision" value="([^"]+)" id="{button}"', page.text).group(1)
    answer = session.post(f"{parts.scheme}://{parts.netloc}{action}", data=form | {"decision": decision},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


@pytest.fixture
def admin(app, web_engine):
    auth.create_user(web_engine, "admin@acme.example", PASSWORD, role="admin", workspace="acme")
    client = app.test_client()
    return client, sign_in(client, "admin@acme.example")


@pytest.fixture(scope="module")
def hubspot():
    sb = HubSpotSandbox("small", seed=11, accounts=3, search_lag_s=0, rate_limits=False).start()
    yield sb
    sb.stop()


def test_hubspot_oauth_install_end_to_end(admin, hubspot, web_engine, web_settings) -> None:
    client, csrf = admin
    info = hubspot.info
    start = client.post("/connections/new/hubspot/oauth", data={
        "csrf_token": csrf, "name": "hs-oauth", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "api_base": info["api_base"]})
    assert start.status_code == 302
    assert start.location.startswith(info["authorize_url"] + "?")
    back = _consent(start.location, session=requests.Session(), button="grant")
    query = parse_qs(urlsplit(back).query)
    assert back.startswith(web_settings.public_url + "/oauth/callback/hubspot")
    done = client.get("/oauth/callback/hubspot?" + urlsplit(back).query)
    assert done.status_code == 302, done.get_data(as_text=True)
    row = get_connection(web_engine, "hs-oauth")
    assert row.external_org_id == str(info["portal_id"]) and row.options["auth"] == "oauth"
    assert open_adapter(web_engine, web_settings, row.id).describe("account")  # the stored tokens work
    page = client.get(done.location).get_data(as_text=True)
    assert "hs-oauth" in page and "/webhooks/hubspot" in page
    replay = client.get("/oauth/callback/hubspot?" + urlsplit(back).query)  # the state is single use
    assert replay.status_code == 400 and "expired or was already used" in replay.get_data(as_text=True)
    assert query["state"]


def test_a_denied_hubspot_install_adds_nothing(admin, hubspot, web_engine) -> None:
    client, csrf = admin
    info = hubspot.info
    start = client.post("/connections/new/hubspot/oauth", data={
        "csrf_token": csrf, "name": "hs-denied", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "api_base": info["api_base"]})
    back = _consent(start.location, session=requests.Session(), button="deny")
    answer = client.get("/oauth/callback/hubspot?" + urlsplit(back).query)
    assert answer.status_code == 400 and "did not grant access" in answer.get_data(as_text=True)
    with web_engine.connect() as conn:
        assert conn.execute(Connection.__table__.select()).first() is None  # type: ignore[attr-defined]


def test_the_oauth_callback_only_completes_for_the_user_who_started(admin, app, hubspot, web_engine) -> None:
    client, csrf = admin
    info = hubspot.info
    start = client.post("/connections/new/hubspot/oauth", data={
        "csrf_token": csrf, "name": "hs-stolen", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "api_base": info["api_base"]})
    back = _consent(start.location, session=requests.Session(), button="grant")
    auth.create_user(web_engine, "other@acme.example", PASSWORD, role="admin", workspace="other")
    other = app.test_client()
    sign_in(other, "other@acme.example")
    answer = other.get("/oauth/callback/hubspot?" + urlsplit(back).query)
    assert answer.status_code == 400 and "started by someone else" in answer.get_data(as_text=True)


def test_hubspot_private_app_token_is_checked_before_it_is_stored(admin, hubspot, web_engine) -> None:
    client, csrf = admin
    info = hubspot.info
    form = {"csrf_token": csrf, "name": "hs-pat", "token": "pat-wrong", "api_base": info["api_base"],
            "portal_id": str(info["portal_id"]), "app_secret": info["app_secret"]}
    bad = client.post("/connections/new/hubspot/token", data=form)
    assert bad.status_code == 400 and 'id="err-token"' in bad.get_data(as_text=True)
    assert "pat-wrong" not in bad.get_data(as_text=True)  # secrets are not echoed back
    good = client.post("/connections/new/hubspot/token", data=form | {"token": info["access_token"]})
    assert good.status_code == 302
    assert get_connection(web_engine, "hs-pat").external_org_id == str(info["portal_id"])
    taken = client.post("/connections/new/hubspot/token", data=form | {"token": info["access_token"]})
    assert taken.status_code == 400 and "is taken" in taken.get_data(as_text=True)


def test_salesforce_web_server_flow_end_to_end(admin, web_engine, web_settings) -> None:
    client, csrf = admin
    with SalesforceSandbox("small", seed=4, accounts=2) as sf:
        info = sf.info
        start = client.post("/connections/new/salesforce/oauth", data={
            "csrf_token": csrf, "name": "sf-oauth", "client_id": info["client_id"],
            "client_secret": info["client_secret"], "login_url": info["instance_url"], "ca_bundle": info["ca_bundle"]})
        assert start.status_code == 302 and start.location.startswith(info["authorize_url"] + "?")
        assert "code_challenge=" in start.location
        browser = sf.session()
        back = _consent(start.location, session=browser, button="oaapprove")
        done = client.get("/oauth/callback/salesforce?" + urlsplit(back).query)
        assert done.status_code == 302, done.get_data(as_text=True)
        row = get_connection(web_engine, "sf-oauth")
        assert row.external_org_id == info["organization_id"] and row.instance_url == info["instance_url"]
        fields = open_adapter(web_engine, web_settings, row.id).describe("account")
        assert any(f.name == "Name" for f in fields)


def test_salesforce_jwt_connection_and_its_errors(admin, web_engine) -> None:
    client, csrf = admin
    with SalesforceSandbox("small", seed=4, accounts=2) as sf:
        info = sf.info
        form = {"csrf_token": csrf, "name": "sf-jwt", "client_id": info["client_id"], "username": info["username"],
                "private_key": Path(info["jwt_private_key"]).read_text(), "login_url": info["instance_url"],
                "ca_bundle": info["ca_bundle"]}
        bad = client.post("/connections/new/salesforce/jwt", data=form | {"login_url": "http://insecure.example",
                                                                          "private_key": "nope", "name": "bad name"})
        body = bad.get_data(as_text=True)
        assert bad.status_code == 400
        for field in ("name", "login_url", "private_key"):
            assert f'id="err-{field}"' in body, field
        good = client.post("/connections/new/salesforce/jwt", data=form)
        assert good.status_code == 302, good.get_data(as_text=True)
        assert get_connection(web_engine, "sf-jwt").external_org_id == info["organization_id"]


def test_the_api_adds_a_private_app_connection_and_starts_oauth(admin, hubspot, web_engine) -> None:
    client, csrf = admin
    info = hubspot.info
    headers = {"X-CSRF-Token": csrf}
    bad = client.post("/api/v1/connections", json={"kind": "hubspot", "name": "", "token": ""}, headers=headers)
    assert bad.status_code == 400 and set(bad.get_json()["fields"]) == {"name", "token"}
    made = client.post("/api/v1/connections", headers=headers, json={
        "kind": "hubspot", "name": "hs-api", "token": info["access_token"], "api_base": info["api_base"],
        "portal_id": str(info["portal_id"]), "app_secret": info["app_secret"]})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["webhook"]["secret_set"] and info["app_secret"] not in str(body)  # masked unless revealed
    started = client.post("/api/v1/oauth/hubspot/start", headers=headers, json={
        "name": "hs-api-oauth", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "api_base": info["api_base"]})
    assert started.status_code == 201 and started.get_json()["authorize_url"].startswith(info["authorize_url"])
