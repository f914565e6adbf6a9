"""Queues against the real Redis: priorities, unique ids, retries, chains, and in-process draining."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from connector import queues
from connector.errors import FatalError, RetriableError
from connector.queues import drain, enqueue, enqueue_steps, job_id, redis_for, steps_for

HERE = "tests.connector.test_queues"


def _log(*words: object) -> None:
    from connector.queues import current_settings

    redis_for(current_settings()).rpush("log", " ".join(str(w) for w in words))


def note(word: str) -> str:
    """A job that only records that it ran."""
    _log(word)
    return word


def fail_fatally(word: str) -> None:
    """A job that cannot succeed until someone fixes something."""
    _log(word)
    raise FatalError("the token was revoked", crm="hubspot", status=401)


def fail_then_pass(word: str, failures: int) -> str:
    """Fails with a retriable error `failures` times, then succeeds."""
    conn = redis_for(queues.current_settings())
    attempt = conn.incr(f"attempts:{word}")
    _log(word, attempt)
    if attempt <= failures:
        raise RetriableError("the CRM answered 503")
    return word


def _logged(conn: redis.Redis) -> list[str]:
    return [e.decode() for e in conn.lrange("log", 0, -1)]


@pytest.fixture
def settings(make_settings, redis_url: str):
    return make_settings(REDIS_URL=redis_url)


def test_job_ids_are_deterministic_and_safe() -> None:
    assert job_id("score", "contact", 42) == "score-contact-42"
    assert job_id("sync", 5, "a:b/c d") == "sync-5-a_b_c_d"
    assert job_id("sched", 3, "") == "sched-3"


def test_a_bad_job_id_or_queue_is_refused_with_the_reason(settings) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        enqueue(settings, "score", f"{HERE}.note", "x", id="score:contact:42")
    with pytest.raises(ValueError, match="webhooks, sync, score, writeback"):
        enqueue(settings, "default", f"{HERE}.note", "x", id="x")


def test_a_burst_collapses_into_one_pending_job_and_the_id_frees_after_it_ran(settings, redis_conn) -> None:
    results = [enqueue(settings, "score", f"{HERE}.note", "rescore", id="score-9-acct-1") for _ in range(5)]
    assert results == [True, False, False, False, False]
    assert Queue("score", connection=redis_conn).count == 1
    assert drain(settings) == 1
    assert _logged(redis_conn) == ["rescore"]
    assert enqueue(settings, "score", f"{HERE}.note", "again", id="score-9-acct-1")
    drain(settings)
    assert _logged(redis_conn) == ["rescore", "again"]


def test_queues_are_worked_by_priority(settings, redis_conn) -> None:
    for i, queue in enumerate(reversed(queues.QUEUE_NAMES)):
        enqueue(settings, queue, f"{HERE}.note", queue, id=f"prio-{i}")
    drain(settings)
    assert _logged(redis_conn) == ["webhooks", "sync", "score", "writeback"]


def test_a_fatal_error_is_not_retried_and_its_id_can_be_used_again(settings, redis_conn) -> None:
    enqueue(settings, "sync", f"{HERE}.fail_fatally", "once", id="sync-1-incr")
    drain(settings)
    job = Job.fetch("sync-1-incr", connection=redis_conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0
    assert "the token was revoked" in (job.latest_result().exc_string or "")
    assert _logged(redis_conn) == ["once"]
    # A failed job must not block the next request for the same work.
    assert enqueue(settings, "sync", f"{HERE}.note", "next", id="sync-1-incr")
    drain(settings)
    assert _logged(redis_conn) == ["once", "next"]


def test_a_retriable_error_is_retried_with_backoff(settings, redis_conn) -> None:
    enqueue(settings, "sync", f"{HERE}.fail_then_pass", "flaky", 5, id="sync-2-incr")
    before = time.time()
    drain(settings)
    job = Job.fetch("sync-2-incr", connection=redis_conn)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == queues.RETRY_MAX - 1
    registry = Queue("sync", connection=redis_conn).scheduled_job_registry
    due = registry.get_scheduled_time("sync-2-incr").timestamp()
    assert before + queues.RETRY_INTERVALS[0] - 2 <= due <= time.time() + queues.RETRY_INTERVALS[0] + 1


def test_drain_waits_for_retries_due_soon_until_the_job_succeeds(settings, redis_conn) -> None:
    enqueue(
        settings,
        "sync",
        f"{HERE}.fail_then_pass",
        "soon",
        2,
        id="sync-3-incr",
        retry=Retry(max=3, interval=1),
    )
    drain(settings, max_wait_s=10)
    assert _logged(redis_conn) == ["soon 1", "soon 2", "soon 3"]
    assert not Job.exists("sync-3-incr", connection=redis_conn), "finished jobs keep nothing (result_ttl=0)"


def test_retries_run_out_and_the_job_fails(settings, redis_conn, monkeypatch) -> None:
    monkeypatch.setattr(queues, "RETRY_INTERVALS", (0, 0, 0))
    enqueue(settings, "sync", f"{HERE}.fail_then_pass", "never", 99, id="sync-4-incr")
    drain(settings)
    assert len(_logged(redis_conn)) == queues.RETRY_MAX + 1
    assert Job.fetch("sync-4-incr", connection=redis_conn).get_status() == JobStatus.FAILED


def test_a_chain_runs_in_order_and_stops_at_a_failed_step(settings, redis_conn, monkeypatch) -> None:
    steps = [
        queues.Step("sync", f"{HERE}.note", {"word": "sync"}, "run-1-a"),
        queues.Step("score", f"{HERE}.note", {"word": "score"}, "run-1-a-score"),
        queues.Step("webhooks", f"{HERE}.note", {"word": "writeback"}, "run-1-a-writeback"),
    ]
    assert enqueue_steps(settings, steps) == ["run-1-a", "run-1-a-score", "run-1-a-writeback"]
    assert enqueue_steps(settings, steps) == [], "the same chain is not enqueued twice"
    drain(settings)
    # webhooks outranks score, so only depends_on keeps the write-back last
    assert _logged(redis_conn) == ["sync", "score", "writeback"]

    broken = [
        queues.Step("sync", f"{HERE}.fail_fatally", {"word": "sync"}, "run-1-b"),
        queues.Step("score", f"{HERE}.note", {"word": "score"}, "run-1-b-score"),
    ]
    enqueue_steps(settings, broken)
    drain(settings)
    assert _logged(redis_conn)[3:] == ["sync"]
    assert Job.fetch("run-1-b-score", connection=redis_conn).get_status() == JobStatus.DEFERRED


def test_run_kinds_map_to_jobs_with_their_conventional_ids() -> None:
    [sync] = steps_for(5, "sync_full")
    assert (sync.queue, sync.func, sync.id, sync.kwargs["full"]) == (
        "sync",
        "connector.jobs.sync_job",
        "sync-5-full",
        True,
    )
    assert steps_for(5, "sync_incremental")[0].id == "sync-5-incr"
    assert steps_for(5, "reconcile")[0].kwargs == {"connection_id": 5, "full": False, "trigger": "manual",
                                                  "reconcile": True}
    assert steps_for(5, "score")[0].id == "score-5"
    assert steps_for(5, "writeback")[0].id == "writeback-5"
    run = steps_for(5, "run", head_id="sched-2-20260101T1000", trigger="schedule")
    assert [(s.queue, s.id) for s in run] == [
        ("sync", "sched-2-20260101T1000"),
        ("score", "sched-2-20260101T1000-score"),
        ("writeback", "sched-2-20260101T1000-writeback"),
    ]
    assert all(s.kwargs["trigger"] == "schedule" for s in run)
    with pytest.raises(ValueError, match="unknown run kind 'rescore'"):
        steps_for(5, "rescore")


def test_embedded_default_drains_in_process_even_from_another_thread(make_settings) -> None:
    settings = make_settings()
    assert settings.embedded
    conn = redis_for(settings)
    conn.flushdb()
    enqueue(settings, "score", f"{HERE}.note", "embedded", id="score-1")
    assert not enqueue(settings, "score", f"{HERE}.note", "embedded", id="score-1")
    thread = threading.Thread(target=drain, args=(settings,))
    thread.start()
    thread.join(timeout=30)
    assert [e.decode() for e in conn.lrange("log", 0, -1)] == ["embedded"]
    conn.flushdb()


def test_a_delayed_job_coalesces_a_burst_over_its_window(settings, redis_conn) -> None:
    results = [enqueue(settings, "score", f"{HERE}.note", "window", id="score-9-acct-2", delay_s=1) for _ in range(5)]
    assert results == [True, False, False, False, False]
    assert Queue("score", connection=redis_conn).scheduled_job_registry.get_job_ids() == ["score-9-acct-2"]
    assert drain(settings, max_wait_s=5) == 1
    assert _logged(redis_conn) == ["window"]
    assert enqueue(settings, "score", f"{HERE}.note", "next", id="score-9-acct-2", delay_s=1)
