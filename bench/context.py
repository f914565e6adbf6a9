"""What a benchmark section gets: the world size and seed, scratch databases, and the Redis URL.

Scratch databases are created on first use and dropped (PostgreSQL) or deleted (SQLite files in a
temporary directory) when the context closes, so a bench run leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa

from connector.db import make_engine
from connector.migrate import upgrade
from sandbox.world import account_count

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class BenchContext:
    """Shared by every section of one `rapport bench` run; use it as a context manager."""

    size: str = "medium"
    seed: int = 0
    pg_admin_url: str = DEFAULT_PG_ADMIN_URL
    redis_url: str = DEFAULT_REDIS_URL
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rapport-bench-")))
    _pg_names: list[str] = field(default_factory=list, repr=False)
    _shared: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def accounts(self) -> int:
        """How many accounts the world of this size has."""
        return account_count(self.size)

    @property
    def redis_prefix(self) -> str:
        """Key prefix for Redis keys of this run; sections never flush a database."""
        return f"rapport-bench:{os.getpid()}:"

    @property
    def sqlite_url(self) -> str:
        """A migrated SQLite database shared by the sections of this run."""
        if "sqlite" not in self._shared:
            self._shared["sqlite"] = self.scratch_sqlite("shared")
        return self._shared["sqlite"]

    @property
    def pg_url(self) -> str:
        """A migrated PostgreSQL scratch database (`rapport_bench_<pid>`) shared by the sections."""
        if "pg" not in self._shared:
            self._shared["pg"] = self._create_pg(f"rapport_bench_{os.getpid()}")
        return self._shared["pg"]

    def scratch_sqlite(self, tag: str) -> str:
        """A new, migrated SQLite database file of its own in the run's temporary directory."""
        path = self.workdir / f"{_safe(tag) or 'bench'}.db"
        if path.exists():
            raise ValueError(f"scratch SQLite database {tag!r} already exists in this bench run: use another tag")
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        return url

    def scratch_pg(self, tag: str) -> str:
        """A new, migrated PostgreSQL database of its own (`rapport_bench_<pid>_<tag>`), dropped at close."""
        if not _safe(tag):
            raise ValueError("a scratch PostgreSQL database needs a tag of letters, digits or _")
        return self._create_pg(f"rapport_bench_{os.getpid()}_{_safe(tag)}")

    def checkpoint_pg(self) -> bool:
        """Have the server write out its dirty buffers now (CHECKPOINT, as pgbench does before a run),
        so a timed section does not pay for the writes of whatever ran before it. False when the
        bench's role may not checkpoint (it needs superuser or pg_checkpoint): the figures then
        include that background work."""
        admin = sa.create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text("CHECKPOINT"))
            return True
        except sa.exc.ProgrammingError:
            return False
        finally:
            admin.dispose()

    def _create_pg(self, name: str) -> str:
        if name in self._pg_names:
            raise ValueError(f"scratch database {name} already exists in this bench run: use another tag")
        admin = sa.create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        self._pg_names.append(name)
        url = sa.make_url(self.pg_admin_url).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        return url

    def close(self) -> None:
        """Drop the scratch databases and delete the temporary directory."""
        if self._pg_names:
            admin = sa.create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    for name in self._pg_names:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()
            self._pg_names.clear()
        self._shared.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BenchContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _safe(tag: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", tag.lower())[:30]
