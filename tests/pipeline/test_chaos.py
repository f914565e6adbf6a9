"""Chaos: `rapport worker` processes are SIGKILLed in the middle of sync, of scoring and of write-back
(ten times each) and fresh workers carry the run on; the CRM and the database end exactly as after
an undisturbed run of the same pipeline on an identical sandbox and database.

The kills land at random moments inside each step's run. To make a step last long enough, the
sandbox answers every API call slowly (its fault hooks) and, since scoring calls no API, a trigger
in the chaos database makes each statement writing `score` sleep. RQ notices a dead worker's job
about 90 s after its last heartbeat; the test runs that same recovery at once (support.recover_abandoned).
Scores depend on the clock (days since the last activity), so the undisturbed run scores at the
moment the chaos run's successful scoring did.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import ExitStack
from typing import Any

import pytest
import sqlalchemy as sa
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from connector.connections import get_connection
from connector.db import make_engine
from connector.model import RECORD_MODELS, SCORED_OBJECTS, Score, WritebackState
from connector.queues import enqueue_steps, queues_for, redis_for, steps_for
from connector.runs import STOPPED
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import targets_for, writeback_connection
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.faults import FaultConfig
from tests.pipeline.support import (
    TERMINAL,
    CallLog,
    api_writes,
    connect_hubspot,
    crm_scores,
    db_state,
    differences,
    lock_keys,
    new_key,
    process_env,
    recover_abandoned,
    run_status,
    runs,
    scratch_database,
    settings_for,
    summary,
    wait_for,
    worker_names,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

KILLS = int(os.environ.get("RAPPORT_CHAOS_KILLS", "10"))  # per step; the issue asks for ten
ACCOUNTS = 40
SEED = 11
READ_DELAY_S = 0.15  # every sandbox API call of the chaos run takes this long...
CALL_DELAY_S = 1.0  # ...and this long from the write-back on, where a kill must land before the last call ends
KILL_WITHIN_S = 0.3  # a kill lands this long after its call arrived, at most (well inside the call's delay)
SCORE_STATEMENT_DELAY_S = 0.4  # each statement writing `score` (accounts, contacts, ...) sleeps this long
BATCH = 100  # HubSpot batch update size
STEPS = (("sync", "sync_incremental"), ("score", "score"), ("writeback", "writeback"))

_SLOW_SCORE = f"""
CREATE FUNCTION rapport_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep({SCORE_STATEMENT_DELAY_S}); RETURN NULL; END $$;
CREATE TRIGGER rapport_test_slow BEFORE INSERT OR UPDATE ON score FOR EACH STATEMENT
EXECUTE FUNCTION rapport_test_slow();
"""


def _unrecorded(engine, cid: int) -> dict[str, list[str]]:
    """Per scored object, the records whose score has no recorded write yet."""
    s, w = Score.__table__, WritebackState.__table__  # type: ignore[attr-defined]
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for object in SCORED_OBJECTS:
            rec = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
            out[object] = list(conn.execute(
                sa.select(s.c.external_id).select_from(
                    s.join(rec, sa.and_(rec.c.connection_id == s.c.connection_id, rec.c.external_id == s.c.external_id))
                    .outerjoin(w, sa.and_(w.c.connection_id == s.c.connection_id, w.c.object == s.c.object,
                                          w.c.external_id == s.c.external_id)))
                .where(s.c.connection_id == cid, s.c.object == object, rec.c.is_deleted.is_(False),
                       sa.or_(w.c.id.is_(None), w.c.written_at.is_(None)))
            ).scalars())
    return out


def _writeback_calls(engine, cid: int) -> int:
    """How many slow calls the write-back attempt that just started makes at least: one per unrecorded batch.

    (One that follows a killed attempt reads each batch back before writing what is not there yet.)
    """
    return sum(math.ceil(len(ids) / BATCH) for ids in _unrecorded(engine, cid).values())


def _await_kill_moment(rng: random.Random, step: str, attempt: int, run, engine, cid: int, sb, calls: CallLog) -> str:
    """Wait for a random moment inside the run that has just started; says where it is."""
    started = run.started_at.timestamp()
    if step == "score":  # no API calls: a random moment of the scoring transaction
        at = started + rng.uniform(0.05, 2 * SCORE_STATEMENT_DELAY_S - 0.1)  # accounts, then contacts
        time.sleep(max(0.0, at - time.time()))
        return f"{at - started:.2f} s into scoring"
    # Sync: even the shortest attempt (the last object listed again from the start) makes 19+ calls.
    most = 12 if step == "sync" else max(1, _writeback_calls(engine, cid))
    delay = READ_DELAY_S if step == "sync" else CALL_DELAY_S
    nth = rng.randint(1, most)
    arrival = wait_for(lambda: calls.nth_since(started, nth), f"call {nth} of the {step} attempt", timeout=120,
                       every=0.01)
    time.sleep(max(0.0, arrival[0] + rng.uniform(0.0, min(KILL_WITHIN_S, 0.5 * delay)) - time.time()))
    return f"during call {nth} ({arrival[1]})"


def _reference(tmp_path, url: str, redis_url: str, key: str, sb, now) -> tuple[Any, int]:
    """The same pipeline, undisturbed, on an identical sandbox and database; scored at the chaos run's clock.

    Scores depend on "now" (days since the last activity, in whole days), so the undisturbed scoring
    uses the moment the chaos run's successful scoring did.
    """
    settings = settings_for(tmp_path / "reference", url, redis_url, key)
    engine = make_engine(url)
    cid = connect_hubspot(engine, settings, sb)
    sync_connection(engine, settings, cid)
    score_connection(engine, cid, now=now)
    writeback_connection(engine, settings, cid)
    statuses = [(r.kind, r.status) for r in runs(engine, cid)]
    assert statuses == [("sync_incremental", "succeeded"), ("score", "succeeded"), ("writeback", "succeeded")]
    return engine, cid


def test_killed_workers_leave_crm_and_database_as_an_undisturbed_run(tmp_path, redis_url, procs) -> None:
    seed = int(os.environ.get("RAPPORT_CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    key = new_key()
    with ExitStack() as stack:
        ref_url = stack.enter_context(scratch_database("reference"))
        chaos_url = stack.enter_context(scratch_database("chaos"))
        ref_sb = HubSpotSandbox(size="small", seed=SEED, accounts=ACCOUNTS).start()
        stack.callback(ref_sb.stop)
        sb = HubSpotSandbox(size="small", seed=SEED, accounts=ACCOUNTS).start()
        stack.callback(sb.stop)

        settings = settings_for(tmp_path / "chaos", chaos_url, redis_url, key)
        engine = make_engine(chaos_url)
        stack.callback(engine.dispose)
        cid = connect_hubspot(engine, settings, sb)
        with engine.begin() as conn:
            conn.exec_driver_sql(_SLOW_SCORE)
        sb.faults.configure(FaultConfig(slow_rate=1.0, slow_seconds=READ_DELAY_S))
        calls = CallLog(sb)
        job_ids = dict(zip([s for s, _ in STEPS], enqueue_steps(settings, steps_for(cid, "run")), strict=True))
        env = process_env(settings)
        live: dict[str, Any] = {}
        started = 0

        def spare(wait: bool = True) -> None:
            """Keep two workers: one works, the other takes over when it dies."""
            nonlocal started
            while len(live) < 2:
                name = f"chaos-{started}"
                started += 1
                live[name] = procs.worker(name, env)
            if wait:
                wait_for(lambda: set(live) <= worker_names(settings), "the workers to register", timeout=90)

        spare()
        killed: dict[str, list[int]] = {step: [] for step, _ in STEPS}

        def attempt_started(step: str, kind: str, seen: set[int]) -> Any:
            try:
                status = Job.fetch(job_ids[step], connection=redis_for(settings)).get_status()
            except NoSuchJobError:
                pytest.fail(f"the {step} job finished after {len(seen)} kills, before the next one")
            if status == JobStatus.FAILED:
                pytest.fail(f"the {step} job failed after {len(seen)} kills instead of running again")
            return next((r for r in runs(engine, cid, kind) if r.id not in seen and r.status == "running"), None)

        for step, kind in STEPS:
            if step == "writeback":  # the last scoring makes no API call: this slows the write-back only
                sb.faults.configure(FaultConfig(slow_rate=1.0, slow_seconds=CALL_DELAY_S))
            for attempt in range(KILLS):
                seen = set(killed[step])
                run = wait_for(lambda step=step, kind=kind, seen=seen: attempt_started(step, kind, seen),
                               f"attempt {attempt + 1} of the {step} step to start", timeout=120, every=0.02)
                victim = Job.fetch(job_ids[step], connection=redis_for(settings)).worker_name
                processes = live[victim].tree()  # worker, work horse, RQ scheduler: found before the moment
                where = _await_kill_moment(rng, step, attempt, run, engine, cid, sb, calls)
                live.pop(victim).kill_tree(processes)
                late = f"kill {attempt + 1} of the {step} step ({where}) came after its run ended (seed {seed})"
                assert run_status(engine, run.id) == "running", late
                killed[step].append(run.id)
                assert recover_abandoned(settings, {victim}) == [job_ids[step]]
                spare(wait=False)  # the spare takes the job at once; this one starts meanwhile
        sb.faults.configure(FaultConfig())

        def finished() -> bool:
            done = [r for r in runs(engine, cid, "writeback") if r.status != "running" and r.id not in killed["writeback"]]
            return bool(done)

        wait_for(finished, "the write-back to finish after the last kill", timeout=180, every=0.2)
        wait_for(lambda: set(live) <= worker_names(settings), "the spare workers to register", timeout=90)
        for name, proc in live.items():
            assert proc.stop() == 0, f"{name} did not stop cleanly:\n{proc.output()[-3000:]}"

        # every kill landed inside a run, and the run it interrupted is marked failed, not left running
        assert {step: len(ids) for step, ids in killed.items()} == {step: KILLS for step, _ in STEPS}
        all_runs = runs(engine, cid)
        by_id = {r.id: r for r in all_runs}
        for step, ids in killed.items():
            assert all(by_id[i].status == "failed" and by_id[i].error == STOPPED for i in ids), step
        assert [r for r in all_runs if r.status not in TERMINAL] == [], "no run may be left running"
        for kind in ("sync_incremental", "score", "writeback"):
            assert [r.status for r in all_runs if r.kind == kind and r.id not in sum(killed.values(), [])] == [
                "succeeded"], kind
        # no stuck lock, no job lost or failed
        assert lock_keys(settings) == []
        conn = redis_for(settings)
        for jid in job_ids.values():
            with pytest.raises(NoSuchJobError):
                Job.fetch(jid, connection=conn)  # finished (results are not kept)
        assert {q.name: q.failed_job_registry.get_job_ids() for q in queues_for(settings)} == {
            q.name: [] for q in queues_for(settings)}

        with engine.connect() as conn:
            scored_at = conn.execute(sa.select(sa.func.max(Score.__table__.c.scored_at)).where(  # type: ignore[attr-defined]
                Score.__table__.c.connection_id == cid)).scalar_one()  # type: ignore[attr-defined]
        ref_engine, ref_cid = _reference(tmp_path, ref_url, redis_url, key, ref_sb, scored_at)
        stack.callback(ref_engine.dispose)

        # the database: unified tables, scores, history and write-back state as after the undisturbed run
        mine, theirs = db_state(engine, cid), db_state(ref_engine, ref_cid)
        assert differences(mine, theirs) == []
        assert summary(mine) == summary(theirs)
        assert len(mine["account"]) == ACCOUNTS and len(mine["contact"]) > ACCOUNTS

        # the CRM: the same score properties on every record, each record written exactly once
        targets = targets_for(engine, get_connection(engine, cid))
        scores, expected = crm_scores(sb, targets), crm_scores(ref_sb, targets)
        assert scores == expected
        assert all(v[targets["account" if t == "companies" else "contact"]["relationship_score"]] is not None
                   for (t, _), v in scores.items())
        writes, expected_writes = api_writes(sb), api_writes(ref_sb)
        assert set(writes) == set(scores) == set(expected_writes)
        twice = {k: n for k, n in writes.items() if n != 1}
        assert twice == {}, f"records written more than once (seed {seed}): {sorted(twice.items())[:10]}"
