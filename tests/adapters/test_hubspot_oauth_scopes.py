"""An OAuth install granted exactly the adapter's OAUTH_SCOPES runs everything Rapport does against a sandbox
that enforces scopes: connect, provision, full and incremental sync, write-back and a score-drop task."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner

from adapters.base import TaskSpec
from adapters.hubspot import settings as hs
from connector.cli import main
from connector.config import get_settings
from connector.connections import get_connection, open_adapter
from connector.db import make_engine
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.vault import vault_for
from sandbox.hubspot import HubSpotSandbox

BACK = "https://rapport.example.com/oauth/hubspot"


@pytest.fixture
def installed(monkeypatch, sqlite_url, tmp_path):
    """A sandbox portal and a Rapport database whose settings the CLI reads."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    sb = HubSpotSandbox(size="small", seed=12, accounts=6, rate_limits=False, search_lag_s=0).start()
    engine = make_engine(sqlite_url)
    yield sb, engine, get_settings()
    engine.dispose()
    sb.stop()
    get_settings.cache_clear()


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _install(sb) -> str:
    """Open the consent page for the adapter's scopes as a browser would and press Grant; the code."""
    page = requests.get(f"{sb.api_base}/oauth/authorize", timeout=10, params={
        "client_id": sb.info["client_id"], "redirect_uri": BACK, "scope": " ".join(hs.OAUTH_SCOPES)})
    assert page.status_code == 200, page.text
    answer = requests.post(f"{sb.api_base}/oauth/authorize", allow_redirects=False, timeout=10, data={
        "client_id": sb.info["client_id"], "redirect_uri": BACK, "scope": " ".join(hs.OAUTH_SCOPES),
        "decision": "grant"})
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def test_the_oauth_scopes_cover_provision_sync_writeback_and_tasks(installed):
    sb, engine, settings = installed
    i = sb.info
    _run("connect", "hubspot", "hs-oauth", "--client-id", i["client_id"], "--client-secret", i["client_secret"],
         "--code", _install(sb), "--redirect-uri", BACK, "--api-base", i["api_base"])
    row = get_connection(engine, "hs-oauth")
    assert row.id is not None
    token = vault_for(settings).decrypt(row.credentials_encrypted)["access_token"]
    granted = requests.get(f"{sb.api_base}/oauth/v1/access-tokens/{token}", timeout=10).json()["scopes"]
    assert sorted(granted) == sorted(hs.OAUTH_SCOPES)
    # the sandbox holds the install to what it was granted
    refused = requests.post(f"{sb.api_base}/crm/v3/objects/deals", timeout=10, json={"properties": {}},
                            headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"

    sb.stats.reset()
    out = _run("provision", "hs-oauth")
    assert "rapport_relationship_score" in out
    assert {"rapport_tier", "rapport_scored_at"} <= set(sb.store.catalog.defined("companies"))
    assert "rapport_tier" in sb.store.catalog.defined("contacts")
    sync_connection(engine, settings, row.id, full=True)
    sb.mutate(30, seed=2)
    sync_connection(engine, settings, row.id)
    score_connection(engine, row.id)
    out = json.loads(_run("writeback", "hs-oauth", "--json"))
    assert out["written"] > 0 and out["failed"] == 0, out
    companies = sb.store.tables["companies"]
    assert any(companies.records[r].props.get("rapport_relationship_score") for r in companies.live)
    adapter = open_adapter(engine, settings, row.id)
    company = str(companies.live[0])
    due = datetime.now(UTC) + timedelta(days=1)
    task = adapter.create_task(TaskSpec("account", company, "Score dropped", "80 -> 55", None, due))
    assert int(task) in sb.store.tables["tasks"].records
    assert "403" not in sb.stats.snapshot()["statuses"]
