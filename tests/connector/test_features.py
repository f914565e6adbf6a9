"""Feature loading with set-based SQL, live and point-in-time, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from connector.features import load_account_features, load_features
from enrichment.params import default_params
from tests.connector.scoring_support import NOW, activity, add, case, days_ago, deal, make_connection

P = default_params()
P["windows"] |= {"case_days": 365, "quality_days": 730}  # the windows the cases below are dated around


@pytest.fixture
def world(engine):
    cid = make_connection(engine)
    add(engine, cid, "account",
        {"external_id": "A1", "name": "Acme", "created_at": days_ago(1000)},
        {"external_id": "A2", "name": "Quiet", "created_at": days_ago(10)},
        {"external_id": "A3", "name": "Later", "created_at": days_ago(-5)},  # created in the future
        {"external_id": "GONE", "name": "Deleted", "created_at": days_ago(500), "is_deleted": True})
    add(engine, cid, "contact",
        {"external_id": "C1", "account_external_id": "A1", "created_at": days_ago(900), "last_activity_at": days_ago(3)},
        {"external_id": "C2", "account_external_id": "A1", "created_at": days_ago(900), "last_activity_at": days_ago(300)},
        {"external_id": "C3", "account_external_id": "A1", "created_at": days_ago(100), "last_activity_at": None},
        {"external_id": "C4", "account_external_id": "A2", "created_at": days_ago(5)})
    add(engine, cid, "deal",
        deal("D1", "A1", amount=100_000, won=True, closed_days_ago=30),
        deal("D2", "A1", amount=50_000, won=True, closed_days_ago=400, created_days_ago=500),  # outside 12 months
        deal("D3", "A1", amount=7_000, won=None, closed_days_ago=-20),  # open
        deal("D4", "A1", amount=9_000, won=False, closed_days_ago=10, deal_type="renewal"),
        deal("D5", "A1", amount=20_000, won=True, closed_days_ago=90, created_days_ago=120, deal_type="renewal"),
        deal("D6", "A1", amount=1_000_000, won=True, closed_days_ago=-30, created_days_ago=5),  # future close date
        deal("D7", "GONE", amount=5, won=True))
    add(engine, cid, "case",
        case("K1", "A1", priority="high", opened_days_ago=20, closed_days_ago=19, csat=4, contact="C1"),
        case("K2", "A1", priority="High", opened_days_ago=30, closed_days_ago=None, contact="C1"),  # open 30 days
        case("K3", "A1", priority="urgent", opened_days_ago=2, closed_days_ago=None, escalated=True),
        case("K4", "A1", priority="low", opened_days_ago=500, closed_days_ago=480, reopens=2),  # outside load window
        case("K5", "A1", priority="low", opened_days_ago=-3, closed_days_ago=None))  # future-dated
    add(engine, cid, "activity",
        activity("T1", "A1", days=2, contact="C1"), activity("T2", "A1", days=40, contact="C2"),
        activity("T3", "A1", days=200, contact="C3"), activity("T4", "A1", days=-10, contact="C3"))
    return cid


def _row(acc, ext):
    i = int(np.flatnonzero(acc.ids == ext)[0])
    return {k: v[i] for k, v in acc.cols.items()}, i


def test_live_features(engine, world) -> None:
    with engine.connect() as conn:
        acc = load_account_features(conn, world, P, as_of=NOW)
    assert acc.ids.tolist() == ["A1", "A2", "A3"]  # deleted accounts are not scored
    a1, i = _row(acc, "A1")
    assert a1["won_amount"] == 100_000 + 20_000 + 1_000_000  # marked won counts, even with a close date ahead
    assert a1["won_deals"] == 4 and a1["renewals_won"] == 1 and a1["renewals_lost"] == 1
    assert a1["recent_losses"] == 1 and a1["open_pipeline"] == 7_000 and a1["open_deals"] == 1
    assert a1["days_since_first_won"] == pytest.approx(400.5, abs=0.6)
    assert a1["contacts"] == 3
    assert a1["days_since_activity"] == pytest.approx(2, abs=0.01)  # the future-dated activity is ignored
    assert a1["engaged_contacts"] == 2  # C1 (activity + stamp), C2 (activity 40 days ago); C3 only 200 days ago
    assert a1["activities"] == 3
    assert a1["cases"] == 3 and a1["quality_cases"] == 4  # K5 opens in the future; K4 only in the 2-year window
    assert a1["open_high"] == 2 and a1["open_high_stale"] == 1  # K2 (30 days) and K3 (2 days), 'High' matched
    assert a1["escalated"] == 1 and a1["reopens"] == 2 and a1["csat_n"] == 1 and a1["csat_sum"] == 4
    prios = list(acc.priorities)
    assert acc.res_n[i, prios.index("high")] == 1
    assert acc.res_hours[i, prios.index("high")] == pytest.approx(24, abs=0.01)
    a2, _ = _row(acc, "A2")
    assert a2["won_amount"] == 0 and np.isnan(a2["days_since_won"]) and a2["cases"] == 0
    assert a2["age_days"] == pytest.approx(10, abs=0.01)


def test_point_in_time_sees_only_what_was_visible(engine, world) -> None:
    as_of = days_ago(60)
    with engine.connect() as conn:
        acc = load_account_features(conn, world, P, as_of=as_of, point_in_time=True)
    assert acc.ids.tolist() == ["A1"]  # A2 and A3 were created later
    a1, _ = _row(acc, "A1")
    # D1 (won 30 days ago), D3 (open) and D4 (lost 10 days ago) were all open then; D6 did not exist
    assert a1["open_deals"] == 3 and a1["open_pipeline"] == 100_000 + 7_000 + 9_000
    assert a1["won_amount"] == 50_000 + 20_000 and a1["renewals_won"] == 1 and a1["renewals_lost"] == 0
    assert a1["days_since_won"] == pytest.approx(30, abs=0.6)  # D5, 90 days before NOW
    assert a1["cases"] == 0 and a1["open_high"] == 0
    assert a1["days_since_activity"] == pytest.approx(140, abs=0.01)  # T3, 200 days ago


def test_account_scope_limits_every_query(engine, world) -> None:
    with engine.connect() as conn:
        full = load_account_features(conn, world, P, as_of=NOW)
        one = load_account_features(conn, world, P, as_of=NOW, account_ids=["A1"])
    assert one.ids.tolist() == ["A1"]
    for k in one.cols:
        np.testing.assert_allclose(one.cols[k], full.cols[k][:1], equal_nan=True)


def test_contact_features(engine, world) -> None:
    with engine.connect() as conn:
        acc, con = load_features(conn, world, P, as_of=NOW)
    assert con.ids.tolist() == ["C1", "C2", "C3", "C4"]
    assert con.account.tolist() == [0, 0, 0, 1]
    c = {k: v.tolist() for k, v in con.cols.items()}
    assert c["days_since_activity"][0] == pytest.approx(2, abs=0.01)
    assert c["days_since_activity"][1] == pytest.approx(40, abs=0.01)  # newer than its stamp
    assert c["days_since_activity"][2] == pytest.approx(200, abs=0.01)
    assert np.isnan(c["days_since_activity"][3])
    assert c["activities"] == [1, 1, 0, 0] and c["cases"] == [2, 0, 0, 0] and c["open_high"] == [1, 0, 0, 0]
