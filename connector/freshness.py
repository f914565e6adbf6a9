"""Freshness: webhook events → fetch the changed records → apply → rescore the touched accounts →
write back their scores, all in one job that takes every pending event of the connection at once.

Events are claimed atomically, so two jobs never process the same one; a claim left by a killed
worker is released after `STALE_CLAIM`. A change that leaves an account's mapped data as it was
(our own score write coming back as an echo) touches nothing, so nothing is rescored or written.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import Adapter, Change
from connector.alerts import DEFAULT_DROP_POINTS, raise_alerts
from connector.budget import call_interval
from connector.config import Settings
from connector.connections import get_connection, open_adapter
from connector.errors import RapportError, SkippableError
from connector.locks import RunLock
from connector.mappings import load_mapping
from connector.model import RECORD_MODELS, UNIFIED_OBJECTS, WebhookEvent, utcnow
from connector.queues import enqueue, job_id, redis_for
from connector.records import Tally
from connector.scoring import score_connection
from connector.sync import apply_changes
from connector.webhooks import flag_key, mark_arriving
from connector.writeback import SCORE_KEYS, targets_for, writeback_connection

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
FETCH_BATCH = 200
STALE_CLAIM = timedelta(minutes=2)
LOCK_WAIT_S = 60.0
# A batch costs about five calls whatever its size (the changed records read with their links, one
# write per scored object). Where the CRM limits calls over a short rolling window (HubSpot: 190 per
# 10 s), a connection's batches start at most once per BATCH_CALLS calls of its sustained rate (0.6 s
# on HubSpot), so a stream of changes coalesces into batches the budget sustains, leaving half of it
# for what grows with the changes and for other runs, instead of spending the window in a few seconds
# and holding every write for the rest of it.
BATCH_CALLS = 10
MERGED_ID_KEYS = ("merged_ids", "mergedObjectIds")  # where a merge event lists the records merged away
# and where it names the primary one, merged away too when the merge made a new record (HubSpot)
PRIMARY_ID_KEYS = ("primaryObjectId",)
_E = WebhookEvent.__table__  # type: ignore[attr-defined]


def release_stale_claims(engine: Engine, connection_id: int) -> int:
    """Put events claimed by a job that died back in the queue; return how many."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(_E)
            .where(_E.c.connection_id == connection_id, _E.c.status == "processing",
                   _E.c.claimed_at < utcnow() - STALE_CLAIM)
            .values(status="pending", claimed_by=None, claimed_at=None)
        ).rowcount


def claim(engine: Engine, connection_id: int, token: str, limit: int = CLAIM_BATCH) -> list[sa.Row]:
    """Atomically take up to `limit` pending events, oldest first."""
    with engine.begin() as conn:
        ids = sa.select(_E.c.id).where(_E.c.connection_id == connection_id, _E.c.status == "pending") \
            .order_by(_E.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        conn.execute(
            sa.update(_E).where(_E.c.id.in_(ids.scalar_subquery()), _E.c.status == "pending")
            .values(status="processing", claimed_by=token, claimed_at=utcnow(), attempts=_E.c.attempts + 1)
        )
        return list(conn.execute(sa.select(_E).where(_E.c.claimed_by == token, _E.c.status == "processing")
                                 .order_by(_E.c.id)))


def _finish(engine: Engine, ids: Sequence[int], status: str, error: str | None = None) -> None:
    if ids:
        with engine.begin() as conn:
            conn.execute(sa.update(_E).where(_E.c.id.in_(list(ids)))
                         .values(status=status, processed_at=utcnow(), error=error))


def is_echo(event: sa.Row, own_fields: set[str]) -> bool:
    """An update that only touched the fields Rapport writes (our own write coming back)."""
    changed = set((event.payload or {}).get("changed_fields") or ())
    return event.kind == "updated" and bool(changed) and changed <= own_fields


def _own_fields(engine: Engine, connection: Any) -> set[str]:
    return {f for targets in targets_for(engine, connection).values() for k, f in targets.items() if k in SCORE_KEYS}


def _changes(adapter: Adapter, object: str, events: Sequence[sa.Row]) -> list[Change]:
    """The current state of the records the events name, fetched (missing ones come back deleted).

    Deleted ones are asked for too: webhooks arrive in any order, and a deletion delivered after the
    record was restored must not bury it.
    """
    wanted = sorted({e.external_id for e in events if e.external_id})
    for e in events:  # a merge names the losers too: fetch them so they come back merged into the winner
        payload = e.payload or {}
        losers = [str(i) for key in MERGED_ID_KEYS for i in payload.get(key) or ()]
        losers += [str(payload[key]) for key in PRIMARY_ID_KEYS if payload.get(key)]
        wanted += [i for i in losers if i not in wanted and i != e.external_id]
    changes: list[Change] = []
    for start in range(0, len(wanted), FETCH_BATCH):
        changes += adapter.fetch(object, wanted[start:start + FETCH_BATCH])
    return changes


def _contacts_of(engine: Engine, connection_id: int, accounts: set[str]) -> list[str]:
    t = RECORD_MODELS["contact"].__table__  # type: ignore[attr-defined]
    found: list[str] = []
    ordered = sorted(accounts)
    with engine.connect() as conn:
        for start in range(0, len(ordered), 500):
            found += conn.execute(sa.select(t.c.external_id).where(
                t.c.connection_id == connection_id, t.c.account_external_id.in_(ordered[start:start + 500]),
                t.c.is_deleted.is_(False))).scalars().all()
    return found


def _hold(settings: Settings, connection_id: int, name: str, holder: str) -> RunLock | None:
    lock = RunLock(redis_for(settings), connection_id, name, holder=holder)
    deadline = time.monotonic() + LOCK_WAIT_S
    while not lock.acquire():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return lock


def process_pending(engine: Engine, settings: Settings, connection_id: int, *, adapter: Adapter | None = None,
                    holder: str | None = None) -> dict[str, Any]:
    """Process every pending event of the connection; returns counts (events, echoes, rescored, written)."""
    redis_for(settings).delete(flag_key(connection_id))  # from here on, a new event enqueues a new job
    mark_arriving(settings, connection_id)
    release_stale_claims(engine, connection_id)
    token = holder or uuid.uuid4().hex
    connection = get_connection(engine, connection_id)
    mapping = load_mapping(engine, connection_id, connection.kind)
    own = _own_fields(engine, connection)
    totals: dict[str, Any] = defaultdict(int)
    started = utcnow()
    window = coalesce_window(connection)
    try:
        while _any_pending(engine, connection_id, token) and _wait_turn(settings, connection_id, window, token) \
                and (events := claim(engine, connection_id, token)):
            # Claimed before this run (by this job before its worker died) or tried before: whatever
            # that try applied counts as changed, since applying it again changes nothing.
            again = {e.id for e in events if e.attempts > 1 or (e.claimed_at is not None and e.claimed_at < started)}
            adapter = _process(engine, settings, connection, mapping, own, events, adapter, token, totals, again)
    except BaseException:
        unclaim(engine, token)
        raise
    finally:
        _give_turn_back(settings, connection_id, token)  # a turn whose claim found nothing: the next job need not wait
    return dict(totals)


def coalesce_window(connection: Any) -> float:
    """Seconds between the starts of a connection's batches (option `webhook_coalesce_s`, else from its budget)."""
    option = (connection.options or {}).get("webhook_coalesce_s")
    return float(option) if option is not None else BATCH_CALLS * call_interval(connection)


def _any_pending(engine: Engine, connection_id: int, token: str) -> bool:
    """Events left to claim, or claimed by this job already (before its worker died)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(_E.c.id).where(_E.c.connection_id == connection_id, sa.or_(
            _E.c.status == "pending", sa.and_(_E.c.claimed_by == token, _E.c.status == "processing"))).limit(1)
        ).first() is not None


def _turn_key(connection_id: int) -> str:
    return f"rapport:webhook-turn:{connection_id}"


def _wait_turn(settings: Settings, connection_id: int, window: float, token: str) -> bool:
    """Wait until a batch of the connection may start (one per `window` across workers); always True."""
    if window > 0:
        conn = redis_for(settings)
        while not conn.set(_turn_key(connection_id), token, nx=True, px=max(1, round(window * 1000))):
            left = conn.pttl(_turn_key(connection_id))
            time.sleep(left / 1000 if isinstance(left, int) and left > 0 else 0.001)
    return True


def _give_turn_back(settings: Settings, connection_id: int, token: str) -> None:
    conn = redis_for(settings)
    if conn.get(_turn_key(connection_id)) == token.encode():
        conn.delete(_turn_key(connection_id))


def unclaim(engine: Engine, token: str) -> None:
    """Hand the events a failed job had claimed back to the queue."""
    with engine.begin() as conn:
        conn.execute(sa.update(_E).where(_E.c.claimed_by == token, _E.c.status == "processing")
                     .values(status="pending", claimed_by=None, claimed_at=None))


def _process(engine: Engine, settings: Settings, connection: Any, mapping: Any, own: set[str],
             events: list[sa.Row], adapter: Adapter | None, token: str, totals: dict[str, Any],
             again: set[int]) -> Adapter:
    """One claimed batch: drop echoes, fetch and apply the rest, rescore and write back what changed.

    The events are marked processed only once their accounts are rescored and written back, so a
    worker killed before that leaves them claimed and the job run again finishes the work.
    """
    connection_id = connection.id
    echo = [e.id for e in events if is_echo(e, own)]
    unmapped = [e.id for e in events if e.id not in echo and e.object not in mapping.objects()]
    _finish(engine, echo, "ignored", "echo of Rapport's own write")
    _finish(engine, unmapped, "ignored", "object not mapped on this connection")
    work = [e for e in events if e.id not in echo and e.id not in unmapped]
    by_object: dict[str, list[sa.Row]] = defaultdict(list)
    for e in work:
        by_object[e.object].append(e)
    stages: dict[str, float] = defaultdict(float)  # seconds per step, logged per batch
    with _timed(stages, "open"):
        adapter = adapter or open_adapter(engine, settings, connection_id)
    tally = Tally()
    for object in [o for o in UNIFIED_OBJECTS if o in by_object]:  # accounts first: children link to them
        try:
            with _timed(stages, "fetch"):
                changes = _changes(adapter, object, by_object[object])
            with _timed(stages, "apply"):
                apply_changes(engine, connection_id, object, changes, mapping, tally=tally)
        except SkippableError as exc:
            _finish(engine, [e.id for e in by_object[object]], "failed", str(exc))
            del by_object[object]
    done = [e for objs in by_object.values() for e in objs]
    touched = tally.touched | _accounts_of(engine, connection_id, [e for e in done if e.id in again])
    if touched:
        totals.update(_rescore(engine, settings, connection, adapter, touched, token, totals, stages))
    with _timed(stages, "finish"):
        _finish(engine, [e.id for e in done], "processed")
    log.info("webhook batch of connection %s: %d events (%d echoes), %d accounts rescored; %s", connection_id,
             len(events), len(echo), len(touched), " ".join(f"{k} {v:.3f}s" for k, v in stages.items()))
    totals["events"] += len(events)
    totals["echoes"] += len(echo)
    totals["skipped"] += len(tally.errors)
    return adapter


@contextmanager
def _timed(stages: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[step] += time.perf_counter() - start


def _accounts_of(engine: Engine, connection_id: int, events: Sequence[sa.Row]) -> set[str]:
    """The accounts the events' records belong to (the records themselves, for accounts)."""
    found = {e.external_id for e in events if e.object == "account" and e.external_id}
    by_object: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.object != "account" and e.external_id:
            by_object[e.object].add(e.external_id)
    with engine.connect() as conn:
        for object, ids in by_object.items():
            t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
            if "account_external_id" in t.c:
                found.update(conn.execute(sa.select(t.c.account_external_id).where(
                    t.c.connection_id == connection_id, t.c.external_id.in_(sorted(ids)))).scalars())
    return {a for a in found if a}


def _rescore(engine: Engine, settings: Settings, connection: Any, adapter: Adapter, accounts: set[str], token: str,
             totals: dict[str, Any], stages: dict[str, float]) -> dict[str, Any]:
    """Score the touched accounts (and their contacts) and write the changes back."""
    assert connection.id is not None
    with _timed(stages, "score"):
        score_connection(engine, connection.id, account_ids=sorted(accounts), trigger="webhook")
        ids = {"account": sorted(accounts), "contact": _contacts_of(engine, connection.id, accounts)}
    with _timed(stages, "lock"):
        lock = _hold(settings, connection.id, "writeback", token)
    if lock is None:  # a long write-back holds it: hand these records to a write-back job of their own
        enqueue(settings, "writeback", "connector.jobs.writeback_job", connection.id,
                kwargs={"trigger": "webhook", "external_ids": ids}, id=job_id("writeback", connection.id, token))
        return {"rescored": totals["rescored"] + len(accounts)}
    try:
        with _timed(stages, "write"):
            out = writeback_connection(engine, settings, connection.id, adapter=adapter, external_ids=ids,
                                       trigger="webhook")
        points = float(connection.options.get("alert_drop_points", DEFAULT_DROP_POINTS))
        try:
            with _timed(stages, "alerts"):
                raise_alerts(engine, adapter, connection.id, points=points)
        except RapportError as exc:  # an alert that cannot be created now is retried next time
            log.warning("score-drop alerts for connection %s: %s", connection.id, exc)
    finally:
        lock.release()
    return {"rescored": totals["rescored"] + len(accounts), "written": totals["written"] + out.get("written", 0)}
