"""`rapport connect hubspot` (private app, OAuth code, OAuth refresh token) and `rapport provision`."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner

from adapters.hubspot import settings as hs
from connector.cli import main
from connector.commands import hubspot as hs_commands
from connector.commands import salesforce as sf_commands
from connector.connections import get_connection, list_connections
from connector.db import make_engine
from connector.vault import vault_for
from sandbox.hubspot import HubSpotSandbox

BACK = "https://rapport.example.com/oauth/hubspot"


@pytest.fixture(scope="module")
def portal():
    sb = HubSpotSandbox(size="small", seed=6, accounts=5, rate_limits=False).start()
    yield sb
    sb.stop()


@pytest.fixture
def cli(portal, sqlite_url, make_settings, monkeypatch):
    settings = make_settings(DATABASE_URL=sqlite_url)
    monkeypatch.setattr(hs_commands, "get_settings", lambda: settings)
    monkeypatch.setattr(sf_commands, "get_settings", lambda: settings)
    engine = make_engine(sqlite_url)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args))
        return result.exit_code, result.output

    yield run, engine, settings
    engine.dispose()


def _code(sb) -> str:
    """Click Grant on the sandbox's authorize page, as an admin's browser would."""
    answer = requests.post(f"{sb.info['api_base']}/oauth/authorize", allow_redirects=False, timeout=10,
                           data={"client_id": sb.info["client_id"], "redirect_uri": BACK, "decision": "grant",
                                 "scope": " ".join(hs.OAUTH_SCOPES)})
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def test_private_app_token_and_provision(cli, portal):
    run, engine, settings = cli
    i = portal.info
    code, out = run("connect", "hubspot", "hs-private", "--token", i["access_token"], "--app-secret",
                    i["app_secret"], "--portal-id", str(i["portal_id"]), "--api-base", i["api_base"])
    assert code == 0, out
    assert json.loads(out.splitlines()[0])["auth"] == "private_app"
    row = get_connection(engine, "hs-private")
    assert (row.kind, row.external_org_id, row.instance_url) == ("hubspot", str(i["portal_id"]), i["api_base"])
    assert row.options["auth"] == "private_app"
    assert vault_for(settings).decrypt(row.credentials_encrypted)["app_secret"] == i["app_secret"]
    code, out = run("provision", "hs-private")
    assert code == 0, out
    assert "rapport_relationship_score" in out and "already there" not in out
    code, out = run("provision", "hs-private")  # idempotent
    assert code == 0 and "created nothing" in out
    defined = portal.store.catalog.defined("companies")
    assert defined["rapport_scored_at"].type == "datetime" and defined["rapport_drivers"].field_type == "textarea"


def test_oauth_code_then_refresh_token(cli, portal):
    run, engine, settings = cli
    i = portal.info
    code, out = run("connect", "hubspot", "hs-oauth", "--client-id", i["client_id"], "--client-secret",
                    i["client_secret"], "--code", _code(portal), "--redirect-uri", BACK, "--api-base", i["api_base"])
    assert code == 0, out
    row = get_connection(engine, "hs-oauth")
    assert row.external_org_id == str(i["portal_id"]) and row.options["auth"] == "oauth"  # found from the token
    secrets = vault_for(settings).decrypt(row.credentials_encrypted)
    assert secrets["refresh_token"] and secrets["access_token"] and secrets["expires_at"]
    code, out = run("connect", "hubspot", "hs-oauth-2", "--client-id", i["client_id"], "--client-secret",
                    i["client_secret"], "--refresh-token", secrets["refresh_token"], "--api-base", i["api_base"])
    assert code == 0, out


@pytest.mark.parametrize(("args", "message"), [
    (["--token", "pat-na1-wrong", "--portal-id", "1"], "did not accept"),
    (["--client-id", "x", "--client-secret", "y", "--refresh-token", "na1-dead"], "refused the OAuth"),
    (["--token", "t", "--client-id", "x"], "not both"),
    ([], "--token PAT"),
    (["--client-id", "x", "--client-secret", "y", "--code", "c"], "--redirect-uri"),
    # a public app's webhooks are signed with its client secret: a separate app secret has no use
    (["--client-id", "x", "--client-secret", "y", "--refresh-token", "r", "--app-secret", "s"], "client secret"),
])
def test_bad_credentials_say_what_to_fix_and_store_nothing(cli, portal, args, message):
    run, engine, _ = cli
    code, out = run("connect", "hubspot", "hs-bad", *args, "--api-base", portal.info["api_base"])
    assert code != 0 and message in out, out
    assert list_connections(engine) == []
