"""The fast upsert lane stores exactly what the SQLAlchemy path stores, and refuses what it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import connector.bulk as bulk
import connector.store as store
from bench.storage import create_bench_connection
from connector.model import RECORD_MODELS
from tests.connector.sync_helpers import world_rows


def _stored(engine: sa.Engine, name: str, connection_id: int) -> list[tuple]:
    """Every column but the surrogate id and the connection, as the database returns it (raw SQL).

    JSON is compared as the values it holds, since its spacing may differ between the paths.
    """
    table = RECORD_MODELS[name].__table__  # type: ignore[attr-defined]
    cols = [c.name for c in table.c if c.name not in ("id", "connection_id")]
    is_json = [isinstance(table.c[c].type, sa.JSON) for c in cols]
    sql = f'SELECT {", ".join(cols)} FROM "{table.name}" WHERE connection_id = :c ORDER BY external_id'
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), {"c": connection_id}).all()
    return [tuple(json.loads(v) if j and isinstance(v, str) else v for v, j in zip(r, is_json, strict=True)) for r in rows]


@pytest.mark.parametrize("many", [False, True], ids=["per-object", "objects-pipelined"])
@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "json-document"])
def test_fast_and_sqlalchemy_paths_store_identical_rows(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, copy_from: int, many: bool
) -> None:
    monkeypatch.setattr(bulk, "PG_COPY_MIN_ROWS", copy_from)  # PostgreSQL: COPY for large batches, JSON for small
    monkeypatch.setattr(bulk, "PG_COPY_CHUNK", 7)  # several chunks per call
    fast_id = create_bench_connection(engine, "fast")
    slow_id = create_bench_connection(engine, "slow")
    for cid in (fast_id, slow_id):
        rows = world_rows(cid)
        # an offset other than UTC and a JSON null must come out the same way on both paths
        rows["account"][0]["created_at"] = datetime(2024, 3, 1, 9, 30, 15, 250, tzinfo=timezone(timedelta(hours=2)))
        rows["account"][0]["custom"] = {"tier": None, "tags": ["a", "é"], 7: 2**70, "path": "C:\\N\tx"}
        # text that COPY would otherwise read as a tab, a newline, an escape or a NULL
        rows["account"][1]["name"] = "Tab\there\nnew line \\N back\\slash\r"
        rows["account"][2]["name"] = "\\N"
        rows["account"][3]["name"] = ""
        # the ends of the calendar, a microsecond either side of the epoch, and a zone west of UTC
        rows["contact"][0]["created_at"] = datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
        rows["contact"][1]["created_at"] = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        rows["contact"][2]["created_at"] = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        rows["contact"][3]["created_at"] = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
        rows["contact"][4]["created_at"] = datetime(2026, 3, 29, 0, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7)))
        # JSON cannot carry it: that call takes the SQLAlchemy path, even once earlier chunks were stored
        rows["deal"][-1]["amount"] = float("inf")
        with monkeypatch.context() as patch:
            if cid == slow_id:
                patch.setattr(store, "fast_upsert", lambda *a, **k: False)
            with engine.begin() as conn:
                if many and cid == fast_id:
                    assert store.upsert_many_records(conn, rows) == sum(map(len, rows.values()))
                else:
                    for name, object_rows in rows.items():
                        assert store.upsert_records(conn, name, object_rows) == len(object_rows)
    for name in RECORD_MODELS:
        fast, slow = _stored(engine, name, fast_id), _stored(engine, name, slow_id)
        assert fast and fast == slow, name


@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "json-document"])
def test_upsert_updates_existing_rows_and_the_last_duplicate_wins(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, copy_from: int
) -> None:
    monkeypatch.setattr(bulk, "PG_COPY_MIN_ROWS", copy_from)
    monkeypatch.setattr(bulk, "PG_COPY_CHUNK", 2)  # the duplicates land in different statements
    cid = create_bench_connection(engine, "dup")
    rows = world_rows(cid)["account"][:3]
    with engine.begin() as conn:
        store.upsert_records(conn, "account", rows)
    renamed = [{**rows[0], "name": "First"}, {**rows[1], "name": "Other"}, {**rows[0], "name": "Second"}]
    with engine.begin() as conn:
        store.upsert_records(conn, "account", renamed)
        store.upsert_records(conn, "account", [{**rows[2], "name": "Third"}])  # same staging table, same transaction
    table = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(table.c.external_id, table.c.name)).all())
    assert len(names) == 3
    assert names[rows[0]["external_id"]] == "Second" and names[rows[1]["external_id"]] == "Other"
    assert names[rows[2]["external_id"]] == "Third"


@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "json-document"])
def test_bad_rows_are_refused_with_a_reason_and_nothing_of_the_call_is_kept(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, copy_from: int
) -> None:
    monkeypatch.setattr(bulk, "PG_COPY_MIN_ROWS", copy_from)
    monkeypatch.setattr(bulk, "PG_COPY_CHUNK", 2)  # the bad row comes in the second chunk
    cid = create_bench_connection(engine, "bad")
    rows = world_rows(cid)["contact"][:4]
    naive = [*rows[:3], {**rows[3], "created_at": datetime(2024, 1, 1)}]  # noqa: DTZ001 - the bad input under test
    with engine.begin() as conn:  # the caller goes on and commits: the rows before the bad one are not kept either
        with pytest.raises(ValueError, match="naive datetime"):
            store.upsert_records(conn, "contact", naive)
    missing = [*rows[:3], {k: v for k, v in rows[3].items() if k != "email"}]
    with pytest.raises(ValueError, match="row 3 of contact"), engine.begin() as conn:
        store.upsert_records(conn, "contact", missing)
    with pytest.raises(ValueError, match="no column 'nickname'"), engine.begin() as conn:
        store.upsert_records(conn, "contact", [{**r, "nickname": "x"} for r in rows])
    accounts = world_rows(cid)["account"][:3]
    with engine.begin() as conn:  # several objects at once: the accounts stored before the bad contact go too
        with pytest.raises(ValueError, match="naive datetime"):
            store.upsert_many_records(conn, {"account": accounts, "contact": naive})
    for name in ("account", "contact"):
        table = RECORD_MODELS[name].__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0, name
    with engine.begin() as conn:  # the same rows, fixed, go through
        assert store.upsert_records(conn, "contact", rows) == 4


def _staged(conn: sa.Connection) -> int:
    """Rows the staging tables hold: the last chunk staged in this transaction (they empty at commit)."""
    names = conn.exec_driver_sql("SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema() "
                                 "AND relkind = 'r' AND position('_stage_' in relname) > 0").scalars().all()
    return sum(conn.exec_driver_sql(f'SELECT count(*) FROM pg_temp."{n}"').scalar_one() for n in names)


def _copying(monkeypatch: pytest.MonkeyPatch, chunk: int, **settings: int) -> None:
    """PostgreSQL COPY for any batch, in chunks of `chunk` rows, no table backing off yet, and `settings`."""
    for name, value in {"PG_COPY_MIN_ROWS": 1, "PG_COPY_CHUNK": chunk, "_backoff": {}, **settings}.items():
        monkeypatch.setattr(bulk, name, value)


def _names(conn: sa.Connection, cid: int) -> dict[str, str]:
    table = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    return dict(conn.execute(sa.select(table.c.external_id, table.c.name).where(table.c.connection_id == cid)).all())


@pytest.mark.parametrize("stored_at", ["first", "last"])
def test_new_rows_go_straight_in_and_a_stored_key_falls_back_to_the_upsert(
    pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, stored_at: str
) -> None:
    """PostgreSQL: a chunk of new rows is copied straight into the table; one holding a key already
    stored (first or last in the chunk) is refused there and upserted through the staging table,
    and nothing of it is lost or doubled."""
    _copying(monkeypatch, 4)
    cid = create_bench_connection(pg_engine, "direct")
    rows = world_rows(cid, accounts=8)["account"]
    with pg_engine.begin() as conn:
        assert store.upsert_records(conn, "account", rows[:4]) == 4
        assert _staged(conn) == 0  # straight in
    moved = [{**r, "name": f"renamed {i}"} for i, r in enumerate(rows[:4])]
    chunk = [moved[0], *rows[4:7]] if stored_at == "first" else [*rows[4:7], moved[0]]
    with pg_engine.begin() as conn:
        assert store.upsert_records(conn, "account", chunk) == 4
        assert _staged(conn) == 4  # refused straight, upserted through the staging table (one chunk)
        names = _names(conn, cid)
    assert len(names) == 7 and names[rows[0]["external_id"]] == "renamed 0"
    assert all(names[r["external_id"]] == r["name"] for r in rows[1:7])
    assert bulk._backoff["account"] == bulk.DIRECT_BACKOFF


def test_after_a_refusal_a_table_is_upserted_for_a_while_then_tried_straight_again(
    pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copying(monkeypatch, 2, DIRECT_BACKOFF=2)
    cid = create_bench_connection(pg_engine, "backoff")
    rows = world_rows(cid, accounts=8)["account"]
    with pg_engine.begin() as conn:
        store.upsert_records(conn, "account", rows[:2])
    with pg_engine.begin() as conn:  # a stored key: refused straight, then the next two chunks are staged
        store.upsert_records(conn, "account", rows[:6])
        assert _staged(conn) == 2 and bulk._backoff["account"] == 0  # the last of three staged chunks
    with pg_engine.begin() as conn:  # tried straight again: new rows, nothing staged
        store.upsert_records(conn, "account", rows[6:8])
        assert _staged(conn) == 0
        assert len(_names(conn, cid)) == 8


def test_the_chunks_sent_straight_in_one_call_are_capped(pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each chunk sent straight is a subtransaction; past the cap a call's chunks are staged."""
    _copying(monkeypatch, 1, DIRECT_PER_CALL=3)
    cid = create_bench_connection(pg_engine, "cap")
    rows = world_rows(cid)["account"][:5]
    with pg_engine.begin() as conn:
        assert store.upsert_records(conn, "account", rows) == 5
        assert _staged(conn) == 1  # chunks 4 and 5 were staged, one at a time
        assert len(_names(conn, cid)) == 5


@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "json-document"])
def test_an_upsert_that_opens_the_transaction_is_undone_with_it(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, copy_from: int
) -> None:
    """The caller's transaction owns the rows: one that fails after the upsert (its first statement) keeps none."""
    monkeypatch.setattr(bulk, "PG_COPY_MIN_ROWS", copy_from)
    cid = create_bench_connection(engine, "owner")
    rows = world_rows(cid)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        store.upsert_many_records(conn, {"account": rows["account"], "contact": rows["contact"]})
        raise RuntimeError("the caller fails after storing")
    with engine.connect() as conn:
        assert _names(conn, cid) == {}


def test_copy_text_escapes_its_specials_and_keeps_nulls() -> None:
    assert bulk.copy_escaped(["plain", None, "a\\b\tc\nd\re"]) == ["plain", None, "a\\\\b\\tc\\nd\\re"]
    # serialised JSON has no raw control character: only its escapes' backslashes are doubled
    assert bulk.copy_escaped(['{"t":"\\u2212 a\\tb"}'], json=True) == ['{"t":"\\\\u2212 a\\\\tb"}']
    column = ["A0000001", None, "A0000002"]
    assert bulk.copy_escaped(column) is column  # nothing to escape: the column is passed on as it is
