"""Versioned scoring models per workspace: the published one scores, drafts are edited and backtested first."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.engine import Engine

from connector.errors import ConfigError
from connector.model import Connection, ScoreModel, utcnow
from enrichment.params import default_params, validate_params

_M = ScoreModel.__table__  # type: ignore[attr-defined]
_C = Connection.__table__  # type: ignore[attr-defined]


def workspace_of(conn: SAConnection, connection_id: int) -> int:
    """The workspace a connection belongs to."""
    ws = conn.execute(sa.select(_C.c.workspace_id).where(_C.c.id == connection_id)).scalar()
    if ws is None:
        raise ConfigError(f"connection {connection_id} does not exist", hint="list them with `rapport connections`")
    return int(ws)


def published(conn: SAConnection, workspace_id: int) -> tuple[int, dict[str, Any]]:
    """(version, validated params) of the newest published model; creates version 1 from the defaults if none."""
    row = conn.execute(
        sa.select(_M.c.version, _M.c.params)
        .where(_M.c.workspace_id == workspace_id, _M.c.status == "published")
        .order_by(_M.c.version.desc())
        .limit(1)
    ).first()
    if row is not None:
        return int(row.version), validate_params(row.params)
    if conn.execute(sa.select(sa.func.count()).where(_M.c.workspace_id == workspace_id)).scalar():
        raise ConfigError(
            f"workspace {workspace_id} has score model drafts but none is published",
            hint="publish one with `rapport score-model publish NAME VERSION`",
        )
    params = default_params()
    now = utcnow()
    conn.execute(sa.insert(_M).values(workspace_id=workspace_id, version=1, status="published", params=params,
                                      note="defaults", created_at=now, published_at=now))
    return 1, validate_params(params)


def get(conn: SAConnection, workspace_id: int, version: int | None = None) -> dict[str, Any]:
    """One model row as a dict (the newest version when none is given)."""
    q = sa.select(_M).where(_M.c.workspace_id == workspace_id)
    q = q.where(_M.c.version == version) if version is not None else q.order_by(_M.c.version.desc()).limit(1)
    row = conn.execute(q).mappings().first()
    if row is None:
        raise ConfigError(f"score model version {version} does not exist in workspace {workspace_id}",
                          hint="see the versions with `rapport score-model show NAME`")
    return dict(row)


def versions(conn: SAConnection, workspace_id: int) -> list[dict[str, Any]]:
    """Every version of the workspace's model, oldest first."""
    q = sa.select(_M.c.version, _M.c.status, _M.c.note, _M.c.created_at, _M.c.published_at).where(
        _M.c.workspace_id == workspace_id).order_by(_M.c.version)
    return [dict(r) for r in conn.execute(q).mappings()]


def create_draft(engine: Engine, workspace_id: int, edits: dict[str, Any], *, note: str | None = None,
                 created_by: str | None = None) -> int:
    """A new draft version: the published parameters with `edits` applied; invalid edits raise and store nothing."""
    with engine.begin() as conn:
        _, base = published(conn, workspace_id)
        params = validate_params(_deep_merge(base, edits))
        version = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(_M.c.version), 0)).where(
            _M.c.workspace_id == workspace_id)).scalar_one()) + 1
        conn.execute(sa.insert(_M).values(workspace_id=workspace_id, version=version, status="draft", params=params,
                                          note=note, created_by=created_by, created_at=utcnow()))
    return version


def publish(engine: Engine, workspace_id: int, version: int) -> None:
    """Make a version the one that scores; the previously published one is retired."""
    with engine.begin() as conn:
        row = get(conn, workspace_id, version)
        validate_params(row["params"])
        conn.execute(sa.update(_M).where(_M.c.workspace_id == workspace_id, _M.c.status == "published")
                     .values(status="retired"))
        conn.execute(sa.update(_M).where(_M.c.id == row["id"]).values(status="published", published_at=utcnow()))


def _deep_merge(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in edits.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
