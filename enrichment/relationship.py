"""The relationship score (Return on Relationship): value, frequency, recency, tenure, breadth, momentum.

Each component is a signal where higher is better, placed on the connection's own portfolio as a
percentile (0..1), so "good" means good compared with this company's other customers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from enrichment.combine import Breakdown, combine, weighted_mean
from enrichment.features import AccountFeatures, percentile
from enrichment.params import FREQUENCY_PARTS, MOMENTUM_PARTS

SIGNALS = ("value", "deals", "interactions", "recency", "tenure", "breadth", "pipeline", "renewals", "losses")


def _nonneg(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), np.nan, np.clip(x, 0.0, None))


def signals(acc: AccountFeatures) -> dict[str, np.ndarray]:
    """Raw signals, oriented so that higher is better (NaN: not known for this account)."""
    c = acc.col
    won = np.nan_to_num(_nonneg(c("won_amount")))
    since_touch = np.fmin(_nonneg(c("days_since_won")), _nonneg(c("days_since_activity")))
    # never won and nothing logged: how long it has been known without a touch (brand-new is recent)
    since_touch = np.where(np.isnan(since_touch), _nonneg(c("age_days")), since_touch)
    renewals_won, renewals_lost = np.nan_to_num(c("renewals_won")), np.nan_to_num(c("renewals_lost"))
    had_renewal = (renewals_won + renewals_lost) > 0
    return {
        "value": np.log1p(won),
        "deals": np.nan_to_num(_nonneg(c("won_deals"))),
        "interactions": np.nan_to_num(_nonneg(c("activities"))),
        "recency": -since_touch,
        "tenure": np.nan_to_num(_nonneg(c("days_since_first_won"))),
        "breadth": np.nan_to_num(_nonneg(c("engaged_contacts"))),
        "pipeline": np.log1p(np.nan_to_num(_nonneg(c("open_pipeline")))),
        "renewals": np.where(had_renewal, (renewals_won - renewals_lost) / np.maximum(renewals_won + renewals_lost, 1), np.nan),
        "losses": -np.nan_to_num(_nonneg(c("recent_losses"))),
    }


def components(acc: AccountFeatures, refs: dict[str, Any], params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The six components on 0..1 (momentum is the weighted mean of pipeline, renewals and losses)."""
    sig = signals(acc)
    pct = {name: percentile(refs.get(name), sig[name]) for name in SIGNALS}
    r = params["relationship"]
    return {
        "value": pct["value"],
        "frequency": weighted_mean({p: pct[p] for p in FREQUENCY_PARTS}, r["frequency_parts"]),
        "recency": pct["recency"],
        "tenure": pct["tenure"],
        "breadth": pct["breadth"],
        "momentum": weighted_mean({p: pct[p] for p in MOMENTUM_PARTS}, r["momentum_parts"]),
    }


def score(acc: AccountFeatures, refs: dict[str, Any], params: dict[str, Any]) -> Breakdown:
    """The relationship score of every account, with its additive breakdown."""
    return combine(components(acc, refs, params), params["relationship"]["weights"], params["baseline"])


def momentum_parts(acc: AccountFeatures, refs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The percentile of each momentum part, to say which one moved the momentum."""
    sig = signals(acc)
    return {p: percentile(refs.get(p), sig[p]) for p in MOMENTUM_PARTS}
