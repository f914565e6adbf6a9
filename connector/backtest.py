"""Backtest: score every account as of a past date, then compare with what the CRM shows happened next.

Churn in the horizon: a renewal lost, or no deal won and no deal open at its end. Expansion: an
expansion deal won in the horizon. Both come from the unified deals (deal_type renewal/expansion/new).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.engine import Engine

from connector import score_models
from connector.errors import ConfigError
from connector.features import columns, count_if, days_since_epoch, index_of, live_rows, load_account_features
from connector.model import RECORD_MODELS
from enrichment.backtest import evaluate
from enrichment.scores import fit_portfolio, score_accounts

_DEAL = RECORD_MODELS["deal"].__table__  # type: ignore[attr-defined]


def outcomes(conn: SAConnection, connection_id: int, ids: np.ndarray, as_of: datetime,
             horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(churned, expanded) per account id in (as_of, as_of + horizon], from the deals alone."""
    d = _DEAL.c
    start, end = as_of.timestamp() / 86400.0, (as_of + timedelta(days=horizon_days)).timestamp() / 86400.0
    close = sa.func.coalesce(days_since_epoch(conn, d.close_date), days_since_epoch(conn, d.created_at))
    kind = sa.func.lower(sa.func.coalesce(d.deal_type, ""))
    in_horizon = sa.and_(d.is_closed.is_(True), close > start, close <= end)
    created_by_end = sa.or_(d.created_at.is_(None), days_since_epoch(conn, d.created_at) <= end)
    open_at_end = sa.and_(created_by_end, sa.or_(d.is_closed.is_(False), close > end))
    q = sa.select(
        d.account_external_id,
        count_if(sa.and_(in_horizon, d.is_won.is_(False), kind == "renewal")),
        count_if(sa.and_(in_horizon, d.is_won.is_(True))),
        count_if(open_at_end),
        count_if(sa.and_(in_horizon, d.is_won.is_(True), kind == "expansion")),
    ).where(live_rows(_DEAL, connection_id), d.account_external_id.is_not(None)).group_by(d.account_external_id)
    acc, lost_renewals, won, still_open, expansions = columns(conn.execute(q).all(), 5)
    n = len(ids)
    pos, found = index_of(ids, acc)

    def col(values: Any) -> np.ndarray:
        out = np.zeros(n)
        out[pos[found]] = np.array(values, dtype=float)[found]
        return out

    churned = (col(lost_renewals) > 0) | ((col(won) == 0) & (col(still_open) == 0))
    return churned, col(expansions) > 0


def run_backtest(engine: Engine, connection_id: int, *, as_of: datetime, horizon_days: int = 180,
                 params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Point-in-time scores as of `as_of` against the outcomes of the horizon; JSON-ready metrics."""
    if as_of.tzinfo is None:
        raise ConfigError("the backtest date must be timezone-aware (UTC)")
    if horizon_days <= 0:
        raise ConfigError(f"the horizon must be a positive number of days, got {horizon_days}")
    with engine.connect() as conn:
        version, published = score_models.published(conn, score_models.workspace_of(conn, connection_id))
        conn.commit()
        params = params or published
        acc = load_account_features(conn, connection_id, params, as_of=as_of, point_in_time=True)
        churned, expanded = outcomes(conn, connection_id, acc.ids, as_of, horizon_days)
    scored = score_accounts(acc, fit_portfolio(acc, None, params), params)
    series: dict[str, np.ndarray] = {"relationship": scored.relationship.score, "experience": scored.experience.score}
    for label, b in (("relationship", scored.relationship), ("experience", scored.experience)):
        for j, name in enumerate(b.names):
            series[f"{label}.{name}"] = 100.0 * b.components[:, j]
    result = evaluate(series, churned, expanded)
    end = as_of + timedelta(days=horizon_days)
    result |= {"as_of": as_of.isoformat(), "horizon_days": horizon_days, "horizon_end": end.isoformat(),
               "model_version": version if params is published else None}
    return result
