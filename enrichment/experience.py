"""The experience score: support load, resolution speed, high-priority backlog, escalations, reopens, CSAT.

Evidence is exposure, not case count: a customer with many contacts over many quarters and no case has
a genuinely low support load, while a brand-new or never-won account has shown nothing yet and rests at
the neutral baseline. Having no case never lowers the score, and being quiet is weak evidence (the
customer may be well served or disengaged), so it moves the score at most `quiet_confidence` of the way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from enrichment.combine import Breakdown, combine
from enrichment.features import AccountFeatures, percentile

SIGNALS = ("load", "speed", "backlog", "escalations", "reopens", "satisfaction")
MIN_HOURS = 0.1  # a case closed the minute it opened still took some time; avoids log(0)
QUARTER_DAYS = 91.25
NEUTRAL = 0.5  # a component at the portfolio's middle adds no points


def _safe_ratio(total: float, count: float) -> float:
    return float(total / count) if count > 0 else float("nan")


def customer_days(acc: AccountFeatures, params: dict[str, Any], window_days: float) -> np.ndarray:
    """Days of the last `window_days` the account was a customer: from its first won deal until
    `customer_term_days` after its last one (0 for an account that never won a deal)."""
    c = acc.col
    start = np.minimum(c("days_since_first_won"), window_days)
    ended = np.clip(c("days_since_won") - params["experience"]["customer_term_days"], 0, None)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.clip(start - ended, 0, None))


def exposure(acc: AccountFeatures, params: dict[str, Any], window_days: float) -> np.ndarray:
    """Contact-quarters as a customer in the window: the room the account had to raise support cases."""
    contacts = np.maximum(np.nan_to_num(np.clip(acc.col("contacts"), 0, None)), 1.0)
    return contacts * customer_days(acc, params, window_days) / QUARTER_DAYS


def fit_priors(acc: AccountFeatures, params: dict[str, Any]) -> dict[str, Any]:
    """Portfolio rates the per-account rates are smoothed toward, and typical resolution hours per priority."""
    c = acc.col
    exposed = exposure(acc, params, params["windows"]["case_days"])
    hours: dict[str, float] = {}
    for j, prio in enumerate(acc.priorities):
        seen = (acc.res_n[:, j] > 0) & np.isfinite(acc.res_hours[:, j])
        if seen.any():
            hours[prio] = float(max(np.median(np.maximum(acc.res_hours[seen, j], MIN_HOURS)), MIN_HOURS))
    return {
        "escalation_rate": _safe_ratio(np.nansum(c("escalated")), np.nansum(c("quality_cases"))),
        "reopen_rate": _safe_ratio(np.nansum(c("reopens")), np.nansum(c("closed_cases"))),
        "csat_mean": _safe_ratio(np.nansum(c("csat_sum")), np.nansum(c("csat_n"))),
        # cases per contact-quarter among customers: what an account is expected to raise
        "load_rate": _safe_ratio(np.nansum(np.clip(c("cases"), 0, None)[exposed > 0]), exposed.sum()),
        "hours": hours,
    }


def _prior(priors: dict[str, Any], name: str) -> float:
    """A portfolio rate, NaN when the portfolio had none (or a cache from before it existed)."""
    value = priors.get(name)
    return float(value) if value is not None and np.isfinite(value) else float("nan")


def load_rate(acc: AccountFeatures, priors: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    """Cases per contact-quarter as a customer over the case window (NaN: no case and no exposure).

    Gamma-Poisson smoothing: as if `smoothing_cases` cases had been seen over the exposure in which
    the portfolio raises that many, so zero cases over a long exposure is a low rate and zero cases
    over almost none stays near the portfolio's rate."""
    cases = np.nan_to_num(np.clip(acc.col("cases"), 0, None))
    exposed = exposure(acc, params, params["windows"]["case_days"])
    base, k = _prior(priors, "load_rate"), params["experience"]["smoothing_cases"]
    with np.errstate(invalid="ignore", divide="ignore"):
        if base > 0 and k > 0:
            rate = (cases + k) / (exposed + k / base)
        else:  # no portfolio rate to lean on: the raw rate, counting a case-raising account as one contact-quarter
            rate = cases / np.where(exposed > 0, exposed, 1.0)
    return np.where((exposed > 0) | (cases > 0), rate, np.nan)


def evidence(acc: AccountFeatures, priors: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    """Cases behind the score over the quality window: those raised, or those the account's exposure
    would have brought at the portfolio's rate, whichever is more."""
    seen = np.nan_to_num(np.clip(acc.col("quality_cases"), 0, None))
    base = _prior(priors, "load_rate")
    if not base > 0:
        return seen
    return np.maximum(seen, base * exposure(acc, params, params["windows"]["quality_days"]))


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
    satisfaction = _smoothed(np.clip(c("csat_sum"), 0, None), c("csat_n"), priors["csat_mean"], k)
    return {
        "load": -load_rate(acc, priors, params),
        "speed": -speed_ratio(acc, priors, k),
        "backlog": -(np.nan_to_num(np.clip(c("open_high"), 0, None)) + np.nan_to_num(np.clip(c("open_high_stale"), 0, None))),
        "escalations": -_smoothed(c("escalated"), c("quality_cases"), priors["escalation_rate"], k),
        "reopens": -_smoothed(c("reopens"), c("closed_cases"), priors["reopen_rate"], k),
        "satisfaction": np.where(np.isfinite(satisfaction), satisfaction, np.nan),
    }


def confidence(acc: AccountFeatures, priors: dict[str, Any], params: dict[str, Any]) -> np.ndarray:
    """How much support history backs the score: n / (n + k) over the `evidence` (cases seen or expected),
    at most `quiet_confidence` for an account without any case in the quality window."""
    n = evidence(acc, priors, params)
    k = params["experience"]["confidence_cases"]
    conf = np.ones(len(n)) if k <= 0 else n / (n + k)
    quiet = ~(np.nan_to_num(acc.col("quality_cases")) > 0)
    return np.where(quiet, np.minimum(conf, params["experience"]["quiet_confidence"]), conf)


def score(acc: AccountFeatures, refs: dict[str, Any], priors: dict[str, Any], params: dict[str, Any],
          sig: dict[str, np.ndarray] | None = None) -> Breakdown:
    """The experience score of every account, with its additive breakdown."""
    sig = sig if sig is not None else signals(acc, priors, params)
    comps = {name: percentile(refs.get(name), sig[name]) for name in SIGNALS}
    # no case in the window is never a reason against: a skewed portfolio's rate can sit below its middle
    quiet = ~(np.nan_to_num(acc.col("cases")) > 0)
    comps["load"] = np.where(quiet & np.isfinite(comps["load"]), np.fmax(comps["load"], NEUTRAL), comps["load"])
    return combine(comps, params["experience"]["weights"], params["baseline"], confidence(acc, priors, params))
