"""Webhook events: persisted (deduplicated) before the CRM gets its acknowledgement."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from adapters.base import WebhookEvent
from connector.config import Settings
from connector.model import WebhookEvent as WebhookEventRow
from connector.model import utcnow
from connector.queues import enqueue, job_id, redis_for

FLAG_TTL_S = 30  # if an enqueue is lost, the next event after this long enqueues again

_T = WebhookEventRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Accepted:
    """How many events of a request were new, and how many we had already."""

    new: int
    duplicates: int
    retried: bool = False  # stored on a second try: the first may have committed before its connection broke


def _values(events: Sequence[WebhookEvent]) -> list[dict[str, Any]]:
    return [{"dedupe_key": e.dedupe_key, "object": e.object, "external_id": e.external_id, "kind": e.kind,
             "occurred_at": e.occurred_at,
             "payload": {**e.payload, "changed_fields": list(e.changed_fields), "source": e.source}} for e in events]


def persist(engine: Engine, connection_id: int, events: Sequence[WebhookEvent]) -> Accepted:
    """Store the events in one transaction; an event already stored (same dedupe key) is skipped."""
    return persist_values(engine, connection_id, _values(events))


def persist_values(engine: Engine, connection_id: int, values: Sequence[dict[str, Any]]) -> Accepted:
    """`persist` for events given as row values (dedupe_key, object, external_id, kind, occurred_at, payload).

    One statement (INSERT .. ON CONFLICT DO NOTHING) for the whole batch, committed on its own.
    """
    if not values:
        return Accepted(0, 0)
    now = utcnow()
    unique = {v["dedupe_key"][:200]: v for v in values}
    # in key order: concurrent requests carrying the same events then wait for each other instead
    # of deadlocking on the unique index (HubSpot redelivers while the first delivery commits)
    rows = [{**unique[key], "dedupe_key": key, "connection_id": connection_id, "status": "pending", "attempts": 0,
             "received_at": now} for key in sorted(unique)]
    new, retried = None, False
    if engine.dialect.name == "postgresql":
        # one statement is its own transaction: no BEGIN and COMMIT round trips around it
        try:
            new = _insert_autocommit(engine, rows)
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            retried = True  # a stale pooled connection (the engine may skip the ping): once more on a new one
            new = _insert_autocommit(engine, rows)
    if new is None:
        with engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            result = conn.execute(
                insert(_T).on_conflict_do_nothing(index_elements=["connection_id", "dedupe_key"]).returning(_T.c.id),
                rows,
            )
            new = len(result.all())
    return Accepted(new=new, duplicates=len(values) - new, retried=retried)


def _insert_autocommit(engine: Engine, rows: list[dict[str, Any]]) -> int | None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return _insert_pg(conn, rows)


_COLUMNS = ("connection_id", "dedupe_key", "object", "external_id", "kind", "occurred_at", "status", "attempts",
            "received_at", "payload")


@lru_cache(maxsize=4)
def _pg_statement(dialect: sa.Dialect) -> str:
    """One INSERT .. SELECT FROM jsonb_to_recordset .. ON CONFLICT DO NOTHING RETURNING, typed by the table.

    jsonb: the document is parsed once and each payload taken from it as jsonb, where json_to_recordset
    would parse every payload again for the jsonb column (a third of the statement's time).
    """
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in _COLUMNS)
    fields = ", ".join(f"{quote(c)} {_T.c[c].type.compile(dialect=dialect)}" for c in _COLUMNS)
    return (f"INSERT INTO {quote(_T.name)} ({names}) SELECT {names} FROM jsonb_to_recordset(%s::jsonb) AS x({fields}) "
            f"ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id")


def _insert_pg(conn: sa.Connection, rows: list[dict[str, Any]]) -> int | None:
    """Insert a batch as one JSON document in one statement; the rows stored, or None if JSON cannot carry them.

    A webhook request is acknowledged only after this commits, so it is on every request's path:
    one short statement with one parameter, instead of a VALUES list of ten parameters per event
    that the driver must parse and SQLAlchemy must convert value by value.
    """
    if any(r["occurred_at"] is not None and r["occurred_at"].tzinfo is None for r in rows):
        return None  # the generic path refuses naive times, as the model does
    try:
        document = orjson.dumps(rows).decode()
    except TypeError:  # a value orjson declines (a huge int, say): the generic path adapts it
        return None
    return len(conn.exec_driver_sql(_pg_statement(conn.dialect), (document,)).all())


RECEIVING_TTL_S = 7 * 86_400


def receiving_key(connection_id: int) -> str:
    """Set while the connection's webhooks arrive: refreshed by every webhook job, gone a week after the last."""
    return f"rapport:webhooks-arriving:{connection_id}"


def mark_arriving(settings: Settings, connection_id: int) -> None:
    """Note that the connection's webhook events arrive."""
    redis_for(settings).set(receiving_key(connection_id), 1, ex=RECEIVING_TTL_S)


def arriving(settings: Settings, connection_id: int) -> bool:
    """Whether webhook events for the connection arrived within the last week (False when Redis cannot say)."""
    try:
        return bool(redis_for(settings).exists(receiving_key(connection_id)))
    except RedisError:
        return False


def flag_key(connection_id: int) -> str:
    """Set while a webhook job for the connection is queued and has not started claiming events."""
    return f"rapport:webhook-queued:{connection_id}"


def notify(settings: Settings, connection_id: int) -> bool:
    """Make sure a job will process the connection's pending events; True if this call enqueued it.

    The job clears the flag before it claims events, so an event persisted after that moment
    always enqueues a new job: none is left waiting for a job that already looked.
    """
    if not redis_for(settings).set(flag_key(connection_id), 1, nx=True, ex=FLAG_TTL_S):
        return False
    return enqueue(settings, "webhooks", "connector.jobs.webhook_job", connection_id,
                   id=job_id("webhook", connection_id, uuid.uuid4().hex[:12]))


def accept(engine: Engine, settings: Settings, connection_id: int, events: Sequence[WebhookEvent]) -> Accepted:
    """Persist a verified request's events, then make sure they will be processed."""
    return accept_values(engine, settings, connection_id, _values(events))


def accept_values(engine: Engine, settings: Settings, connection_id: int,
                  values: Sequence[dict[str, Any]]) -> Accepted:
    """`accept` for events given as row values (see `persist_values`)."""
    accepted = persist_values(engine, connection_id, values)
    if accepted.new or accepted.retried:
        notify(settings, connection_id)
    return accepted


def pending(engine: Engine, connection_id: int, limit: int = 1000) -> list[sa.Row]:
    """Events not processed yet, oldest first."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(_T)
                .where(_T.c.connection_id == connection_id, _T.c.status == "pending")
                .order_by(_T.c.received_at, _T.c.id)
                .limit(limit)
            )
        )
