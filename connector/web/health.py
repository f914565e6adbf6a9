"""`/healthz`: the database and Redis both answer; 503 naming what does not."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify

from connector.queues import queues_for, redis_for

bp = Blueprint("health", __name__)


def _reason(exc: Exception) -> str:
    # The first line only: driver messages name host and port, never the password.
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"down: {type(exc).__name__}: {first}" if first else f"down: {type(exc).__name__}"


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the database and Redis answer, 503 naming what does not; queue depths for information."""
    settings = current_app.config["RAPPORT_SETTINGS"]
    checks: dict[str, str] = {}
    try:
        with current_app.extensions["rapport_engine"].connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means the database is down for us
        checks["database"] = _reason(exc)
    queued: dict[str, int] = {}
    try:
        redis_for(settings).ping()
        checks["redis"] = "ok"
        queued = {q.name: q.count for q in queues_for(settings)}
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = _reason(exc)
    down = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "ok" if not down else f"{' and '.join(down)} down", "checks": checks, "queued": queued}
    return jsonify(body), 200 if not down else 503
