"""Drivers: plain words with point contributions that add up to the score."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from enrichment import experience
from enrichment.drivers import account_texts, ago, assemble, duration, money, render, signed, top
from enrichment.features import AccountFeatures
from enrichment.params import default_params
from enrichment.relationship import momentum_parts
from enrichment.scores import fit_portfolio
from tests.enrichment.helpers import TYPICAL, index, portfolio, score_records, score_with_contacts


@pytest.mark.parametrize(("amount", "text"), [(950, "$950"), (24_400, "$24k"), (240_000, "$240k"), (1_200_000, "$1.2M"), (3e6, "$3M")])
def test_money(amount: float, text: str) -> None:
    assert money(amount) == text


@pytest.mark.parametrize(("days", "text"), [(0, "today"), (1, "1 day ago"), (12, "12 days ago"), (150, "5 months ago"), (800, "2.2 years ago")])
def test_ago(days: float, text: str) -> None:
    assert ago(days) == text


@given(hnp.arrays(float, st.tuples(st.integers(0, 6), st.integers(1, 8)),
                  elements=st.sampled_from([0.0, 0.4, -0.4, 3.0, -3.0, 7.5, float("nan")])), st.integers(1, 4))
def test_top_reasons_are_the_largest_first_ties_in_column_order(points: np.ndarray, k: int) -> None:
    expected = np.argsort(-np.abs(points), axis=1, kind="stable")[:, :k]
    assert np.array_equal(top(points, k), expected)


def test_assembled_reasons_are_a_json_list_of_the_largest_kept_ones() -> None:
    points = np.array([[5.0, -9.0, 0.2, 1.0], [0.1, 0.0, -0.3, 0.2], [2.0, 0.0, 0.0, 0.0]])
    names = [("relationship", "value"), ("relationship", "recency"), ("experience", "load"), ("experience", "speed")]
    component = np.tile(np.arange(4), (3, 1))
    out = assemble(points, names, component, np.zeros((3, 4), dtype=np.int64), lambda name, _i: f"{name} words")
    assert [[(d["component"], d["points"]) for d in orjson.loads(row)] for row in out] == [
        [("recency", -9.0), ("value", 5.0), ("speed", 1.0)], [], [("value", 2.0)]]
    assert orjson.loads(out[0])[0]["text"] == "\u22129 recency words"
    # stored as ASCII JSON (escapes), read back with the true minus sign and the "×"
    wide = assemble(points[:1], names, component[:1], np.zeros((1, 4), dtype=np.int64), lambda n, _i: "2.5× slower")
    assert wide[0].isascii() and orjson.loads(wide[0])[0]["text"] == "\u22129 2.5\u00d7 slower"


def test_signed_uses_a_true_minus() -> None:
    assert signed(18.4) == "+18" and signed(-12.2) == "\u221212"


def test_big_winner_is_explained_by_what_it_won() -> None:
    star = dict(TYPICAL, id="STAR", won_amount=240_000, won_deals=7, activities=150, engaged_contacts=8)
    scored, _ = score_records(portfolio() + [star])
    drivers = scored.drivers_of(index(scored, "STAR"))
    texts = [d["text"] for d in drivers]
    assert len(drivers) <= 3
    assert any(t.startswith("+") and "won $240k in the last 12 months" in t for t in texts), texts


def test_stale_high_priority_backlog_reads_as_a_negative_reason() -> None:
    bad = dict(TYPICAL, id="BAD", open_high=3, open_high_stale=3, escalated=6, reopens=6)
    scored, _ = score_records(portfolio() + [bad])
    texts = [d["text"] for d in scored.drivers_of(index(scored, "BAD")) if d["score"] == "experience"]
    assert any(t.startswith("\u2212") and "3 high-priority cases open for over 7 days" in t for t in texts), texts


def test_drivers_are_the_largest_contributions_and_all_points_add_up() -> None:
    scored, _ = score_records(portfolio(60))
    for i in range(len(scored.ids)):
        drivers = scored.drivers_of(i)
        all_points = np.concatenate([scored.relationship.points[i], scored.experience.points[i]])
        top = sorted(np.abs(all_points), reverse=True)[: len(drivers)]
        assert [abs(d["points"]) for d in drivers] == pytest.approx(top, abs=0.051)
        for b in (scored.relationship, scored.experience):
            assert b.baseline + b.points[i].sum() == pytest.approx(b.score[i], abs=1e-9)


def test_contact_drivers_name_their_account_and_their_own_engagement() -> None:
    records = portfolio(30) + [dict(TYPICAL, id="ACME", won_amount=900_000, won_deals=8, activities=200, engaged_contacts=9)]
    acme = len(records) - 1
    contacts = [
        {"id": "C1", "account": acme, "age_days": 400, "days_since_activity": 3, "activities": 40, "cases": 0, "open_high": 0},
        {"id": "C2", "account": acme, "age_days": 400, "days_since_activity": None, "activities": 0, "cases": 5, "open_high": 2},
        {"id": "C3", "account": -1, "age_days": 10, "days_since_activity": None, "activities": 0, "cases": 0, "open_high": 0},
    ] + [{"id": f"Z{i}", "account": i, "age_days": 300, "days_since_activity": 20 * i, "activities": i, "cases": i % 3,
          "open_high": 0} for i in range(30)]
    _, con = score_with_contacts(records, contacts)
    c1 = con.drivers_of(index(con, "C1"))
    assert any(d["text"].startswith("+") and d["text"].split(" ", 1)[1].startswith("account: ") for d in c1), c1
    assert con.relationship.score[index(con, "C1")] > con.relationship.score[index(con, "C2")]
    orphan = index(con, "C3")  # no account: its own components carry the score
    assert con.relationship.weights[orphan, 0] == 0.0
    for b in (con.relationship, con.experience):
        assert np.allclose(b.baseline + b.points.sum(axis=1), b.score)


def test_render_for_a_crm_field_is_bounded() -> None:
    drivers = [{"score": "relationship", "text": "+18 won $240k in the last 12 months"}] * 200
    text = render(drivers, limit=2000)
    assert len(text) <= 2000 and text.startswith("Relationship: +18 won $240k")


@pytest.mark.parametrize(("days", "text"), [(0, "under a month"), (14, "under a month"), (20, "1 month"),
                                            (150, "5 months"), (800, "2.2 years"), (-3, "under a month")])
def test_duration(days: float, text: str) -> None:
    assert duration(days) == text


def _texts(records: list[dict]) -> tuple[dict, list[str]]:
    params = default_params()
    acc = AccountFeatures.from_records(records)
    pf = fit_portfolio(acc, None, params)
    texts = account_texts(acc, experience.signals(acc, pf.priors, params), momentum_parts(acc, pf.refs), params)
    return texts, acc.ids.tolist()


@pytest.mark.parametrize(
    ("first_won", "text"),
    [
        (0.0, "new customer (under a month)"),  # the first deal was won today
        (9.0, "new customer (under a month)"),
        (-4.0, "new customer (under a month)"),  # won, with a close date a few days ahead
        (40.0, "customer for 1 month"),
        (200.0, "customer for 7 months"),
        (800.0, "customer for 2.2 years"),
        (None, "not a customer yet (no deal won)"),
    ],
)
def test_tenure_words_for_short_and_long_customers(first_won: float | None, text: str) -> None:
    texts, ids = _texts(portfolio(10) + [dict(TYPICAL, id="X", days_since_first_won=first_won,
                                              days_since_won=first_won)])
    assert texts["tenure"](ids.index("X")) == text


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"cases": 0, "contacts": 12}, "no support case from 12 contacts in the last 2 years"),
        ({"cases": 0, "contacts": 1, "days_since_first_won": 60, "days_since_won": 60},
         "no support case from 1 contact in 2 months as a customer"),
        ({"cases": 0, "days_since_first_won": None, "days_since_won": None}, "no support case in the last 2 years"),
        ({"cases": 12, "contacts": 3}, "0.5 cases per contact per quarter (12 cases from 3 contacts in the last 2 years)"),
        ({"cases": 2, "days_since_first_won": None, "days_since_won": None}, "2 cases in the last 2 years"),
    ],
)
def test_load_words_name_cases_contacts_and_time_as_a_customer(change: dict, text: str) -> None:
    texts, ids = _texts(portfolio(10) + [dict(TYPICAL, id="X", **change)])
    assert texts["load"](ids.index("X")) == text
