"""Run bookkeeping: one `sync_run` row per run, opened, heartbeated and closed, and stale runs failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import SyncRun, utcnow

_T = SyncRun.__table__  # type: ignore[attr-defined]
STOPPED = "the worker stopped before the run finished; the next run resumes from the committed cursors"


def open_run(
    engine: Engine, connection_id: int, kind: str, *, trigger: str = "manual", job_id: str | None = None
) -> int:
    """Record a run as started and return its id."""
    now = utcnow()
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(_T)
                .values(
                    connection_id=connection_id,
                    kind=kind,
                    status="running",
                    trigger=trigger,
                    job_id=job_id,
                    started_at=now,
                    heartbeat_at=now,
                    counts={},
                    errors=[],
                    progress={},
                    api_calls=0,
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
            status=status,
            finished_at=now,
            heartbeat_at=now,
            counts=counts or {},
            api_calls=api_calls,
            errors=(errors or [])[:200],
            error=error,
            duration_s=(now - started).total_seconds(),
        )
        if window is not None:
            values["window_start"], values["window_end"] = window
        conn.execute(sa.update(_T).where(_T.c.id == run_id).values(**values))


def fail_stale_runs(
    engine: Engine, *, older_than_s: float = 300, alive: Callable[[Any], bool] | None = None
) -> int:
    """Mark runs whose worker died (no heartbeat for a while) as failed; return how many.

    `alive(row)` may vouch for a quiet run (its lock is still renewed by a live worker).
    """
    cutoff = utcnow().timestamp() - older_than_s
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(_T.c.id, _T.c.connection_id, _T.c.kind, _T.c.heartbeat_at).where(
                _T.c.status == "running"
            )
        ).all()
        stale = [
            r.id
            for r in rows
            if (r.heartbeat_at is None or r.heartbeat_at.timestamp() < cutoff) and not (alive and alive(r))
        ]
        if stale:
            conn.execute(
                sa.update(_T)
                .where(_T.c.id.in_(stale), _T.c.status == "running")
                .values(status="failed", finished_at=utcnow(), error=STOPPED)
            )
    return len(stale)


def fail_orphaned_runs(engine: Engine, connection_id: int, kinds: Sequence[str]) -> int:
    """Fail the runs of these kinds still marked running; only call it while holding their lock."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(_T)
            .where(_T.c.connection_id == connection_id, _T.c.kind.in_(list(kinds)), _T.c.status == "running")
            .values(status="failed", finished_at=utcnow(), error=STOPPED)
        ).rowcount


def touch_runs(engine: Engine, connection_id: int, kinds: Sequence[str]) -> None:
    """Refresh the heartbeat of the running runs of these kinds (their lock holder is alive)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(_T)
            .where(_T.c.connection_id == connection_id, _T.c.kind.in_(list(kinds)), _T.c.status == "running")
            .values(heartbeat_at=utcnow())
        )


def settle_runs(
    engine: Engine,
    connection_id: int,
    kinds: Sequence[str],
    since: datetime,
    *,
    job_id: str | None = None,
    status: str | None = None,
    error: str | None = None,
    replace: Sequence[str] = ("running",),
) -> list[int]:
    """Tag the runs a job started (since `since`, under its lock) with its id; set `status` on those in `replace`.

    Returns the ids of the runs the job started.
    """
    where = [_T.c.connection_id == connection_id, _T.c.kind.in_(list(kinds)), _T.c.started_at >= since]
    with engine.begin() as conn:
        ids = [r.id for r in conn.execute(sa.select(_T.c.id).where(*where).order_by(_T.c.id))]
        if not ids:
            return []
        if job_id is not None:
            conn.execute(sa.update(_T).where(_T.c.id.in_(ids), _T.c.job_id.is_(None)).values(job_id=job_id))
        if status is not None:
            now = utcnow()
            for row in conn.execute(
                sa.select(_T.c.id, _T.c.started_at, _T.c.error).where(
                    _T.c.id.in_(ids), _T.c.status.in_(list(replace))
                )
            ).all():
                conn.execute(
                    sa.update(_T)
                    .where(_T.c.id == row.id)
                    .values(
                        status=status,
                        finished_at=now,
                        error=row.error or error,
                        duration_s=(now - row.started_at).total_seconds(),
                    )
                )
    return ids


def list_runs(
    engine: Engine,
    *,
    connection_id: int | None = None,
    job_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[Any]:
    """The newest runs first (of one connection, some jobs, or since a time)."""
    q = sa.select(_T).order_by(_T.c.started_at.desc(), _T.c.id.desc()).limit(limit)
    if connection_id is not None:
        q = q.where(_T.c.connection_id == connection_id)
    if job_ids is not None:
        q = q.where(_T.c.job_id.in_(list(job_ids)))
    if since is not None:
        q = q.where(_T.c.started_at >= since)
    with engine.connect() as conn:
        return list(conn.execute(q).all())


class Stopwatch:
    """Wall-clock seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
