"""Job functions run by the RQ workers: thin, top-level, taking ids, one lock per connection and kind.

Error policy (what the worker does with a run that raises):
- RetriableError: the run is marked "retrying" and RQ retries the job after 10 s, 1 min, 5 min;
  after the last try it is marked "failed" with the error.
- RateLimited with a `retry_after`: the job is retried after exactly that wait (up to 5 times),
  then falls back to the backoff above.
- BudgetExhausted: the run is marked "paused" and the same job (same id, so nothing doubles) is
  scheduled again when the budget resets (`resume_after`, else in an hour); steps chained after
  it wait for it. There is no limit on pauses.
- FatalError: the run is marked "failed" with the error and not retried.
- The lock of its kind is busy: the job waits (is rescheduled) until the lock is free.
A job re-run after its worker was killed resumes from the committed cursors; the killed run is
marked failed as soon as the new one holds the lock.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from rq import Retry, get_current_job
from rq.job import Job
from sqlalchemy.engine import Engine

from connector.config import Settings
from connector.db import engine_for
from connector.errors import BudgetExhausted, FatalError, RateLimited, RetriableError
from connector.locks import LOCK_FOR_KIND, RunLock, lock_key
from connector.model import utcnow
from connector.queues import current_settings, enqueue_run, redis_for
from connector.runs import fail_orphaned_runs, fail_stale_runs, settle_runs, touch_runs

log = logging.getLogger(__name__)

SYNC_KINDS = ("sync_incremental", "sync_full", "reconcile")
BUDGET_WAIT_S = 3600.0  # when the budget does not say when it resets
RATE_LIMIT_DEFERRALS = 5
LOCK_POLL_S = 5.0  # how often a job waiting for its kind's lock looks again
_engine_pids: dict[str, int] = {}


def _engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    engine = engine_for(url)
    if _engine_pids.get(url) != os.getpid():
        # A forked work horse must not reuse the pooled connections of its parent.
        engine.dispose(close=False)
        _engine_pids[url] = os.getpid()
    return engine


def _later(job: Job | None, seconds: float, why: str) -> Retry:
    """Reschedule the running job (same id) in `seconds`; outside a worker, raise instead."""
    if job is None:
        raise RetriableError(why, hint=f"try again in {math.ceil(seconds)} s")
    log.info("job %s: %s; again in %d s", job.id, why, math.ceil(seconds))
    return Retry(max=(job.number_of_retries or 0) + 1, interval=max(1, math.ceil(seconds)))


def _after_failure(
    engine: Engine, connection_id: int, kinds: Sequence[str], since: Any, job: Job | None, exc: Exception
) -> Retry | None:
    """Record a failed attempt on its runs; a Retry when the job should simply be run again later."""
    jid = job.id if job else None
    if isinstance(exc, BudgetExhausted):
        settle_runs(
            engine,
            connection_id,
            kinds,
            since,
            job_id=jid,
            status="paused",
            error=str(exc),
            replace=("running", "failed"),
        )
        return _later(job, exc.resume_after or BUDGET_WAIT_S, f"API budget spent: {exc}")
    if isinstance(exc, RateLimited) and exc.retry_after and job is not None:
        count = int(job.meta.get("rate_limited", 0)) + 1
        if count <= RATE_LIMIT_DEFERRALS:
            job.meta["rate_limited"] = count
            job.save_meta()
            settle_runs(
                engine,
                connection_id,
                kinds,
                since,
                job_id=jid,
                status="retrying",
                error=str(exc),
                replace=("running", "failed"),
            )
            return _later(job, exc.retry_after, f"rate limited: {exc}")
    retried = job is not None and not isinstance(exc, FatalError) and (job.retries_left or 0) > 0
    if retried:
        assert job is not None
        error = f"{exc} (retried in {job.get_retry_interval()} s, {job.retries_left} tries left)"
        settle_runs(
            engine,
            connection_id,
            kinds,
            since,
            job_id=jid,
            status="retrying",
            error=error,
            replace=("running", "failed"),
        )
    else:
        settle_runs(engine, connection_id, kinds, since, job_id=jid, status="failed", error=str(exc))
    return None


def _guarded(
    connection_id: int,
    lock_name: str,
    kinds: Sequence[str],
    work: Callable[[Engine, Settings, str | None], Any],
) -> Any:
    """Run `work` under the connection's lock for this kind, applying the error policy above."""
    settings = current_settings()
    engine = _engine(settings)
    job = get_current_job()
    jid = job.id if job else None
    lock = RunLock(redis_for(settings), connection_id, lock_name, holder=jid)
    if not lock.acquire():
        wait = min(lock.remaining_s() + 0.5, LOCK_POLL_S)
        return _later(job, wait, f"a {lock_name} run of connection {connection_id} is in progress")
    with lock.kept_alive(on_renew=lambda: touch_runs(engine, connection_id, kinds)):
        fail_orphaned_runs(engine, connection_id, kinds)  # we hold the lock: any "running" one is dead
        since = utcnow()
        try:
            result = work(engine, settings, jid)
        except Exception as exc:
            retry = _after_failure(engine, connection_id, kinds, since, job, exc)
            if retry is not None:
                return retry
            raise
        settle_runs(engine, connection_id, kinds, since, job_id=jid)
        return result


JOB_MODULES = ("connector.freshness", "connector.sync", "connector.scoring", "connector.writeback", "connector.alerts")


def preload() -> None:
    """Import what jobs run, once, in the worker's parent: each job's forked process then starts warm.

    Adapter packages may list lazily imported modules of their own in a `PRELOAD` tuple.
    """
    import importlib

    from adapters import ADAPTERS

    for name in JOB_MODULES:
        importlib.import_module(name)
    for path in ADAPTERS.values():
        package = importlib.import_module(path.partition(":")[0])
        for name in getattr(package, "PRELOAD", ()):
            importlib.import_module(name)


def sync_job(connection_id: int, full: bool = False, trigger: str = "manual", reconcile: bool = False) -> Any:
    """Pull the connection's changes (or everything, `full`) from the CRM into the unified tables.

    `reconcile` also sweeps for deletions that only a webhook would have told (HubSpot's archived records).
    """

    def work(engine: Engine, settings: Settings, jid: str | None) -> Any:
        from connector.sync import sync_connection

        return sync_connection(engine, settings, connection_id, full=full, trigger=trigger, job_id=jid,
                               reconcile=reconcile)

    return _guarded(connection_id, "sync", SYNC_KINDS, work)


def score_job(connection_id: int, account_ids: Sequence[Any] | None = None, trigger: str = "manual") -> Any:
    """Rescore the connection's accounts and contacts (all, or only `account_ids`)."""

    def work(engine: Engine, settings: Settings, jid: str | None) -> Any:
        from connector.scoring import score_connection

        ids = list(account_ids) if account_ids is not None else None
        return score_connection(engine, connection_id, account_ids=ids, trigger=trigger)

    return _guarded(connection_id, "score", ("score",), work)


def writeback_job(
    connection_id: int, trigger: str = "manual", external_ids: dict[str, Sequence[str]] | None = None
) -> Any:
    """Write the scores that changed back to the CRM (all, or only `external_ids` per object)."""

    def work(engine: Engine, settings: Settings, jid: str | None) -> Any:
        from connector.writeback import writeback_connection

        return writeback_connection(
            engine, settings, connection_id, trigger=trigger, job_id=jid, external_ids=external_ids
        )

    return _guarded(connection_id, "writeback", ("writeback",), work)


def webhook_job(connection_id: int) -> Any:
    """Process the connection's pending webhook events: fetch, apply, rescore what changed, write back.

    No run lock: events are claimed atomically, so jobs on several workers share a burst, and the
    write-back step holds its own lock. A failure hands the job's claimed events back at once.
    """
    from connector.freshness import process_pending

    settings = current_settings()
    job = get_current_job()
    return process_pending(_engine(settings), settings, connection_id, holder=job.id if job else None)


def run_job(connection_id: int, trigger: str = "manual") -> list[str]:
    """Enqueue sync → score → write-back for the connection, chained with depends_on; the job ids."""
    return enqueue_run(current_settings(), connection_id, "run", trigger=trigger)


def dispatch_schedules_job() -> list[str]:
    """Enqueue every schedule slot that is due (registered with RQ's cron); also fail dead runs."""
    from connector import schedules

    settings = current_settings()
    engine = _engine(settings)
    fail_stale_runs(engine, alive=lock_vouches(settings))
    return schedules.dispatch(settings, engine, utcnow())


def lock_vouches(settings: Settings) -> Callable[[Any], bool]:
    """For `fail_stale_runs`: a quiet run is alive while the lock of its kind is still held."""
    conn = redis_for(settings)
    return lambda run: bool(conn.exists(lock_key(run.connection_id, LOCK_FOR_KIND.get(run.kind, run.kind))))
