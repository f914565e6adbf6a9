"""PostgreSQL planner statistics: a sync or a write-back over loaded tables leaves them analysed, as
autovacuum would later (or never, where it is off), so lookups of a few records are planned by index."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import adapters
from connector.model import Account, Score, utcnow
from connector.store import refresh_statistics, upsert
from connector.sync import sync_connection
from connector.writeback import writeback_connection
from sandbox.memory import MemoryCRM
from tests.connector.sync_helpers import MEMORY, memory_connection

pytestmark = pytest.mark.postgres
LOADED = ("account", "contact", "deal", "case", "activity")


def planned_rows(engine: Engine, *tables: str) -> dict[str, float]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:t)"),
                                 {"t": list(tables)}).all())


def sampled_values(engine: Engine, table: str, column: str) -> str:
    """What the column statistics hold (most common values and histogram), as text."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = :t AND attname = :c"), {"t": table, "c": column}).first()
    return " ".join(v or "" for v in row) if row else ""


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> MemoryCRM:
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    return MemoryCRM(page_size=50)


def test_a_first_sync_leaves_every_loaded_table_analysed(pg_engine: Engine, make_settings: Any, crm: MemoryCRM) -> None:
    for _ in range(30):
        a = crm.create("account")
        for _ in range(3):
            c = crm.create("contact", {"AccountId": a})
            crm.create("deal", {"AccountId": a, "ContactId": c})
            crm.create("case", {"AccountId": a, "ContactId": c})
            crm.create("activity", {"AccountId": a, "ContactId": c})
    crm.tick()
    settings = make_settings()
    cid, adapter = memory_connection(pg_engine, settings, crm)
    sync_connection(pg_engine, settings, cid, adapter=adapter, full=True, until=crm.now)
    # ANALYZE counted the rows just loaded (an emptied table is planned as never analysed)
    assert planned_rows(pg_engine, *LOADED) == {"account": 30, "contact": 90, "deal": 90, "case": 90, "activity": 90}
    assert refresh_statistics(pg_engine, *LOADED) == []  # nothing changed since


def test_statistics_are_refreshed_once_a_table_grew_by_a_tenth(pg_engine: Engine) -> None:
    now = utcnow()
    with pg_engine.begin() as conn:
        cid = _connection(conn)
        upsert(conn, Account, [_account(cid, i, now) for i in range(2000)])
    assert refresh_statistics(pg_engine, "account") == ["account"]
    with pg_engine.begin() as conn:
        upsert(conn, Account, [_account(cid, i, now) for i in range(2000, 2100)])
    assert refresh_statistics(pg_engine, "account") == []  # 5% more: the statistics still hold
    with pg_engine.begin() as conn:
        upsert(conn, Account, [_account(cid, i, now) for i in range(2100, 3500)])
    assert refresh_statistics(pg_engine, "account") == ["account"]
    assert planned_rows(pg_engine, "account") == {"account": 3500}


def test_a_full_write_back_commits_the_statistics_it_gathers(pg_engine: Engine) -> None:
    now = utcnow()
    with pg_engine.begin() as conn:
        cid = _connection(conn)
        upsert(conn, Account, [_account(cid, i, now) for i in range(50)])
        upsert(conn, Score, [dict(connection_id=cid, object="account", external_id=f"stat-{i:04d}", relationship=50.0,
                                  experience=50.0, tier="B", trend=None, drivers=[], components={}, model_version=1,
                                  scored_at=now, at_risk=False) for i in range(50)],
               keys=("connection_id", "object", "external_id"))

    class Crm:
        api_calls = 0

        def write(self, object: str, items: list[Any]) -> list[Any]:
            from adapters.base import WriteResult

            return [WriteResult(i.external_id, ok=True) for i in items]

    out = writeback_connection(pg_engine, None, cid, adapter=Crm(),  # type: ignore[arg-type]
                               defaults={"account": {"relationship_score": "Rel"}})
    assert out["written"] == 50
    # statistics of the scores just planned, not of an ANALYZE rolled back with a read-only transaction
    assert "stat-0" in sampled_values(pg_engine, "score", "external_id")
    assert "stat-0" in sampled_values(pg_engine, "account", "external_id")


def _connection(conn: sa.Connection) -> int:
    from connector.model import Connection, Workspace

    now = utcnow()
    ws = conn.execute(sa.insert(Workspace.__table__).values(name="w", created_at=now)  # type: ignore[attr-defined]
                      .returning(sa.column("id"))).scalar_one()
    return int(conn.execute(sa.insert(Connection.__table__).values(  # type: ignore[attr-defined]
        workspace_id=ws, name="crm", kind="memory", credentials_encrypted="", options={}, status="active",
        created_at=now, updated_at=now).returning(sa.column("id"))).scalar_one())


def _account(cid: int, i: int, now: Any) -> dict[str, Any]:
    return dict(connection_id=cid, external_id=f"stat-{i:04d}", name=f"Account {i}", raw={}, custom={},
                is_deleted=False, synced_at=now)
