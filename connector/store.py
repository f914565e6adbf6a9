"""SQL writes and reads for the unified model: batched upserts on SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from connector.bulk import fast_upsert, fast_upsert_many, join_transaction
from connector.model import RECORD_MODELS

UPSERT_CHUNK = 1000
ROWS_LOCK = 0x7261  # PostgreSQL advisory lock class: "changing one connection's records and scores"


def lock_connection_rows(conn: SAConnection, connection_id: int) -> None:
    """Wait for (and hold until commit) the right to change a connection's records and scores.

    Sync pages, webhook jobs and rescoring on other workers change the same rows (upserts, merges
    that move scores and re-point children) in different orders, which would deadlock. Each such
    change takes milliseconds, so taking turns costs little. SQLite writes one at a time anyway.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ROWS_LOCK, connection_id)))


def relax_commit(conn: SAConnection) -> None:
    """Let this transaction's commit return before PostgreSQL has flushed its WAL to disk.

    For sync pages: a crash can lose only the last fraction of a second of commits, each whole,
    and with each its cursor, so the next run reads those records again (the order of the WAL
    means any later durable commit, such as an acknowledged webhook's, makes them durable too).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _bind(conn: Session | SAConnection) -> SAConnection:
    return conn.connection() if isinstance(conn, Session) else conn


def upsert(
    conn: Session | SAConnection,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str] = ("connection_id", "external_id"),
    update: Iterable[str] | None = None,
) -> int:
    """Insert rows, updating the given columns (default: all but the keys and id) on conflict."""
    if not rows:
        return 0
    bind = _bind(conn)
    table = model.__table__  # type: ignore[attr-defined]
    update_cols = _update_columns(rows[0], keys, update)
    if fast_upsert(bind, table, rows, keys, update_cols):
        return len(rows)
    insert_fn = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start : start + UPSERT_CHUNK]
        stmt = insert_fn(table)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        bind.execute(stmt, list(chunk))
    return len(rows)


def _update_columns(columns: Iterable[str], keys: Sequence[str], update: Iterable[str] | None = None) -> list[str]:
    return [c for c in (update if update is not None else columns) if c not in keys and c != "id"]


def by_ids(conn: sa.Connection, t: Any, columns: Sequence[Any], connection_id: int, ids: Sequence[str],
           *where: Any) -> sa.CursorResult[Any]:
    """Rows of these external ids (and `where`), looked up one by one through the table's unique key
    (connection, [object,] external id)."""
    if conn.dialect.name != "postgresql":
        return conn.execute(sa.select(*columns).where(t.c.connection_id == connection_id, *where,
                                                      t.c.external_id.in_(ids)))
    # `IN` lets PostgreSQL pick any index led by connection_id and filter every row of the connection:
    # a table filling up in a first sync (or write-back) has no statistics yet, and each page then
    # costs a full scan. A lateral probe per id has one plan whatever the statistics: the unique key.
    keys = sa.func.unnest(sa.literal(list(ids), ARRAY(sa.String))).table_valued("x").render_derived(name="k")
    probe = (sa.select(*columns).where(t.c.connection_id == connection_id, *where, t.c.external_id == keys.c.x)
             .limit(1).lateral("s"))
    return conn.execute(sa.select(probe).select_from(keys.join(probe, sa.true())))


def upsert_records(conn: Session | SAConnection, object: str, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert unified rows of one object (account, contact, deal, case, activity)."""
    return upsert(conn, RECORD_MODELS[object], rows)


def upsert_many_records(conn: Session | SAConnection, rows: Mapping[str, Sequence[dict[str, Any]]]) -> int:
    """Upsert unified rows of several objects (object name to rows), in the mapping's order, all or nothing.

    On PostgreSQL one object's rows are converted while the server stores the previous object's,
    which a loop over `upsert_records` cannot do; the result is the same.
    """
    bind = _bind(conn)
    keys = ("connection_id", "external_id")
    batches = [
        (RECORD_MODELS[name].__table__, batch, keys, _update_columns(batch[0], keys))  # type: ignore[attr-defined]
        for name, batch in rows.items()
        if batch
    ]
    if bind.dialect.name == "postgresql" and fast_upsert_many(bind, batches):
        return sum(len(batch) for batch in rows.values())
    # All or nothing, as one object's upsert is. A transaction begun here holds only this call's rows,
    # so a failure rolls it back whole; otherwise a savepoint does (on SQLite it journals every page
    # it writes, a tenth of a bulk load's time, so it is taken only when the caller wrote before).
    began = join_transaction(bind)
    try:
        with contextlib.nullcontext() if began else bind.begin_nested():
            return sum(upsert_records(bind, name, batch) for name, batch in rows.items())
    except BaseException:
        if began:
            bind.connection.driver_connection.rollback()  # type: ignore[union-attr]
        raise


def link_accounts(
    conn: Session | SAConnection,
    connection_id: int,
    object: str,
    *,
    external_ids: Sequence[str] | None = None,
    account_external_ids: Sequence[str] | None = None,
) -> None:
    """Resolve account_id foreign keys from account_external_id in one set-based UPDATE.

    Rows whose account_id is null are resolved, optionally only these records (`external_ids`) or
    only those pointing at these accounts (`account_external_ids`); a pointer to an account not
    synced yet stays null until that account arrives.
    """
    model = RECORD_MODELS[object]
    if "account_id" not in model.__table__.c:  # type: ignore[attr-defined]
        return
    child = model.__table__  # type: ignore[attr-defined]
    acc = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    sub = (
        sa.select(acc.c.id)
        .where(acc.c.connection_id == child.c.connection_id, acc.c.external_id == child.c.account_external_id)
        .scalar_subquery()
    )
    stmt = (
        sa.update(child)
        .where(child.c.connection_id == connection_id)
        .where(child.c.account_external_id.is_not(None))
        .where(child.c.account_id.is_(None))
        .values(account_id=sub)
    )
    if external_ids is not None:
        for start in range(0, len(external_ids), UPSERT_CHUNK):
            _bind(conn).execute(stmt.where(child.c.external_id.in_(external_ids[start : start + UPSERT_CHUNK])))
    elif account_external_ids is not None:
        for start in range(0, len(account_external_ids), UPSERT_CHUNK):
            chunk = account_external_ids[start : start + UPSERT_CHUNK]
            _bind(conn).execute(stmt.where(child.c.account_external_id.in_(chunk)))
    else:
        _bind(conn).execute(stmt)


def ensure_statistics(conn: SAConnection, *tables: str) -> None:
    """ANALYZE the tables PostgreSQL has never analysed.

    Without statistics right after a bulk load, the planner takes a 100k-row table for a handful of
    rows and picks nested loops that never finish; autovacuum fixes that later, this fixes it now.
    """
    if conn.dialect.name != "postgresql":
        return
    never = conn.execute(
        sa.text("SELECT relname FROM pg_class WHERE relname = ANY(:t) AND relkind = 'r' AND reltuples < 0"),
        {"t": list(tables)},
    ).scalars().all()
    for name in never:
        conn.execute(sa.text(f'ANALYZE "{name}"'))


def analyze(conn: SAConnection, *tables: str) -> None:
    """ANALYZE tables after a large write (PostgreSQL), so the next queries are planned on real sizes."""
    if conn.dialect.name == "postgresql":
        for name in tables:
            conn.execute(sa.text(f'ANALYZE "{name}"'))


# PostgreSQL's autovacuum analyses a table once this many rows changed since its last ANALYZE
# (autovacuum_analyze_threshold + autovacuum_analyze_scale_factor * rows, at their defaults).
STALE_ROWS, STALE_FRACTION = 50, 0.1


def refresh_statistics(engine: Engine, *tables: str) -> list[str]:
    """ANALYZE, in a transaction of its own, the tables whose statistics a bulk change left stale.

    Stale: rows but no statistics (never analysed since created or emptied, or analysed in a
    transaction that rolled back), grown by more than `STALE_FRACTION` since the last ANALYZE, or more rows changed than
    autovacuum waits for (counted by the statistics system, up to a second late). This does at once
    what autovacuum would do later, or never where it is off; without it the planner takes a freshly
    loaded table for a handful of rows and plans a lookup of a few accounts as a scan of the whole
    table. Returns the tables analysed.
    """
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        stale = conn.execute(sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.relname = ANY(:t) AND n.nspname = current_schema() AND c.relkind = 'r' AND ("
            " (pg_relation_size(c.oid) > 0 AND (c.reltuples < 0 OR NOT EXISTS ("
            "   SELECT 1 FROM pg_stats p WHERE p.schemaname = n.nspname AND p.tablename = c.relname)))"
            " OR pg_relation_size(c.oid) / current_setting('block_size')::int"
            "    > (1 + :fraction) * greatest(c.relpages, 0) + 8"
            " OR coalesce(s.n_mod_since_analyze, 0) > :rows + :fraction * greatest(c.reltuples, 0))"),
            {"t": list(tables), "rows": STALE_ROWS, "fraction": STALE_FRACTION}).scalars().all()
        for name in stale:
            conn.execute(sa.text(f'ANALYZE "{name}"'))
    return list(stale)
