"""`rapport writeback`: a dry run shows what would change and writes nothing; a real run writes it once."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

import adapters
from adapters.base import FieldSpec
from connector import connections
from connector.cli import main
from connector.config import get_settings
from connector.db import make_engine
from connector.scoring import score_connection
from connector.sync import sync_connection
from sandbox.memory import DEFAULT_WRITE, MemoryCRM, sample


@pytest.fixture
def crm(monkeypatch, sqlite_url, tmp_path):
    monkeypatch.setitem(adapters.ADAPTERS, "memory", "sandbox.memory:MemoryAdapter")
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    engine = make_engine(sqlite_url)
    name = f"wb-{uuid.uuid4().hex[:6]}"
    fake = MemoryCRM.by_name(name)
    for n in range(4):
        acc = fake.create("account", sample("account", n))
        contact = fake.create("contact", sample("contact", n, account=acc))
        fake.create("deal", sample("deal", n, account=acc, contact=contact))
    cid = connections.create_connection(engine, settings, kind="memory", name=name, secrets={})
    adapter = connections.open_adapter(engine, settings, cid)
    for obj in ("account", "contact"):
        adapter.ensure_fields(obj, [FieldSpec(f, f, "text") for f in DEFAULT_WRITE[obj].values()])
    sync_connection(engine, settings, cid, full=True)
    score_connection(engine, cid)
    yield name, fake
    get_settings.cache_clear()


def test_dry_run_then_write_then_nothing(crm) -> None:
    name, fake = crm
    runner = CliRunner()
    dry = runner.invoke(main, ["writeback", name, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "nothing was written" in dry.output and "account: 4 to write" in dry.output
    assert all("RelationshipScore__x" not in r.fields for r in fake.records["account"].values())
    real = runner.invoke(main, ["writeback", name])
    assert real.exit_code == 0, real.output
    assert "8 written, 0 refused" in real.output
    assert all(r.fields.get("RelationshipScore__x") is not None for r in fake.records["account"].values())
    again = runner.invoke(main, ["writeback", name])
    assert "0 written, 0 refused, 0 API call(s)" in again.output


def test_unknown_connection_is_a_clear_error(crm) -> None:
    result = CliRunner().invoke(main, ["writeback", "no-such-connection"])
    assert result.exit_code != 0 and "no-such-connection" in result.output
