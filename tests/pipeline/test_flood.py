"""Flood: 10,000 HubSpot webhook events (redeliveries, out of order, some for deleted records) posted to
the real receiver (gunicorn from the Procfile) in signed batches of at most 100, while one worker is
stopped with SIGTERM and another killed with SIGKILL in the middle; every event is processed once,
nothing is lost and every acknowledgement is a 2xx.

The events are the sandbox's own deliveries for about 1,800 changes its users made (captured, then
replayed in shuffled order with HubSpot-style retries of the same events mixed in).
"""

from __future__ import annotations

import copy
import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from rq import Worker
from rq.registry import DeferredJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from adapters.base import WriteItem
from adapters.hubspot import webhooks as hs_webhooks
from connector.connections import get_connection, open_adapter
from connector.jobs import lock_vouches
from connector.mappings import apply, load_mapping
from connector.model import RECORD_MODELS, Score, utcnow
from connector.model import WebhookEvent as EventRow
from connector.queues import bind, queues_for, redis_for
from connector.records import normalize
from connector.runs import fail_stale_runs
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import score_values, targets_for, writeback_connection
from sandbox.hubspot import HubSpotSandbox
from tests.pipeline.support import (
    TERMINAL,
    Capture,
    connect_hubspot,
    db_state,
    free_port,
    lock_keys,
    new_key,
    process_env,
    recover_abandoned,
    runs,
    settings_for,
    signed_post,
    start_web,
    wait_for,
    worker_names,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

TOTAL = 10_000
MAX_BATCH = 100
POSTERS = 4  # concurrent requests, as HubSpot sends (it allows up to 10)
ACCOUNTS = 40
MUTATIONS = 1_800
_E = EventRow.__table__  # type: ignore[attr-defined]
_S = Score.__table__  # type: ignore[attr-defined]


def _flood(events: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """TOTAL events: each captured one, plus redeliveries of random ones (attemptNumber raised), shuffled."""
    flood = list(events)
    while len(flood) < TOTAL:
        again = copy.deepcopy(rng.choice(events))
        again["attemptNumber"] = int(again.get("attemptNumber", 0)) + rng.randint(1, 3)
        flood.append(again)
    rng.shuffle(flood)
    batches, start = [], 0
    while start < len(flood):
        size = rng.randint(1, MAX_BATCH)
        batches.append(flood[start : start + size])
        start += size
    return batches


def _subjects(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(unified object, id) of every record the events name, merged-away ones included."""
    out = set()
    for raw in events:
        event = hs_webhooks.to_event(raw)
        out.add((str(event.object), str(event.external_id)))
        out.update((str(event.object), str(i)) for i in event.payload.get("merged_ids", []))
    return out


def _busy_webhook_worker(settings, names: set[str]) -> tuple[str, str] | None:
    """(worker name, job id) of a live worker in the middle of a webhook job."""
    for worker in Worker.all(connection=redis_for(settings)):
        job = worker.get_current_job_id()
        if worker.name in names and job and job.startswith("webhook-"):
            return worker.name, job
    return None


def _scores(engine, cid: int) -> dict[tuple[str, str], tuple]:
    """The current scores of accounts and contacts (their values, not when they were computed)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_S.c.object, _S.c.external_id, _S.c.relationship, _S.c.experience, _S.c.tier,
                                      _S.c.trend, _S.c.drivers).where(
            _S.c.connection_id == cid, _S.c.object.in_(["account", "contact"]))).all()
    return {(r.object, r.external_id): tuple(r[2:]) for r in rows}


_IN_FLIGHT = (StartedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry)


def _settled(engine, settings, cid: int) -> bool:
    with engine.connect() as conn:
        open_events = conn.execute(sa.select(sa.func.count()).select_from(_E).where(
            _E.c.connection_id == cid, _E.c.status.in_(["pending", "processing"]))).scalar_one()
    conn_r = redis_for(settings)
    # a job waiting for its retry (say, a write-back that found the lock of a killed worker) is work in flight too
    busy = any(q.count or any(registry(q.name, connection=conn_r).count for registry in _IN_FLIGHT)
               for q in queues_for(settings))
    return open_events == 0 and not busy


def test_a_flood_of_webhooks_is_absorbed_once_while_workers_restart(tmp_path, pg_url, pg_engine, redis_url,
                                                                    procs) -> None:
    seed = int(os.environ.get("RAPPORT_FLOOD_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    settings = settings_for(tmp_path, pg_url, redis_url, new_key())
    bind(settings)
    engine = pg_engine
    with ExitStack() as stack:
        stack.callback(bind, None)
        capture = Capture()
        stack.callback(capture.stop)
        sb = HubSpotSandbox(size="small", seed=7, accounts=ACCOUNTS, webhook_url=capture.url,
                            webhook_batch_window_s=0.02).start()
        stack.callback(sb.stop)
        cid = connect_hubspot(engine, settings, sb)
        sync_connection(engine, settings, cid)
        score_connection(engine, cid)
        writeback_connection(engine, settings, cid)
        assert sb.webhooks.flush(30)
        capture.events.clear()  # the initial write-back's echoes: not part of the flood

        # the users' changes, as HubSpot delivers them
        sb.mutate(MUTATIONS, seed=seed)
        assert sb.webhooks.flush(60)
        sb.webhooks.settings.target_url = None  # our own write-backs from here on are not replayed
        events = list(capture.events)
        assert 4_000 < len(events) < TOTAL
        deleted = [e for e in events if e["subscriptionType"].endswith((".deletion", ".merge"))]
        assert deleted, "some events are for deleted or merged-away records"
        batches = _flood(events, rng)
        before = db_state(engine, cid)

        env = process_env(settings)
        port = free_port()
        web = start_web(procs, env, port)
        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        live = {name: procs.worker(name, env) for name in ("flood-0", "flood-1")}
        wait_for(lambda: set(live) <= worker_names(settings), "the workers to register", timeout=90)

        posted: list[int] = []
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        local = threading.local()

        def post(batch: list[dict[str, Any]]) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.trust_env = False  # straight to 127.0.0.1, whatever proxy the machine sets
            status = signed_post(local.session, url, batch, sb.info["app_secret"])
            with lock:
                statuses[status] += 1
                posted.append(len(batch))

        with ThreadPoolExecutor(POSTERS) as pool:
            futures = [pool.submit(post, b) for b in batches]
            wait_for(lambda: len(posted) >= len(batches) * 0.35, "a third of the flood to be posted", timeout=120)
            stopping = live.pop("flood-0")
            stopping.popen.send_signal(signal.SIGTERM)  # warm shutdown: finishes its job, then exits
            live["flood-2"] = procs.worker("flood-2", env)
            wait_for(lambda: len(posted) >= len(batches) * 0.65, "two thirds of the flood to be posted", timeout=120)
            for _ in range(5):  # a job may end between being seen busy and the kill: then try the next one
                name, job_id = wait_for(lambda: _busy_webhook_worker(settings, set(live)),
                                        "a worker busy with events", timeout=120, every=0.02)
                live.pop(name).kill_tree()
                killed_at = utcnow()
                with engine.connect() as conn:
                    held = conn.execute(sa.select(sa.func.count()).select_from(_E).where(
                        _E.c.claimed_by == job_id, _E.c.status == "processing")).scalar_one()
                recovered = recover_abandoned(settings, {name})
                fresh = f"flood-{len(procs.started)}"
                live[fresh] = procs.worker(fresh, env)
                if recovered == [job_id]:
                    break
            assert recovered == [job_id], "no kill landed inside a webhook job"
            for future in futures:
                future.result()
        assert stopping.popen.wait(timeout=120) == 0, stopping.output()[-3000:]
        wait_for(lambda: _settled(engine, settings, cid), "every event to be processed", timeout=180, every=0.5)
        wait_for(lambda: set(live) <= worker_names(settings), "the new workers to register", timeout=90)
        for worker_name, proc in live.items():
            assert proc.stop() == 0, f"{worker_name}:\n{proc.output()[-3000:]}"
        assert web.stop() == 0, web.output()[-3000:]

        # every request acknowledged with a 2xx
        assert dict(statuses) == {200: len(batches)}
        assert sum(posted) == TOTAL
        # every distinct event stored once and processed once; the killed worker's claim was taken over
        keys = {hs_webhooks.dedupe_key(e) for e in events}
        with engine.connect() as conn:
            rows = conn.execute(sa.select(_E.c.dedupe_key, _E.c.status, _E.c.attempts, _E.c.processed_at)
                                .where(_E.c.connection_id == cid)).all()
        assert len(rows) == len(keys) == len({r.dedupe_key for r in rows})
        assert {r.dedupe_key for r in rows} == keys
        assert Counter(r.status for r in rows).keys() <= {"processed", "ignored"}, Counter(r.status for r in rows)
        assert {r.attempts for r in rows} == {1} and all(r.processed_at is not None for r in rows)
        print(f"flood seed {seed}: {len(batches)} requests, {len(keys)} distinct events, "
              f"{held} held by the killed worker")

        # nothing lost: each record the events name is in the unified tables as the CRM has it now
        adapter = open_adapter(engine, settings, cid)
        mapping = load_mapping(engine, cid, "hubspot")
        by_object: dict[str, list[str]] = {}
        for object, ident in _subjects(events):
            by_object.setdefault(object, []).append(ident)
        after = db_state(engine, cid)
        gone = 0
        for object, ids in by_object.items():
            for change in adapter.fetch(object, sorted(ids)):
                row = after[object].get((change.external_id,))
                if change.deleted:
                    gone += 1
                    assert row is None or (row["is_deleted"] and row["merged_into"] == change.merged_into), (
                        object, change.external_id, row)
                    continue
                assert row is not None and not row["is_deleted"], (object, change.external_id)
                expected = apply(mapping, object, normalize(change).raw)
                # our own score write-back moves a company's or contact's modified stamp afterwards
                skip = {"modified_at"} if object in ("account", "contact") else set()
                wrong = {k: (row.get(k), v) for k, v in expected.items() if k not in skip and row.get(k) != v}
                assert wrong == {}, (object, change.external_id, wrong)
        assert gone > 0, "some of the records were deleted or merged away"

        # every account whose data changed was rescored: scoring the current data again changes nothing
        changed: set[str] = set()
        for object in RECORD_MODELS:
            for key, row in after[object].items():
                old = before[object].get(key)
                if old != row:
                    changed.update(a for a in (row.get("account_external_id"), (old or {}).get("account_external_id"))
                                   if a)
                    if object == "account":
                        changed.add(key[0])
        live_accounts = {k[0] for k, r in after["account"].items() if not r["is_deleted"]}
        assert changed & live_accounts
        # (each at the moment it was last scored: scores move with the clock, in whole days)
        kept = _scores(engine, cid)
        with engine.connect() as conn:
            stamps = conn.execute(sa.select(_S.c.external_id, _S.c.scored_at).where(
                _S.c.connection_id == cid, _S.c.object == "account",
                _S.c.external_id.in_(sorted(changed & live_accounts)))).all()
        moments: dict[Any, list[str]] = {}
        for account, at in stamps:
            moments.setdefault(at, []).append(account)
        for at, accounts in moments.items():
            score_connection(engine, cid, account_ids=accounts, now=at)
        fresh = _scores(engine, cid)
        stale = sorted(k for k in fresh if kept.get(k) != fresh[k])
        assert stale == [], f"records whose score the flood left stale: {stale[:10]}"

        # the CRM shows every live company's and contact's current score (the stamp aside: an
        # unchanged score is not written again)
        targets = targets_for(engine, get_connection(engine, cid))
        with engine.connect() as conn:
            for object in ("account", "contact"):
                rec = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
                rows = conn.execute(sa.select(_S).join(rec, sa.and_(
                    rec.c.connection_id == _S.c.connection_id, rec.c.external_id == _S.c.external_id)).where(
                    _S.c.connection_id == cid, _S.c.object == object, rec.c.is_deleted.is_(False))).all()
                items = [WriteItem(object, r.external_id, {targets[object][k]: v for k, v in score_values(r).items()
                                                           if k != "scored_at" and k in targets[object]})
                         for r in rows]
                assert adapter.already_written(object, items) == {i.external_id for i in items}, object  # type: ignore[attr-defined]

        # no lock left, no job failed; the runs the killed worker left "running" are failed by the
        # scheduler's sweep (every minute, for runs quiet for five; here at once)
        assert lock_keys(settings) == []
        assert all(q.failed_job_registry.count == 0 for q in queues_for(settings))
        left = [r for r in runs(engine, cid) if r.status not in TERMINAL]
        assert all(r.trigger == "webhook" and r.started_at < killed_at for r in left), left
        fail_stale_runs(engine, older_than_s=0, alive=lock_vouches(settings))
        assert [r for r in runs(engine, cid) if r.status not in TERMINAL] == []
