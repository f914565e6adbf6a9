"""Pipeline test support: scratch databases, real worker processes (killed and recovered), HubSpot
sandbox connections, and snapshots of the unified tables and of the CRM to compare two runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from hubspot.utils.signature import Signature
from rq.job import Job
from rq.registry import StartedJobRegistry, clean_registries
from rq.scheduler import RQScheduler
from sqlalchemy.engine import Engine

from connector.commands.salesforce import score_specs
from connector.config import Settings, load_settings
from connector.connections import create_connection, open_adapter
from connector.db import make_engine
from connector.mappings import load_mapping
from connector.migrate import upgrade
from connector.model import (
    RECORD_MODELS,
    SCORED_OBJECTS,
    Score,
    ScoreHistory,
    SyncCursor,
    SyncRun,
    WritebackState,
)
from connector.queues import queues_for, redis_for, worker_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("RAPPORT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TERMINAL = {"succeeded", "failed", "partial", "paused"}
SCORE_PROPS = ("relationship_score", "experience_score", "tier", "drivers", "trend", "scored_at")

_RUN = SyncRun.__table__  # type: ignore[attr-defined]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def scratch_database(tag: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database (dropped afterwards); yields its URL."""
    name = f"rapport_test_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def settings_for(tmp_path: Path, database_url: str, redis_url: str, key: str, **extra: str) -> Settings:
    """Settings as the worker processes will read them from their environment."""
    env = {"RAPPORT_ENV": "test", "RAPPORT_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "RAPPORT_ENCRYPTION_KEY": key, **extra}
    return load_settings(env)


def new_key() -> str:
    """A Fernet key shared by the test and its processes (connection secrets are encrypted with it)."""
    return Fernet.generate_key().decode()


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a Rapport process using these settings (nothing of the caller's RAPPORT_*)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAPPORT_", "DATABASE_", "REDIS_"))}
    assert settings.encryption_key is not None
    return {
        **base,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "RAPPORT_ENV": settings.env,
        "RAPPORT_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.sqlalchemy_url,
        "REDIS_URL": str(settings.redis_url),
        "RAPPORT_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "RAPPORT_PUBLIC_URL": settings.public_url,
        **extra,
    }


def connect_hubspot(engine: Engine, settings: Settings, sb: Any, name: str = "hs",
                    options: dict[str, Any] | None = None) -> int:
    """A HubSpot connection to the sandbox (as `rapport connect hubspot`) with its score fields provisioned."""
    cid = create_connection(engine, settings, kind="hubspot", name=name, instance_url=sb.info["api_base"],
                            external_org_id=str(sb.portal_id), options={"auth": "private_app", **(options or {})},
                            secrets={"access_token": sb.info["access_token"], "app_secret": sb.info["app_secret"]})
    mapping = load_mapping(engine, cid, "hubspot")
    adapter = open_adapter(engine, settings, cid)
    for object in SCORED_OBJECTS:
        adapter.ensure_fields(object, score_specs("hubspot", object, mapping.write.get(object, {})))
    return cid


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    """One Rapport process started in its own session, logging to a file."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """This process and every descendant (RQ's work horse sits in a process group of its own)."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self, victims: list[psutil.Process] | None = None) -> list[int]:
        """SIGKILL the process and all its descendants (or `victims`) at once, as when the machine dies."""
        victims = list(victims or [])
        for batch in (victims, None):  # the known ones first, then any started meanwhile
            found = batch if batch is not None else self.tree()
            for p in found:
                try:
                    p.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            if batch is None:
                victims += found
        self.popen.wait(timeout=30)
        psutil.wait_procs(victims, timeout=10)
        return [p.pid for p in victims]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait for the exit code."""
        if self.alive():
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Procs:
    """Starts processes and makes sure every one of them (and its children) is gone at the end."""

    tmp_path: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.tmp_path / f"{name}.log"
        handle = open(log, "wb")  # noqa: SIM115 - the child owns it; closed below
        try:
            popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        finally:
            handle.close()
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def worker(self, name: str, env: dict[str, str], *, burst: bool = False) -> Proc:
        """`rapport worker` under a name of its own (as `rq info` shows it)."""
        argv = [str(BIN / "rapport"), "worker", "--name", name] + (["--burst"] if burst else [])
        return self.start(name, argv, env)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.alive() or proc.tree():
                proc.kill_tree()


def worker_names(settings: Settings) -> set[str]:
    """Names of the workers registered in Redis."""
    from rq import Worker

    return {w.name for w in Worker.all(connection=redis_for(settings))}


def recover_abandoned(settings: Settings, dead: set[str]) -> list[str]:
    """Do at once what RQ does in minutes for jobs whose worker was killed; returns their ids.

    A live worker's maintenance (every minute, `connector.queues.worker_for`) finds the job once
    the dead worker's heartbeat lapses (about 90 s) and hands it to the exception handlers and
    the retry policy; RQ's scheduler then enqueues the retry when due. Here the dead worker's
    heartbeat is lapsed now, the same `clean_registries` runs with the worker's own handlers,
    and the scheduler's own step enqueues what is scheduled, as it would once due.
    """
    conn = redis_for(settings)
    handlers = worker_for(settings, name=f"recovery-{uuid.uuid4().hex[:8]}")._exc_handlers
    recovered: list[str] = []
    queues = queues_for(settings)
    for queue in queues:
        registry = StartedJobRegistry(queue.name, connection=conn)
        for entry in conn.zrange(registry.key, 0, -1):
            job_id = registry.parse_job_id(entry)
            job = Job.fetch(job_id, connection=conn)
            if job.worker_name in dead:
                conn.zadd(registry.key, {entry: 1})  # its heartbeat lapsed long ago
                recovered.append(job_id)
        clean_registries(queue, handlers)
    for queue in queues:
        scheduled = queue.scheduled_job_registry
        for job_id in scheduled.get_job_ids():
            conn.zadd(scheduled.key, {job_id: time.time() - 1})
    scheduler = RQScheduler(queues, connection=conn)
    scheduler.prepare_registries([q.name for q in queues])
    scheduler.enqueue_scheduled_jobs()
    return recovered


class CallLog:
    """When each API call reached a sandbox (before its injected delay): (epoch seconds, "METHOD path")."""

    def __init__(self, sb: Any) -> None:
        self.arrivals: list[tuple[float, str]] = []
        draw = sb.faults.draw

        def logged(path: str) -> Any:
            self.arrivals.append((time.time(), path))
            return draw(path)

        sb.faults.draw = logged

    def nth_since(self, since: float, n: int) -> tuple[float, str] | None:
        """The n-th call (1-based) that arrived at or after `since`, if it has arrived."""
        found = [a for a in list(self.arrivals) if a[0] >= since]
        return found[n - 1] if len(found) >= n else None


class Capture:
    """A local HTTP endpoint that keeps every JSON array POSTed to it (a sandbox's webhook deliveries)."""

    def __init__(self) -> None:
        from werkzeug.serving import make_server
        from werkzeug.wrappers import Request, Response

        self.events: list[dict[str, Any]] = []

        @Request.application
        def app(request: Request) -> Response:
            self.events.extend(json.loads(request.get_data()))
            return Response("ok")

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_web(procs: Procs, env: dict[str, str], port: int) -> Proc:
    """The Procfile's web process (gunicorn serving connector.app:create_app) on 127.0.0.1:port, answering."""
    line = dict(ln.split(": ", 1) for ln in (ROOT / "Procfile").read_text().splitlines() if ": " in ln)["web"]
    web = procs.start("web", ["sh", "-c", "exec " + line],
                      {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2"})

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, "gunicorn to answer /healthz", timeout=90, every=0.3)
    return web


def signed_post(session: requests.Session, url: str, events: list[dict[str, Any]], secret: str) -> int:
    """POST events as HubSpot does (JSON array, v3 signature over method, URL, body and timestamp); the status."""
    body = json.dumps(events)
    stamp = str(int(time.time() * 1000))
    headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
               "X-HubSpot-Signature-v3": Signature.get_signature(secret, body, "v3", url, "POST", stamp)}
    return session.post(url, data=body.encode(), headers=headers, timeout=30).status_code


# --- run state -----------------------------------------------------------------------------------


def runs(engine: Engine, cid: int, kind: str | None = None) -> list[Any]:
    """The connection's runs (of one kind), oldest first."""
    query = sa.select(_RUN).where(_RUN.c.connection_id == cid).order_by(_RUN.c.id)
    if kind is not None:
        query = query.where(_RUN.c.kind == kind)
    with engine.connect() as conn:
        return list(conn.execute(query))


def run_status(engine: Engine, run_id: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(_RUN.c.status).where(_RUN.c.id == run_id)).scalar_one())


def lock_keys(settings: Settings) -> list[str]:
    """Rapport's run locks still present in Redis."""
    return sorted(k.decode() for k in redis_for(settings).keys("rapport:lock:*"))


# --- snapshots -------------------------------------------------------------------------------------

# Surrogate keys and bookkeeping clocks differ between two databases fed the same data. So does
# the raw record's shape: HubSpot's list endpoint embeds associations, its search does not (the
# adapter resolves them into `_rapport` either way), and a resumed sync reads by search; the
# cursor's per-record digests follow the raw record. The mapped fields are what must be equal.
_NOT_DATA = {"id", "connection_id", "account_id", "synced_at", "written_at", "updated_at", "raw", "seen_ids"}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rows(engine: Engine, table: sa.Table, cid: int, key: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.connection_id == cid)).mappings().all()
    return {tuple(r[k] for k in key): {k: v for k, v in r.items() if k not in _NOT_DATA} for r in rows}


def db_state(engine: Engine, cid: int) -> dict[str, dict[tuple, dict[str, Any]]]:
    """The unified tables, scores and write-back state of a connection, without surrogate keys or clocks."""
    state = {obj: _rows(engine, model.__table__, cid, ("external_id",))  # type: ignore[attr-defined]
             for obj, model in RECORD_MODELS.items()}
    state["score"] = _rows(engine, Score.__table__, cid, ("object", "external_id"))  # type: ignore[attr-defined]
    state["writeback_state"] = _rows(engine, WritebackState.__table__, cid, ("object", "external_id"))  # type: ignore[attr-defined]
    state["sync_cursor"] = _rows(engine, SyncCursor.__table__, cid, ("object",))  # type: ignore[attr-defined]
    history = ScoreHistory.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        snapshots = conn.execute(sa.select(history).where(history.c.connection_id == cid)).mappings().all()
    state["score_history"] = {}
    for snap in snapshots:
        state["score_history"].setdefault((snap["object"], snap["external_id"]), {"snapshots": []})["snapshots"].append(
            {k: v for k, v in snap.items() if k not in _NOT_DATA})
    return state


def summary(state: dict[str, dict[tuple, dict[str, Any]]]) -> dict[str, tuple[int, str]]:
    """Per table: (row count, digest of every row's data)."""
    return {name: (len(rows), _digest(sorted((list(k), _digest(v)) for k, v in rows.items())))
            for name, rows in state.items()}


def differences(a: dict[str, dict[tuple, dict[str, Any]]], b: dict[str, dict[tuple, dict[str, Any]]],
                limit: int = 5) -> list[str]:
    """Readable differences between two states (empty when they are equal)."""
    out: list[str] = []
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name, {}), b.get(name, {})
        only_a, only_b = sorted(set(left) - set(right))[:limit], sorted(set(right) - set(left))[:limit]
        if only_a or only_b:
            out.append(f"{name}: only in the first {only_a} (of {len(set(left) - set(right))}), "
                       f"only in the second {only_b} (of {len(set(right) - set(left))})")
        changed = [k for k in sorted(set(left) & set(right)) if left[k] != right[k]]
        for k in changed[:limit]:
            out.append(f"{name} {k}: " + "; ".join(_leaf_diffs(left[k], right[k])[:limit]))
        if len(changed) > limit:
            out.append(f"{name}: {len(changed) - limit} more rows differ")
    return out


def _leaf_diffs(a: Any, b: Any, path: str = "") -> list[str]:
    """`path: a != b` for every differing leaf of two JSON-like values."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _leaf_diffs(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _leaf_diffs(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path.lstrip('.')}: {a!r} != {b!r}"]


def crm_scores(sb: Any, targets: dict[str, dict[str, str]]) -> dict[tuple[str, int], dict[str, str | None]]:
    """The score properties on every live company and contact of a HubSpot sandbox (read from its store)."""
    out: dict[tuple[str, int], dict[str, str | None]] = {}
    for object, table_name in (("account", "companies"), ("contact", "contacts")):
        props = [targets[object][k] for k in SCORE_PROPS if k in targets[object]]
        table = sb.store.tables[table_name]
        with sb.store.lock:
            for rid in table.live:
                rec = table.records[rid]
                out[(table_name, rid)] = {p: rec.props.get(p) for p in props}
    return out


def api_writes(sb: Any) -> dict[tuple[str, int], int]:
    """How many times Rapport (the integration) wrote each record of a HubSpot sandbox."""
    with sb.store.lock:
        return {(t, rid): n for (source, t, rid), n in sb.store.writes.items() if source == "INTEGRATION"}
