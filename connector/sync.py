"""The sync engine: pull each mapped object's changes page by page, apply them, one run row per run.

Incremental runs read a window from each object's cursor (rules in connector.cursors) up to a
bound frozen when the run starts; each page's rows and cursor commit together. Full runs read
everything, then ask the CRM about the records it no longer returned and mark the gone ones
deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import Adapter, Change
from connector import cursors, store
from connector.config import Settings
from connector.connections import get_connection, open_adapter
from connector.errors import BudgetExhausted, ConfigError, MappingError, SkippableError
from connector.mappings import COLUMNS, Mapping, apply, load_mapping
from connector.model import RECORD_MODELS, UNIFIED_OBJECTS, utcnow
from connector.records import COUNT_KEYS, Tally, apply_page, normalize, unresolved, with_read_values
from connector.runs import close_run, heartbeat, open_run

log = logging.getLogger(__name__)
SWEEP_BATCH = 200
REAPPLY_BATCH = 1000
HEARTBEAT_S = 5.0  # well inside the stale-run limit, without a write per page


def sync_connection(
    engine: Engine,
    settings: Settings,
    connection_id: int,
    *,
    full: bool = False,
    objects: Sequence[str] | None = None,
    trigger: str = "manual",
    adapter: Adapter | None = None,
    job_id: str | None = None,
    until: datetime | None = None,
    reconcile: bool = False,
) -> int:
    """Pull and apply changes of every mapped object (or `objects`); return the sync_run id.

    A `reconcile` run is an incremental one that also sweeps for deletions the window's reads do
    not show (HubSpot's archived records), to catch what a lost deletion webhook missed.

    `until` is the frozen upper bound of the window (default: now). Retriable failures close the
    run as failed (paused when the API budget is spent) and are raised again for the job to
    retry; cursors already committed stay.
    """
    row = get_connection(engine, connection_id)
    assert row.id is not None
    kind = "sync_full" if full else "reconcile" if reconcile else "sync_incremental"
    run_id = open_run(engine, row.id, kind, trigger=trigger, job_id=job_id)
    tally, calls_before, starts = Tally(), None, []
    bound = until or utcnow()
    try:
        mapping = load_mapping(engine, row.id, row.kind)
        wanted = _objects(mapping, objects)
        adapter = adapter or open_adapter(engine, settings, row.id)
        if hasattr(adapter, "read_mapping"):
            adapter.read_mapping = mapping.read  # the adapter selects what the stored mapping reads
        calls_before = adapter.api_calls
        for object in wanted:
            try:
                starts.append(_sync_object(engine, settings, adapter, run_id, row.id, object, mapping, tally,
                                           full=full, until=bound, reconcile=reconcile))
            except MappingError as exc:  # this object's mapping cannot work; the other objects still sync
                log.warning("sync of %s %s skipped: %s", row.name, object, exc)
                tally.errors.append({"object": object, "error": "MappingError", "message": str(exc)})
    except BaseException as exc:
        status = "paused" if isinstance(exc, BudgetExhausted) else "failed"
        calls = adapter.api_calls - calls_before if adapter is not None and calls_before is not None else 0
        close_run(engine, run_id, status, counts=tally.counts, api_calls=calls, errors=tally.errors,
                  error=f"{type(exc).__name__}: {exc}", window=(_first(starts), bound))
        raise
    close_run(engine, run_id, "partial" if tally.errors else "succeeded", counts=tally.counts,
              api_calls=adapter.api_calls - calls_before, errors=tally.errors, window=(_first(starts), bound))
    return run_id


def _first(starts: list[datetime | None]) -> datetime | None:
    known = [s for s in starts if s is not None]
    return min(known) if known else None


def _objects(mapping: Mapping, objects: Sequence[str] | None) -> list[str]:
    mapped = mapping.objects()
    if objects is None:
        return mapped
    for object in objects:
        if object not in UNIFIED_OBJECTS:
            raise ConfigError(f"unknown object {object!r}", hint=f"use one of {', '.join(UNIFIED_OBJECTS)}")
        if object not in mapped:
            raise ConfigError(f"{object} has no read mapping on this connection", object=object,
                              hint="add one with `rapport mappings import`")
    return [o for o in mapped if o in objects]


def _sync_object(engine: Engine, settings: Settings, adapter: Adapter, run_id: int, connection_id: int, object: str,
                 mapping: Mapping, tally: Tally, *, full: bool, until: datetime,
                 reconcile: bool = False) -> datetime | None:
    started = utcnow()
    with engine.connect() as conn:
        cursor = cursors.load(conn, connection_id, object)
    since = cursors.window_start(cursor, settings.sync_lookback_seconds, full=full)
    ascending = cursors.saved_per_page(since)
    pages, beat = 0, time.monotonic()
    for page in adapter.pull(object, since, until, full=full, reconcile=reconcile and not full):
        changes = _read_unresolved(engine, adapter, connection_id, object, mapping,
                                   [normalize(c) for c in page.changes])
        with engine.begin() as conn:
            store.relax_commit(conn)  # the page and its cursor commit together: a lost commit is read again
            apply_page(conn, connection_id, object, changes, mapping, tally, cursor=None if full else cursor)
            cursor = cursors.advance(cursor, changes)
            if ascending:
                cursors.save(conn, connection_id, object, cursor)
        pages += 1
        if time.monotonic() - beat >= HEARTBEAT_S:
            heartbeat(engine, run_id, object=object, pages=pages, counts=tally.counts.get(object, {}))
            beat = time.monotonic()
    if not ascending:
        with engine.begin() as conn:
            cursors.save(conn, connection_id, object, cursors.after_whole_read(cursor, until))
    if full:
        _sweep(engine, adapter, connection_id, object, mapping, tally, started=started, until=until)
    # a bulk load leaves the planner without statistics: webhook jobs would scan whole tables
    store.refresh_statistics(engine, RECORD_MODELS[object].__table__.name)  # type: ignore[attr-defined]
    tally.counts.setdefault(object, dict.fromkeys(COUNT_KEYS, 0))
    return since


def _read_unresolved(engine: Engine, adapter: Adapter, connection_id: int, object: str, mapping: Mapping,
                     changes: list[Change]) -> list[Change]:
    """Changes whose unread derived values (`_rapport.keep`) nothing stored can supply, completed by a fetch."""
    with engine.connect() as conn:
        ids = set(unresolved(conn, connection_id, object, changes, mapping))
    if not ids:
        return changes
    read = {c.external_id: c for c in adapter.fetch(object, sorted(ids))}
    return [normalize(with_read_values(c, read.get(c.external_id))) if c.external_id in ids else c
            for c in changes]


def _sweep(engine: Engine, adapter: Adapter, connection_id: int, object: str, mapping: Mapping, tally: Tally,
           *, started: datetime, until: datetime) -> None:
    """After a full read: ask the CRM about live rows it did not return, and apply what it says."""
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    last = ""
    while True:
        with engine.connect() as conn:
            ids = list(conn.execute(
                sa.select(t.c.external_id)
                .where(t.c.connection_id == connection_id, t.c.is_deleted.is_(False), t.c.synced_at < started,
                       t.c.external_id > last)
                .order_by(t.c.external_id).limit(SWEEP_BATCH)
            ).scalars())
        if not ids:
            return
        last = ids[-1]
        found = {c.external_id: normalize(c) for c in adapter.fetch(object, ids)}
        # Not returned at all is gone too (the fetch contract returns missing ones as deleted).
        changes = [found.get(i) or Change(object, i, until, {}, deleted=True) for i in ids]
        with engine.begin() as conn:
            apply_page(conn, connection_id, object, changes, mapping, tally)


def apply_changes(engine: Engine, connection_id: int, object: str, changes: Sequence[Change], mapping: Mapping,
                  *, tally: Tally | None = None) -> dict[str, int]:
    """Apply changes fetched outside a sync (webhooks) in one transaction; return the counts."""
    tally = tally if tally is not None else Tally()
    with engine.begin() as conn:
        apply_page(conn, connection_id, object, [normalize(c) for c in changes], mapping, tally)
    return dict(tally.counts.get(object, {}))


def reapply(engine: Engine, connection_id: int, object: str, *, mapping: Mapping | None = None) -> Tally:
    """Re-derive the unified columns of one object from the stored raw records, without calling the CRM."""
    if mapping is None:
        mapping = load_mapping(engine, connection_id, get_connection(engine, connection_id).kind)
    if not mapping.read.get(object):
        raise ConfigError(f"{object} has no read mapping on this connection", object=object)
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    columns = [c for c in COLUMNS[object] if c != "modified_at"] + ["custom"]  # the stamp stays the CRM's
    has_fk = "account_id" in t.c
    stmt = sa.update(t).where(t.c.id == sa.bindparam("_id")).values(
        {c: sa.bindparam(f"v_{c}") for c in columns} | ({"account_id": None} if has_fk else {}))
    tally, last = Tally(), 0
    while True:
        with engine.begin() as conn:
            batch = conn.execute(sa.select(t.c.id, t.c.external_id, t.c.raw)
                                 .where(t.c.connection_id == connection_id, t.c.id > last)
                                 .order_by(t.c.id).limit(REAPPLY_BATCH)).all()
            if not batch:
                break
            rows: list[dict[str, Any]] = []
            for record_id, external_id, raw in batch:
                try:
                    derived = apply(mapping, object, raw)
                except SkippableError as exc:
                    tally.skip(object, external_id, exc)
                    continue
                rows.append({"_id": record_id, **{f"v_{c}": derived[c] for c in columns}})
            if rows:
                conn.execute(stmt, rows)
                tally.add(object, "updated", len(rows))
            if has_fk:
                store.link_accounts(conn, connection_id, object, external_ids=[b.external_id for b in batch])
            last = batch[-1].id
    return tally
