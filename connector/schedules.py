"""Cron schedules per connection and kind of run: validation, due slots, and the dispatch that enqueues them.

Cron times are UTC, five fields (minute hour day-of-month month day-of-week). Each slot is claimed
in the database before it is enqueued (job id derived from schedule and slot, unique), so any
number of schedulers run a slot exactly once. After downtime only the latest missed slot runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Engine

from connector.config import Settings
from connector.errors import ConfigError
from connector.model import Schedule, utcnow
from connector.queues import RUN_KINDS, enqueue_run, job_id

log = logging.getLogger(__name__)

_T = Schedule.__table__  # type: ignore[attr-defined]
FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-6 or sun-sat"),
)


def validate_cron(expr: str) -> str:
    """The normalized expression, or a ConfigError naming the part that is wrong."""
    parts = (expr or "").split()
    if len(parts) != 5:
        raise ConfigError(
            f"cron expression {expr!r} has {len(parts)} field(s)",
            hint="use five fields: minute hour day-of-month month day-of-week, e.g. '*/15 * * * *'",
        )
    for i, (name, allowed) in enumerate(FIELDS):
        probe = ["*"] * 5
        probe[i] = parts[i]
        if not croniter.is_valid(" ".join(probe)):
            raise ConfigError(
                f"cron expression {expr!r}: the {name} field {parts[i]!r} is invalid",
                hint=f"the {name} field takes {allowed}, '*', lists (a,b), ranges (a-b) and steps (*/n)",
            )
    normalized = " ".join(parts)
    try:
        croniter(normalized, utcnow()).get_next(datetime)
    except Exception as exc:  # noqa: BLE001 - croniter raises several kinds for impossible dates
        raise ConfigError(
            f"cron expression {expr!r} never fires ({exc})", hint="check the day and month fields"
        ) from None
    return normalized


def latest_slot(cron: str, now: datetime) -> datetime:
    """The most recent time at or before `now` that the expression fires."""
    minute = now.replace(second=0, microsecond=0)
    if croniter.match(cron, minute):
        return minute
    return croniter(cron, minute).get_prev(datetime)


def next_slot(cron: str, after: datetime) -> datetime:
    """The first firing time after `after`."""
    return croniter(cron, after).get_next(datetime)


def add_schedule(engine: Engine, connection_id: int, kind: str, cron: str) -> int:
    """Store a schedule; bad kinds, bad cron expressions and duplicates are refused with the reason."""
    if kind not in RUN_KINDS:
        raise ConfigError(f"unknown run kind {kind!r}", hint=f"use one of {', '.join(RUN_KINDS)}")
    cron = validate_cron(cron)
    with engine.begin() as conn:
        exists = conn.execute(
            sa.select(_T.c.id).where(
                _T.c.connection_id == connection_id, _T.c.kind == kind, _T.c.cron == cron
            )
        ).first()
        if exists:
            raise ConfigError(f"schedule {exists.id} already runs {kind} on {cron!r} for this connection")
        return int(
            conn.execute(
                sa.insert(_T)
                .values(connection_id=connection_id, kind=kind, cron=cron, enabled=True, created_at=utcnow())
                .returning(_T.c.id)
            ).scalar_one()
        )


def remove_schedule(engine: Engine, schedule_id: int) -> None:
    """Delete a schedule; an unknown id is an error naming it."""
    with engine.begin() as conn:
        if not conn.execute(sa.delete(_T).where(_T.c.id == schedule_id)).rowcount:
            raise ConfigError(f"there is no schedule {schedule_id}", hint="see `rapport schedules list`")


def get_schedule(engine: Engine, schedule_id: int) -> sa.Row:
    """One schedule row; an unknown id is an error naming it."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(_T).where(_T.c.id == schedule_id)).first()
    if row is None:
        raise ConfigError(f"there is no schedule {schedule_id}", hint="see `rapport schedules list`")
    return row


def list_schedules(engine: Engine, connection_id: int | None = None) -> list[sa.Row]:
    """Schedules, oldest first (of one connection if given)."""
    q = sa.select(_T).order_by(_T.c.id)
    if connection_id is not None:
        q = q.where(_T.c.connection_id == connection_id)
    with engine.connect() as conn:
        return list(conn.execute(q).all())


@dataclass(frozen=True)
class Due:
    """A schedule slot that should run now."""

    schedule_id: int
    connection_id: int
    kind: str
    slot: datetime
    previous: datetime | None


def due_slots(engine: Engine, now: datetime) -> list[Due]:
    """The latest unrun slot of every enabled schedule whose time has come."""
    due = []
    for row in list_schedules(engine):
        if not row.enabled:
            continue
        slot = latest_slot(row.cron, now)
        if slot > (row.last_slot or row.created_at):
            due.append(Due(row.id, row.connection_id, row.kind, slot, row.last_slot))
    return due


def claim(engine: Engine, due: Due) -> bool:
    """Advance the schedule's last slot to this one; True only for the one caller that did."""
    with engine.begin() as conn:
        stale = _T.c.last_slot.is_(None) if due.previous is None else _T.c.last_slot == due.previous
        return bool(
            conn.execute(
                sa.update(_T).where(_T.c.id == due.schedule_id, stale).values(last_slot=due.slot)
            ).rowcount
        )


def slot_job_id(schedule_id: int, slot: datetime) -> str:
    """The id of the (first) job of one schedule slot."""
    return job_id("sched", schedule_id, slot.strftime("%Y%m%dT%H%M"))


def dispatch(settings: Settings, engine: Engine, now: datetime) -> list[str]:
    """Claim and enqueue every due slot; the ids of the jobs enqueued."""
    enqueued: list[str] = []
    for due in due_slots(engine, now):
        if not claim(engine, due):
            continue  # another scheduler took this slot
        head = slot_job_id(due.schedule_id, due.slot)
        try:
            ids = enqueue_run(settings, due.connection_id, due.kind, trigger="schedule", head_id=head)
        except Exception:
            # Give the slot back so the next dispatch tries it again.
            with engine.begin() as conn:
                conn.execute(
                    sa.update(_T)
                    .where(_T.c.id == due.schedule_id, _T.c.last_slot == due.slot)
                    .values(last_slot=due.previous)
                )
            raise
        log.info("schedule %s: slot %s enqueued as %s", due.schedule_id, due.slot.isoformat(), ids or head)
        enqueued += ids
    return enqueued


def run_now(settings: Settings, engine: Engine, schedule_id: int) -> list[str]:
    """Enqueue a schedule's run now, outside its slots; [] if that run is already pending."""
    row = get_schedule(engine, schedule_id)
    return enqueue_run(settings, row.connection_id, row.kind, trigger="manual")
