"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An engine tuned for the dialect: WAL and a busy timeout on SQLite so workers can share it.

    `pre_ping=False` saves a round trip per checkout on PostgreSQL; its callers retry a statement
    that failed on a stale connection (`DBAPIError.connection_invalidated`).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Up to 64 MB of page cache (the default is 2 MB): a sync writes index entries all over
            # the file, and past a few hundred thousand rows each miss costs a read and a re-write.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=pre_ping, pool_size=5, max_overflow=10)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return make_engine(url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def create_all(engine: Engine) -> None:
    """Create every table directly (tests and the embedded default use migrations instead where it matters)."""
    from sqlmodel import SQLModel

    import connector.model  # noqa: F401  (registers the tables)

    SQLModel.metadata.create_all(engine)
