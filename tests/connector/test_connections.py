"""Connections: encrypted secrets, look-up errors, adapters opened from ADAPTERS, refreshed tokens kept encrypted."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import adapters
from adapters.base import NoBudget
from connector import connections
from connector.cli import main
from connector.config import get_settings
from connector.errors import ConfigError
from connector.model import Connection, Workspace
from connector.sync import sync_connection
from connector.vault import vault_for
from sandbox.memory import MemoryAdapter, MemoryCRM
from tests.connector.sync_helpers import MEMORY

SECRETS = {"refresh_token": "rt-very-secret-123", "client_secret": "cs-also-secret-456"}


@pytest.fixture
def settings(make_settings, monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    return make_settings()


def raw_rows(engine) -> str:
    with engine.connect() as conn:
        return json.dumps([list(map(str, r)) for r in conn.execute(sa.select(Connection.__table__)).all()])


def test_secrets_are_stored_encrypted_and_never_in_plain_text(engine, settings):
    cid = connections.create_connection(engine, settings, kind="memory", name="acme", secrets=SECRETS,
                                        instance_url="https://crm.example", options={"crm": "acme"})
    dump = raw_rows(engine)
    assert "rt-very-secret-123" not in dump and "cs-also-secret-456" not in dump
    row = connections.get_connection(engine, "acme")
    assert row.id == cid and row.kind == "memory" and row.instance_url == "https://crm.example"
    assert vault_for(settings).decrypt(row.credentials_encrypted) == SECRETS


def test_connections_share_the_default_workspace_created_on_demand(engine, settings):
    a = connections.create_connection(engine, settings, kind="memory", name="a", secrets={})
    b = connections.create_connection(engine, settings, kind="memory", name="b", secrets={})
    c = connections.create_connection(engine, settings, kind="memory", name="c", secrets={}, workspace="globex")
    ws = {r.id: r.workspace_id for r in connections.list_connections(engine)}
    assert ws[a] == ws[b] != ws[c]
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(Workspace.__table__.c.name)).scalars()) == ["default", "globex"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "pipedrive", "name": "x"}, r"unknown CRM kind 'pipedrive'.*salesforce, hubspot"),
        ({"kind": "memory", "name": "has spaces"}, r"connection name 'has spaces' is not allowed"),
        ({"kind": "memory", "name": ""}, r"connection name '' is not allowed"),
        ({"kind": "memory", "name": "taken"}, r"a connection named 'taken' already exists"),
    ],
)
def test_bad_connections_are_refused_with_what_to_fix(engine, settings, kwargs, message):
    connections.create_connection(engine, settings, kind="memory", name="taken", secrets={})
    with pytest.raises(ConfigError, match=message):
        connections.create_connection(engine, settings, secrets={}, **kwargs)
    assert len(connections.list_connections(engine)) == 1


def test_get_connection_by_name_or_id_and_a_clear_error_otherwise(engine, settings):
    cid = connections.create_connection(engine, settings, kind="memory", name="acme", secrets={})
    assert connections.get_connection(engine, cid).name == "acme"
    assert connections.get_connection(engine, str(cid)).name == "acme"
    with pytest.raises(ConfigError, match=r"no connection named 'globex'.*rapport connections"):
        connections.get_connection(engine, "globex")


def test_open_adapter_builds_the_kind_from_adapters_and_keeps_refreshed_tokens_encrypted(engine, settings, monkeypatch):
    crm = MemoryCRM()
    monkeypatch.setattr(MemoryCRM, "named", {"acme": crm})
    cid = connections.create_connection(engine, settings, kind="memory", name="acme", secrets=SECRETS)
    adapter = connections.open_adapter(engine, settings, cid, budget=NoBudget())
    assert isinstance(adapter, MemoryAdapter) and adapter.crm is crm
    assert adapter.secrets == SECRETS and adapter.info.name == "acme"
    adapter.describe("account")  # the first call trades the refresh token for an access token
    stored = vault_for(settings).decrypt(connections.get_connection(engine, cid).credentials_encrypted)
    assert stored == {**SECRETS, "access_token": adapter.secrets["access_token"]}
    assert adapter.secrets["access_token"] not in raw_rows(engine)
    again = connections.open_adapter(engine, settings, cid, budget=NoBudget())
    assert again.secrets["access_token"] == adapter.secrets["access_token"]  # a new process reuses it


def test_a_connection_of_a_kind_no_longer_known_is_refused(engine, settings, monkeypatch):
    cid = connections.create_connection(engine, settings, kind="memory", name="old", secrets={})
    monkeypatch.delitem(adapters.ADAPTERS, "memory")
    with pytest.raises(ConfigError, match=r"connection 'old' is of unknown kind 'memory'"):
        connections.open_adapter(engine, settings, cid)


def test_cli_lists_connections_and_syncs_one(engine, settings, monkeypatch, tmp_path):
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI test runs on the SQLite file only")
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RAPPORT_ENV", "test")
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    crm = MemoryCRM(page_size=2)
    monkeypatch.setattr(MemoryCRM, "named", {"acme": crm})
    runner = CliRunner()
    assert "no connections yet" in runner.invoke(main, ["connections"]).output
    cid = connections.create_connection(engine, settings, kind="memory", name="acme", secrets={},
                                        options={"budget": "off"})
    for _ in range(3):
        crm.create("account", {"Employees": "lots"})
        crm.create("account")
    crm.tick()
    result = runner.invoke(main, ["sync", "acme"])
    assert result.exit_code == 0, result.output
    assert "sync_incremental of acme: partial" in result.output
    assert "skipped account 001000000001: account.employees from Employees" in result.output
    crm.update("account", "001000000001", {"Employees": "40"})
    crm.tick()
    run_id = sync_connection(engine, settings, cid, until=crm.now)  # the adapter comes from the stored connection
    assert run_id and connections.get_connection(engine, "acme").status == "active"
    listed = runner.invoke(main, ["connections"])
    assert "acme" in listed.output and "memory" in listed.output and "default" in listed.output
    assert "succeeded" in listed.output
    line = json.loads(runner.invoke(main, ["connections", "--json"]).output.splitlines()[0])
    assert line["name"] == "acme" and line["last_sync"]["status"] == "succeeded"
    missing = runner.invoke(main, ["sync", "nope"])
    assert missing.exit_code == 2 and "no connection named 'nope'" in missing.output
    get_settings.cache_clear()
