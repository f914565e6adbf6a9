"""Run commands: the worker and scheduler processes, `run`, run history and schedules."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rq.cron import CronScheduler

    from connector.config import Settings

# RQ job states (rq.job.JobStatus values) after which a job will not run again.
FAILED_JOB = {"failed", "stopped", "canceled"}


def _connection_id(engine: Any, name: str) -> int:
    from connector.connections import get_connection

    row = get_connection(engine, name)
    assert row.id is not None
    return row.id


def _start(settings: Settings) -> None:
    """What every long-running process does first: fail the runs a killed worker left "running"."""
    from connector.db import engine_for
    from connector.jobs import lock_vouches
    from connector.runs import fail_stale_runs

    engine = engine_for(settings.sqlalchemy_url)
    failed = fail_stale_runs(engine, alive=lock_vouches(settings))
    if failed:
        click.echo(f"marked {failed} run(s) left running by a stopped worker as failed")
    engine.dispose()  # forked work horses must not inherit these connections


def _cron(settings: Settings, every: int = 60) -> CronScheduler:
    from rq.cron import CronScheduler

    from connector.jobs import dispatch_schedules_job
    from connector.queues import redis_for

    cron = CronScheduler(connection=redis_for(settings))
    # An interval job also fires at start, which catches up on slots missed while nothing ran;
    # dispatching is idempotent, so that (and a second scheduler) does no harm. It is quick and
    # time-sensitive, so it shares the highest-priority queue.
    cron.register(dispatch_schedules_job, "webhooks", interval=every, job_timeout=300, result_ttl=0)
    return cron


def _embedded_loop(settings: Settings, *, burst: bool, every: int = 60) -> None:
    """No REDIS_URL: this process's queue is private, so it dispatches schedules and works them itself."""
    from connector.queues import drain

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cron = _cron(settings, every)
    while not stop.is_set():
        cron.enqueue_jobs()
        drain(settings)
        if burst:
            return
        stop.wait(1.0)


@click.command()
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--name", default=None, help="Worker name shown by `rq info`.")
def worker(burst: bool, name: str | None) -> None:
    """Work the queues (webhooks > sync > score > writeback), with RQ's scheduler for retries."""
    from connector.config import get_settings
    from connector.queues import worker_for

    settings = get_settings()
    _start(settings)
    if settings.embedded:
        click.echo("no REDIS_URL: working the in-process queue and dispatching schedules in this process")
        _embedded_loop(settings, burst=burst)
        return
    from connector.jobs import preload

    preload()  # jobs fork from this process: import their code once, here
    worker_for(settings, name=name).work(burst=burst, with_scheduler=True)


@click.command()
@click.option(
    "--every", type=click.IntRange(min=1), default=60, show_default=True, help="Dispatch every N seconds."
)
def scheduler(every: int) -> None:
    """Dispatch due schedules through RQ's cron (run one; extra ones are harmless)."""
    from connector.config import get_settings

    settings = get_settings()
    _start(settings)
    if settings.embedded:
        click.echo("no REDIS_URL: dispatching schedules and working them in this process")
        _embedded_loop(settings, burst=False, every=every)
        return
    _cron(settings, every).start()


def _counts(counts: Any, prefix: str = "") -> str:
    if not isinstance(counts, dict):
        return f"{prefix}={counts}" if prefix else str(counts)
    parts = [
        _counts(v, f"{prefix}{k}" if not isinstance(v, dict) else f"{prefix}{k}.") for k, v in counts.items()
    ]
    return " ".join(p for p in parts if p)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _run_rows(engine: Any, rows: list[Any]) -> str:
    from connector.model import Connection

    ct = Connection.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        names = dict(conn.execute(ct.select().with_only_columns(ct.c.id, ct.c.name)).all())
    out = []
    for r in rows:
        errors = len(r.errors or []) + (1 if r.error else 0)
        error = (r.error or "").splitlines()[0][:80] if r.error else ""
        out.append(
            [
                str(r.id), names.get(r.connection_id, str(r.connection_id)), r.kind, r.status, r.trigger or "",
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"), f"{r.duration_s:.1f}s" if r.duration_s is not None else "-",
                _counts(r.counts) or "-", str(r.api_calls), str(errors), error,
            ]
        )  # fmt: skip
    headers = [
        "RUN",
        "CONNECTION",
        "KIND",
        "STATUS",
        "TRIGGER",
        "STARTED (UTC)",
        "TIME",
        "COUNTS",
        "API",
        "ERRORS",
        "ERROR",
    ]
    return _table(headers, out)


@click.command("runs")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def runs_cmd(name: str | None, limit: int) -> None:
    """Run history, newest first: status, counts, API calls, errors, duration."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.runs import list_runs

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    rows = list_runs(engine, connection_id=_connection_id(engine, name) if name else None, limit=limit)
    click.echo(_run_rows(engine, rows) if rows else "no runs yet")


def _job_states(settings: Settings, ids: list[str]) -> dict[str, str]:
    from rq.job import Job, JobStatus

    from connector.queues import redis_for

    jobs = Job.fetch_many(ids, connection=redis_for(settings))
    # Finished jobs keep no result (result_ttl=0), so a job that is gone has finished.
    return {
        i: JobStatus(j.get_status()).value if j is not None else "finished"
        for i, j in zip(ids, jobs, strict=True)
    }


def _settled(states: dict[str, str]) -> bool:
    from rq.job import JobStatus

    failed_before = False
    for state in states.values():
        if state in FAILED_JOB:
            failed_before = True
        elif state != "finished" and not (failed_before and state == JobStatus.DEFERRED.value):
            return False
    return True


def _follow(settings: Settings, engine: Any, ids: list[str], since: Any, timeout: float, wait: bool) -> None:
    """Run (embedded) or wait for (Redis) the jobs, then show their runs; exit 1 if one failed."""
    from connector.queues import drain
    from connector.runs import list_runs

    if settings.embedded:
        drain(settings, max_wait_s=timeout)
    elif wait:
        deadline = time.monotonic() + timeout
        while not _settled(_job_states(settings, ids)) and time.monotonic() < deadline:
            time.sleep(1.0)
    states = _job_states(settings, ids)
    failed_before = False
    for i, state in states.items():
        shown = "not run (an earlier step failed)" if failed_before and state == "deferred" else state
        failed_before = failed_before or state in FAILED_JOB
        click.echo(f"job {i}: {shown}")
    rows = list_runs(engine, job_ids=ids, since=since, limit=100)
    if rows:
        click.echo(_run_rows(engine, list(reversed(rows))))
    if any(s in FAILED_JOB for s in states.values()) or any(r.status == "failed" for r in rows):
        sys.exit(1)


@click.command("run")
@click.argument("name")
@click.option("--full", is_flag=True, help="Full sync instead of incremental.")
@click.option("--wait/--no-wait", default=True, help="With REDIS_URL: wait for the workers to finish.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds to wait at most.")
def run_cmd(name: str, full: bool, wait: bool, timeout: float) -> None:
    """Sync → score → write-back for one connection, as chained jobs."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.model import utcnow
    from connector.queues import enqueue_steps, steps_for

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    since = utcnow()
    ids = enqueue_steps(settings, steps_for(_connection_id(engine, name), "run", full=full))
    if not ids:
        raise click.ClickException(f"a run of {name} was just enqueued; see `rapport runs {name}`")
    click.echo(f"enqueued {' → '.join(ids)}")
    _follow(settings, engine, ids, since, timeout, wait)


@click.group()
def schedules() -> None:
    """Cron schedules (UTC) per connection and kind of run."""


@schedules.command("list")
@click.argument("name", required=False)
def schedules_list(name: str | None) -> None:
    """List schedules with their last and next slot."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.model import utcnow
    from connector.schedules import list_schedules, next_slot

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    rows = list_schedules(engine, _connection_id(engine, name) if name else None)
    if not rows:
        click.echo("no schedules; add one with `rapport schedules add NAME KIND CRON`")
        return
    now = utcnow()
    fmt = "%Y-%m-%d %H:%M"
    table = [
        [str(r.id), str(r.connection_id), r.kind, r.cron, "yes" if r.enabled else "no",
         r.last_slot.strftime(fmt) if r.last_slot else "-", next_slot(r.cron, now).strftime(fmt) if r.enabled else "-"]
        for r in rows
    ]  # fmt: skip
    click.echo(_table(["ID", "CONNECTION", "KIND", "CRON (UTC)", "ENABLED", "LAST SLOT", "NEXT SLOT"], table))


@schedules.command("add")
@click.argument("name")
@click.argument("kind")
@click.argument("cron")
def schedules_add(name: str, kind: str, cron: str) -> None:
    """Add a schedule: KIND is sync_incremental, sync_full, reconcile, score, writeback or run."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.model import utcnow
    from connector.schedules import add_schedule, get_schedule, next_slot

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    sid = add_schedule(engine, _connection_id(engine, name), kind, cron)
    row = get_schedule(engine, sid)
    click.echo(
        f"schedule {sid}: {kind} of {name} on '{row.cron}' (UTC); next at {next_slot(row.cron, utcnow()):%Y-%m-%d %H:%M}"
    )


@schedules.command("remove")
@click.argument("schedule_id", type=int)
def schedules_remove(schedule_id: int) -> None:
    """Remove a schedule."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.schedules import remove_schedule

    settings = get_settings()
    remove_schedule(engine_for(settings.sqlalchemy_url), schedule_id)
    click.echo(f"schedule {schedule_id} removed")


@schedules.command("run")
@click.argument("schedule_id", type=int)
@click.option("--timeout", type=float, default=3600, show_default=True)
def schedules_run(schedule_id: int, timeout: float) -> None:
    """Enqueue a schedule's run now (in the embedded default, also run it)."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.model import utcnow
    from connector.schedules import run_now

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    since = utcnow()
    ids = run_now(settings, engine, schedule_id)
    if not ids:
        click.echo("that run is already queued")
        return
    click.echo(f"enqueued {' → '.join(ids)}")
    if settings.embedded:
        _follow(settings, engine, ids, since, timeout, wait=True)


COMMANDS: list[click.Command] = [worker, scheduler, runs_cmd, run_cmd, schedules]
