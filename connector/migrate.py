"""Run the Alembic migrations shipped inside the package (`rapport migrate`, Procfile `release`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connector.model import UNIFIED_OBJECTS

MIGRATIONS = Path(__file__).parent / "migrations"
CHECKED_BY_TRIGGERS = (*UNIFIED_OBJECTS, "score", "score_history")


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def include_object(dialect: str) -> Callable[..., bool]:
    """Autogenerate's filter: on PostgreSQL the connection reference of the synced records (migration
    0003) and of the scores and their history (0004) is kept by statement-level triggers, so the
    model's foreign key there is not drift."""

    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        return not (
            dialect == "postgresql"
            and isinstance(obj, sa.ForeignKeyConstraint)
            and obj.table.name in CHECKED_BY_TRIGGERS
            and obj.column_keys == ["connection_id"]
        )

    return include


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def drift(engine: Engine) -> list[object]:
    """Differences between the models and the migrated database (empty when they agree)."""
    with engine.connect() as conn:
        opts = {"compare_type": True, "render_as_batch": True, "include_object": include_object(engine.dialect.name)}
        ctx = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(ctx, SQLModel.metadata))
