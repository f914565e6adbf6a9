"""Tier by value, at-risk and trend."""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.params import default_params
from enrichment.tiers import at_risk, tiers, trend

P = default_params()


@pytest.mark.parametrize(
    ("value_pct", "won", "tier"),
    [(0.95, 1e6, "A"), (0.9, 1.0, "A"), (0.7, 5e4, "B"), (0.3, 5e3, "C"), (0.99, 0.0, "C"), (np.nan, np.nan, "C")],
)
def test_tier_by_value(value_pct: float, won: float, tier: str) -> None:
    assert tiers(np.array([value_pct]), np.array([won]), P)[0] == tier


@pytest.mark.parametrize(
    ("tier", "trend_pts", "momentum", "experience", "risky"),
    [
        ("A", -12.0, 0.6, 70.0, True),  # valuable and falling
        ("B", 0.0, 0.1, 70.0, True),  # valuable, momentum at the bottom
        ("C", -30.0, 0.1, 70.0, False),  # falling, but not a key customer
        ("C", 0.0, 0.6, 20.0, True),  # poor experience
        ("A", np.nan, np.nan, np.nan, False),  # nothing known: no alarm
        ("A", 3.0, 0.8, 80.0, False),
    ],
)
def test_at_risk(tier: str, trend_pts: float, momentum: float, experience: float, risky: bool) -> None:
    got = at_risk(np.array([tier], dtype=object), np.array([trend_pts]), np.array([momentum]), np.array([experience]), P)
    assert bool(got[0]) is risky


def test_trend_is_nan_without_an_earlier_snapshot() -> None:
    got = trend(np.array([60.0, 60.0]), np.array([50.0, np.nan]))
    assert got[0] == 10.0 and np.isnan(got[1])
