"""Bench section `storage`: upsert the whole world into SQLite and PostgreSQL, rows per second and memory.

`load_world` is also the way other sections fill a scratch database with the world.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.engine import Engine

from bench.context import BenchContext
from bench.memory import in_child
from connector.db import make_engine, session_scope
from connector.model import UNIFIED_OBJECTS, Connection, Workspace
from connector.store import link_accounts, relax_commit, upsert_many_records
from sandbox.world import generate, unified_rows

BATCH_ROWS = 5000  # rows per transaction: a sync page commits about this much at a time


def create_bench_connection(engine: Engine, name: str, kind: str = "salesforce") -> int:
    """A workspace and a connection to hang the world's rows on; returns the connection id."""
    with session_scope(engine) as session:
        workspace = Workspace(name=f"{name}-workspace")
        session.add(workspace)
        session.flush()
        assert workspace.id is not None
        connection = Connection(workspace_id=workspace.id, name=name, kind=kind)
        session.add(connection)
        session.flush()
        assert connection.id is not None
        return connection.id


def load_world(
    url: str,
    size: str,
    seed: int = 0,
    *,
    accounts: int | None = None,
    connection_id: int | None = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Upsert the world into the database at `url` in batches and link account ids; returns counts and seconds."""
    engine = make_engine(url)
    try:
        cid = connection_id or create_bench_connection(engine, f"bench-world-{size}-{seed}")
        synced = datetime.now(UTC)
        buffers: dict[str, list[dict]] = {name: [] for name in UNIFIED_OBJECTS}
        pending = rows = 0
        spent = {"upsert_seconds": 0.0, "client_cpu_seconds": 0.0}
        start = time.perf_counter()
        with engine.connect() as conn:  # one connection, so one server process does all the work
            server = _server_process(conn)
            server_cpu = _cpu(server)

            def flush() -> None:
                began, cpu = time.perf_counter(), time.process_time()
                with conn.begin():
                    relax_commit(conn)
                    upsert_many_records(conn, buffers)
                for rows in buffers.values():
                    rows.clear()
                spent["upsert_seconds"] += time.perf_counter() - began
                spent["client_cpu_seconds"] += time.process_time() - cpu

            for bundle in generate(size, seed, accounts=accounts):
                for name, object_rows in unified_rows(bundle, cid, synced_at=synced).items():
                    buffers[name].extend(object_rows)
                count = bundle.record_count()
                pending += count
                rows += count
                if pending >= batch_rows:
                    flush()
                    pending = 0
            flush()
            server_cpu = _cpu(server) - server_cpu
        began = time.perf_counter()
        if engine.dialect.name == "postgresql":
            # Fresh planner statistics after a bulk load, as autovacuum would take them a minute
            # later: without them PostgreSQL resolves each account id by scanning the connection's
            # accounts, and the link turns quadratic.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for name in UNIFIED_OBJECTS:
                    conn.exec_driver_sql(f'ANALYZE "{name}"')
        with engine.begin() as conn:
            for name in ("contact", "deal", "case"):
                link_accounts(conn, cid, name)
        return {
            "connection_id": cid,
            "rows": rows,
            **spent,
            "server_cpu_seconds": server_cpu,
            "link_seconds": time.perf_counter() - began,
            "total_seconds": time.perf_counter() - start,
        }
    finally:
        engine.dispose()


def _server_process(conn: SAConnection) -> psutil.Process | None:
    """The PostgreSQL backend serving this connection, when it runs on this machine and we may watch it."""
    if conn.dialect.name != "postgresql":
        return None  # SQLite works inside this process: its time is already the client's
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    conn.commit()
    try:
        process = psutil.Process(pid)
        process.cpu_times()
    except (psutil.Error, OSError):
        return None
    return process


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _figures(prefix: str, full: dict[str, Any], small: dict[str, Any]) -> dict[str, float | int | str]:
    return {
        f"{prefix}_rows_per_s": round(full["rows"] / full["upsert_seconds"]),
        # rows per second of processor time (client and database server together): what an idle
        # core would do, and a figure that a busy shared machine does not distort as much
        f"{prefix}_rows_per_cpu_s": round(full["rows"] / (full["client_cpu_seconds"] + full["server_cpu_seconds"])),
        f"{prefix}_end_to_end_rows_per_s": round(full["rows"] / full["total_seconds"]),
        f"{prefix}_upsert_seconds": round(full["upsert_seconds"], 2),
        f"{prefix}_link_seconds": round(full["link_seconds"], 2),
        f"{prefix}_peak_rss_delta_mb": full["peak_rss_delta_mb"],
        f"{prefix}_peak_rss_delta_mb_small": small["peak_rss_delta_mb"],
    }


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Load the world of the chosen size into fresh SQLite and PostgreSQL databases."""
    figures: dict[str, float | int | str] = {}
    for prefix, scratch in (("sqlite", ctx.scratch_sqlite), ("pg", ctx.scratch_pg)):
        url = scratch(f"storage_{ctx.size}")
        if prefix == "pg":
            figures["pg_checkpointed_before"] = ctx.checkpoint_pg()
        full = in_child(load_world, url, ctx.size, ctx.seed)
        small = full if ctx.size == "small" else in_child(load_world, scratch("storage_small"), "small", ctx.seed)
        figures["rows"] = full["rows"]
        figures.update(_figures(prefix, full, small))
    figures["batch_rows"] = BATCH_ROWS
    return figures
