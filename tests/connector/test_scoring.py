"""score_connection: scores and history stored with the model version, partial rescoring, trend, failures."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from connector import score_models, score_writes, scoring
from connector.errors import ConfigError
from connector.features import load_features
from connector.model import Score, ScoreHistory, ScoreModel, SyncRun
from connector.scoring import score_connection
from enrichment.scores import COMPONENT_NAMES, fit_portfolio, score_accounts
from tests.connector.scoring_support import NOW, activity, add, case, days_ago, deal, make_connection

S, H, M, R = (t.__table__ for t in (Score, ScoreHistory, ScoreModel, SyncRun))  # type: ignore[attr-defined]


def seed(engine, accounts: int = 12, name: str = "acme-crm") -> int:
    """A small portfolio of varied accounts with contacts, deals, cases and activities."""
    cid = make_connection(engine, name)
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
    for object, stored in (("account", accounts), ("contact", contacts)):  # the run tallies what it stored
        tally = run["counts"]["tiers"][object]
        assert sum(t["records"] for t in tally.values()) == len(stored)
        for tier, t in tally.items():
            mine = [r for r in stored.values() if r["tier"] == tier]
            assert t == {"records": len(mine), "at_risk": sum(bool(r["at_risk"]) for r in mine)}
    for row in [*accounts.values(), *contacts.values()]:
        assert row["model_version"] == 1 and row["scored_at"] == NOW
        assert 0 <= row["relationship"] <= 100 and 0 <= row["experience"] <= 100 and row["tier"] in "ABC"
        comps = row["components"]
        assert set(comps) == {"baseline", "levels", "points"}  # the names are the object's, not repeated per row
        n_rel = sum(1 for n in COMPONENT_NAMES[row["object"]] if n.startswith("relationship."))
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


def _rows(engine, cid) -> dict[tuple[str, str], dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(S).where(S.c.connection_id == cid)).mappings().all()
    return {(r["object"], r["external_id"]): {k: v for k, v in r.items() if k not in ("id", "connection_id")} for r in rows}


def run_counts(engine, run_id: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(R.c.counts).where(R.c.id == run_id)).scalar_one())


def history_count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(H)).scalar_one())


# PostgreSQL: COPY into a staging table; SQLite: many upsert statements, or the comparison in Python
BULK = {"copy and batches": {"BULK_MIN": 0, "SQLITE_ROWS": 5}, "compared in python": {"SQLITE_BULK": 0}}


@pytest.mark.parametrize("bulk_settings", list(BULK.values()), ids=list(BULK))
def test_bulk_path_stores_the_same_rows(engine, monkeypatch, bulk_settings) -> None:
    plain = seed(engine)
    bulk = seed(engine, name="twin-crm")  # the same records under a second connection
    # new rows, the same day again (nothing written), a changed record, every row rewritten the next day, and
    # again the same day under a new model version whose edit moves no score
    steps = (NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2), NOW + timedelta(days=1),
             NOW + timedelta(days=1, minutes=1))
    for step, now in enumerate(steps):
        if step == 2:
            for cid in (plain, bulk):
                add(engine, cid, "deal", deal("A05-NEW", "A05", amount=500_000, closed_days_ago=0.01))
        if step == 4:
            for cid in (plain, bulk):
                with engine.connect() as conn:
                    ws = score_models.workspace_of(conn, cid)
                score_models.publish(engine, ws, score_models.create_draft(engine, ws, {"trend": {"tolerance_days": 11}}))
        score_connection(engine, plain, now=now)
        with monkeypatch.context() as m:
            for name, value in bulk_settings.items():
                m.setattr(score_writes, name, value)
            score_connection(engine, bulk, now=now)
        assert _rows(engine, bulk) == _rows(engine, plain)
        records = {k: r for k, r in _rows(engine, bulk).items() if k[0] != "portfolio"}
        assert any(r["scored_at"] == now for r in records.values()) == (step != 1)
    assert all(r["scored_at"] == now and r["model_version"] == 2 for r in _rows(engine, bulk).values())
    with engine.connect() as conn:
        per_connection = dict(conn.execute(sa.select(H.c.connection_id, sa.func.count()).group_by(H.c.connection_id)).all())
        bulk_history = conn.execute(sa.select(H.c.object, H.c.external_id, H.c.relationship, H.c.experience, H.c.tier,
                                              H.c.at_risk, H.c.model_version, H.c.scored_at).where(H.c.connection_id == bulk)
                                    .order_by(H.c.scored_at, H.c.object, H.c.external_id)).all()
        plain_history = conn.execute(sa.select(H.c.object, H.c.external_id, H.c.relationship, H.c.experience, H.c.tier,
                                               H.c.at_risk, H.c.model_version, H.c.scored_at).where(H.c.connection_id == plain)
                                     .order_by(H.c.scored_at, H.c.object, H.c.external_id)).all()
    assert bulk_history == plain_history
    records = len(_rows(engine, plain)) - 1  # not the portfolio row
    assert records * 3 < per_connection[bulk] == per_connection[plain] <= records * 4  # three full sweeps, and what moved


def test_a_sweep_writes_only_what_moved_and_an_unchanged_score_at_most_once_a_day(engine) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    first, snapshots = _rows(engine, cid), history_count(engine)
    # a minute later nothing changed: no row rewritten, no snapshot, the stamps say when they were written
    again = run_counts(engine, score_connection(engine, cid, now=NOW + timedelta(minutes=1)))
    assert again["accounts_written"] == again["contacts_written"] == 0
    assert history_count(engine) == snapshots
    assert {k: v for k, v in _rows(engine, cid).items() if k[0] != "portfolio"} == {
        k: v for k, v in first.items() if k[0] != "portfolio"}
    # a big won deal moves A05 (and the portfolio's percentiles): exactly the rows whose values moved are rewritten
    add(engine, cid, "deal", deal("A05-NEW", "A05", amount=500_000, closed_days_ago=0.01))
    later = NOW + timedelta(minutes=2)
    moved = run_counts(engine, score_connection(engine, cid, now=later))
    after = {k: v for k, v in _rows(engine, cid).items() if k[0] != "portfolio"}
    values = ("relationship", "experience", "tier", "at_risk", "trend", "drivers", "components", "model_version")
    differ = {k for k, v in after.items() if any(v[c] != first[k][c] for c in values)}
    rewritten = {k for k, v in after.items() if v["scored_at"] == later}
    assert ("account", "A05") in differ and rewritten == differ
    assert moved["accounts_written"] + moved["contacts_written"] == len(differ)
    assert history_count(engine) == snapshots + len(differ)
    assert all(v == first[k] for k, v in after.items() if k not in differ)
    # the next day every record gets that day's snapshot
    nxt = run_counts(engine, score_connection(engine, cid, now=NOW + timedelta(days=1)))
    assert nxt["accounts_written"] + nxt["contacts_written"] == len(after)
    assert history_count(engine) == snapshots + len(differ) + len(after)


def test_only_the_rows_whose_values_moved_are_written(engine) -> None:
    cid = seed(engine)
    score_connection(engine, cid, now=NOW)
    before, snapshots = _rows(engine, cid), history_count(engine)
    with engine.begin() as conn:
        version, params = score_models.published(conn, score_models.workspace_of(conn, cid))
        acc, con = load_features(conn, cid, params, as_of=NOW)
        portfolio = fit_portfolio(acc, con, params)
        accounts = score_accounts(acc, portfolio, params)
        i = int(np.flatnonzero(accounts.ids == "A03")[0])
        accounts.relationship.score[i] += 5.0
        written = score_writes.write_scores(conn, cid, "account", accounts, version, NOW + timedelta(minutes=1))
    after = _rows(engine, cid)
    assert written == 1 and {k for k in after if after[k] != before[k]} == {("account", "A03")}
    assert after[("account", "A03")]["relationship"] == pytest.approx(before[("account", "A03")]["relationship"] + 5, abs=0.06)
    assert after[("account", "A03")]["scored_at"] == NOW + timedelta(minutes=1)
    assert history_count(engine) == snapshots + 1


def test_trend_from_snapshots_written_only_when_needed(engine) -> None:
    cid = seed(engine)
    month_ago = NOW - timedelta(days=31)
    score_connection(engine, cid, now=month_ago)
    then = scores(engine, cid)
    score_connection(engine, cid, now=month_ago + timedelta(hours=3))  # same day, same scores: no snapshot
    assert history_count(engine) == len(then) + len(scores(engine, cid, "contact"))
    score_connection(engine, cid, now=NOW)
    for key, row in scores(engine, cid).items():
        assert row["trend"] == pytest.approx(row["relationship"] - then[key]["relationship"], abs=0.11), key


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


def test_copy_carries_any_id_and_text(pg_engine, monkeypatch) -> None:
    cid = seed(pg_engine, accounts=3)
    with pg_engine.begin() as conn:
        version, params = score_models.published(conn, score_models.workspace_of(conn, cid))
        acc, con = load_features(conn, cid, params, as_of=NOW)
        accounts = score_accounts(acc, fit_portfolio(acc, con, params), params)
        accounts.ids = np.array(["tab\there", "back\\slash", "new\nline"], dtype=object)
        accounts.drivers[0] = orjson.dumps([{"text": 'quote " and \\ backslash\ttab'}]).decode()
        monkeypatch.setattr(score_writes, "BULK_MIN", 0)
        # the first write goes straight into the table, the next through the staging table
        assert score_writes.write_scores(conn, cid, "account", accounts, version, NOW) == 3
    rows = scores(pg_engine, cid)
    assert set(rows) == {"tab\there", "back\\slash", "new\nline"}
    assert rows["tab\there"]["drivers"] == [{"text": 'quote " and \\ backslash\ttab'}]
    with pg_engine.begin() as conn:
        accounts.drivers[2] = orjson.dumps([{"text": "line\nbreak and \\N"}]).decode()
        assert score_writes.write_scores(conn, cid, "account", accounts, version, NOW) == 1
        # the staged write turns hash joins off for its own statement only
        assert conn.exec_driver_sql("SHOW enable_hashjoin").scalar() == "on"
    rows = scores(pg_engine, cid)
    assert rows["new\nline"]["drivers"] == [{"text": "line\nbreak and \\N"}]
    assert rows["tab\there"]["drivers"] == [{"text": 'quote " and \\ backslash\ttab'}]


def test_a_large_run_refreshes_postgres_statistics_on_scores(pg_engine, monkeypatch) -> None:
    # planned on the sizes of before, the next run's trend lookup would join every snapshot by nested loops
    monkeypatch.setattr(scoring, "ANALYZE_AFTER", 10)
    cid = seed(pg_engine)
    score_connection(pg_engine, cid, now=NOW)
    with pg_engine.connect() as conn:
        planned = dict(conn.execute(sa.text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('score', 'score_history')")).all())
        stored = conn.execute(sa.select(sa.func.count()).select_from(H).where(H.c.connection_id == cid)).scalar_one()
    assert planned["score_history"] >= stored > 0 and planned["score"] >= stored
