"""Synced records, scores and score history always belong to an existing connection, and go with it
when it is deleted.

SQLite keeps this with foreign keys; PostgreSQL with the statement-level triggers of migrations 0003
(records) and 0004 (scores and their history).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import connector.bulk as bulk
from bench.storage import create_bench_connection
from connector import score_models, score_writes
from connector.features import load_features
from connector.model import UNIFIED_OBJECTS
from connector.scoring import score_connection
from connector.store import upsert_many_records
from enrichment.scores import fit_portfolio, score_accounts
from tests.connector.scoring_support import NOW
from tests.connector.sync_helpers import world_rows

SCORE_TABLES = ("score", "score_history")


def _counts(engine: sa.Engine, connection_id: int, tables: tuple[str, ...] = UNIFIED_OBJECTS) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.text(f'SELECT count(*) FROM "{name}" WHERE connection_id = :c'),
                                   {"c": connection_id}).scalar_one() for name in tables}


def _scored(engine: sa.Engine, name: str) -> int:
    """A connection with a few synced accounts, scored; returns its id."""
    cid = create_bench_connection(engine, name)
    with engine.begin() as conn:
        upsert_many_records(conn, world_rows(cid))
    score_connection(engine, cid, now=NOW)
    assert all(_counts(engine, cid, SCORE_TABLES).values())
    return cid


@pytest.mark.parametrize(("copy_from", "straight"), [(1, 32), (1, 0), (10**9, 0)],
                         ids=["copy-straight", "copy-staged", "json-document"])
def test_records_of_a_missing_connection_are_refused_and_nothing_is_stored(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, copy_from: int, straight: int
) -> None:
    monkeypatch.setattr(bulk, "PG_COPY_MIN_ROWS", copy_from)
    monkeypatch.setattr(bulk, "DIRECT_PER_CALL", straight)  # PostgreSQL: COPY straight into the table, or staged
    monkeypatch.setattr(bulk, "_backoff", {})
    real = create_bench_connection(engine, "real")
    rows = world_rows(real)
    stray = world_rows(real + 1000)["contact"]
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        upsert_many_records(conn, {"account": rows["account"], "contact": rows["contact"] + stray[:1]})
    if engine.dialect.name == "postgresql":
        assert f"(connection_id)=({real + 1000})" in str(caught.value)
    assert _counts(engine, real) == dict.fromkeys(UNIFIED_OBJECTS, 0)
    with engine.begin() as conn:  # the same rows with the right connection are stored
        upsert_many_records(conn, rows)
    assert _counts(engine, real) == {name: len(rows[name]) for name in UNIFIED_OBJECTS}


def test_deleting_a_connection_deletes_its_records_only(engine: sa.Engine) -> None:
    gone, kept = create_bench_connection(engine, "gone"), create_bench_connection(engine, "kept")
    with engine.begin() as conn:
        upsert_many_records(conn, world_rows(gone))
        upsert_many_records(conn, world_rows(kept))
    before = _counts(engine, kept)
    assert all(before.values())
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM connection WHERE id = :c"), {"c": gone})
    assert _counts(engine, gone) == dict.fromkeys(UNIFIED_OBJECTS, 0)
    assert _counts(engine, kept) == before


def _refused_then_allowed(engine: sa.Engine, sql: str, refused: dict[str, int], allowed: dict[str, int]) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(sql), refused)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), allowed)


def test_a_record_moves_only_to_an_existing_connection(engine: sa.Engine) -> None:
    one, two = create_bench_connection(engine, "one"), create_bench_connection(engine, "two")
    with engine.begin() as conn:
        upsert_many_records(conn, {"account": world_rows(one)["account"][:1]})
    _refused_then_allowed(engine, "UPDATE account SET connection_id = :to WHERE connection_id = :c",
                          {"to": two + 1000, "c": one}, {"to": two, "c": one})
    assert _counts(engine, two)["account"] == 1


def test_a_connection_with_records_keeps_its_id(engine: sa.Engine) -> None:
    used, empty = create_bench_connection(engine, "used"), create_bench_connection(engine, "empty")
    with engine.begin() as conn:
        upsert_many_records(conn, {"case": world_rows(used)["case"][:1]})
    _refused_then_allowed(engine, "UPDATE connection SET id = id + 1000 WHERE id = :c", {"c": used}, {"c": empty})
    assert _counts(engine, used)["case"] == 1


@pytest.mark.parametrize("bulk_from", [10**9, 0], ids=["few-rows", "many-rows"])
def test_scores_of_a_missing_connection_are_refused_and_nothing_is_stored(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, bulk_from: int
) -> None:
    monkeypatch.setattr(score_writes, "BULK_MIN", bulk_from)  # PostgreSQL: arrays, or COPY through a staging table
    monkeypatch.setattr(score_writes, "SQLITE_BULK", bulk_from)  # SQLite: an upsert, or compared in Python
    real = create_bench_connection(engine, "real")
    with engine.begin() as conn:
        upsert_many_records(conn, world_rows(real))
        version, params = score_models.published(conn, score_models.workspace_of(conn, real))
        accounts, contacts = load_features(conn, real, params, as_of=NOW)
        scored = score_accounts(accounts, fit_portfolio(accounts, contacts, params), params)
    with pytest.raises(Exception, match=r"violates the connection reference|FOREIGN KEY constraint failed") as caught:
        with engine.begin() as conn:
            score_writes.write_scores(conn, real + 1000, "account", scored, version, NOW)
    if engine.dialect.name == "postgresql":
        assert f"(connection_id)=({real + 1000})" in str(caught.value.diag.message_detail)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in SCORE_TABLES] == [0, 0]
    with engine.begin() as conn:  # the same scores under their own connection are stored
        assert score_writes.write_scores(conn, real, "account", scored, version, NOW) == len(scored.ids)
    assert _counts(engine, real, SCORE_TABLES) == {"score": len(scored.ids), "score_history": len(scored.ids)}


def test_deleting_a_connection_deletes_its_scores_and_history_only(engine: sa.Engine) -> None:
    gone, kept = _scored(engine, "gone"), _scored(engine, "kept")
    before = _counts(engine, kept, SCORE_TABLES)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM connection WHERE id = :c"), {"c": gone})
    assert _counts(engine, gone, SCORE_TABLES) == dict.fromkeys(SCORE_TABLES, 0)
    assert _counts(engine, kept, SCORE_TABLES) == before


@pytest.mark.parametrize("table", SCORE_TABLES)
def test_a_score_moves_only_to_an_existing_connection(engine: sa.Engine, table: str) -> None:
    one, two = _scored(engine, "one"), create_bench_connection(engine, "two")
    moved = _counts(engine, one, (table,))[table]
    _refused_then_allowed(engine, f"UPDATE {table} SET connection_id = :to WHERE connection_id = :c",
                          {"to": two + 1000, "c": one}, {"to": two, "c": one})
    assert _counts(engine, two, (table,))[table] == moved


def test_a_connection_with_scores_keeps_its_id(engine: sa.Engine) -> None:
    used, empty = _scored(engine, "used"), create_bench_connection(engine, "empty")
    with engine.begin() as conn:  # its records and runs gone, only its scores and their history refer to it
        for name in ("contact", "deal", "case", "activity", "account", "sync_run"):
            conn.execute(sa.text(f'DELETE FROM "{name}" WHERE connection_id = :c'), {"c": used})
    _refused_then_allowed(engine, "UPDATE connection SET id = id + 1000 WHERE id = :c", {"c": used}, {"c": empty})
    assert all(_counts(engine, used, SCORE_TABLES).values())
