"""Tier A/B/C (the top-priority customers by value), the at-risk flag and the 30-day trend."""

from __future__ import annotations

from typing import Any

import numpy as np


def tiers(value_pct: np.ndarray, won_amount: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """A: top of the portfolio by won value; B: the next band; C: the rest and anyone with nothing won."""
    t = params["tiers"]
    v = np.nan_to_num(value_pct, nan=0.0)
    paying = np.nan_to_num(won_amount) > 0
    out = np.full(v.shape, "C", dtype=object)
    out[paying & (v >= t["b_min_value"])] = "B"
    out[paying & (v >= t["a_min_value"])] = "A"
    return out


def trend(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Points gained (+) or lost (−) since the earlier snapshot; NaN where there is none."""
    return np.asarray(current, dtype=float) - np.asarray(previous, dtype=float)


def at_risk(
    tier: np.ndarray, trend_points: np.ndarray, momentum: np.ndarray, experience: np.ndarray, params: dict[str, Any]
) -> np.ndarray:
    """Valuable and falling (score dropping, or momentum near the bottom), or a poor support experience."""
    a = params["at_risk"]
    valuable = np.isin(tier, list(a["valuable_tiers"]))
    falling = (np.nan_to_num(trend_points, nan=0.0) <= a["falling_trend"]) | (
        np.nan_to_num(momentum, nan=1.0) <= a["falling_momentum"]
    )
    poor = np.nan_to_num(experience, nan=100.0) <= a["poor_experience"]
    return (valuable & falling) | poor
