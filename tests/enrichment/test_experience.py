"""Experience components and the no-case rule, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from tests.enrichment.helpers import TYPICAL, index, portfolio, score_records


def _pair(change: dict[str, Any], component: str) -> tuple[float, float]:
    records = portfolio() + [dict(TYPICAL, id="BASE"), dict(TYPICAL, id="X", **change)]
    scored, _ = score_records(records)
    col = scored.experience.column(component)
    return col[index(scored, "X")], col[index(scored, "BASE")]


@pytest.mark.parametrize(
    ("component", "change", "direction"),
    [
        ("load", {"cases": 40}, "lower"),
        ("load", {"cases": 40, "contacts": 400}, "higher"),  # many cases, but spread over many people
        ("speed", {"resolution": {"high": (3, 200.0), "low": (4, 600.0)}}, "lower"),
        ("speed", {"resolution": {"high": (3, 2.0), "low": (4, 6.0)}}, "higher"),
        ("backlog", {"open_high": 3, "open_high_stale": 3}, "lower"),
        ("escalations", {"escalated": 8}, "lower"),
        ("reopens", {"reopens": 10}, "lower"),
        ("satisfaction", {"csat_sum": 35, "csat_n": 7}, "higher"),
        ("satisfaction", {"csat_sum": 7, "csat_n": 7}, "lower"),
    ],
)
def test_component_moves_the_right_way(component: str, change: dict[str, Any], direction: str) -> None:
    changed, base = _pair(change, component)
    assert 0.0 <= changed <= 1.0
    assert (changed < base) if direction == "lower" else (changed > base)


def test_speed_compares_cases_of_the_same_priority() -> None:
    """Slow low-priority cases are not worse than fast urgent ones just because they took longer."""
    a = dict(TYPICAL, id="A", resolution={"low": (5, 100.0)})
    b = dict(TYPICAL, id="B", resolution={"high": (5, 10.0)})
    peers = [dict(TYPICAL, id=f"P{i}", resolution={"low": (5, 100.0), "high": (5, 10.0)}) for i in range(10)]
    scored, _ = score_records(peers + [a, b])
    speed = scored.experience.column("speed")
    assert speed[index(scored, "A")] == pytest.approx(speed[index(scored, "B")])


def test_no_cases_is_neutral_not_punished() -> None:
    quiet = {"id": "QUIET", "age_days": 800, "contacts": 5}
    scored, _ = score_records(portfolio() + [quiet])
    i = index(scored, "QUIET")
    assert scored.experience.score[i] == pytest.approx(50.0)
    assert scored.experience.points[i].sum() == pytest.approx(0.0)
    assert scored.drivers_of(i) == [] or all(d["score"] == "relationship" for d in scored.drivers_of(i))


def test_missing_csat_reweights_the_rest() -> None:
    rec = dict(TYPICAL, id="NOCSAT", csat_sum=0, csat_n=0)
    scored, _ = score_records(portfolio() + [rec])
    i = index(scored, "NOCSAT")
    exp = scored.experience
    assert exp.points_of("satisfaction")[i] == 0.0
    assert exp.weights[i].sum() == pytest.approx(8 / 9)  # confidence 8/(8+1), the rest re-weighted
    assert exp.baseline + exp.points[i].sum() == pytest.approx(exp.score[i])


def test_one_bad_case_moves_less_than_many() -> None:
    """Rates over few cases are smoothed and the score rests on the evidence behind it."""
    one = dict(TYPICAL, id="ONE", quality_cases=1, closed_cases=1, escalated=1, reopens=1, csat_sum=1, csat_n=1)
    many = dict(TYPICAL, id="MANY", quality_cases=30, closed_cases=30, escalated=30, reopens=30, csat_sum=30, csat_n=30)
    scored, _ = score_records(portfolio() + [one, many])
    assert scored.experience.score[index(scored, "ONE")] > scored.experience.score[index(scored, "MANY")]
