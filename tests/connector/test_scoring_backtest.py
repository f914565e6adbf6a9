"""Backtest on a small synthetic world: churn taken from the unified deals matches the world's own record,
and the relationship score predicts it; the CLI prints the table and the JSON."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pytest
from click.testing import CliRunner

from bench.scoring import load_world
from connector.backtest import outcomes, run_backtest
from connector.cli import main
from connector.config import get_settings
from connector.db import make_engine
from sandbox.world import DEFAULT_NOW, generate
from sandbox.world import outcomes as world_outcomes

AS_OF = DEFAULT_NOW - timedelta(days=180)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """The small world (100 accounts) loaded once into a migrated SQLite file."""
    from connector.migrate import upgrade

    path = tmp_path_factory.mktemp("world") / "world.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    cid, _ = load_world(engine, generate("small", 0), name="world")
    yield url, engine, cid
    engine.dispose()


def test_churn_from_the_crm_data_matches_the_ground_truth(small_world) -> None:
    _, engine, cid = small_world
    truth = {o.account_key: o for o in world_outcomes("small", 0, horizon_days=180)}
    ids = np.array(sorted(truth), dtype=str)
    with engine.connect() as conn:
        churned, expanded = outcomes(conn, cid, ids, AS_OF, 180)
    assert churned.tolist() == [truth[k].churned for k in ids]
    assert expanded.tolist() == [truth[k].expanded for k in ids]


def test_relationship_score_predicts_churn(small_world) -> None:
    _, engine, cid = small_world
    result = run_backtest(engine, cid, as_of=AS_OF, horizon_days=180)
    rel = result["scores"]["relationship"]
    assert rel["churn_auc"] > 0.8 and rel["bottom_decile_churn_lift"] > 1.5
    assert {"relationship.value", "experience.speed"} <= set(result["scores"])
    assert sum(row["count"] for row in rel["calibration"]) == result["accounts"]


def test_backtest_command_prints_a_table_and_json(small_world, tmp_path, monkeypatch) -> None:
    url, _, _ = small_world
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        out = tmp_path / "bt.json"
        res = CliRunner().invoke(main, ["backtest", "world", "--as-of", AS_OF.date().isoformat(), "--horizon", "26w",
                                        "--json", str(out)])
        assert res.exit_code == 0, res.output
        assert "CHURN AUC" in res.output and "relationship.value" in res.output
        data = json.loads(out.read_text())
        assert data["horizon_days"] == 182 and 0.5 < data["scores"]["relationship"]["churn_auc"] <= 1
        bad = CliRunner().invoke(main, ["backtest", "world", "--as-of", "last tuesday"])
        assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
        res = CliRunner().invoke(main, ["score", "world"])
        assert res.exit_code == 0 and "scored 100 account(s)" in res.output, res.output
        assert re.search(r"account  tier [ABC]: +\d+  at risk: \d+", res.output)
        assert re.search(r"contact  tier [ABC]: +\d+  at risk: \d+", res.output)
        res = CliRunner().invoke(main, ["score-model", "set", "world", "relationship.weights.value=0.5", "--note", "more value"])
        assert res.exit_code == 0 and "draft version 2" in res.output, res.output
        res = CliRunner().invoke(main, ["score-model", "set", "world", "relationship.weights.value=-1"])
        assert res.exit_code == 2 and "relationship.weights.value" in res.output
        res = CliRunner().invoke(main, ["backtest", "world", "--as-of", AS_OF.date().isoformat(), "--version", "2"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["score-model", "publish", "world", "2"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["score-model", "show", "world"])
        assert "version   2  published" in res.output and '"value": 0.5' in res.output, res.output
    finally:
        get_settings.cache_clear()
