"""Bench section `scoring`: full scoring time, one-account rescoring time, and score quality on the world.

Quality is measured against the world's latent health and experience (Spearman) — read here only
to measure, never to score — and against what happened after a point-in-time as-of date (churn AUC).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.context import BenchContext
from connector.backtest import run_backtest
from connector.db import make_engine
from connector.model import UNIFIED_OBJECTS, Connection, Score, SyncRun, Workspace, utcnow
from connector.scoring import score_connection
from connector.store import upsert_many_records
from enrichment.backtest import spearman
from enrichment.scores import COMPONENT_NAMES
from sandbox.world import DEFAULT_NOW, Bundle, generate, unified_rows

BATCH_ROWS = 5000
HORIZON_DAYS = 180
RESCORES = 7


Latent = dict[str, tuple[float, float, bool]]


def load_world(engine: Engine, bundles: Iterable[Bundle], *, name: str = "bench-world") -> tuple[int, Latent]:
    """Store world bundles as the unified rows of a new connection; returns its id and, per account
    key, the latent (health, experience) and whether it ever was a customer (for measuring, never for
    scoring)."""
    with engine.begin() as conn:
        ws_t, c_t = Workspace.__table__, Connection.__table__  # type: ignore[attr-defined]
        ws = conn.execute(sa.insert(ws_t).values(name=name, created_at=utcnow()).returning(ws_t.c.id)).scalar_one()
        cid = int(conn.execute(sa.insert(c_t).values(
            workspace_id=ws, name=name, kind="salesforce", credentials_encrypted="", options={}, status="active",
            created_at=utcnow(), updated_at=utcnow()).returning(c_t.c.id)).scalar_one())
    latent: Latent = {}
    pending: dict[str, list[dict[str, Any]]] = {o: [] for o in UNIFIED_OBJECTS}
    synced, count = utcnow(), 0

    def flush() -> None:
        with engine.begin() as conn:
            upsert_many_records(conn, pending)
        for rows in pending.values():
            rows.clear()

    for bundle in bundles:
        latent[bundle.account.key] = (bundle.account.health, bundle.account.experience, bundle.was_customer())
        for o, rows in unified_rows(bundle, cid, synced_at=synced).items():
            pending[o].extend(rows)
            count += len(rows)
        if count >= BATCH_ROWS:
            flush()
            count = 0
    flush()
    return cid, latent


def quality(engine: Engine, cid: int, latent: Latent) -> dict[str, float]:
    """Spearman of the stored account scores with the latent health and experience.

    Experience is measured over the accounts that ever were customers: the latent experience is the
    service a customer gets, and leaves no trace on the others (they rest at the baseline). The
    figure over every account, and the best any such score could do there (the ceiling), are reported
    beside it."""
    s = Score.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.external_id, s.c.relationship, s.c.experience, s.c.components).where(
            s.c.connection_id == cid, s.c.object == "account")).all()
    health = np.array([latent[r[0]][0] for r in rows])
    exper = np.array([latent[r[0]][1] for r in rows])
    customers = np.array([latent[r[0]][2] for r in rows], dtype=bool)
    rel = np.array([r[1] for r in rows], dtype=float)
    exp = np.array([r[2] for r in rows], dtype=float)
    # accounts with support evidence (cases, or time as a customer); the others rest at the baseline
    names = COMPONENT_NAMES["account"]
    experience = [j for j, n in enumerate(names) if n.startswith("experience.")]
    evidenced = np.array([any(r[3]["points"][j] != 0 for j in experience) for r in rows])
    # accounts with a case in the quality window (the escalation rate is known only for them)
    escalations = names.index("experience.escalations")
    with_cases = np.array([r[3]["levels"][escalations] is not None for r in rows])
    # the best any score resting at the baseline without evidence could do: exact where it has evidence
    ceiling = np.where(evidenced, exper, np.median(exper[evidenced]) if evidenced.any() else 0.5)
    return {
        "spearman_relationship_health": round(spearman(rel, health), 4),
        "spearman_experience_customers": round(spearman(exp[customers], exper[customers]), 4),
        "spearman_experience_all_accounts": round(spearman(exp, exper), 4),
        "spearman_experience_with_evidence": round(spearman(exp[evidenced], exper[evidenced]), 4),
        "spearman_experience_with_cases": round(spearman(exp[with_cases], exper[with_cases]), 4),
        "spearman_experience_ceiling": round(spearman(ceiling, exper), 4),
        "accounts_customers_share": round(float(customers.mean()), 4),
        "accounts_with_evidence_share": round(float(evidenced.mean()), 4),
        "accounts_with_cases_share": round(float(with_cases.mean()), 4),
    }


def _run_counts(engine: Engine, run_id: int) -> dict[str, Any]:
    r = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(r.c.counts).where(r.c.id == run_id)).scalar_one())


def _timed(engine: Engine, cid: int, latent: Latent, prefix: str = "") -> dict[str, float | int | str]:
    """A first full scoring run, then rescoring single accounts: seconds (and their split) and milliseconds."""
    began, cpu = time.perf_counter(), time.process_time()
    run_id = score_connection(engine, cid, now=DEFAULT_NOW, trigger="bench")
    full_s, full_cpu = time.perf_counter() - began, time.process_time() - cpu
    counts = _run_counts(engine, run_id)
    keys = sorted(latent)[:: max(1, len(latent) // RESCORES)][:RESCORES]
    times = []
    for key in keys:
        began = time.perf_counter()
        score_connection(engine, cid, account_ids=[key], now=DEFAULT_NOW, trigger="bench")
        times.append(time.perf_counter() - began)
    figures: dict[str, float | int | str] = {
        "score_full_seconds": round(full_s, 2),
        "score_full_cpu_seconds": round(full_cpu, 2),
        "score_load_seconds": counts["load_s"],
        "score_compute_seconds": counts["score_s"],
        "score_write_seconds": counts["write_s"],
        "rescore_one_account_ms": round(1000 * statistics.median(times), 1),
        "rescore_one_account_max_ms": round(1000 * max(times), 1),
    }
    if not prefix:
        figures = {"accounts": counts["accounts"], "contacts": counts["contacts"], **figures}
    return {prefix + name: value for name, value in figures.items()}


def _reruns(engine: Engine, cid: int, prefix: str = "") -> dict[str, float | int | str]:
    """Full reruns: the same day (only what moved is written) and the next day (every row gets its snapshot)."""
    figures: dict[str, float | int | str] = {}
    for label, later in (("same_day", timedelta(minutes=1)), ("next_day", timedelta(days=1))):
        began, cpu = time.perf_counter(), time.process_time()
        run_id = score_connection(engine, cid, now=DEFAULT_NOW + later, trigger="bench")
        figures[f"{prefix}rescore_{label}_seconds"] = round(time.perf_counter() - began, 2)
        figures[f"{prefix}rescore_{label}_cpu_seconds"] = round(time.process_time() - cpu, 2)
        again = _run_counts(engine, run_id)
        figures[f"{prefix}rescore_{label}_rows_written"] = again["accounts_written"] + again["contacts_written"]
    return figures


def _timed_pg(ctx: BenchContext) -> dict[str, float | int | str]:
    """The same first run and single-account rescoring on PostgreSQL, the database of a deployment."""
    engine = make_engine(ctx.scratch_pg("scoring"))
    try:
        cid, latent = load_world(engine, generate(ctx.size, ctx.seed, now=DEFAULT_NOW))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does a minute after a bulk load
        ctx.checkpoint_pg()  # the load's buffered writes are not billed to the scoring run
        return _timed(engine, cid, latent, prefix="pg_") | _reruns(engine, cid, prefix="pg_")
    finally:
        engine.dispose()


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Load the world into a fresh SQLite database, score it in full, rescore single accounts, measure
    quality; then time the same scoring on PostgreSQL."""
    engine = make_engine(ctx.scratch_sqlite("scoring"))
    try:
        cid, latent = load_world(engine, generate(ctx.size, ctx.seed, now=DEFAULT_NOW))
        figures = _timed(engine, cid, latent)
        figures |= quality(engine, cid, latent)
        figures |= _reruns(engine, cid)
        bt = run_backtest(engine, cid, as_of=DEFAULT_NOW - timedelta(days=HORIZON_DAYS), horizon_days=HORIZON_DAYS)
        figures |= {
            "backtest_churn_rate": bt["churn_rate"],
            "backtest_churn_auc_relationship": bt["scores"]["relationship"]["churn_auc"],
            "backtest_churn_lift_bottom_decile": bt["scores"]["relationship"]["bottom_decile_churn_lift"],
            "backtest_churn_auc_experience": bt["scores"]["experience"]["churn_auc"],
            "backtest_expansion_auc_relationship": bt["scores"]["relationship"]["expansion_auc"],
        }
    finally:
        engine.dispose()
    return figures | _timed_pg(ctx)
