"""The experience score: support load, resolution speed, high-priority backlog, escalations, reopens, CSAT.

An account without cases is not punished: its rate components (speed, escalations, reopens,
satisfaction) are missing, and with no support history the score rests at the neutral baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from enrichment.combine import Breakdown, combine
from enrichment.features import AccountFeatures, percentile

SIGNALS = ("load", "speed", "backlog", "escalations", "reopens", "satisfaction")
MIN_HOURS = 0.1  # a case closed the minute it opened still took some time; avoids log(0)


def _safe_ratio(total: float, count: float) -> float:
    return float(total / count) if count > 0 else float("nan")


def fit_priors(acc: AccountFeatures) -> dict[str, Any]:
    """Portfolio rates the per-account rates are smoothed toward, and typical resolution hours per priority."""
    c = acc.col
    hours: dict[str, float] = {}
    for j, prio in enumerate(acc.priorities):
        seen = (acc.res_n[:, j] > 0) & np.isfinite(acc.res_hours[:, j])
        if seen.any():
            hours[prio] = float(max(np.median(np.maximum(acc.res_hours[seen, j], MIN_HOURS)), MIN_HOURS))
    return {
        "escalation_rate": _safe_ratio(np.nansum(c("escalated")), np.nansum(c("quality_cases"))),
        "reopen_rate": _safe_ratio(np.nansum(c("reopens")), np.nansum(c("closed_cases"))),
        "csat_mean": _safe_ratio(np.nansum(c("csat_sum")), np.nansum(c("csat_n"))),
        "hours": hours,
    }


def _smoothed(events: np.ndarray, trials: np.ndarray, prior: float | None, k: float) -> np.ndarray:
    events, trials = np.nan_to_num(np.clip(events, 0, None)), np.nan_to_num(np.clip(trials, 0, None))
    # a portfolio without any such case has no rate to lean on (NaN, or null once cached as JSON)
    prior = float(prior) if prior is not None and np.isfinite(prior) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (events + k * prior) / (trials + k)
    return np.where(trials > 0, rate, np.nan)


def speed_ratio(acc: AccountFeatures, priors: dict[str, Any], k: float) -> np.ndarray:
    """Resolution time against the portfolio for the same priority, as a log ratio (0: typical)."""
    total = np.zeros(len(acc))
    count = np.zeros(len(acc))
    for j, prio in enumerate(acc.priorities):
        ref = priors["hours"].get(prio)
        if ref is None:
            continue
        n = np.nan_to_num(np.clip(acc.res_n[:, j], 0, None))
        hours = np.maximum(np.nan_to_num(acc.res_hours[:, j], nan=ref), MIN_HOURS)
        total += np.where(n > 0, n * np.log(hours / ref), 0.0)
        count += n
    with np.errstate(invalid="ignore", divide="ignore"):
        # shrunk toward "typical" when few cases were closed
        return np.where(count > 0, total / (count + k), np.nan)


def signals(acc: AccountFeatures, priors: dict[str, Any], params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Raw signals, oriented so that higher is better (NaN: not known for this account)."""
    c = acc.col
    k = params["experience"]["smoothing_cases"]
    quarters = params["windows"]["case_days"] / 91.25
    contacts = np.maximum(np.nan_to_num(c("contacts")), 1.0)
    cases = np.clip(c("cases"), 0, None)
    satisfaction = _smoothed(np.clip(c("csat_sum"), 0, None), c("csat_n"), priors["csat_mean"], k)
    return {
        "load": -(cases / contacts / quarters),
        "speed": -speed_ratio(acc, priors, k),
        "backlog": -(np.nan_to_num(np.clip(c("open_high"), 0, None)) + np.nan_to_num(np.clip(c("open_high_stale"), 0, None))),
        "escalations": -_smoothed(c("escalated"), c("quality_cases"), priors["escalation_rate"], k),
        "reopens": -_smoothed(c("reopens"), c("closed_cases"), priors["reopen_rate"], k),
        "satisfaction": np.where(np.isfinite(satisfaction), satisfaction, np.nan),
    }


def confidence(acc: AccountFeatures, params: dict[str, Any]) -> np.ndarray:
    """How much support history backs the score: n / (n + k) over the cases of the quality window."""
    n = np.nan_to_num(np.clip(acc.col("quality_cases"), 0, None))
    k = params["experience"]["confidence_cases"]
    return np.ones(len(n)) if k <= 0 else n / (n + k)


def score(acc: AccountFeatures, refs: dict[str, Any], priors: dict[str, Any], params: dict[str, Any],
          sig: dict[str, np.ndarray] | None = None) -> Breakdown:
    """The experience score of every account, with its additive breakdown."""
    sig = sig if sig is not None else signals(acc, priors, params)
    comps = {name: percentile(refs.get(name), sig[name]) for name in SIGNALS}
    return combine(comps, params["experience"]["weights"], params["baseline"], confidence(acc, params))
