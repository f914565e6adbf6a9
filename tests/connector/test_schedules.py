"""Schedules: cron validation, due slots, and dispatch that runs each slot once however many schedulers run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.job import Job

from connector import schedules
from connector.commands.runs import _cron
from connector.errors import ConfigError
from connector.model import Connection, Schedule, Workspace
from connector.queues import redis_for, worker_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
_S = Schedule.__table__  # type: ignore[attr-defined]


def _connection(engine) -> int:
    with engine.begin() as conn:
        ws = conn.execute(
            sa.insert(Workspace.__table__).values(name="w", created_at=T0).returning(sa.column("id"))
        ).scalar_one()
        return conn.execute(
            sa.insert(Connection.__table__)
            .values(workspace_id=ws, name="acme", kind="hubspot", credentials_encrypted="", options={},
                    status="active", created_at=T0, updated_at=T0)
            .returning(sa.column("id"))
        ).scalar_one()  # fmt: skip


def _add(engine, cid: int, kind: str, cron: str, created: datetime = T0) -> int:
    sid = schedules.add_schedule(engine, cid, kind, cron)
    with engine.begin() as conn:
        conn.execute(sa.update(_S).where(_S.c.id == sid).values(created_at=created))
    return sid


@pytest.mark.parametrize(
    ("expr", "named"),
    [
        ("61 * * * *", "the minute field '61'"),
        ("0 24 * * *", "the hour field '24'"),
        ("0 0 0 * *", "the day-of-month field '0'"),
        ("0 0 1 13 *", "the month field '13'"),
        ("0 0 * * fri-xyz", "the day-of-week field 'fri-xyz'"),
        ("*/0 * * * *", "the minute field '*/0'"),
        ("* * * * * *", "has 6 field(s)"),
        ("@hourly", "has 1 field(s)"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_a_bad_cron_expression_is_refused_naming_the_bad_part(expr: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")):
        schedules.validate_cron(expr)


def test_good_expressions_are_normalized() -> None:
    assert schedules.validate_cron("  */15  *  * * mon-fri ") == "*/15 * * * mon-fri"


def test_refused_schedules_store_nothing_and_keep_the_others(engine) -> None:
    cid = _connection(engine)
    first = schedules.add_schedule(engine, cid, "sync_incremental", "*/15 * * * *")
    with pytest.raises(ConfigError, match="already runs sync_incremental"):
        schedules.add_schedule(engine, cid, "sync_incremental", "*/15  * * * *")
    with pytest.raises(ConfigError, match="unknown run kind 'rescore'.*score"):
        schedules.add_schedule(engine, cid, "rescore", "0 * * * *")
    with pytest.raises(ConfigError, match="hour field"):
        schedules.add_schedule(engine, cid, "score", "0 99 * * *")
    assert [(r.id, r.kind) for r in schedules.list_schedules(engine)] == [(first, "sync_incremental")]
    with pytest.raises(ConfigError, match="no schedule 999"):
        schedules.remove_schedule(engine, 999)
    schedules.remove_schedule(engine, first)
    assert schedules.list_schedules(engine) == []


def test_due_slots_follow_the_cron_and_only_the_latest_missed_slot_runs(engine) -> None:
    cid = _connection(engine)
    sid = _add(engine, cid, "score", "*/15 * * * *", created=T0 + timedelta(minutes=3))
    assert schedules.due_slots(engine, T0 + timedelta(minutes=14, seconds=59)) == []
    [due] = schedules.due_slots(engine, T0 + timedelta(minutes=15))
    assert (due.schedule_id, due.slot) == (sid, T0 + timedelta(minutes=15))
    assert schedules.claim(engine, due)
    assert schedules.due_slots(engine, T0 + timedelta(minutes=29)) == []
    [later] = schedules.due_slots(engine, T0 + timedelta(hours=5, minutes=7))  # scheduler was down for hours
    assert later.slot == T0 + timedelta(hours=5)
    with engine.begin() as conn:
        conn.execute(sa.update(_S).values(enabled=False))
    assert schedules.due_slots(engine, T0 + timedelta(days=1)) == []


def test_two_dispatchers_enqueue_a_slot_once(make_settings, redis_url, pg_url, pg_engine) -> None:
    settings = make_settings(REDIS_URL=redis_url, DATABASE_URL=pg_url)
    from connector.db import make_engine

    engines = [pg_engine] + [make_engine(settings.sqlalchemy_url) for _ in range(3)]
    cid = _connection(engines[0])
    sid = _add(engines[0], cid, "run", "0 * * * *")
    slot = T0 + timedelta(hours=2)
    now = slot + timedelta(seconds=20)
    results: list[list[str]] = []
    start = threading.Barrier(len(engines))

    def dispatcher(engine) -> None:
        start.wait()
        results.append(schedules.dispatch(settings, engine, now))

    threads = [threading.Thread(target=dispatcher, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    head = f"sched-{sid}-20260302T1100"
    assert sorted(results, key=len) == [[], [], [], [head, f"{head}-score", f"{head}-writeback"]]
    conn = redis_for(settings)
    assert Queue("sync", connection=conn).job_ids == [head]
    assert Job.fetch(head, connection=conn).kwargs == {
        "connection_id": cid,
        "full": False,
        "trigger": "schedule",
    }
    # Once that job has finished and left Redis, a late dispatcher still finds the slot taken.
    Job.fetch(head, connection=conn).delete()
    assert schedules.dispatch(settings, engines[0], now) == []
    assert schedules.get_schedule(engines[0], sid).last_slot == slot
    for e in engines[1:]:
        e.dispose()


def test_rq_cron_runs_the_dispatch_job_that_enqueues_due_slots(make_settings, redis_url, sqlite_url) -> None:
    settings = make_settings(REDIS_URL=redis_url, DATABASE_URL=sqlite_url)
    from connector.jobs import _engine

    engine = _engine(settings)
    cid = _connection(engine)
    sid = _add(engine, cid, "sync_full", "* * * * *", created=datetime.now(UTC) - timedelta(minutes=5))
    cron = _cron(settings, every=60)
    assert [j.func_name for j in cron.enqueue_jobs()] == ["connector.jobs.dispatch_schedules_job"]
    conn = redis_for(settings)
    assert Queue("webhooks", connection=conn).count == 1
    worker_for(settings, simple=True).work(burst=True, max_jobs=1)  # only the dispatch job
    [queued] = Queue("sync", connection=conn).job_ids
    assert queued.startswith(f"sched-{sid}-")
    assert Job.fetch(queued, connection=conn).func_name == "connector.jobs.sync_job"
    assert schedules.get_schedule(engine, sid).last_slot is not None


def test_run_now_enqueues_outside_the_slots(make_settings, redis_url, sqlite_url) -> None:
    settings = make_settings(REDIS_URL=redis_url, DATABASE_URL=sqlite_url)
    from connector.jobs import _engine

    engine = _engine(settings)
    cid = _connection(engine)
    sid = _add(engine, cid, "writeback", "0 3 * * *")
    assert schedules.run_now(settings, engine, sid) == [f"writeback-{cid}"]
    assert schedules.run_now(settings, engine, sid) == [], "already pending"
    assert schedules.get_schedule(engine, sid).last_slot is None


@pytest.fixture
def cli(tmp_path, sqlite_url, make_settings, monkeypatch):
    """`rapport` in the embedded default (no REDIS_URL) with a connection "mem-cli" to an in-memory CRM."""
    from click.testing import CliRunner

    import adapters
    from connector.cli import main
    from connector.config import get_settings
    from connector.db import make_engine
    from sandbox.memory import MemoryCRM
    from tests.connector.sync_helpers import MEMORY, memory_connection

    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    crm = MemoryCRM(page_size=2)
    monkeypatch.setitem(MemoryCRM.named, "mem-cli", crm)
    for _ in range(3):
        crm.create("account")
        crm.tick(3)
    engine = make_engine(sqlite_url)
    cid, _ = memory_connection(engine, make_settings(DATABASE_URL=sqlite_url), crm, name="mem-cli")
    for name in ("REDIS_URL", "DATABASE_URL", "RAPPORT_DATA_DIR", "RAPPORT_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RAPPORT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    redis_for(get_settings()).flushdb()
    runner = CliRunner()

    def rapport(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return result.output

    yield rapport, crm, cid
    redis_for(get_settings()).flushdb()
    get_settings.cache_clear()
    engine.dispose()


def test_schedules_and_runs_commands_in_the_embedded_default(cli) -> None:
    rapport, _, cid = cli
    assert "no schedules" in rapport("schedules", "list")
    assert "schedule 1: sync_incremental of mem-cli on '*/5 * * * *' (UTC)" in rapport(
        "schedules", "add", "mem-cli", "sync_incremental", "*/5  * * * *"
    )
    assert "the minute field '61' is invalid" in rapport(
        "schedules", "add", "mem-cli", "score", "61 * * * *", code=2
    )
    listed = rapport("schedules", "list")
    assert "sync_incremental" in listed and "*/5 * * * *" in listed and "score" not in listed
    ran = rapport("schedules", "run", "1")
    assert f"enqueued sync-{cid}-incr" in ran and f"job sync-{cid}-incr: finished" in ran
    assert "succeeded" in ran
    history = rapport("runs", "mem-cli")
    [row] = [line for line in history.splitlines() if "sync_incremental" in line]
    assert "succeeded" in row and "manual" in row and "account.created=3" in row
    assert "no connection named 'nobody'" in rapport("runs", "nobody", code=2)
    assert "schedule 1 removed" in rapport("schedules", "remove", "1")
    assert "no schedule 1" in rapport("schedules", "remove", "1", code=2)


def test_run_command_stops_the_chain_at_a_fatal_sync_and_says_so(cli) -> None:
    from connector.errors import AuthError

    rapport, crm, cid = cli
    crm.fail_after(0, AuthError("the session expired", crm="memory", status=401, hint="reconnect mem-cli"))
    out = rapport("run", "mem-cli", code=1)
    [enqueued] = [line for line in out.splitlines() if line.startswith("enqueued ")]
    head = enqueued.split()[1]
    assert head.startswith(f"run-{cid}-") and enqueued.endswith(f"{head}-score → {head}-writeback")
    assert f"job {head}: failed" in out
    assert f"job {head}-score: not run (an earlier step failed)" in out
    assert f"job {head}-writeback: not run (an earlier step failed)" in out
    [row] = [line for line in out.splitlines() if "sync_incremental" in line]
    assert "failed" in row and "the session expired" in row


def test_run_command_with_redis_waits_for_the_workers(cli, redis_url, monkeypatch) -> None:
    from connector.config import get_settings
    from connector.errors import AuthError
    from connector.queues import drain

    rapport, crm, cid = cli
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    settings = get_settings()
    stop = threading.Event()

    def work() -> None:  # a worker elsewhere, draining the real Redis
        while not stop.is_set():
            drain(settings)
            stop.wait(0.2)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        crm.fail_after(0, AuthError("the session expired", crm="memory", status=401))
        out = rapport("run", "mem-cli", "--timeout", "60", code=1)
    finally:
        stop.set()
        worker.join()
    assert "failed" in out.splitlines()[1] and "not run (an earlier step failed)" in out
    [row] = [line for line in out.splitlines() if "sync_incremental" in line]
    assert "failed" in row and "the session expired" in row
