"""Errors and small helpers shared by the services: not found in this workspace, invalid input by field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import Connection

_C = Connection.__table__  # type: ignore[attr-defined]


class NotFound(Exception):
    """The thing does not exist in the caller's workspace (whether or not it exists elsewhere)."""


class Invalid(Exception):
    """Bad input: a message, and per form field what to fix."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


MAX_ID = 2**63 - 1  # the largest id a BIGINT (or SQLite INTEGER) holds


def record_id(value: Any, what: str) -> int:
    """A row id from a path or body value; NotFound naming `what` when it is not one (not a whole
    number, or outside what an id column holds, which the database could not even compare)."""
    try:
        ident = int(value)
    except (TypeError, ValueError):
        raise NotFound(f"there is no {what} {value!r}") from None
    if not 0 < ident <= MAX_ID:
        raise NotFound(f"there is no {what} {ident} in this workspace")
    return ident


def connection_row(engine: Engine, ws: int, connection_id: Any) -> sa.Row:
    """One connection of the workspace; NotFound for any other id."""
    cid = record_id(connection_id, "connection")
    with engine.connect() as conn:
        row = conn.execute(sa.select(_C).where(_C.c.id == cid, _C.c.workspace_id == ws)).first()
    if row is None:
        raise NotFound(f"there is no connection {cid} in this workspace")
    return row


def connection_ids(engine: Engine, ws: int) -> list[tuple[int, str, str]]:
    """(id, name, kind) of the workspace's connections, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_C.c.id, _C.c.name, _C.c.kind).where(_C.c.workspace_id == ws)
                            .order_by(_C.c.id)).all()
    return [(int(r.id), r.name, r.kind) for r in rows]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime, or None."""
    return value.isoformat() if value is not None else None


def pick_connection(engine: Engine, ws: int, connection_id: Any) -> int | None:
    """The requested connection of the workspace, or its first one when none is asked for."""
    if connection_id not in (None, ""):
        return int(connection_row(engine, ws, connection_id).id)
    ids = connection_ids(engine, ws)
    return ids[0][0] if ids else None
