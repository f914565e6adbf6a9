"""Hand-made unified rows for the scoring tests: a connection and records with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import Connection, Workspace
from connector.store import upsert_records

NOW = datetime(2025, 7, 1, 12, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    """NOW minus n days (negative: in the future)."""
    return NOW - timedelta(days=n)


def make_connection(engine: Engine, name: str = "acme-crm") -> int:
    """A workspace and one connection in it; returns the connection id."""
    with engine.begin() as conn:
        ws = conn.execute(sa.insert(Workspace.__table__).values(name=f"ws-{name}", created_at=NOW)  # type: ignore[attr-defined]
                          .returning(Workspace.__table__.c.id)).scalar_one()  # type: ignore[attr-defined]
        return int(conn.execute(sa.insert(Connection.__table__).values(  # type: ignore[attr-defined]
            workspace_id=ws, name=name, kind="salesforce", credentials_encrypted="", options={}, status="active",
            created_at=NOW, updated_at=NOW).returning(Connection.__table__.c.id)).scalar_one())  # type: ignore[attr-defined]


def add(engine: Engine, cid: int, object: str, *rows: dict[str, Any]) -> None:
    """Upsert unified rows of one object, filling connection id, raw and custom."""
    base = {"connection_id": cid, "custom": {}, "raw": {}, "is_deleted": False, "synced_at": NOW}
    keys = set(base).union(*rows)
    full = [{k: None for k in keys} | base | r for r in rows]  # one shape for the whole batch
    with engine.begin() as conn:
        upsert_records(conn, object, full)


def deal(ext: str, account: str, *, amount: float = 1000.0, won: bool | None = True, closed_days_ago: float = 30,
         created_days_ago: float = 60, deal_type: str = "new") -> dict[str, Any]:
    """A deal: won (True), lost (False) or open (None), closing `closed_days_ago` days before NOW."""
    return {"external_id": ext, "account_external_id": account, "amount": amount, "deal_type": deal_type,
            "is_closed": won is not None, "is_won": bool(won), "close_date": days_ago(closed_days_ago).date(),
            "created_at": days_ago(created_days_ago)}


def case(ext: str, account: str, *, priority: str = "medium", opened_days_ago: float = 20, closed_days_ago: float | None = 18,
         escalated: bool = False, reopens: int = 0, csat: float | None = None, contact: str | None = None) -> dict[str, Any]:
    """A support case, closed `closed_days_ago` days before NOW (None: still open)."""
    return {"external_id": ext, "account_external_id": account, "contact_external_id": contact, "priority": priority,
            "is_closed": closed_days_ago is not None, "is_escalated": escalated, "reopen_count": reopens,
            "satisfaction": csat, "opened_at": days_ago(opened_days_ago), "created_at": days_ago(opened_days_ago),
            "closed_at": None if closed_days_ago is None else days_ago(closed_days_ago)}


def activity(ext: str, account: str, *, days: float = 5, contact: str | None = None) -> dict[str, Any]:
    """A logged activity `days` days before NOW."""
    return {"external_id": ext, "account_external_id": account, "contact_external_id": contact, "kind": "call",
            "occurred_at": days_ago(days), "created_at": days_ago(days)}
