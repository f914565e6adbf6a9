"""Run history in the admin app: status, counts, API calls, duration, failing records, live progress."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import RUN_KINDS, Connection, SyncRun, utcnow
from connector.web.services.common import MAX_ID, Invalid, NotFound, connection_row, iso, record_id

_R = SyncRun.__table__  # type: ignore[attr-defined]
_C = Connection.__table__  # type: ignore[attr-defined]
STATUSES = ("running", "succeeded", "partial", "failed", "paused", "retrying")
PAGE = 50
MAX_ERRORS_SHOWN = 200


def _failures(errors: list[Any]) -> list[dict[str, Any]]:
    """Failing records as one shape, whatever step recorded them (sync skips, write-back refusals)."""
    out = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        if not isinstance(e, dict):
            out.append({"record": None, "object": None, "code": None, "message": str(e)})
            continue
        out.append({"record": e.get("external_id") or e.get("id"), "object": e.get("object"),
                    "code": e.get("code") or e.get("error"), "message": e.get("message") or ""})
    return out


def _view(r: Any, *, full: bool) -> dict[str, Any]:
    running = r.status == "running"
    duration = r.duration_s
    if running and r.started_at is not None:
        duration = (utcnow() - r.started_at).total_seconds()
    view = {"id": int(r.id), "connection_id": int(r.connection_id), "connection": r.connection_name, "kind": r.kind,
            "status": r.status, "trigger": r.trigger, "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at), "duration_s": round(duration, 2) if duration is not None else None,
            "api_calls": int(r.api_calls or 0), "counts": r.counts or {}, "error": r.error,
            "failed_records": len(r.errors or []), "progress": (r.progress or {}) if running else {}}
    if full:
        view |= {"job_id": r.job_id, "heartbeat_at": iso(r.heartbeat_at), "window_start": iso(r.window_start),
                 "window_end": iso(r.window_end), "failures": _failures(list(r.errors or []))}
    return view


def _base() -> sa.Select:
    return sa.select(_R, _C.c.name.label("connection_name")).join(_C, _C.c.id == _R.c.connection_id)


def list_runs(engine: Engine, ws: int, *, connection_id: Any = None, kind: str | None = None,
              status: str | None = None, before: Any = None, limit: Any = PAGE) -> dict[str, Any]:
    """The workspace's runs, newest first, filtered; `before` (a run id) pages back."""
    errors: dict[str, str] = {}
    if kind and kind not in RUN_KINDS:
        errors["kind"] = f"use one of {', '.join(RUN_KINDS)}"
    if status and status not in STATUSES:
        errors["status"] = f"use one of {', '.join(STATUSES)}"
    try:
        limit = max(1, min(int(limit), 200))
    except (TypeError, ValueError):
        errors["limit"] = "a number from 1 to 200"
    try:
        before_id = int(before) if before not in (None, "") else None
    except (TypeError, ValueError):
        before_id, errors["before"] = None, "a run id"
    if before_id is not None and not 0 < before_id <= MAX_ID:
        errors["before"] = f"a run id from 1 to {MAX_ID}"
    if errors:
        raise Invalid("bad filter", errors)
    q = _base().where(_C.c.workspace_id == ws)
    if connection_id not in (None, ""):
        q = q.where(_R.c.connection_id == int(connection_row(engine, ws, connection_id).id))
    if kind:
        q = q.where(_R.c.kind == kind)
    if status:
        q = q.where(_R.c.status == status)
    if before_id is not None:
        q = q.where(_R.c.id < before_id)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(_R.c.id.desc()).limit(limit + 1)).all()
    runs = [_view(r, full=False) for r in rows[:limit]]
    return {"runs": runs, "next_before": runs[-1]["id"] if len(rows) > limit else None}


def get_run(engine: Engine, ws: int, run_id: Any) -> dict[str, Any]:
    """One run of the workspace with its failing records."""
    rid = record_id(run_id, "run")
    with engine.connect() as conn:
        row = conn.execute(_base().where(_R.c.id == rid, _C.c.workspace_id == ws)).first()
    if row is None:
        raise NotFound(f"there is no run {rid} in this workspace")
    return _view(row, full=True)


def running(engine: Engine, ws: int) -> int:
    """How many of the workspace's runs are going now."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(_R.join(_C, _C.c.id == _R.c.connection_id))
                                .where(_C.c.workspace_id == ws, _R.c.status == "running")).scalar_one())
