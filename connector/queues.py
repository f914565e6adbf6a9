"""RQ queues, by priority: webhooks > sync > score > writeback.

With REDIS_URL set they live in that Redis; without it (the embedded default) in one
process-wide fakeredis server with Lua, worked by an in-process SimpleWorker.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker, Worker
from rq.exceptions import DuplicateJobError

from connector.config import Settings

QUEUE_NAMES = ("webhooks", "sync", "score", "writeback")
_JOB_ID = re.compile(r"[^A-Za-z0-9_-]")


@lru_cache(maxsize=1)
def _fake_server() -> Any:
    import fakeredis

    return fakeredis.FakeServer()


@lru_cache(maxsize=8)
def _redis(url: str | None) -> redis.Redis:
    if url:
        return redis.Redis.from_url(url)
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
    return "-".join(_JOB_ID.sub("_", str(p)) for p in parts)


def enqueue(
    settings: Settings,
    queue: str,
    func: str,
    *args: Any,
    id: str,
    retry: Retry | None = None,
    **options: Any,
) -> bool:
    """Enqueue `func` (a dotted path) unless a job with the same id is already pending."""
    q = Queue(queue, connection=redis_for(settings))
    try:
        q.enqueue(func, *args, job_id=id, unique=True, retry=retry, result_ttl=0, failure_ttl=7 * 86400, **options)
    except DuplicateJobError:
        return False
    return True


def worker_for(settings: Settings, *, simple: bool | None = None) -> Worker:
    """A worker over every queue in priority order (SimpleWorker in the embedded default)."""
    use_simple = settings.embedded if simple is None else simple
    cls: Any = SimpleWorker if use_simple else Worker
    return cls(queues_for(settings), connection=redis_for(settings))


def drain(settings: Settings) -> None:
    """Run every queued job to completion in this process (embedded default and tests)."""
    worker_for(settings, simple=True).work(burst=True, with_scheduler=False)
