"""Migrations build both databases and match the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from connector.db import make_engine
from connector.migrate import alembic_config, drift, upgrade


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


def test_the_score_connection_checks_downgrade_and_upgrade_again(pg_engine: sa.engine.Engine) -> None:
    # migration 0004 swaps the scores' connection foreign keys for triggers on PostgreSQL, and back
    def keys() -> set[str]:
        inspector = sa.inspect(pg_engine)
        return {fk["name"] for t in ("score", "score_history") for fk in inspector.get_foreign_keys(t)}

    cfg = alembic_config(pg_engine.url.render_as_string(hide_password=False))
    assert keys() == set()
    try:
        with pg_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert keys() == {"score_connection_id_fkey", "score_history_connection_id_fkey"}
    finally:
        upgrade(pg_engine)
    assert keys() == set()
    assert drift(pg_engine) == []
