"""RQ queues by priority (webhooks > sync > score > writeback), job ids, enqueueing and in-process draining.

With REDIS_URL set the queues live in that Redis; without it (the embedded default) in one
process-wide fakeredis server with Lua, worked in-process by a SimpleWorker (`drain`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker, Worker
from rq.exceptions import AbandonedJobError, DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.timeouts import TimerDeathPenalty

from connector.config import Settings, get_settings
from connector.errors import FatalError

log = logging.getLogger(__name__)

QUEUE_NAMES = ("webhooks", "sync", "score", "writeback")
RETRY_MAX = 3
RETRY_INTERVALS = (10, 60, 300)  # seconds before the 1st, 2nd and 3rd retry of a failed job
ABANDONED_MAX = 25  # times a job may lose its worker (killed, machine gone) before that counts as failing
FAILURE_TTL = 7 * 86400  # failed jobs stay inspectable (`rq info`) for a week
WAITING_TTL = 3 * 86400  # a step waiting for its predecessor (which may pause for a budget day)
TIMEOUTS = {"webhooks": 600, "sync": 6 * 3600, "score": 3600, "writeback": 3 * 3600}
_TERMINAL = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
_BAD_ID = re.compile(r"[^A-Za-z0-9_-]")

_bound: Settings | None = None


def bind(settings: Settings) -> None:
    """Make these the settings that job functions in this process (and its forks) use."""
    global _bound
    _bound = settings


def current_settings() -> Settings:
    """The settings bound by the worker, else the process's own from the environment."""
    return _bound or get_settings()


@lru_cache(maxsize=1)
def _fake_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


@lru_cache(maxsize=8)
def _redis(url: str | None) -> redis.Redis:
    if url:
        # A bounded connect time keeps /healthz and the CLI from hanging on an unreachable host;
        # no read timeout, because workers block on BLPOP.
        return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    import fakeredis

    return fakeredis.FakeRedis(server=_fake_server())


def redis_for(settings: Settings) -> redis.Redis:
    """The Redis connection for these settings (real, or the embedded fakeredis)."""
    return _redis(settings.redis_url)


def queues_for(settings: Settings) -> list[Queue]:
    """The queues in priority order."""
    conn = redis_for(settings)
    return [Queue(name, connection=conn) for name in QUEUE_NAMES]


def job_id(*parts: object) -> str:
    """A deterministic job id made only of letters, digits, `_` and `-`."""
    text = "-".join(_BAD_ID.sub("_", str(p)) for p in parts if str(p) != "")
    if not text:
        raise ValueError("a job id needs at least one non-empty part")
    return text


def default_retry() -> Retry:
    """Retry a failed job three times, after 10 s, 1 min and 5 min."""
    return Retry(max=RETRY_MAX, interval=list(RETRY_INTERVALS))


def enqueue(
    settings: Settings,
    queue: str,
    func: str,
    *args: Any,
    id: str,
    kwargs: dict[str, Any] | None = None,
    retry: Retry | None | bool = True,
    depends_on: str | None = None,
    delay_s: float | None = None,
    **options: Any,
) -> bool:
    """Enqueue `func` (a dotted path) unless a job with the same id is pending; True if it was enqueued.

    Without `depends_on` the id is unique: a burst collapses into the one pending job, and the id is
    free again once that job has finished (its result is not kept). A failed job left under the id
    is replaced. A step with `depends_on` waits for that job and runs only if it succeeded.
    """
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; use one of {', '.join(QUEUE_NAMES)}")
    if _BAD_ID.search(id):
        raise ValueError(f"job id {id!r} may contain only letters, digits, '_' and '-'")
    q = Queue(queue, connection=redis_for(settings))
    opts: dict[str, Any] = dict(
        args=args,
        kwargs=kwargs or {},
        job_id=id,
        retry=default_retry() if retry is True else (retry or None),
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        job_timeout=TIMEOUTS[queue],
        **options,
    )
    if depends_on is not None:
        q.enqueue(func, depends_on=depends_on, ttl=WAITING_TTL, **opts)
        return True
    for attempt in (1, 2):
        try:
            if delay_s:
                # enqueue_in ignores unique=True (RQ 2.12), schedule_job honours it.
                job_opts = {("timeout" if k == "job_timeout" else k): v for k, v in opts.items()}
                job = q.create_job(func, status=JobStatus.SCHEDULED, **job_opts)
                q.schedule_job(job, datetime.now(UTC) + timedelta(seconds=delay_s), unique=True)
            else:
                q.enqueue(func, unique=True, **opts)
            return True
        except DuplicateJobError:
            if attempt == 2 or not _drop_if_terminal(q.connection, id):
                return False
    return False


def _drop_if_terminal(conn: redis.Redis, id: str) -> bool:
    """Delete a failed/stopped job kept under `id` so the id can be used again."""
    try:
        job = Job.fetch(id, connection=conn)
    except NoSuchJobError:
        return True
    if job.get_status() in _TERMINAL:
        job.delete()
        return True
    return False


# --- kinds of runs ------------------------------------------------------------------------------

JOBS = "connector.jobs"
RUN_KINDS = ("sync_incremental", "sync_full", "reconcile", "score", "writeback", "run")


@dataclass(frozen=True)
class Step:
    """One job of a run: its queue, dotted function, keyword arguments and id."""

    queue: str
    func: str
    kwargs: dict[str, Any]
    id: str


def steps_for(
    connection_id: int, kind: str, *, trigger: str = "manual", head_id: str | None = None, full: bool = False
) -> list[Step]:
    """The job(s) a kind of run is made of; `run` is sync (incremental, or `full`) → score → write-back."""
    cid = connection_id
    if kind in ("sync_incremental", "sync_full", "reconcile"):
        full = kind == "sync_full"
        default = job_id("sync", cid, "full" if full else ("reconcile" if kind == "reconcile" else "incr"))
        kwargs: dict[str, Any] = {"connection_id": cid, "full": full, "trigger": trigger}
        if kind == "reconcile":
            kwargs["reconcile"] = True
        return [Step("sync", f"{JOBS}.sync_job", kwargs, head_id or default)]
    if kind == "score":
        return [
            Step(
                "score",
                f"{JOBS}.score_job",
                {"connection_id": cid, "trigger": trigger},
                head_id or job_id("score", cid),
            )
        ]
    if kind == "writeback":
        kwargs = {"connection_id": cid, "trigger": trigger}
        return [Step("writeback", f"{JOBS}.writeback_job", kwargs, head_id or job_id("writeback", cid))]
    if kind == "run":
        head = head_id or job_id("run", cid, time.strftime("%Y%m%dT%H%M%S", time.gmtime()))
        return [
            Step("sync", f"{JOBS}.sync_job", {"connection_id": cid, "full": full, "trigger": trigger}, head),
            Step("score", f"{JOBS}.score_job", {"connection_id": cid, "trigger": trigger}, f"{head}-score"),
            Step(
                "writeback",
                f"{JOBS}.writeback_job",
                {"connection_id": cid, "trigger": trigger},
                f"{head}-writeback",
            ),
        ]
    raise ValueError(f"unknown run kind {kind!r}; use one of {', '.join(RUN_KINDS)}")


def enqueue_steps(settings: Settings, steps: Sequence[Step]) -> list[str]:
    """Enqueue the first step (unique) and chain the rest with depends_on; [] if the first was pending."""
    if not steps or not enqueue(
        settings, steps[0].queue, steps[0].func, id=steps[0].id, kwargs=steps[0].kwargs
    ):
        return []
    for before, step in zip(steps, steps[1:], strict=False):
        enqueue(settings, step.queue, step.func, id=step.id, kwargs=step.kwargs, depends_on=before.id)
    return [s.id for s in steps]


def enqueue_run(
    settings: Settings, connection_id: int, kind: str, *, trigger: str = "manual", head_id: str | None = None
) -> list[str]:
    """Enqueue one kind of run for a connection; the job ids, or [] if the same run was already pending."""
    return enqueue_steps(settings, steps_for(connection_id, kind, trigger=trigger, head_id=head_id))


# --- workers ------------------------------------------------------------------------------------


def no_retry_on_fatal(job: Job, exc_type: type, exc_value: BaseException, tb: Any) -> bool:
    """Worker exception handler: a FatalError is not retried (a person has to fix something first)."""
    if isinstance(exc_value, FatalError):
        job.retries_left = 0
    return True


def requeue_abandoned(job: Job, exc_type: type, exc_value: BaseException, tb: Any) -> bool:
    """Worker exception handler: a job whose worker died is run again without spending an error retry.

    RQ counts a job abandoned by a killed worker as a failed try, but a deploy or a lost machine is
    no fault of the job, and a long sync may outlive several. The retry is given back up to
    `ABANDONED_MAX` times; a job that keeps taking its workers down then fails like any other.
    """
    if isinstance(exc_value, AbandonedJobError):
        count = int(job.meta.get("abandoned", 0)) + 1
        job.meta["abandoned"] = count
        job.save_meta()
        if count <= ABANDONED_MAX:
            job.retries_left = (job.retries_left or 0) + 1
    return True


class InProcessWorker(SimpleWorker):
    """A SimpleWorker that leaves signal handling to its caller, so it also runs outside the main thread."""

    executed = 0

    def _install_signal_handlers(self) -> None:
        pass

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.executed += 1
        super().execute_job(job, queue)


def worker_for(settings: Settings, *, simple: bool | None = None, name: str | None = None) -> Worker:
    """A worker over every queue in priority order (in-process in the embedded default)."""
    bind(settings)
    use_simple = settings.embedded if simple is None else simple
    cls: Any = InProcessWorker if use_simple else Worker
    worker = cls(
        queues_for(settings),
        connection=redis_for(settings),
        name=name,
        exception_handlers=[no_retry_on_fatal, requeue_abandoned],
        # Look for jobs abandoned by a killed worker every minute (RQ's default is ten), so they
        # are retried soon after their 90 s heartbeat lapses.
        maintenance_interval=60,
    )
    if use_simple and threading.current_thread() is not threading.main_thread():
        worker.death_penalty_class = TimerDeathPenalty  # SIGALRM only works in the main thread
    return worker


def _next_scheduled(settings: Settings) -> float | None:
    """Epoch seconds of the earliest scheduled (retry / delayed) job, if any."""
    times = []
    for q in queues_for(settings):
        first = q.scheduled_job_registry.connection.zrange(
            q.scheduled_job_registry.key, 0, 0, withscores=True
        )
        if first:
            times.append(float(first[0][1]))
    return min(times) if times else None


def drain(settings: Settings, *, max_wait_s: float = 0.0) -> int:
    """Run queued jobs in this process until none is left; return how many ran.

    Jobs scheduled for later (retries, paused runs) are waited for when due within `max_wait_s`.
    """
    deadline = time.monotonic() + max_wait_s
    ran = 0
    while True:
        worker = worker_for(settings, simple=True)
        assert isinstance(worker, InProcessWorker)
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")
        ran += worker.executed
        if any(q.count for q in queues_for(settings)):
            continue
        due = _next_scheduled(settings)
        if due is None:
            return ran
        wait = due - time.time()
        if time.monotonic() + max(wait, 0) > deadline:
            return ran
        time.sleep(min(max(wait, 0) + 0.05, 1.0))
