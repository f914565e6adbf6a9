"""Property-based, through the database: odd CRM data (nulls, future dates, huge amounts, all-lost deals,
cases closed before they opened) still gives scores in 0–100 whose stored components add up."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from connector.db import make_engine
from connector.model import Score
from connector.scoring import score_connection
from enrichment.scores import component_names
from tests.connector.scoring_support import NOW, add, days_ago, make_connection

_names = itertools.count()
day = st.one_of(st.none(), st.floats(min_value=-400, max_value=3000))  # negative: in the future
amount = st.one_of(st.none(), st.just(0.0), st.floats(min_value=-1e4, max_value=1e5), st.just(1e14))
deal = st.fixed_dictionaries({
    "account": st.integers(0, 3), "amount": amount, "won": st.sampled_from([True, False, None]),
    "close": day, "created": day, "type": st.sampled_from(["new", "renewal", "expansion", None, "Renewal"]),
})
case = st.fixed_dictionaries({
    "account": st.integers(0, 3), "priority": st.sampled_from(["low", "High", "urgent", None, "P1"]),
    "opened": day, "closed": day, "is_closed": st.booleans(), "escalated": st.booleans(),
    "reopens": st.integers(0, 5), "csat": st.one_of(st.none(), st.floats(min_value=0, max_value=10)),
})
activity = st.fixed_dictionaries({"account": st.integers(0, 3), "contact": st.integers(0, 5), "when": day})


def _at(value: float | None):
    return None if value is None else days_ago(value)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from connector.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('props') / 'p.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(deals=st.lists(deal, max_size=10), cases=st.lists(case, max_size=10), acts=st.lists(activity, max_size=10),
       created=st.lists(day, min_size=4, max_size=4))
def test_odd_crm_data_scores_within_bounds(db, deals, cases, acts, created) -> None:
    cid = make_connection(db, f"props-{next(_names)}")
    add(db, cid, "account", *({"external_id": f"A{i}", "created_at": _at(c)} for i, c in enumerate(created)))
    add(db, cid, "contact", *({"external_id": f"C{j}", "account_external_id": f"A{j % 4}", "created_at": _at(None if j == 5 else j * 10.0),
                              "last_activity_at": _at(-5.0 if j == 3 else None)} for j in range(6)))
    if deals:
        add(db, cid, "deal", *({"external_id": f"D{n}", "account_external_id": f"A{d['account']}", "amount": d["amount"],
                                "is_closed": d["won"] is not None, "is_won": bool(d["won"]), "deal_type": d["type"],
                                "close_date": None if d["close"] is None else days_ago(d["close"]).date(),
                                "created_at": _at(d["created"])} for n, d in enumerate(deals)))
    if cases:
        add(db, cid, "case", *({"external_id": f"K{n}", "account_external_id": f"A{k['account']}", "priority": k["priority"],
                                "is_closed": k["is_closed"], "is_escalated": k["escalated"], "reopen_count": k["reopens"],
                                "satisfaction": k["csat"], "opened_at": _at(k["opened"]), "created_at": _at(k["opened"]),
                                "closed_at": _at(k["closed"])} for n, k in enumerate(cases)))
    if acts:
        add(db, cid, "activity", *({"external_id": f"T{n}", "account_external_id": f"A{a['account']}",
                                    "contact_external_id": f"C{a['contact']}", "occurred_at": _at(a["when"])}
                                   for n, a in enumerate(acts)))
    score_connection(db, cid, now=NOW)
    s = Score.__table__  # type: ignore[attr-defined]
    with db.connect() as conn:
        rows = conn.execute(sa.select(s).where(s.c.connection_id == cid, s.c.object.in_(("account", "contact")))).mappings().all()
    assert len(rows) == 10
    for row in rows:
        assert 0 <= row["relationship"] <= 100 and 0 <= row["experience"] <= 100
        comps = row["components"]
        names = component_names(comps, row["object"])
        rel = [p for n, p in zip(names, comps["points"], strict=True) if n.startswith("relationship.")]
        exp = [p for n, p in zip(names, comps["points"], strict=True) if n.startswith("experience.")]
        assert abs(comps["baseline"] + sum(rel) - row["relationship"]) <= 0.5
        assert abs(comps["baseline"] + sum(exp) - row["experience"]) <= 0.5
        assert len(row["drivers"]) <= 3
