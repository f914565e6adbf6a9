"""Feature arrays (one row per account or contact) and the portfolio percentile normalisation.

NaN means "not known" (e.g. no closed case to time); zero means "known to be none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACCOUNT_COLUMNS = (
    "age_days",  # since the account was created (NaN: unknown)
    "contacts",  # contacts on the account
    "won_amount",  # won in the value window
    "won_deals",  # won in the frequency window
    "days_since_won",  # since the last won deal (NaN: never)
    "days_since_activity",  # since the last logged activity (NaN: none)
    "days_since_first_won",  # tenure (NaN: never won)
    "engaged_contacts",  # distinct contacts with an activity in the breadth window
    "activities",  # logged activities (calls, emails, meetings) in the activity window
    "open_pipeline",  # amount of deals open at the time
    "open_deals",
    "renewals_won",  # in the renewal window
    "renewals_lost",
    "recent_losses",  # deals lost in the loss window
    "cases",  # opened in the case window (support load)
    "quality_cases",  # opened in the quality window; the rest below are over that window too
    "closed_cases",
    "escalated",
    "reopens",  # sum of reopen counts
    "csat_sum",  # satisfaction (1..5) over closed cases with a rating
    "csat_n",
    "open_high",  # high-priority cases open at the time
    "open_high_stale",  # of those, open longer than the backlog age
)
CONTACT_COLUMNS = ("age_days", "days_since_activity", "activities", "cases", "open_high")

REFERENCE_POINTS = 129
LIMIT = 1e15  # beyond any real amount or count; keeps sums of absurd outliers finite


def sanitize(values: np.ndarray) -> np.ndarray:
    """Floats with ±inf as unknown (NaN) and magnitudes capped at LIMIT."""
    arr = np.asarray(values, dtype=float)
    return np.where(np.isfinite(arr), np.clip(arr, -LIMIT, LIMIT), np.nan)


def _as_float(values: Any, n: int) -> np.ndarray:
    arr = sanitize(values) if values is not None else np.full(n, np.nan)
    if arr.shape != (n,):
        raise ValueError(f"feature column has shape {arr.shape}, expected ({n},)")
    return arr


@dataclass
class AccountFeatures:
    """Per-account raw features; `res_n`/`res_hours` are closed-case counts and mean hours per priority."""

    ids: np.ndarray
    cols: dict[str, np.ndarray]
    priorities: tuple[str, ...] = ()
    res_n: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    res_hours: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.cols = {c: _as_float(self.cols.get(c), n) for c in ACCOUNT_COLUMNS}
        if self.res_n.shape != (n, len(self.priorities)) or self.res_hours.shape != self.res_n.shape:
            self.res_n = np.zeros((n, len(self.priorities)))
            self.res_hours = np.full((n, len(self.priorities)), np.nan)
        self.res_n = np.nan_to_num(np.clip(sanitize(self.res_n), 0, None))
        self.res_hours = sanitize(self.res_hours)

    def __len__(self) -> int:
        return len(self.ids)

    def col(self, name: str) -> np.ndarray:
        """One column; NaN where unknown."""
        return self.cols[name]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> AccountFeatures:
        """Build from one dict per account (`id`, any of ACCOUNT_COLUMNS, optional `resolution`:
        {priority: (closed count, mean hours)}); handy for tests and small calls."""
        ids = np.array([r["id"] for r in records], dtype=object)
        cols = {c: np.array([_num(r.get(c)) for r in records], dtype=float) for c in ACCOUNT_COLUMNS}
        prios = tuple(sorted({p for r in records for p in (r.get("resolution") or {})}))
        res_n = np.zeros((len(records), len(prios)))
        res_h = np.full((len(records), len(prios)), np.nan)
        for i, r in enumerate(records):
            for p, (count, hours) in (r.get("resolution") or {}).items():
                res_n[i, prios.index(p)] = _num(count)
                res_h[i, prios.index(p)] = _num(hours)
        return cls(ids=ids, cols=cols, priorities=prios, res_n=np.nan_to_num(res_n), res_hours=res_h)


@dataclass
class ContactFeatures:
    """Per-contact raw features; `account` indexes into the account arrays (-1: no account)."""

    ids: np.ndarray
    account: np.ndarray
    cols: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.account = np.asarray(self.account, dtype=np.int64)
        self.cols = {c: _as_float(self.cols.get(c), n) for c in CONTACT_COLUMNS}

    def __len__(self) -> int:
        return len(self.ids)


def _num(value: Any) -> float:
    if value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


@dataclass
class Reference:
    """A portfolio's distribution of one signal: sorted distinct values and their mid-rank percentiles."""

    values: np.ndarray
    levels: np.ndarray

    def to_json(self) -> list[list[float]]:
        """Plain lists, for caching in the database."""
        return [self.values.tolist(), self.levels.tolist()]

    @classmethod
    def from_json(cls, data: list[list[float]]) -> Reference:
        """Inverse of `to_json`."""
        return cls(np.asarray(data[0], dtype=float), np.asarray(data[1], dtype=float))


def fit_reference(signal: np.ndarray, points: int = REFERENCE_POINTS) -> Reference | None:
    """The percentile reference of a signal (None if no finite value); ties share their mid-rank."""
    x = np.asarray(signal, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    values, counts = np.unique(x, return_counts=True)
    cum = np.cumsum(counts)
    levels = (cum - counts / 2.0) / x.size
    if values.size > points:
        keep = np.unique(np.searchsorted(levels, np.linspace(0.0, 1.0, points)).clip(0, values.size - 1))
        keep = np.unique(np.concatenate(([0], keep, [values.size - 1])))
        values, levels = values[keep], levels[keep]
    return Reference(values, levels)


def percentile(ref: Reference | None, signal: np.ndarray) -> np.ndarray:
    """Where each value stands in the portfolio, 0..1 (higher signal, higher percentile); NaN stays NaN."""
    x = np.asarray(signal, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ref is None:
        out[ok] = 0.5
        return out
    # +/-inf (e.g. an absurd outlier) land on the ends of the reference
    out[ok] = np.interp(np.clip(x[ok], -1e300, 1e300), ref.values, ref.levels)
    return out
