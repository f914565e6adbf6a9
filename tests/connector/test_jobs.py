"""The job error policy, run locks and run history, through real Redis queues and a real database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from rq.job import Job, JobStatus

from connector import jobs, queues
from connector.errors import AuthError, BudgetExhausted, RateLimited, RetriableError
from connector.locks import RunLock, lock_key
from connector.model import Connection, SyncRun, Workspace, utcnow
from connector.queues import drain, enqueue, enqueue_run, redis_for
from connector.runs import STOPPED, close_run, fail_stale_runs, open_run

HERE = "tests.connector.test_jobs"
_R = SyncRun.__table__  # type: ignore[attr-defined]


def scripted_sync(connection_id: int) -> Any:
    """A sync-like job; each attempt takes its outcome from the Redis list `script` (default: ok)."""

    def work(engine: Any, settings: Any, jid: str | None) -> int:
        outcome = (redis_for(settings).lpop("script") or b"ok").decode()
        run_id = open_run(engine, connection_id, "sync_incremental", job_id=jid)
        if outcome == "ok":
            close_run(engine, run_id, "succeeded", counts={"account": 2}, api_calls=3)
            return run_id
        if outcome == "closed-failed":
            close_run(engine, run_id, "failed", error="the page could not be stored")
            raise RetriableError("the page could not be stored")
        raise {
            "fatal": AuthError(
                "the refresh token was revoked", crm="salesforce", status=401, hint="reconnect"
            ),
            "retriable": RetriableError("the CRM answered 503", status=503),
            "budget": BudgetExhausted("today's API share is spent", resume_after=1),
            "ratelimited": RateLimited("too many requests", retry_after=1, status=429),
        }[outcome]

    return jobs._guarded(connection_id, "sync", jobs.SYNC_KINDS, work)


@pytest.fixture
def settings(make_settings, redis_url: str, sqlite_url: str):
    return make_settings(REDIS_URL=redis_url, DATABASE_URL=sqlite_url)


@pytest.fixture
def engine(settings):
    return jobs._engine(settings)


@pytest.fixture
def cid(engine) -> int:
    now = utcnow()
    with engine.begin() as conn:
        ws = conn.execute(
            sa.insert(Workspace.__table__).values(name="w", created_at=now).returning(sa.column("id"))
        ).scalar_one()
        return conn.execute(
            sa.insert(Connection.__table__)
            .values(workspace_id=ws, name="acme", kind="salesforce", credentials_encrypted="", options={},
                    status="active", created_at=now, updated_at=now)
            .returning(sa.column("id"))
        ).scalar_one()  # fmt: skip


def _script(settings, *outcomes: str) -> None:
    redis_for(settings).rpush("script", *outcomes)


def _runs(engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(_R).order_by(_R.c.id)).all())


def _enqueue(settings, cid: int) -> str:
    jid = f"sync-{cid}-incr"
    assert enqueue(settings, "sync", f"{HERE}.scripted_sync", cid, id=jid)
    return jid


def test_a_successful_run_is_recorded_with_its_job_and_frees_the_lock(settings, engine, cid) -> None:
    jid = _enqueue(settings, cid)
    drain(settings)
    [run] = _runs(engine)
    assert (run.status, run.job_id, run.counts, run.api_calls) == ("succeeded", jid, {"account": 2}, 3)
    assert not redis_for(settings).exists(lock_key(cid, "sync"))


def test_a_fatal_error_fails_the_run_once_without_retry(settings, engine, cid) -> None:
    _script(settings, "fatal")
    jid = _enqueue(settings, cid)
    drain(settings, max_wait_s=2)
    [run] = _runs(engine)
    assert run.status == "failed"
    assert "the refresh token was revoked" in run.error and "reconnect" in run.error
    assert Job.fetch(jid, connection=redis_for(settings)).get_status() == JobStatus.FAILED


def test_a_failed_run_is_retried_then_succeeds(settings, engine, cid, monkeypatch) -> None:
    monkeypatch.setattr(queues, "RETRY_INTERVALS", (0, 0, 0))
    _script(settings, "retriable", "closed-failed")
    _enqueue(settings, cid)
    drain(settings)
    runs = _runs(engine)
    assert [r.status for r in runs] == ["retrying", "retrying", "succeeded"]
    assert "503" in runs[0].error and "tries left" in runs[0].error
    assert runs[1].error == "the page could not be stored"


def test_a_run_that_keeps_failing_is_marked_failed_with_the_error(settings, engine, cid, monkeypatch) -> None:
    monkeypatch.setattr(queues, "RETRY_INTERVALS", (0, 0, 0))
    _script(settings, *["retriable"] * 10)
    _enqueue(settings, cid)
    drain(settings)
    runs = _runs(engine)
    assert [r.status for r in runs] == ["retrying"] * queues.RETRY_MAX + ["failed"]
    assert runs[-1].error.startswith("the CRM answered 503")


def test_an_exhausted_budget_pauses_the_run_and_resumes_the_same_job(settings, engine, cid) -> None:
    _script(settings, "budget")
    jid = _enqueue(settings, cid)
    drain(settings)
    [paused] = _runs(engine)
    assert paused.status == "paused" and "API share" in paused.error
    job = Job.fetch(jid, connection=redis_for(settings))
    assert job.get_status() == JobStatus.SCHEDULED
    assert not enqueue(settings, "sync", f"{HERE}.scripted_sync", cid, id=jid), (
        "the paused job is still pending"
    )
    drain(settings, max_wait_s=10)
    assert [(r.status, r.job_id) for r in _runs(engine)] == [("paused", jid), ("succeeded", jid)]


def test_rate_limited_runs_wait_for_retry_after(settings, engine, cid) -> None:
    _script(settings, "ratelimited", "ratelimited")
    _enqueue(settings, cid)
    drain(settings, max_wait_s=10)
    runs = _runs(engine)
    assert [r.status for r in runs] == ["retrying", "retrying", "succeeded"]
    assert runs[2].started_at - runs[0].started_at >= timedelta(seconds=1)


def test_two_runs_of_one_kind_never_overlap(settings, engine, cid, monkeypatch) -> None:
    monkeypatch.setattr(jobs, "LOCK_POLL_S", 1.0)
    held = RunLock(redis_for(settings), cid, "sync")
    assert held.acquire()
    jid = _enqueue(settings, cid)
    drain(settings)
    assert _runs(engine) == [], "the job waits instead of running beside the other"
    assert Job.fetch(jid, connection=redis_for(settings)).get_status() == JobStatus.SCHEDULED
    held.release()
    drain(settings, max_wait_s=10)
    assert [r.status for r in _runs(engine)] == ["succeeded"]


def test_a_run_left_running_by_a_killed_worker_is_failed_when_the_job_runs_again(
    settings, engine, cid
) -> None:
    orphan = open_run(engine, cid, "sync_full", job_id="sync-1-full")
    other_kind = open_run(engine, cid, "score")
    _enqueue(settings, cid)
    drain(settings)
    runs = {r.id: r for r in _runs(engine)}
    assert runs[orphan].status == "failed" and runs[orphan].error == STOPPED
    assert runs[other_kind].status == "running", "another kind's run is not touched"
    assert [r.status for r in runs.values()][-1] == "succeeded"


def test_stale_runs_are_failed_unless_their_lock_is_still_held(settings, engine, cid) -> None:
    quiet = open_run(engine, cid, "sync_incremental")
    dead = open_run(engine, cid, "writeback")
    with engine.begin() as conn:
        conn.execute(sa.update(_R).values(heartbeat_at=utcnow() - timedelta(minutes=30)))
    lock = RunLock(redis_for(settings), cid, "sync")
    assert lock.acquire()
    assert fail_stale_runs(engine, alive=jobs.lock_vouches(settings)) == 1
    status = {r.id: r.status for r in _runs(engine)}
    assert status == {quiet: "running", dead: "failed"}
    lock.release()


def test_writeback_job_runs_through_its_queue_with_the_conventional_id(settings, engine, cid) -> None:
    assert enqueue_run(settings, cid, "writeback") == [f"writeback-{cid}"]
    drain(settings)
    [run] = _runs(engine)
    assert (run.kind, run.status, run.job_id, run.trigger) == (
        "writeback",
        "succeeded",
        f"writeback-{cid}",
        "manual",
    )


def test_a_sync_job_that_crashes_midway_is_retried_and_resumes_from_committed_cursors(
    settings, engine, monkeypatch
) -> None:
    import adapters
    from sandbox.memory import MemoryCRM
    from tests.connector.sync_helpers import MEMORY, memory_connection, mismatches

    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    monkeypatch.setattr(queues, "RETRY_INTERVALS", (0, 0, 0))
    crm = MemoryCRM(page_size=3)
    monkeypatch.setitem(MemoryCRM.named, "mem-jobs", crm)
    for _ in range(8):
        crm.create("contact", {"AccountId": crm.create("account")})
        crm.tick(5)
    cid, _ = memory_connection(engine, settings, crm, name="mem-jobs")
    crm.fail_after(2)  # the third request of the first attempt drops
    assert enqueue_run(settings, cid, "sync_incremental") == [f"sync-{cid}-incr"]
    drain(settings)
    first, second = _runs(engine)
    assert (first.status, second.status) == ("retrying", "succeeded")
    assert "connection reset" in first.error
    assert mismatches(engine, crm, cid, ["account", "contact"]) == []
    assert second.counts["account"]["created"] < 8, "the retry went on from the committed pages"

    assert enqueue_run(settings, cid, "score") == [f"score-{cid}"]
    drain(settings)
    scored = _runs(engine)[-1]
    assert (scored.kind, scored.status, scored.job_id) == ("score", "succeeded", f"score-{cid}")
