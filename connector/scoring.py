"""Scoring a connection: load features, score with the published model, store scores and history.

A full run fits the portfolio's reference distributions and caches them in a `score` row of object
"portfolio"; rescoring a few accounts reuses that cache, so their scores match a full run.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.engine import Engine

from connector import score_models
from connector.features import load_features
from connector.model import Score, ScoreHistory, UTCDateTime, utcnow
from connector.runs import Stopwatch, close_run, open_run
from connector.score_writes import write_scores
from connector.store import analyze, ensure_statistics, upsert
from enrichment.scores import Portfolio, Scored, fit_portfolio, score_accounts, score_contacts

log = logging.getLogger(__name__)
PORTFOLIO = "portfolio"  # score.object of the cached normalisation row
# Rows written in one run past which PostgreSQL's statistics on scores are refreshed: planned on the sizes
# of before a first large run, the next run's trend lookup joins a million snapshots by nested loops.
ANALYZE_AFTER = 5000
_S = Score.__table__  # type: ignore[attr-defined]
_H = ScoreHistory.__table__  # type: ignore[attr-defined]


def _cached_portfolio(conn: SAConnection, connection_id: int, version: int) -> Portfolio | None:
    row = conn.execute(sa.select(_S.c.components, _S.c.model_version).where(
        _S.c.connection_id == connection_id, _S.c.object == PORTFOLIO)).first()
    if row is None or row.model_version != version or not row.components:
        return None
    return Portfolio.from_json(row.components)


def _nearest_stmts() -> list[Any]:
    """The latest snapshot in [lo, target] and the earliest in [target, hi] per record (bound parameters)."""
    h = _H.c
    base = sa.and_(h.connection_id == sa.bindparam("cid"), h.object == sa.bindparam("object"),
                   h.model_version == sa.bindparam("version"))
    out = []
    for lo, hi, pick in (("lo", "target", sa.func.max), ("target", "hi", sa.func.min)):
        edge = sa.select(h.external_id, pick(h.scored_at).label("at")).where(
            base, h.scored_at >= sa.bindparam(lo, type_=UTCDateTime()), h.scored_at <= sa.bindparam(hi, type_=UTCDateTime())
        ).group_by(h.external_id).subquery()
        out.append(sa.select(h.external_id, h.relationship, h.scored_at).join(
            edge, sa.and_(h.external_id == edge.c.external_id, h.scored_at == edge.c.at)).where(base))
    return out


_NEAREST = _nearest_stmts()
_WINDOW = "connection_id = :cid AND object = :object AND model_version = :version AND scored_at >= :lo AND scored_at <= :hi"
# A few records: every snapshot of theirs in the window. On PostgreSQL a LATERAL probe per record, kept
# from being flattened into a join by OFFSET 0, so the plan follows the (connection, object, external
# id, stamp) index whatever the statistics say (history fresh from a bulk run has none).
_SCOPED = {
    dialect: sa.text(sql).bindparams(sa.bindparam("lo", type_=UTCDateTime()), sa.bindparam("hi", type_=UTCDateTime()),
                                     *([sa.bindparam("ids", expanding=True)] if dialect == "sqlite" else []))
    .columns(sa.column("external_id", sa.String), sa.column("relationship", sa.Float), sa.column("scored_at", UTCDateTime()))
    for dialect, sql in (
        ("postgresql", "SELECT x.id, h.relationship, h.scored_at FROM unnest(CAST(:ids AS text[])) AS x(id) "
                       f"CROSS JOIN LATERAL (SELECT relationship, scored_at FROM score_history WHERE external_id = x.id AND {_WINDOW} OFFSET 0) AS h"),
        ("sqlite", f"SELECT external_id, relationship, scored_at FROM score_history WHERE external_id IN :ids AND {_WINDOW}"),
    )
}


def previous_scores(conn: SAConnection, connection_id: int, object: str, version: int, now: datetime,
                    params: dict[str, Any], ids: np.ndarray, *, scoped: bool = False) -> np.ndarray:
    """Each record's relationship score nearest to `trend.days` before now (same model version; NaN: none).

    `scoped`: only these ids are wanted (a few records rescored), so only their snapshots are read."""
    target = now - timedelta(days=params["trend"]["days"])
    tol = timedelta(days=params["trend"]["tolerance_days"])
    values = {"cid": connection_id, "object": object, "version": version, "lo": target - tol, "target": target,
              "hi": target + tol}
    if scoped:
        if len(ids) == 0:
            return np.full(0, np.nan)
        dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
        rows = list(conn.execute(_SCOPED[dialect], values | {"ids": ids.tolist()}))
    else:
        rows = [r for stmt in _NEAREST for r in conn.execute(stmt, values)]
    found: dict[str, tuple[tuple[float, bool], float]] = {}
    for ext, rel, at in rows:
        nearness = (abs((at - target).total_seconds()), at > target)  # a tie goes to the earlier snapshot
        if rel is not None and (ext not in found or nearness < found[ext][0]):
            found[ext] = (nearness, float(rel))
    if not found:
        return np.full(len(ids), np.nan)
    keys = np.array(list(found), dtype=str)
    vals = np.array([v[1] for v in found.values()])
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    pos = np.searchsorted(keys, ids).clip(0, len(keys) - 1)
    return np.where(keys[pos] == ids, vals[pos], np.nan)


def _tally(scored: Scored) -> dict[str, dict[str, int]]:
    """Records scored per tier, and how many of them are at risk."""
    tier, risk = np.asarray(scored.tier, dtype=object).astype(str), np.asarray(scored.at_risk, dtype=bool)
    return {t: {"records": int((tier == t).sum()), "at_risk": int((risk & (tier == t)).sum())}
            for t in sorted(set(tier.tolist()))}


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector during a run.

    A large portfolio builds millions of short-lived tuples and strings (fetched rows, JSON, driver
    texts) and no reference cycles; each allocation burst would start a collection that walks every
    live object, about a tenth of the run's CPU. Whatever cycles there are get collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def score_connection(engine: Engine, connection_id: int, *, account_ids: Sequence[str] | None = None,
                     now: datetime | None = None, trigger: str = "manual") -> int:
    """Score all accounts and contacts of a connection (or only `account_ids` and their contacts); returns the run id."""
    now = now or utcnow()
    run_id = open_run(engine, connection_id, "score", trigger=trigger)
    clock = Stopwatch()
    try:
        with engine.begin() as conn, _no_gc_pauses():
            version, params = score_models.published(conn, score_models.workspace_of(conn, connection_id))
            ensure_statistics(conn, _S.name, _H.name)
            portfolio = _cached_portfolio(conn, connection_id, version) if account_ids is not None else None
            only = list(account_ids) if account_ids is not None and portfolio is not None else None
            acc, con = load_features(conn, connection_id, params, as_of=now, account_ids=only)
            loaded = clock.seconds
            if portfolio is None:
                portfolio = fit_portfolio(acc, con, params)
            scoped = only is not None
            accounts = score_accounts(acc, portfolio, params, previous_scores(
                conn, connection_id, "account", version, now, params, acc.ids, scoped=scoped))
            contacts = score_contacts(con, accounts, portfolio, params, previous_scores(
                conn, connection_id, "contact", version, now, params, con.ids, scoped=scoped))
            scored_s = clock.seconds - loaded
            if only is None:
                upsert(conn, Score, [dict(connection_id=connection_id, object=PORTFOLIO, external_id="all",
                                          components=portfolio.to_json(), drivers=[], model_version=version,
                                          scored_at=now, at_risk=False)], keys=("connection_id", "object", "external_id"))
            written = {f"{object}s_written": write_scores(conn, connection_id, object, scored, version, now, every=scoped)
                       for object, scored in (("account", accounts), ("contact", contacts))}
        if sum(written.values()) >= ANALYZE_AFTER:
            with engine.begin() as conn:
                analyze(conn, _S.name, _H.name)
        counts = {"accounts": len(acc), "contacts": len(con), **written, "model_version": version, "full": only is None,
                  "tiers": {object: _tally(scored) for object, scored in (("account", accounts), ("contact", contacts))},
                  "load_s": round(loaded, 2), "score_s": round(scored_s, 2), "write_s": round(clock.seconds - loaded - scored_s, 2)}
        close_run(engine, run_id, "succeeded", counts=counts)
    except Exception as exc:
        log.exception("scoring connection %s failed", connection_id)
        close_run(engine, run_id, "failed", error=str(exc))
        raise
    return run_id
