"""Shared fixtures: real PostgreSQL and Redis from the machine, plus SQLite.

Each test session gets its own PostgreSQL database and its own Redis db index, so several test
runs on one machine never see each other's rows or jobs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from connector.config import Settings, load_settings
from connector.db import make_engine
from connector.migrate import upgrade

PG_ADMIN_URL = os.environ.get("RAPPORT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RAPPORT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _truncate(engine: Engine) -> None:
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                conn.execute(sa.text(f'DELETE FROM "{t}"'))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    name = f"rapport_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database file of this test's own."""
    path = tmp_path / "rapport.db"
    path.write_bytes(_sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    url = request.getfixturevalue("pg_url")
    yield url
    engine = make_engine(url)
    _truncate(engine)
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database (SQLite and PostgreSQL)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session's PostgreSQL database, emptied after the test."""
    eng = make_engine(pg_url)
    yield eng
    _truncate(eng)
    eng.dispose()


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis db index reserved for this test session (a lock key in db 0 holds it)."""
    admin = redis.Redis.from_url(REDIS_URL + "/0")
    token = uuid.uuid4().hex
    for index in range(1, 16):
        if admin.set(f"rapport:test-db-lock:{index}", token, nx=True, ex=3600):
            break
    else:
        pytest.fail("every Redis db index 1-15 is reserved by another test run")
    yield index
    if admin.get(f"rapport:test-db-lock:{index}") == token.encode():
        admin.delete(f"rapport:test-db-lock:{index}")


@pytest.fixture
def redis_url(redis_db: int) -> Iterator[str]:
    """The URL of an empty Redis database, flushed before and after the test."""
    url = f"{REDIS_URL}/{redis_db}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield url
    conn.flushdb()
    conn.close()


@pytest.fixture
def redis_conn(redis_url: str) -> redis.Redis:
    """A client on that empty Redis database."""
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def make_settings(tmp_path: Path):
    """Build test settings (never from the real environment) with overrides."""

    def build(**overrides: object) -> Settings:
        env = {"RAPPORT_ENV": "test", "RAPPORT_DATA_DIR": str(tmp_path / "data")}
        env.update({k: str(v) for k, v in overrides.items() if v is not None})
        return load_settings(env)

    return build
