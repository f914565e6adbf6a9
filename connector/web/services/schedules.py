"""Schedules in the admin app: cron in plain words with the next five runs, add, enable/disable, run now."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cron_descriptor import Options, get_description
from croniter import croniter
from sqlalchemy.engine import Engine

from connector import schedules as core
from connector.config import Settings
from connector.errors import ConfigError
from connector.model import Connection, Schedule, utcnow
from connector.queues import RUN_KINDS
from connector.web.services.common import Invalid, NotFound, connection_row, iso, record_id

_T = Schedule.__table__  # type: ignore[attr-defined]
_C = Connection.__table__  # type: ignore[attr-defined]
KIND_WORDS = {
    "sync_incremental": "incremental sync", "sync_full": "full sync", "reconcile": "reconcile (catch missed changes)",
    "score": "rescore", "writeback": "write-back", "run": "sync, score and write back",
}
NEXT_RUNS = 5


def describe_cron(expr: str, now: datetime | None = None) -> dict[str, Any]:
    """The expression in plain words and its next five run times (UTC); Invalid naming the bad part."""
    try:
        cron = core.validate_cron(expr)
    except ConfigError as exc:
        raise Invalid("the cron expression is not valid", {"cron": exc.message + (f"; {exc.hint}" if exc.hint else "")}) \
            from None
    options = Options()
    options.use_24hour_time_format = True
    words = get_description(cron, options)
    it = croniter(cron, now or utcnow())
    upcoming = [it.get_next(datetime) for _ in range(NEXT_RUNS)]
    return {"cron": cron, "description": f"{words} (UTC)", "next_runs": [t.isoformat() for t in upcoming]}


def _row(engine: Engine, ws: int, schedule_id: Any) -> sa.Row:
    sid = record_id(schedule_id, "schedule")
    with engine.connect() as conn:
        row = conn.execute(sa.select(_T, _C.c.name.label("connection_name")).join(_C, _C.c.id == _T.c.connection_id)
                           .where(_T.c.id == sid, _C.c.workspace_id == ws)).first()
    if row is None:
        raise NotFound(f"there is no schedule {sid} in this workspace")
    return row


def _view(row: sa.Row, now: datetime) -> dict[str, Any]:
    described = describe_cron(row.cron, now)
    return {"id": int(row.id), "connection_id": int(row.connection_id), "connection": row.connection_name,
            "kind": row.kind, "kind_words": KIND_WORDS.get(row.kind, row.kind), "cron": row.cron,
            "enabled": bool(row.enabled), "description": described["description"],
            "next_runs": described["next_runs"] if row.enabled else [], "last_slot": iso(row.last_slot),
            "created_at": iso(row.created_at)}


def list_schedules(engine: Engine, ws: int) -> list[dict[str, Any]]:
    """The workspace's schedules, oldest first, each described."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_T, _C.c.name.label("connection_name")).join(_C, _C.c.id == _T.c.connection_id)
                            .where(_C.c.workspace_id == ws).order_by(_T.c.id)).all()
    now = utcnow()
    return [_view(r, now) for r in rows]


def get_schedule(engine: Engine, ws: int, schedule_id: Any) -> dict[str, Any]:
    """One schedule of the workspace."""
    return _view(_row(engine, ws, schedule_id), utcnow())


def add_schedule(engine: Engine, ws: int, form: dict[str, Any]) -> int:
    """Add a schedule from the form (connection_id, kind, cron); Invalid with a message per field."""
    errors: dict[str, str] = {}
    connection_id = str(form.get("connection_id") or "").strip()
    try:
        cid = int(connection_row(engine, ws, connection_id).id) if connection_id else None
    except NotFound:
        cid = None
    if cid is None:
        errors["connection_id"] = "choose one of this workspace's connections"
    kind = str(form.get("kind") or "").strip()
    if kind not in RUN_KINDS:
        errors["kind"] = f"choose what to run: {', '.join(RUN_KINDS)}"
    cron = str(form.get("cron") or "")
    try:
        cron = describe_cron(cron)["cron"]
    except Invalid as exc:
        errors.update(exc.fields)
    if errors:
        raise Invalid("the schedule was not added: fix the fields marked", errors)
    assert cid is not None
    try:
        return core.add_schedule(engine, cid, kind, cron)
    except ConfigError as exc:
        raise Invalid("the schedule was not added", {"cron": exc.message}) from None


def set_enabled(engine: Engine, ws: int, schedule_id: Any, enabled: bool) -> dict[str, Any]:
    """Enable or disable a schedule; a re-enabled one starts from now, not from the slots it missed."""
    row = _row(engine, ws, schedule_id)
    values: dict[str, Any] = {"enabled": enabled}
    if enabled and not row.enabled:
        values["last_slot"] = core.latest_slot(row.cron, utcnow())
    with engine.begin() as conn:
        conn.execute(sa.update(_T).where(_T.c.id == row.id).values(**values))
    return get_schedule(engine, ws, row.id)


def remove_schedule(engine: Engine, ws: int, schedule_id: Any) -> None:
    """Delete a schedule of the workspace."""
    core.remove_schedule(engine, int(_row(engine, ws, schedule_id).id))


def run_now(settings: Settings, engine: Engine, ws: int, schedule_id: Any) -> list[str]:
    """Enqueue the schedule's run now; the job ids ([] when the same run is already waiting)."""
    row = _row(engine, ws, schedule_id)
    return core.run_now(settings, engine, int(row.id))
