"""Backtest metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.backtest import auc, bottom_decile_lift, calibration, evaluate, ranks, spearman


def test_ranks_share_ties() -> None:
    assert ranks(np.array([10, 20, 20, 5])).tolist() == [2.0, 3.5, 3.5, 1.0]


@pytest.mark.parametrize(
    ("risk", "event", "expected"),
    [
        ([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], 1.0),
        ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0], 0.5),
        ([0.9, 0.1, 0.8, 0.2], [1, 1, 0, 0], 0.5),
        ([0.3, np.nan, 0.1], [1, 1, 0], 1.0),  # unknown risk is left out
    ],
)
def test_auc(risk: list[float], event: list[int], expected: float) -> None:
    assert auc(np.array(risk), np.array(event, dtype=bool)) == pytest.approx(expected)


def test_auc_undefined_without_both_classes() -> None:
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([True, True])))


def test_spearman() -> None:
    x = np.arange(20.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(spearman(x, np.ones(20)))


def test_lift_of_the_bottom_decile() -> None:
    score = np.arange(100.0)
    churn = np.zeros(100, dtype=bool)
    churn[:10] = True  # the ten lowest churn, 10% overall
    assert bottom_decile_lift(score, churn) == pytest.approx(10.0)


def test_calibration_bands() -> None:
    rows = calibration(np.array([5.0, 15.0, 95.0, 100.0]), {"churn": np.array([1, 0, 0, 0], dtype=bool)})
    assert rows[0] == {"band": "0-20", "count": 2, "churn_rate": 0.5}
    assert rows[-1]["count"] == 2 and rows[2]["churn_rate"] is None


def test_evaluate_shape() -> None:
    s = np.linspace(0, 100, 50)
    churned = s < 30
    result = evaluate({"relationship": s}, churned, s > 90)
    m = result["scores"]["relationship"]
    assert m["churn_auc"] == 1.0 and m["expansion_auc"] == 1.0 and result["accounts"] == 50
