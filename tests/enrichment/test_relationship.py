"""Relationship components, one edge case at a time, each placed within a varied portfolio."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.enrichment.helpers import TYPICAL, index, portfolio, score_records


def _level(change: dict[str, Any], component: str) -> tuple[float, float]:
    """(component level of the changed account, level of the unchanged typical account) in one portfolio."""
    records = portfolio() + [dict(TYPICAL, id="BASE"), dict(TYPICAL, id="X", **change)]
    scored, _ = score_records(records)
    col = scored.relationship.column(component)
    return col[index(scored, "X")], col[index(scored, "BASE")]


@pytest.mark.parametrize(
    ("component", "change", "direction"),
    [
        ("value", {"won_amount": 0}, "lower"),
        ("value", {"won_amount": 1e15}, "higher"),  # a huge outlier is simply at the top
        ("value", {"won_amount": -5000}, "lower"),  # credit notes: treated as nothing won
        ("frequency", {"won_deals": 0, "activities": 0}, "lower"),
        ("frequency", {"won_deals": 9, "activities": 300}, "higher"),
        ("recency", {"days_since_won": None, "days_since_activity": 400}, "lower"),
        ("recency", {"days_since_won": 2, "days_since_activity": None}, "higher"),
        ("recency", {"days_since_activity": -30}, "higher"),  # future-dated: counts as today
        ("tenure", {"days_since_first_won": None}, "lower"),  # never won: no tenure
        ("breadth", {"engaged_contacts": 0}, "lower"),
        ("momentum", {"open_pipeline": 0, "renewals_won": 0, "renewals_lost": 2, "recent_losses": 4}, "lower"),
        ("momentum", {"open_pipeline": 5e6, "renewals_won": 3, "renewals_lost": 0}, "higher"),
    ],
)
def test_component_moves_the_right_way(component: str, change: dict[str, Any], direction: str) -> None:
    changed, base = _level(change, component)
    assert 0.0 <= changed <= 1.0
    assert (changed < base) if direction == "lower" else (changed > base)


def test_brand_new_account_is_recent_but_has_no_value_or_tenure() -> None:
    new = {"id": "NEW", "age_days": 3, "contacts": 1}
    scored, _ = score_records(portfolio() + [new])
    i = index(scored, "NEW")
    rel = scored.relationship
    assert rel.column("recency")[i] > 0.9
    assert rel.column("value")[i] < 0.2 and rel.column("tenure")[i] < 0.2
    assert 0 <= rel.score[i] <= 100


def test_all_lost_deals_score_low_but_valid() -> None:
    lost = dict(TYPICAL, id="LOST", won_amount=0, won_deals=0, days_since_won=None, days_since_first_won=None,
                open_pipeline=0, renewals_won=0, renewals_lost=3, recent_losses=6)
    scored, _ = score_records(portfolio() + [lost])
    i = index(scored, "LOST")
    assert scored.relationship.score[i] < np.median(scored.relationship.score)


def test_scores_are_relative_to_the_portfolio() -> None:
    """The same account ranks higher among weaker peers: normalisation is within the connection."""
    weak = [dict(TYPICAL, id=f"W{i}", won_amount=1000, won_deals=0, activities=1, engaged_contacts=0) for i in range(20)]
    strong = [dict(TYPICAL, id=f"S{i}", won_amount=1e6, won_deals=8, activities=200, engaged_contacts=9) for i in range(20)]
    among_weak, _ = score_records(weak + [dict(TYPICAL, id="X")])
    among_strong, _ = score_records(strong + [dict(TYPICAL, id="X")])
    assert among_weak.relationship.score[index(among_weak, "X")] > among_strong.relationship.score[index(among_strong, "X")]
