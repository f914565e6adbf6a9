"""score_connection: scores and history stored with the model version, partial rescoring, trend, failures."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from connector import score_models, score_writes
from connector.errors import ConfigError
from connector.model import Score, ScoreHistory, ScoreModel, SyncRun
from connector.scoring import score_connection
from tests.connector.scoring_support import NOW, activity, add, case, days_ago, deal, make_connection

S, H, M, R = (t.__table__ for t in (Score, ScoreHistory, ScoreModel, SyncRun))  # type: ignore[attr-defined]


def seed(engine, accounts: int = 12) -> int:
    """A small portfolio of varied accounts with contacts, deals, cases and activities."""
    cid = make_connection(engine)
    rng = np.random.default_rng(7)
    accs, cons, deals, cases, acts = [], [], [], [], []
    for i in range(accounts):
        a = f"A{i:02d}"
        accs.append({"external_id": a, "name": f"Account {i}", "created_at": days_ago(900)})
        for j in range(i % 4 + 1):
            cons.append({"external_id": f"{a}-C{j}", "account_external_id": a, "created_at": days_ago(800),
                         "last_activity_at": days_ago(int(rng.integers(1, 300)))})
        for j in range(i % 5):
            deals.append(deal(f"{a}-D{j}", a, amount=float(rng.integers(1, 100)) * 1000, won=bool(rng.random() < 0.7),
                              closed_days_ago=int(rng.integers(5, 600)), created_days_ago=700))
        for j in range(i % 3 * 2):
            cases.append(case(f"{a}-K{j}", a, priority=["low", "high"][j % 2], opened_days_ago=int(rng.integers(10, 300)),
                              closed_days_ago=None if j == 3 else 5, escalated=j == 1, csat=4.0 if j == 0 else None,
                              contact=f"{a}-C0"))
        for j in range(i):
            acts.append(activity(f"{a}-T{j}", a, days=int(rng.integers(1, 400)), contact=f"{a}-C{j % (i % 4 + 1)}"))
    add(engine, cid, "account", *accs)
    add(engine, cid, "contact", *cons)
    add(engine, cid, "deal", *deals)
    if cases:
        add(engine, cid, "case", *cases)
    add(engine, cid, "activity", *acts)
    return cid


def scores(engine, cid, object: str = "account") -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(S).where(S.c.connection_id == cid, S.c.object == object)).mappings().all()
    return {r["external_id"]: dict(r) for r in rows}


def test_scores_accounts_and_contacts_with_history_and_model_version(engine) -> None:
    cid = seed(engine)
    run_id = score_connection(engine, cid, now=NOW)
    accounts, contacts = scores(engine, cid), scores(engine, cid, "contact")
    assert len(accounts) == 12 and len(contacts) == sum(i % 4 + 1 for i in range(12))
    with engine.connect() as conn:
        run = conn.execute(sa.select(R).where(R.c.id == run_id)).mappings().one()
        model = conn.execute(sa.select(M)).mappings().one()
        history = conn.execute(sa.select(sa.func.count()).select_from(H)).scalar()
    assert run["kind"] == "score" and run["status"] == "succeeded" and run["counts"]["accounts"] == 12
    assert model["version"] == 1 and model["status"] == "published"  # created from the defaults
    assert history == len(accounts) + len(contacts)
    for row in [*accounts.values(), *contacts.values()]:
        assert row["model_version"] == 1 and row["scored_at"] == NOW
        assert 0 <= row["relationship"] <= 100 and 0 <= row["experience"] <= 100 and row["tier"] in "ABC"
        comps = row["components"]
        n_rel = sum(1 for n in comps["names"] if n.startswith("relationship."))
        assert comps["baseline"] + sum(comps["points"][:n_rel]) == pytest.approx(row["relationship"], abs=0.5)
        assert comps["baseline"] + sum(comps["points"][n_rel:]) == pytest.approx(row["experience"], abs=0.5)
        assert len(row["drivers"]) <= 3 and all(d["text"][0] in "+\u2212" for d in row["drivers"])
        assert row["trend"] is None  # no snapshot a month earlier


def test_rescoring_one_account_matches_the_full_run(engine) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    before = scores(engine, cid)
    run_id = score_connection(engine, cid, account_ids=["A07"], now=NOW)
    after = scores(engine, cid)
    for key in ("relationship", "experience", "tier", "drivers", "components"):
        assert after["A07"][key] == before["A07"][key]
    with engine.connect() as conn:
        assert conn.execute(sa.select(R.c.counts).where(R.c.id == run_id)).scalar()["full"] is False
        touched = conn.execute(sa.select(H.c.external_id).group_by(H.c.external_id).having(sa.func.count() > 1)).scalars()
        assert set(touched) == {"A07", "A07-C0", "A07-C1", "A07-C2", "A07-C3"}  # one more snapshot for those only


def test_trend_compares_with_the_snapshot_a_month_earlier_of_the_same_model(engine) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    first = scores(engine, cid)
    with engine.begin() as conn:  # pretend the first snapshot was 31 days ago and 10 points lower
        conn.execute(sa.update(H).values(scored_at=NOW - timedelta(days=31), relationship=H.c.relationship - 10))
    score_connection(engine, cid, now=NOW)
    assert all(r["trend"] == pytest.approx(10.0, abs=0.11) for r in scores(engine, cid).values())
    # a new model version: a weight change is not mistaken for a customer change
    with engine.connect() as conn:
        ws = score_models.workspace_of(conn, cid)
    version = score_models.create_draft(engine, ws, {"relationship": {"weights": {"value": 0.9}}})
    score_models.publish(engine, ws, version)
    score_connection(engine, cid, now=NOW)
    after = scores(engine, cid)
    assert all(r["model_version"] == 2 and r["trend"] is None for r in after.values())
    assert any(after[k]["relationship"] != first[k]["relationship"] for k in first)


def test_bulk_path_stores_the_same_rows(engine, monkeypatch) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    plain = scores(engine, cid, "contact")
    monkeypatch.setattr(score_writes, "BULK_MIN", 0)
    score_connection(engine, cid, now=NOW + timedelta(minutes=5))
    bulk = scores(engine, cid, "contact")
    for k, row in plain.items():
        for key in ("relationship", "experience", "tier", "at_risk", "drivers", "components", "model_version"):
            assert bulk[k][key] == row[key], key
        assert bulk[k]["scored_at"] == NOW + timedelta(minutes=5)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(H)).scalar() == 2 * (len(plain) + 12)


def test_a_broken_model_fails_the_run_and_keeps_the_scores(engine) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    before = scores(engine, cid)
    with engine.begin() as conn:
        conn.execute(sa.update(M).values(params={"relationship": {"weights": {"value": "lots"}}}))
    with pytest.raises(ConfigError, match="relationship.weights"):
        score_connection(engine, cid, now=NOW + timedelta(days=1))
    assert scores(engine, cid) == before
    with engine.connect() as conn:
        last = conn.execute(sa.select(R).order_by(R.c.id.desc()).limit(1)).mappings().one()
    assert last["status"] == "failed" and "relationship.weights" in last["error"]


def test_empty_connection_scores_nothing(engine) -> None:
    cid = make_connection(engine)
    run_id = score_connection(engine, cid, now=NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.select(R.c.status).where(R.c.id == run_id)).scalar() == "succeeded"
    assert scores(engine, cid) == {}
