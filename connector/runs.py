"""Run bookkeeping: one `sync_run` row per run, opened, heartbeated and closed."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import SyncRun, utcnow

_T = SyncRun.__table__  # type: ignore[attr-defined]


def open_run(engine: Engine, connection_id: int, kind: str, *, trigger: str = "manual", job_id: str | None = None) -> int:
    """Record a run as started and return its id."""
    now = utcnow()
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(_T)
                .values(
                    connection_id=connection_id, kind=kind, status="running", trigger=trigger, job_id=job_id,
                    started_at=now, heartbeat_at=now, counts={}, errors=[], progress={}, api_calls=0,
                )
                .returning(_T.c.id)
            ).scalar_one()
        )


def heartbeat(engine: Engine, run_id: int, **progress: Any) -> None:
    """Mark the run alive and store its progress (shown live in the admin app)."""
    with engine.begin() as conn:
        conn.execute(sa.update(_T).where(_T.c.id == run_id).values(heartbeat_at=utcnow(), progress=progress))


def close_run(
    engine: Engine,
    run_id: int,
    status: str,
    *,
    counts: dict[str, Any] | None = None,
    api_calls: int = 0,
    errors: list[Any] | None = None,
    error: str | None = None,
    window: tuple[Any, Any] | None = None,
) -> None:
    """Record the run's outcome: succeeded, failed, paused (budget) or partial."""
    now = utcnow()
    with engine.begin() as conn:
        started = conn.execute(sa.select(_T.c.started_at).where(_T.c.id == run_id)).scalar_one()
        values: dict[str, Any] = dict(
            status=status, finished_at=now, heartbeat_at=now, counts=counts or {}, api_calls=api_calls,
            errors=(errors or [])[:200], error=error, duration_s=(now - started).total_seconds(),
        )
        if window is not None:
            values["window_start"], values["window_end"] = window
        conn.execute(sa.update(_T).where(_T.c.id == run_id).values(**values))


def fail_stale_runs(engine: Engine, *, older_than_s: float = 300) -> int:
    """Mark runs whose worker died (no heartbeat for a while) as failed; return how many."""
    cutoff = utcnow().timestamp() - older_than_s
    with engine.begin() as conn:
        rows = conn.execute(sa.select(_T.c.id, _T.c.heartbeat_at).where(_T.c.status == "running")).all()
        stale = [r.id for r in rows if r.heartbeat_at is None or r.heartbeat_at.timestamp() < cutoff]
        if stale:
            conn.execute(
                sa.update(_T)
                .where(_T.c.id.in_(stale))
                .values(status="failed", finished_at=utcnow(), error="the worker stopped before the run finished")
            )
    return len(stale)


class Stopwatch:
    """Wall-clock seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
