"""Combining components: exact additive breakdown, re-weighting of missing inputs, evidence confidence."""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.combine import combine, weighted_mean

W = {"a": 0.5, "b": 0.3, "c": 0.2}


@pytest.mark.parametrize(
    ("a", "b", "c", "expected"),
    [
        (1.0, 1.0, 1.0, 100.0),
        (0.0, 0.0, 0.0, 0.0),
        (0.5, 0.5, 0.5, 50.0),
        (1.0, 0.0, 0.5, 60.0),
        (1.0, np.nan, np.nan, 100.0),  # only a known: it carries the whole weight
        (np.nan, 0.0, 1.0, 40.0),  # a missing: b and c re-weighted to 0.6 / 0.4
        (np.nan, np.nan, np.nan, 50.0),  # nothing known: the neutral baseline
    ],
)
def test_score_and_reweighting(a: float, b: float, c: float, expected: float) -> None:
    out = combine({"a": np.array([a]), "b": np.array([b]), "c": np.array([c])}, W, 50.0)
    assert out.score[0] == pytest.approx(expected)
    assert out.baseline + out.points.sum() == pytest.approx(out.score[0])
    assert np.all(out.points[0][np.isnan([a, b, c])] == 0)


def test_points_are_relative_to_the_baseline() -> None:
    out = combine({"a": np.array([0.9]), "b": np.array([0.1]), "c": np.array([0.5])}, W, 50.0)
    assert out.points_of("a")[0] == pytest.approx(0.5 * 40)
    assert out.points_of("b")[0] == pytest.approx(0.3 * -40)
    assert out.points_of("c")[0] == pytest.approx(0.0)


def test_confidence_pulls_toward_the_baseline_and_stays_additive() -> None:
    comps = {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([1.0, 1.0, 1.0]), "c": np.array([1.0, 1.0, 1.0])}
    out = combine(comps, W, 50.0, confidence=np.array([0.0, 0.5, 1.0]))
    assert out.score.tolist() == pytest.approx([50.0, 75.0, 100.0])
    assert (out.baseline + out.points.sum(axis=1)).tolist() == pytest.approx(out.score.tolist())


def test_out_of_range_components_are_clipped() -> None:
    out = combine({"a": np.array([7.0]), "b": np.array([-3.0]), "c": np.array([0.5])}, W, 50.0)
    assert 0 <= out.score[0] <= 100
    assert out.baseline + out.points.sum() == pytest.approx(out.score[0])


def test_weighted_mean_skips_missing_parts() -> None:
    got = weighted_mean({"x": np.array([1.0, np.nan, np.nan]), "y": np.array([0.0, 0.5, np.nan])}, {"x": 3, "y": 1})
    assert got[0] == pytest.approx(0.75)
    assert got[1] == pytest.approx(0.5)
    assert np.isnan(got[2])
