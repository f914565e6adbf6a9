"""Drivers: plain words with point contributions that add up to the score."""

from __future__ import annotations

import numpy as np
import pytest

from enrichment.drivers import ago, money, render, signed
from tests.enrichment.helpers import TYPICAL, index, portfolio, score_records, score_with_contacts


@pytest.mark.parametrize(("amount", "text"), [(950, "$950"), (24_400, "$24k"), (240_000, "$240k"), (1_200_000, "$1.2M"), (3e6, "$3M")])
def test_money(amount: float, text: str) -> None:
    assert money(amount) == text


@pytest.mark.parametrize(("days", "text"), [(0, "today"), (1, "1 day ago"), (12, "12 days ago"), (150, "5 months ago"), (800, "2.2 years ago")])
def test_ago(days: float, text: str) -> None:
    assert ago(days) == text


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
