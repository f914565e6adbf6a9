"""Bench section "scoring": full scoring time, one-account rescoring time, and score quality on a world.

Quality is measured against the world's latent health and experience (Spearman) and against
what happened after a point-in-time as-of date (backtest AUC for churn).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import Connection, Workspace, utcnow
from connector.store import upsert_records
from sandbox.world import DEFAULT_NOW, Bundle, generate

OBJECTS = ("account", "contact", "deal", "case", "activity")


def load_world(engine: Engine, bundles: Iterable[Bundle], *, name: str = "bench-world",
               batch: int = 500) -> tuple[int, dict[str, tuple[float, float]]]:
    """Store world bundles as the unified rows of a new connection; returns its id and the latent
    (health, experience) of each account key (for measuring, never for scoring)."""
    with engine.begin() as conn:
        ws = conn.execute(sa.insert(Workspace.__table__).values(name=name, created_at=utcnow())  # type: ignore[attr-defined]
                          .returning(Workspace.__table__.c.id)).scalar_one()  # type: ignore[attr-defined]
        cid = conn.execute(sa.insert(Connection.__table__).values(  # type: ignore[attr-defined]
            workspace_id=ws, name=name, kind="salesforce", credentials_encrypted="", options={}, status="active",
            created_at=utcnow(), updated_at=utcnow()).returning(Connection.__table__.c.id)).scalar_one()  # type: ignore[attr-defined]
    latent: dict[str, tuple[float, float]] = {}
    pending: dict[str, list[dict[str, Any]]] = {o: [] for o in OBJECTS}
    from sandbox.world import unified_rows

    def flush() -> None:
        with engine.begin() as conn:
            for o in OBJECTS:
                upsert_records(conn, o, pending[o])
                pending[o].clear()

    synced = utcnow()
    for i, bundle in enumerate(bundles, start=1):
        latent[bundle.account.key] = (bundle.account.health, bundle.account.experience)
        for o, rows in unified_rows(bundle, cid, synced_at=synced).items():
            pending[o].extend(rows)
        if i % batch == 0:
            flush()
    flush()
    return int(cid), latent


def world(size: str, seed: int = 0, now: datetime = DEFAULT_NOW) -> Iterable[Bundle]:
    """The world's bundles (a thin alias kept here so the section reads top-down)."""
    return generate(size, seed, now=now)
