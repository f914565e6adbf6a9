"""Migrations build both databases and match the models."""

from __future__ import annotations

import sqlalchemy as sa

from connector.db import make_engine
from connector.migrate import drift


def test_migrated_database_matches_models(engine: sa.engine.Engine) -> None:
    assert drift(engine) == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"workspace", "connection", "account", "contact", "deal", "case", "field_mapping", "score",
            "score_history", "writeback_state", "sync_cursor", "sync_run", "webhook_event", "schedule",
            "score_model", "user"} <= names


def test_drift_is_detected(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text('ALTER TABLE account ADD COLUMN stray INTEGER'))
    assert drift(engine), "an extra column must show up as drift"


def test_the_portfolio_index_holds_account_scores_only(engine: sa.engine.Engine) -> None:
    catalog = ("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_score_portfolio'"
               if engine.dialect.name == "postgresql" else "SELECT sql FROM sqlite_master WHERE name = 'ix_score_portfolio'")
    with engine.connect() as conn:
        definition = conn.execute(sa.text(catalog)).scalar_one()
    assert "WHERE" in definition.upper() and "'account'" in definition
