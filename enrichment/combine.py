"""Weighted combination of 0..1 components into a 0..100 score that decomposes exactly into points.

Re-weighting rule: a component that is missing for a record (NaN) is left out and the weights of
the remaining components are scaled up to sum to 1, so missing data neither helps nor hurts.
Each component contributes w'(100c − baseline) points; baseline + Σ points = 100 Σ w'c = score.
A record with no component at all gets the baseline (neutral) score and no points. An optional
per-record confidence (0..1) scales every weight down, pulling the score toward the baseline when
the evidence behind it is thin; the breakdown stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass
class Breakdown:
    """One score for N records: components (N×K, NaN = missing), effective weights, points and score."""

    names: tuple[str, ...]
    components: np.ndarray
    weights: np.ndarray
    points: np.ndarray
    score: np.ndarray
    baseline: float

    def column(self, name: str) -> np.ndarray:
        """The 0..1 values of one component (NaN where missing)."""
        return self.components[:, self.names.index(name)]

    def points_of(self, name: str) -> np.ndarray:
        """The point contributions of one component."""
        return self.points[:, self.names.index(name)]


def weighted_mean(parts: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """NaN-aware weighted mean of 0..1 arrays (NaN where every part is missing)."""
    names = list(parts)
    mat = np.column_stack([parts[n] for n in names])
    w = np.array([weights[n] for n in names], dtype=float) * ~np.isnan(mat)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.nansum(mat * w, axis=1) / total
    out[total <= 0] = np.nan
    return out


def combine(components: Mapping[str, np.ndarray], weights: Mapping[str, float], baseline: float,
            confidence: np.ndarray | None = None) -> Breakdown:
    """Combine components into a score with an exact additive breakdown (see module docstring)."""
    names = tuple(components)
    n = len(next(iter(components.values()))) if components else 0
    mat = np.column_stack([np.clip(components[k], 0.0, 1.0) for k in names]) if names else np.zeros((n, 0))
    avail = ~np.isnan(mat)
    w = np.array([weights[k] for k in names], dtype=float)[None, :] * avail
    total = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(total > 0, w / total, 0.0)
    if confidence is not None:
        w = w * np.clip(np.nan_to_num(confidence), 0.0, 1.0)[:, None]
    filled = np.where(avail, mat, 0.0)
    points = w * (100.0 * filled - baseline)
    score = baseline + points.sum(axis=1)
    return Breakdown(names, mat, w, points, np.clip(score, 0.0, 100.0), float(baseline))
