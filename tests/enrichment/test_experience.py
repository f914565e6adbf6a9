"""Experience components and the no-case rule, table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment.params import default_params
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


# Accounts without any case: how long, and with how many contacts, they have been customers.
QUIET = {"cases": 0, "quality_cases": 0, "closed_cases": 0, "escalated": 0, "reopens": 0, "csat_sum": 0, "csat_n": 0,
         "open_high": 0, "open_high_stale": 0, "resolution": {}}


def _quiet(ident: str, contacts: float, first_won: float | None, last_won: float | None = None) -> dict[str, Any]:
    return dict(TYPICAL, **QUIET, id=ident, contacts=contacts, days_since_first_won=first_won,
                days_since_won=first_won if last_won is None else last_won)


def test_zero_cases_over_a_long_exposure_is_a_low_load() -> None:
    """Many contacts over many quarters as a customer and no case is real evidence of a smooth experience."""
    records = portfolio() + [_quiet("LONG", 12, 1500, 60), _quiet("NEW", 1, 3), _quiet("NEVER", 12, None)]
    scored, _ = score_records(records)
    long, new, never = (float(scored.experience.score[index(scored, k)]) for k in ("LONG", "NEW", "NEVER"))
    assert long > 55.0
    assert 50.0 <= new < 51.0  # one contact for three days: almost no evidence yet
    assert never == 50.0  # never a customer: nothing to judge, neither praised nor punished
    texts = [d["text"] for d in scored.drivers_of(index(scored, "LONG")) if d["score"] == "experience"]
    assert any(t.startswith("+") and "no support case from 12 contacts" in t for t in texts), texts


def test_a_quiet_record_moves_the_score_at_most_its_share_of_the_way() -> None:
    """Silence is weak evidence: the same quiet record moves the score less than cases would, by the
    model's `quiet_confidence`, and an admin who trusts silence more can raise it."""
    records = portfolio() + [_quiet("LONG", 12, 1500, 60)]
    capped, _ = score_records(records)
    trusted = default_params()
    trusted["experience"]["quiet_confidence"] = 1.0
    full, _ = score_records(records, trusted)
    i = index(capped, "LONG")
    gain_capped, gain_full = capped.experience.score[i] - 50.0, full.experience.score[i] - 50.0
    assert 0 < gain_capped <= 0.25 * 50.0
    assert capped.experience.weights[i].sum() == pytest.approx(0.25)  # the confidence, capped
    assert full.experience.weights[i].sum() > 0.8  # 12 contacts over four years: plenty of exposure
    assert gain_full == pytest.approx(gain_capped * full.experience.weights[i].sum() / 0.25)


def test_evidence_grows_with_exposure() -> None:
    quiet = [_quiet("Q1", 1, 30), _quiet("Q2", 2, 120, 30), _quiet("Q3", 5, 400, 30), _quiet("Q4", 20, 1200, 30)]
    scored, _ = score_records(portfolio() + quiet)
    scores = [float(scored.experience.score[index(scored, r["id"])]) for r in quiet]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    assert min(scores) >= 50.0


def test_a_lapsed_customer_without_cases_is_neutral() -> None:
    """No deal won for years: its silence says nothing about support, so it is not praised for it."""
    scored, _ = score_records(portfolio() + [_quiet("LAPSED", 10, 3000, 1500)])
    assert scored.experience.score[index(scored, "LAPSED")] == pytest.approx(50.0)


def test_the_same_cases_over_a_shorter_time_as_a_customer_are_a_higher_load() -> None:
    changed, base = _pair({"days_since_first_won": 60, "days_since_won": 60}, "load")
    assert changed < base


@settings(max_examples=60, deadline=None)
@given(contacts=st.one_of(st.none(), st.floats(-5, 1e6)), first_won=st.one_of(st.none(), st.floats(-100, 1e5)),
       last_won=st.one_of(st.none(), st.floats(-100, 1e5)), cases=st.sampled_from([0, 2, 20]))
def test_no_case_is_never_punished(contacts: float | None, first_won: float | None, last_won: float | None,
                                   cases: int) -> None:
    """Whatever the account's contacts and customer history, and whatever the portfolio's support load."""
    peers = [dict(r, cases=cases * (i % 3), contacts=1 + i % 7) for i, r in enumerate(portfolio(20))]
    record = dict(_quiet("Z", 1, None), contacts=contacts, days_since_first_won=first_won, days_since_won=last_won)
    scored, _ = score_records(peers + [record])
    i = index(scored, "Z")
    assert scored.experience.score[i] >= 50.0
    assert (scored.experience.points[i] >= 0.0).all()
