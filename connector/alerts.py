"""Score-drop alerts: when a key (A-tier) account's relationship score falls by a configured number
of points, create one follow-up task for the record owner, with the drivers in its body.

A drop is measured from the account's highest A-tier score since its last alert (within a
look-back window), so one fall makes one task, and a further fall needs another full drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from adapters.base import Adapter, TaskSpec
from connector.errors import RapportError
from connector.model import Account, Score, ScoreAlert, ScoreHistory, utcnow

DEFAULT_DROP_POINTS = 10.0
LOOKBACK = timedelta(days=30)

_A = ScoreAlert.__table__  # type: ignore[attr-defined]
_H = ScoreHistory.__table__  # type: ignore[attr-defined]
_S = Score.__table__  # type: ignore[attr-defined]
_ACC = Account.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Drop:
    """One account whose relationship score fell far enough from its baseline."""

    external_id: str
    name: str | None
    owner_id: str | None
    baseline: float
    baseline_at: datetime
    current: float
    drivers: list[Any]


def detect_drops(engine: Engine, connection_id: int, *, points: float = DEFAULT_DROP_POINTS, now: datetime | None = None) -> list[Drop]:
    """Accounts that were A-tier and whose relationship score fell by at least `points` since the baseline."""
    now = now or utcnow()
    last_alert = (
        sa.select(_A.c.external_id, sa.func.max(_A.c.created_at).label("at"))
        .where(_A.c.connection_id == connection_id, _A.c.object == "account")
        .group_by(_A.c.external_id)
        .subquery()
    )
    since = sa.func.coalesce(last_alert.c.at, now - LOOKBACK)
    window = (
        sa.select(_H.c.external_id, _H.c.relationship, _H.c.scored_at)
        .outerjoin(last_alert, last_alert.c.external_id == _H.c.external_id)
        .where(
            _H.c.connection_id == connection_id,
            _H.c.object == "account",
            _H.c.tier == "A",
            _H.c.relationship.is_not(None),
            _H.c.scored_at >= now - LOOKBACK,
            _H.c.scored_at > since,
        )
        .subquery()
    )
    peak = sa.select(window.c.external_id, sa.func.max(window.c.relationship).label("peak")).group_by(window.c.external_id).subquery()
    query = (
        sa.select(_S.c.external_id, _S.c.relationship, _S.c.drivers, peak.c.peak, _ACC.c.name, _ACC.c.owner_id)
        .join(peak, peak.c.external_id == _S.c.external_id)
        .join(_ACC, sa.and_(_ACC.c.connection_id == _S.c.connection_id, _ACC.c.external_id == _S.c.external_id))
        .where(_S.c.connection_id == connection_id, _S.c.object == "account", _ACC.c.is_deleted.is_(False))
        .where(peak.c.peak - _S.c.relationship >= points)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        drops = []
        for r in rows:
            baseline_at = conn.execute(
                sa.select(sa.func.max(_H.c.scored_at)).where(
                    _H.c.connection_id == connection_id, _H.c.object == "account",
                    _H.c.external_id == r.external_id, _H.c.relationship == r.peak, _H.c.tier == "A",
                )
            ).scalar_one()
            drops.append(Drop(r.external_id, r.name, r.owner_id, float(r.peak), baseline_at, float(r.relationship), r.drivers or []))
    return drops


def task_for(drop: Drop) -> TaskSpec:
    """The follow-up task a rep sees in the CRM."""
    reasons = "\n".join(f"• {d.get('text', d)}" if isinstance(d, dict) else f"• {d}" for d in drop.drivers[:3])
    subject = f"Relationship score of {drop.name or drop.external_id} dropped {drop.baseline:.0f} → {drop.current:.0f}"
    body = f"Rapport relationship score fell by {drop.baseline - drop.current:.0f} points.\nWhy:\n{reasons}"
    return TaskSpec(object="account", external_id=drop.external_id, subject=subject[:255], body=body, owner_id=drop.owner_id)


def raise_alerts(engine: Engine, adapter: Adapter, connection_id: int, *, points: float = DEFAULT_DROP_POINTS,
                 now: datetime | None = None) -> dict[str, int]:
    """Record each new drop once and create its task; a task that failed is retried on the next call."""
    now = now or utcnow()
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as conn:
        for d in detect_drops(engine, connection_id, points=points, now=now):
            conn.execute(
                insert(_A)
                .values(connection_id=connection_id, object="account", external_id=d.external_id, baseline=d.baseline,
                        baseline_at=d.baseline_at, current=d.current, status="pending", created_at=now)
                .on_conflict_do_nothing(index_elements=["connection_id", "object", "external_id", "baseline_at"])
            )
        todo = list(conn.execute(sa.select(_A).where(_A.c.connection_id == connection_id, _A.c.status != "created")))
    created = failed = 0
    for alert in todo:
        with engine.connect() as conn:
            score = conn.execute(sa.select(_S.c.drivers).where(
                _S.c.connection_id == connection_id, _S.c.object == "account", _S.c.external_id == alert.external_id)).scalar()
            acc = conn.execute(sa.select(_ACC.c.name, _ACC.c.owner_id).where(
                _ACC.c.connection_id == connection_id, _ACC.c.external_id == alert.external_id)).one_or_none()
        drop = Drop(alert.external_id, acc.name if acc else None, acc.owner_id if acc else None,
                    alert.baseline, alert.baseline_at, alert.current, score or [])
        try:
            task_id = adapter.create_task(task_for(drop))
            values: dict[str, Any] = dict(status="created", task_id=task_id, error=None)
            created += 1
        except RapportError as exc:
            values = dict(status="failed", error=str(exc)[:2000])
            failed += 1
        with engine.begin() as conn:
            conn.execute(sa.update(_A).where(_A.c.id == alert.id).values(**values))
    return {"created": created, "failed": failed}
