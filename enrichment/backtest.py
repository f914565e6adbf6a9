"""Backtest metrics: does a low score come before churn? AUC, bottom-decile lift, calibration by band.

All functions take plain arrays; a score predicts churn when low, so AUC is computed on −score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BANDS = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0
    out = np.empty(len(x))
    out[order] = avg[group]
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation over the pairs where both are known (NaN if fewer than 3)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    rx, ry = ranks(x[ok]), ranks(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def auc(risk: np.ndarray, event: np.ndarray) -> float:
    """Probability that a record with the event has a higher risk than one without (ties count half)."""
    risk, event = np.asarray(risk, dtype=float), np.asarray(event, dtype=bool)
    ok = np.isfinite(risk)
    risk, event = risk[ok], event[ok]
    pos, neg = int(event.sum()), int((~event).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    r = ranks(risk)
    return float((r[event].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def bottom_decile_lift(score: np.ndarray, event: np.ndarray) -> float:
    """Event rate among the lowest-scored 10% divided by the overall event rate."""
    score, event = np.asarray(score, dtype=float), np.asarray(event, dtype=bool)
    ok = np.isfinite(score)
    score, event = score[ok], event[ok]
    if not len(score) or not event.any():
        return float("nan")
    k = max(1, int(np.ceil(len(score) * 0.1)))
    worst = np.argsort(score, kind="mergesort")[:k]
    return float(event[worst].mean() / event.mean())


def calibration(score: np.ndarray, events: dict[str, np.ndarray], bands: tuple[float, ...] = BANDS) -> list[dict[str, Any]]:
    """Per score band: how many records and the rate of each event."""
    score = np.asarray(score, dtype=float)
    band = np.clip(np.searchsorted(np.asarray(bands[1:-1]), score, side="right"), 0, len(bands) - 2)
    out = []
    for b in range(len(bands) - 1):
        inside = (band == b) & np.isfinite(score)
        row: dict[str, Any] = {"band": f"{bands[b]:.0f}-{bands[b + 1]:.0f}", "count": int(inside.sum())}
        for name, ev in events.items():
            row[f"{name}_rate"] = round(float(np.asarray(ev, dtype=bool)[inside].mean()), 4) if inside.any() else None
        out.append(row)
    return out


def evaluate(scores: dict[str, np.ndarray], churned: np.ndarray, expanded: np.ndarray) -> dict[str, Any]:
    """Metrics for each named 0..100 score (or component): churn AUC, expansion AUC, lift, calibration."""
    result: dict[str, Any] = {
        "accounts": int(len(churned)),
        "churn_rate": round(float(np.mean(churned)), 4) if len(churned) else None,
        "expansion_rate": round(float(np.mean(expanded)), 4) if len(expanded) else None,
        "scores": {},
    }
    for name, s in scores.items():
        s = np.asarray(s, dtype=float)
        result["scores"][name] = {
            "churn_auc": _round(auc(-s, churned)),
            "expansion_auc": _round(auc(s, expanded)),
            "bottom_decile_churn_lift": _round(bottom_decile_lift(s, churned)),
            "known": int(np.isfinite(s).sum()),
            "calibration": calibration(s, {"churn": churned, "expansion": expanded}),
        }
    return result


def _round(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 4)
