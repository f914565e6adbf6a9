"""Shared by the sync and storage tests: a memory connection, the world's unified rows, and a comparison of
the unified tables with the fake CRM."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import adapters
from connector import connections
from connector.config import Settings
from connector.mappings import Mapping, apply, load_mapping
from connector.model import RECORD_MODELS, Score, ScoreHistory, utcnow
from sandbox.memory import MemoryAdapter, MemoryCRM
from sandbox.world import generate, unified_rows

MEMORY = "sandbox.memory:MemoryAdapter"
SYNCED = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)


def world_rows(connection_id: int, *, seed: int = 5, accounts: int = 6) -> dict[str, list[dict]]:
    """The unified rows of a few accounts of the small world, for `connection_id`, as a sync stores them."""
    rows: dict[str, list[dict]] = defaultdict(list)
    for bundle in generate("small", seed, accounts=accounts):
        for name, object_rows in unified_rows(bundle, connection_id, synced_at=SYNCED).items():
            rows[name].extend(object_rows)
    return rows


def memory_connection(engine: Engine, settings: Settings, crm: MemoryCRM, name: str = "mem",
                      secrets: dict[str, Any] | None = None) -> tuple[int, MemoryAdapter]:
    """A connection of kind "memory" (the caller has put it into ADAPTERS) and an adapter over `crm`."""
    assert adapters.ADAPTERS.get("memory") == MEMORY, "monkeypatch ADAPTERS['memory'] first"
    cid = connections.create_connection(engine, settings, kind="memory", name=name, secrets=secrets or {})
    info = connections.connection_info(connections.get_connection(engine, cid))
    return cid, MemoryAdapter(info, secrets or {}, crm=crm)


def rows(engine: Engine, object: str, connection_id: int) -> dict[str, dict[str, Any]]:
    """The unified rows of one object, by external id."""
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        found = conn.execute(sa.select(t).where(t.c.connection_id == connection_id)).mappings().all()
    return {r["external_id"]: dict(r) for r in found}


def mismatches(engine: Engine, crm: MemoryCRM, connection_id: int, objects: Iterable[str], *,
               until: datetime | None = None, purged: Iterable[str] = (), mapping: Mapping | None = None) -> list[str]:
    """Every way the unified tables differ from the CRM (records stamped at or after `until` excepted).

    `purged` ids (emptied from the recycle bin) must be marked deleted; other rows the CRM does
    not know are an error.
    """
    mapping = mapping or load_mapping(engine, connection_id, "memory")
    purged = set(purged)
    problems: list[str] = []
    accounts = rows(engine, "account", connection_id)
    for object in objects:
        have = rows(engine, object, connection_id)
        for external_id, rec in crm.records[object].items():
            if until is not None and rec.stamp >= until:
                continue
            row = have.get(external_id)
            if rec.deleted:
                if row is not None and (not row["is_deleted"] or row["merged_into"] != rec.merged_into):
                    problems.append(f"{object} {external_id}: deleted (into {rec.merged_into}) in the CRM, "
                                    f"is_deleted={row['is_deleted']} merged_into={row['merged_into']} here")
                continue
            if row is None:
                problems.append(f"{object} {external_id}: missing")
                continue
            if row["is_deleted"]:
                problems.append(f"{object} {external_id}: live in the CRM, deleted here")
            if row["modified_at"] != rec.stamp:
                problems.append(f"{object} {external_id}: stamp {row['modified_at']} here, {rec.stamp} in the CRM")
            want = apply(mapping, object, crm.change(object, external_id).raw)
            for key, value in want.items():
                if key != "modified_at" and row[key] != value:  # the stamp always comes from the change
                    problems.append(f"{object} {external_id}.{key}: {row[key]!r} here, {value!r} in the CRM")
        for external_id, row in have.items():
            if external_id not in crm.records[object]:
                if external_id not in purged:
                    problems.append(f"{object} {external_id}: unknown to the CRM")
                elif not row["is_deleted"]:
                    problems.append(f"{object} {external_id}: purged from the CRM, live here")
            if "account_id" in row:
                parent = accounts.get(row["account_external_id"] or "")
                if row["account_id"] != (parent["id"] if parent else None):
                    problems.append(f"{object} {external_id}: account_id {row['account_id']} does not match "
                                    f"{row['account_external_id']}")
    return problems


def add_score(engine: Engine, connection_id: int, object: str, external_ids: str | list[str], value: float) -> None:
    """Current scores (replacing any) and history snapshots for these records, as a scoring run writes them."""
    ids = [external_ids] if isinstance(external_ids, str) else external_ids
    if not ids:
        return
    s, h = Score.__table__, ScoreHistory.__table__  # type: ignore[attr-defined]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.delete(s).where(s.c.connection_id == connection_id, s.c.object == object,
                                        s.c.external_id.in_(ids)))
        conn.execute(sa.insert(s), [dict(connection_id=connection_id, object=object, external_id=i, relationship=value,
                                         drivers=[], components={}, scored_at=now) for i in ids])
        conn.execute(sa.insert(h), [dict(connection_id=connection_id, object=object, external_id=i, relationship=value,
                                         scored_at=now) for i in ids])


def scores(engine: Engine, connection_id: int) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """(current scores, history) as sorted (object, external_id, relationship) tuples."""
    s, h = Score.__table__, ScoreHistory.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        cur = conn.execute(sa.select(s.c.object, s.c.external_id, s.c.relationship)
                           .where(s.c.connection_id == connection_id)).all()
        hist = conn.execute(sa.select(h.c.object, h.c.external_id, h.c.relationship)
                            .where(h.c.connection_id == connection_id)).all()
    return sorted(map(tuple, cur)), sorted(map(tuple, hist))  # type: ignore[arg-type]
