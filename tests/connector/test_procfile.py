"""The Procfile's processes start with real PostgreSQL and Redis, do their work, and stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from rq import Worker
from rq.cron import CronScheduler

from connector import schedules
from connector.app import create_app
from connector.model import Connection, Schedule, SyncRun, Workspace, utcnow

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def env(tmp_path: Path, pg_url: str, redis_url: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RAPPORT_", "DATABASE_", "REDIS_"))},
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "RAPPORT_DATA_DIR": str(tmp_path / "data"),
        "HOST": "127.0.0.1",
        "PORT": str(_free_port()),
        "WEB_CONCURRENCY": "1",
    }


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def run(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            ["sh", "-c", "exec " + procfile()[name]], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_procfile_names_the_four_processes() -> None:
    assert set(procfile()) == {"release", "web", "worker", "scheduler"}


def test_release_then_web_answers_healthz(env, start, tmp_path: Path) -> None:
    release = subprocess.run(
        ["sh", "-c", procfile()["release"]], env=env, cwd=ROOT, capture_output=True, timeout=120
    )
    assert release.returncode == 0, release.stderr.decode()
    web = start("web")
    url = f"http://127.0.0.1:{env['PORT']}/healthz"

    def answer() -> dict | None:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return {"http": resp.status, **json.loads(resp.read())}
        except urllib.error.HTTPError as exc:  # a 503 still carries the checks
            return {"http": exc.code, **json.loads(exc.read())}
        except OSError:  # refused while starting, or a timeout while the worker boots
            return None

    body = _wait_for(answer, "gunicorn to answer /healthz", timeout=60)
    assert body["http"] == 200 and body["checks"] == {"database": "ok", "redis": "ok"}, body
    assert _stop(web) == 0, (tmp_path / "web.log").read_text()


def test_worker_and_scheduler_run_a_due_schedule_and_stop_on_sigterm(
    env, start, pg_engine, redis_url: str, tmp_path: Path
) -> None:
    now = utcnow()
    with pg_engine.begin() as conn:
        ws = conn.execute(
            sa.insert(Workspace.__table__).values(name="w", created_at=now).returning(sa.column("id"))
        ).scalar_one()
        cid = conn.execute(
            sa.insert(Connection.__table__)
            .values(workspace_id=ws, name="acme", kind="hubspot", credentials_encrypted="", options={},
                    status="active", created_at=now, updated_at=now)
            .returning(sa.column("id"))
        ).scalar_one()  # fmt: skip
    sid = schedules.add_schedule(pg_engine, cid, "writeback", "* * * * *")
    with pg_engine.begin() as conn:
        conn.execute(sa.update(Schedule.__table__).values(created_at=now - timedelta(minutes=5)))
    conn = redis.Redis.from_url(redis_url)
    worker = start("worker")
    scheduler = start("scheduler")
    _wait_for(lambda: len(Worker.all(connection=conn)) == 1, "the worker to register")
    _wait_for(lambda: len(CronScheduler.all(connection=conn)) == 1, "the scheduler to register")

    runs = SyncRun.__table__  # type: ignore[attr-defined]

    def finished() -> object:
        with pg_engine.connect() as c:
            return c.execute(
                sa.select(runs).where(runs.c.kind == "writeback", runs.c.status != "running")
            ).first()

    # scheduler's dispatch job → worker claims the slot → worker runs that slot's write-back job
    run = _wait_for(finished, "the scheduled write-back run", timeout=60)
    assert (run.status, run.trigger, run.connection_id) == ("succeeded", "schedule", cid), run
    assert run.job_id.startswith(f"sched-{sid}-")
    assert schedules.get_schedule(pg_engine, sid).last_slot is not None
    assert _stop(worker) == 0, (tmp_path / "worker.log").read_text()
    assert _stop(scheduler) == 0, (tmp_path / "scheduler.log").read_text()
    assert Worker.all(connection=conn) == [] and CronScheduler.all(connection=conn) == []


def test_healthz_is_503_naming_what_is_down(make_settings, sqlite_url: str) -> None:
    closed = _free_port()
    app = create_app(make_settings(DATABASE_URL=sqlite_url, REDIS_URL=f"redis://127.0.0.1:{closed}/0"))
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "redis down"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down: ConnectionError")
