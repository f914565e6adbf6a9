"""`rapport connect salesforce` with each way in, and `rapport provision`, against the sandbox."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner

from connector.cli import main
from connector.commands import salesforce as sf_commands
from connector.connections import get_connection, open_adapter
from connector.db import make_engine
from connector.vault import vault_for
from tests.adapters.salesforce_support import Org, later, org_fixture, sf_sandbox_fixture  # noqa: F401 - fixtures


@pytest.fixture
def cli(org: Org, sqlite_url, make_settings, monkeypatch):
    settings = make_settings(DATABASE_URL=sqlite_url)
    monkeypatch.setattr(sf_commands, "get_settings", lambda: settings)
    engine = make_engine(sqlite_url)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    yield run, engine, settings
    engine.dispose()


def _sandbox_args(org: Org) -> list[str]:
    return ["--login-url", org.url, "--ca-bundle", org.info["ca_bundle"]]


def _refresh_token(org: Org) -> str:
    """Click through the authorize page and exchange the code, as an admin's browser would."""
    i, verify = org.info, org.info["ca_bundle"]
    back = "https://rapport.example/oauth/callback"
    answer = requests.post(f"{org.url}/services/oauth2/authorize", verify=verify, allow_redirects=False, timeout=10,
                           data={"response_type": "code", "client_id": i["client_id"], "redirect_uri": back, "decision": "allow"})
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    token = requests.post(f"{org.url}/services/oauth2/token", verify=verify, timeout=10, data={
        "grant_type": "authorization_code", "code": code, "client_id": i["client_id"],
        "client_secret": i["client_secret"], "redirect_uri": back})
    return str(token.json()["refresh_token"])


def _ways(org: Org) -> dict[str, list[str]]:
    i = org.info
    return {
        "password": ["--username", i["username"], "--password", i["password"], "--client-id", i["client_id"],
                     "--client-secret", i["client_secret"]],
        "jwt": ["--client-id", i["client_id"], "--username", i["username"], "--private-key", i["jwt_private_key"]],
        "refresh_token": ["--refresh-token", _refresh_token(org), "--client-id", i["client_id"],
                          "--client-secret", i["client_secret"]],
        "access_token": ["--access-token", i["access_token"], "--instance-url", org.url],
    }


@pytest.mark.parametrize("way", ["password", "jwt", "refresh_token", "access_token"])
def test_each_way_in_stores_a_working_connection(org: Org, cli, way: str) -> None:
    run, engine, settings = cli
    code, out = run("connect", "salesforce", f"acme-{way}", *_ways(org)[way], *_sandbox_args(org))
    assert code == 0, out
    shown = json.loads(out.strip().splitlines()[-1])
    assert shown["organization_id"] == org.info["organization_id"] and shown["flow"] == way
    row = get_connection(engine, f"acme-{way}")
    assert (row.kind, row.instance_url, row.external_org_id) == ("salesforce", org.url, org.info["organization_id"])
    assert row.options["ca_bundle"] == org.info["ca_bundle"] and row.options["login_url"] == org.url
    secrets = vault_for(settings).decrypt(row.credentials_encrypted)
    assert secrets["access_token"] and "access_token" not in row.credentials_encrypted
    # The stored connection works, and keeps working after its session is ended (except a bare token).
    assert row.id is not None
    adapter = open_adapter(engine, settings, row.id)
    assert sum(len(p.changes) for p in adapter.pull("account", None, later())) == org.count("Account")
    if way != "access_token":
        org.hook("sessions", {"expire": True})
        fresh = open_adapter(engine, settings, row.id)
        assert sum(len(p.changes) for p in fresh.pull("case", None, later())) == org.count("Case")
        renewed = vault_for(settings).decrypt(get_connection(engine, row.id).credentials_encrypted)
        assert renewed["access_token"] != secrets["access_token"]  # the refreshed token was stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--username", "u"], "no way to sign in"),
        (["--access-token", "x"], "needs --instance-url"),
        (["--access-token", "x", "--instance-url", "http://127.0.0.1:1"], "must be an https"),
    ],
)
def test_incomplete_or_insecure_options_are_refused(org: Org, cli, args: list[str], message: str) -> None:
    run, engine, _ = cli
    code, out = run("connect", "salesforce", "acme", *args, *_sandbox_args(org))
    assert code == 2 and message in out


def test_wrong_credentials_say_what_to_check_and_store_nothing(org: Org, cli) -> None:
    run, engine, _ = cli
    args = _ways(org)["password"]
    args[args.index("--password") + 1] = "wrong"
    code, out = run("connect", "salesforce", "acme", *args, *_sandbox_args(org))
    assert code == 2 and "refused the password grant" in out and "check the username" in out
    with pytest.raises(Exception, match="no connection named"):
        get_connection(engine, "acme")


def test_provision_creates_the_fields_once(org: Org, cli) -> None:
    run, engine, _ = cli
    assert run("connect", "salesforce", "acme", *_ways(org)["password"], *_sandbox_args(org))[0] == 0
    code, out = run("provision", "acme")
    assert code == 0, out
    assert "account: created Rapport_Relationship_Score__c, Rapport_Experience_Score__c" in out
    assert "contact: created Rapport_Relationship_Score__c" in out
    code, out = run("provision", "acme")
    assert code == 0
    assert "account: created nothing; already there: Rapport_Relationship_Score__c" in out
    assert "contact: created nothing" in out
