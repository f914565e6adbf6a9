"""The pipeline benchmark, per CRM, on a real stack (sandbox, gunicorn, two RQ workers, PostgreSQL, Redis).

Figures: full and incremental sync speed, read and write API calls against the minimum, calls of a
write-back with nothing changed, accounts rescored by our own writes' echoes, freshness (from a
change made through the CRM's API to the new score readable through it) at a steady rate, and the
peak memory of any process of the stack. The HubSpot sandbox's rate limits are lifted so the
benchmark's own reads and changes do not spend Rapport's budget; Rapport keeps its own budget.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bench.context import BenchContext
from bench.crm_users import CrmUser, HubSpotUser, SalesforceUser
from bench.stack import Stack, free_port, release_redis_db, reserve_redis_db
from connector.config import load_settings
from connector.db import make_engine
from connector.model import Score, SyncRun, WebhookEvent
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import writeback_connection

RATE_PER_S = 50
DURATION_S = 60
SETTLE_S = 30  # how long after the last change a score may still arrive
MUTATIONS = 2000  # changes made before the incremental sync
_RUN = SyncRun.__table__  # type: ignore[attr-defined]
_EVENT = WebhookEvent.__table__  # type: ignore[attr-defined]
_SCORE = Score.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Crm:
    """How to stand up and connect one CRM for the benchmark."""

    kind: str
    read_page: int  # records per read call at the minimum
    write_batch: int
    connect: Any
    prepare: Any
    user: type


def _connect_salesforce(stack: Stack, name: str, info: dict[str, Any]) -> None:
    stack.rapport("connect", "salesforce", name, "--username", info["username"], "--password", info["password"],
                  "--client-id", info["client_id"], "--client-secret", info["client_secret"],
                  "--login-url", info["instance_url"], "--ca-bundle", info["ca_bundle"])


def _prepare_salesforce(info: dict[str, Any], webhook_url: str) -> None:
    """What an admin does in the org: Outbound Messages on the scoring inputs, to Rapport's URL."""
    rules = {"Account": ["Name", "AnnualRevenue"], "Contact": ["AccountId", "Email"],
             "Opportunity": ["AccountId", "StageName", "Amount"], "Case": ["AccountId", "Status", "Priority"]}
    _hook(info["instance_url"], "POST", "outbound", {"url": webhook_url, "rules": rules, "backoff_base": 0.5},
          verify=info["ca_bundle"])


def _connect_hubspot(stack: Stack, name: str, info: dict[str, Any]) -> None:
    stack.rapport("connect", "hubspot", name, "--token", info["access_token"], "--api-base", info["api_base"],
                  "--portal-id", str(info["portal_id"]), "--app-secret", info["app_secret"])


def _prepare_hubspot(info: dict[str, Any], webhook_url: str) -> None:
    _hook(info["api_base"], "PUT", "limits", {"enabled": False})


CRMS = {
    "salesforce": Crm("salesforce", 2000, 200, _connect_salesforce, _prepare_salesforce, SalesforceUser),
    "hubspot": Crm("hubspot", 100, 100, _connect_hubspot, _prepare_hubspot, HubSpotUser),
}


def _hook(base: str, method: str, path: str, body: dict[str, Any], verify: Any = True) -> Any:
    session = requests.Session()
    session.trust_env = False
    resp = session.request(method, f"{base.rstrip('/')}/__sandbox__/{path}", json=body, verify=verify, timeout=60)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Both CRMs, one after the other, each on a stack of its own."""
    figures: dict[str, float | int | str] = {}
    for crm in CRMS.values():
        figures.update({f"{crm.kind}_{k}": v for k, v in _bench_crm(ctx, crm).items()})
    figures["score_seconds"] = max(float(figures.get(f"{k}_score_seconds", 0)) for k in CRMS)
    return figures


def _run_row(engine: sa.Engine, run_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(_RUN).where(_RUN.c.id == run_id)).one()


def _bench_crm(ctx: BenchContext, crm: Crm) -> dict[str, float | int | str]:
    redis_url, token = reserve_redis_db(ctx.redis_url)
    db_url = ctx.scratch_pg(f"pipeline_{crm.kind}")
    port = free_port()
    name = f"bench-{crm.kind}"
    hook_path = f"/webhooks/salesforce/{name}" if crm.kind == "salesforce" else "/webhooks/hubspot"
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "RAPPORT_ENV": "development",
           "RAPPORT_DATA_DIR": str(ctx.workdir / f"data-{crm.kind}"), "RAPPORT_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "RAPPORT_ENCRYPTION_KEY": Fernet.generate_key().decode(), "RAPPORT_LOG_LEVEL": "WARNING"}
    stack = Stack(env, ctx.workdir)
    out: dict[str, float | int | str] = {}
    try:
        stack.web(port)
        info = stack.sandbox(crm.kind, ctx.size, ctx.seed, f"http://127.0.0.1:{port}{hook_path}")
        crm.connect(stack, name, info)
        stack.rapport("provision", name)
        settings = load_settings(env)
        engine = make_engine(settings.sqlalchemy_url)
        with engine.connect() as conn:
            cid = conn.execute(sa.text("SELECT id FROM connection WHERE name = :n"), {"n": name}).scalar_one()
        out.update(_sync_and_write(engine, settings, cid, crm))
        crm.prepare(info, f"http://127.0.0.1:{port}{hook_path}")
        out.update(_incremental(engine, settings, cid, crm, info))
        peak = _Sampler(stack)
        stack.workers(2)
        out["backlog_settle_s"] = _settle(engine, cid)
        out.update(_echo(engine, settings, cid))
        out.update(_freshness(engine, cid, crm.user(info), ctx))
        out["peak_rss_mb"] = round(max(peak.stop(), stack.rss_mb()), 1)
        engine.dispose()
    finally:
        stack.close()
        release_redis_db(redis_url, token)
    return out


def _sync_and_write(engine: sa.Engine, settings: Any, cid: int, crm: Crm) -> dict[str, float | int | str]:
    t0 = time.perf_counter()
    full = _run_row(engine, sync_connection(engine, settings, cid, full=True, trigger="bench"))
    full_s = time.perf_counter() - t0
    records = sum(v.get("created", 0) + v.get("updated", 0) for v in full.counts.values())
    t0 = time.perf_counter()
    score_connection(engine, cid, trigger="bench")
    score_s = time.perf_counter() - t0
    first = writeback_connection(engine, settings, cid, trigger="bench")
    noop = writeback_connection(engine, settings, cid, trigger="bench")
    return {"sync_full_records": records, "sync_full_records_per_s": round(records / full_s, 1),
            "sync_full_read_calls": full.api_calls, "sync_full_read_calls_min": math.ceil(records / crm.read_page),
            "score_seconds": round(score_s, 2), "written": first["written"], "write_calls": first["api_calls"],
            "write_calls_min": math.ceil(first["written"] / crm.write_batch), "noop_write_calls": noop["api_calls"]}


def _incremental(engine: sa.Engine, settings: Any, cid: int, crm: Crm, info: dict[str, Any]) -> dict[str, float | int]:
    base = info.get("instance_url") or info["api_base"]
    _hook(base, "POST", "mutate", {"count": MUTATIONS, "seed": 7}, verify=info.get("ca_bundle", True))
    t0 = time.perf_counter()
    run = _run_row(engine, sync_connection(engine, settings, cid, trigger="bench"))
    seconds = time.perf_counter() - t0
    records = sum(v.get("created", 0) + v.get("updated", 0) + v.get("deleted", 0) + v.get("merged", 0)
                  + v.get("unchanged", 0) for v in run.counts.values())
    return {"sync_incremental_records": records, "sync_incremental_records_per_s": round(records / seconds, 1),
            "read_calls": run.api_calls, "read_calls_min": max(1, math.ceil(records / crm.read_page))}


def _settle(engine: sa.Engine, cid: int, timeout: float = 900) -> int:
    """Wait until the workers have taken every webhook event and no run is going; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            events = conn.execute(sa.select(sa.func.count()).select_from(_EVENT).where(
                _EVENT.c.connection_id == cid, _EVENT.c.status.in_(["pending", "processing"]))).scalar_one()
            runs = conn.execute(sa.select(sa.func.count()).select_from(_RUN).where(
                _RUN.c.connection_id == cid, _RUN.c.status == "running")).scalar_one()
        if not events and not runs:
            break
        time.sleep(1)
    return int(time.monotonic() - started)


def _echo(engine: sa.Engine, settings: Any, cid: int) -> dict[str, int]:
    """Write every score again (each write bumps the record and may come back as a webhook); how many
    accounts those echoes got rescored (should be none)."""
    with engine.begin() as conn:
        mark = conn.execute(sa.select(sa.func.coalesce(sa.func.max(_RUN.c.id), 0))).scalar_one()
        events_before = conn.execute(sa.select(sa.func.count()).select_from(_EVENT)).scalar_one()
        conn.execute(sa.text("UPDATE writeback_state SET written = '{}' WHERE connection_id = :c"), {"c": cid})
    rewritten = writeback_connection(engine, settings, cid, trigger="bench")["written"]
    time.sleep(5)  # outbound messages and webhooks leave the CRM shortly after the writes
    _settle(engine, cid)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(_RUN.c.counts).where(
            _RUN.c.connection_id == cid, _RUN.c.kind == "score", _RUN.c.id > mark)).scalars().all()
        events = conn.execute(sa.select(sa.func.count()).select_from(_EVENT)).scalar_one() - events_before
    return {"echo_rewritten": rewritten, "echo_events": int(events),
            "echo_rescored": sum(int(c.get("accounts", 0)) for c in runs)}


def _freshness(engine: sa.Engine, cid: int, user: CrmUser, ctx: BenchContext) -> dict[str, float | int]:
    """Steady changes (a big won deal on a low-scored account each); latency until the CRM shows a new score."""
    with engine.connect() as conn:
        targets = conn.execute(sa.select(_SCORE.c.external_id).where(
            _SCORE.c.connection_id == cid, _SCORE.c.object == "account", _SCORE.c.relationship < 50)
            .order_by(_SCORE.c.relationship).limit(RATE_PER_S * DURATION_S)).scalars().all()
    baseline = user.scores(targets)
    pending: dict[str, tuple[float, Any]] = {}
    seen: list[float] = []
    lock = threading.Lock()
    done = threading.Event()
    finished = [0.0]  # when the last change was made

    def poll() -> None:
        while not done.is_set() or pending:
            with lock:
                ids = list(pending)
            if ids:
                now_values = user.scores(ids)
                t = time.time()
                with lock:
                    for i, v in now_values.items():
                        if i in pending and v != pending[i][1]:
                            seen.append(t - pending.pop(i)[0])
            if done.is_set() and time.time() > finished[0] + SETTLE_S:
                return
            time.sleep(0.1)

    def change(n: int, account: str) -> None:
        user.win_deal(account, n)
        with lock:
            pending[account] = (time.time(), baseline.get(account))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for n, account in enumerate(targets):
            delay = start + n / RATE_PER_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(change, n, account)
    finished[0] = time.time()
    done.set()
    poller.join(SETTLE_S + 60)
    lat = np.array(seen) if seen else np.array([float("nan")])
    return {"changes": len(targets), "changes_per_s": round(len(targets) / max(time.monotonic() - start, 1e-9), 1),
            "changes_unseen": len(pending), "freshness_p50_s": round(float(np.percentile(lat, 50)), 3),
            "freshness_p95_s": round(float(np.percentile(lat, 95)), 3),
            "freshness_p99_s": round(float(np.percentile(lat, 99)), 3)}


class _Sampler:
    """Samples the stack's peak memory once a second in the background."""

    def __init__(self, stack: Stack) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(stack,), daemon=True)
        self._thread.start()

    def _loop(self, stack: Stack) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, stack.rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak
