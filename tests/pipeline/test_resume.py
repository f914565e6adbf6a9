"""What a killed worker leaves behind is picked up without loss or double work: a first sync stopped
midway, a write-back stopped after its batch reached the CRM, and a job abandoned again and again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from rq.exceptions import AbandonedJobError

from adapters.base import WebhookEvent as HubEvent
from adapters.base import WriteItem
from adapters.hubspot import settings as hs
from connector import freshness, queues, webhooks
from connector.connections import open_adapter
from connector.model import RECORD_MODELS, Score, SyncRun, utcnow
from connector.model import WebhookEvent as EventRow
from connector.queues import ABANDONED_MAX, enqueue, redis_for, requeue_abandoned
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import writeback_connection
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.store import SEED
from tests.pipeline.support import api_writes, connect_hubspot, new_key, settings_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
_RUN = SyncRun.__table__  # type: ignore[attr-defined]
_EVENTS = EventRow.__table__  # type: ignore[attr-defined]
_SCORES = Score.__table__  # type: ignore[attr-defined]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even the run's bookkeeping."""


@pytest.fixture
def portal(tmp_path, pg_url, pg_engine, redis_url):
    sb = HubSpotSandbox(size="small", seed=5, accounts=25).start()
    settings = settings_for(tmp_path, pg_url, redis_url, new_key())
    queues.bind(settings)
    yield sb, settings, pg_engine, connect_hubspot(pg_engine, settings, sb)
    queues.bind(None)  # type: ignore[arg-type]
    sb.stop()


def _live(engine, cid: int, object: str) -> set[str]:
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.c.external_id).where(t.c.connection_id == cid, t.c.is_deleted.is_(False)))
                   .scalars())


def test_a_first_sync_stopped_after_one_page_resumes_without_losing_records(portal, monkeypatch) -> None:
    sb, settings, engine, cid = portal
    monkeypatch.setattr(hs, "PAGE_RECORDS", 100)  # this small world's activities then take several pages
    adapter = open_adapter(engine, settings, cid)
    pull = adapter.pull

    def dies_after_one_activity_page(object, since, until, *, full=False, reconcile=False):  # type: ignore[no-untyped-def]
        for n, page in enumerate(pull(object, since, until, full=full, reconcile=reconcile)):
            if object == "activity" and n == 1:
                raise Killed
            yield page

    adapter.pull = dies_after_one_activity_page  # type: ignore[method-assign]
    with pytest.raises(Killed):
        sync_connection(engine, settings, cid, adapter=adapter)
    assert 0 < len(_live(engine, cid, "activity")), "the first page was committed"
    # HubSpot lists by id: the first page's newest stamp is newer than records still to come
    sync_connection(engine, settings, cid)
    expected = {str(i) for t in ("calls", "emails", "meetings") for i in sb.store.tables[t].live}
    assert _live(engine, cid, "activity") == expected


def test_a_write_back_stopped_after_a_batch_reached_the_crm_does_not_write_it_again(portal) -> None:
    sb, settings, engine, cid = portal
    sync_connection(engine, settings, cid)
    score_connection(engine, cid)
    adapter = open_adapter(engine, settings, cid)
    write, sent = adapter.write, []

    def dies_after_the_second_batch(object, items):  # type: ignore[no-untyped-def]
        results = write(object, items)  # the CRM has it; the worker dies before recording it
        sent.append(len(items))
        if len(sent) == 2:
            raise Killed
        return results

    adapter.write = dies_after_the_second_batch  # type: ignore[method-assign]
    with pytest.raises(Killed):
        writeback_connection(engine, settings, cid, adapter=adapter)
    assert sent == [25, 100]  # the companies, then the first batch of contacts
    out = writeback_connection(engine, settings, cid)
    writes = api_writes(sb)
    assert len(writes) == 25 + len(sb.store.tables["contacts"].live)
    assert set(writes.values()) == {1}, "every record written exactly once"
    with engine.connect() as conn:
        last = conn.execute(sa.select(_RUN.c.counts).where(_RUN.c.id == out["run_id"])).scalar_one()
    assert last["contact"]["already_in_crm"] == 100
    # nothing is left to write, and a later write-back reads nothing back
    calls = sb.stats.snapshot()["calls"]
    assert writeback_connection(engine, settings, cid)["written"] == 0
    assert sb.stats.snapshot()["calls"] == calls


def test_a_job_abandoned_again_and_again_keeps_its_retries_until_the_limit(portal) -> None:
    sb, settings, engine, cid = portal
    assert enqueue(settings, "sync", "connector.jobs.sync_job", cid, id="abandoned-job")
    from rq.job import Job

    job = Job.fetch("abandoned-job", connection=redis_for(settings))
    start = job.retries_left
    for _ in range(ABANDONED_MAX):
        requeue_abandoned(job, AbandonedJobError, AbandonedJobError(), None)
        job.retries_left -= 1  # what RQ's retry then takes
    assert job.retries_left == start
    requeue_abandoned(job, AbandonedJobError, AbandonedJobError(), None)
    assert job.retries_left == start and job.meta["abandoned"] == ABANDONED_MAX + 1
    # other errors are left to the retry policy
    requeue_abandoned(job, RuntimeError, RuntimeError("boom"), None)
    assert job.retries_left == start


def test_already_written_compares_values_as_hubspot_renders_them(portal) -> None:
    sb, settings, engine, cid = portal
    adapter = open_adapter(engine, settings, cid)
    company = str(next(iter(sb.store.tables["companies"].live)))
    values = {"rapport_relationship_score": 73, "rapport_trend": -4, "rapport_tier": "B",
              "rapport_scored_at": datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)}
    adapter.write("account", [WriteItem("account", company, values)])
    check = adapter.already_written  # type: ignore[attr-defined]
    assert check("account", [WriteItem("account", company, values),
                             WriteItem("account", "4999999999", values)]) == {company}  # a missing record is not
    assert check("account", [WriteItem("account", company, {**values, "rapport_trend": -5})]) == set()
    later = values["rapport_scored_at"] + timedelta(seconds=1)
    assert check("account", [WriteItem("account", company, {**values, "rapport_scored_at": later})]) == set()


def _event(object: str, ident: str, kind: str, n: int) -> HubEvent:
    return HubEvent(dedupe_key=f"test:{object}:{ident}:{kind}:{n}", object=object, external_id=ident,  # type: ignore[arg-type]
                    kind=kind, occurred_at=utcnow())  # type: ignore[arg-type]


def _deleted(engine, cid: int, object: str, ident: str) -> bool:
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return bool(conn.execute(sa.select(t.c.is_deleted).where(t.c.connection_id == cid, t.c.external_id == ident))
                    .scalar_one())


def test_a_deletion_delivered_after_the_restore_does_not_bury_the_record(portal) -> None:
    sb, settings, engine, cid = portal
    sync_connection(engine, settings, cid)
    contact = sb.store.tables["contacts"].records[next(iter(sb.store.tables["contacts"].live))]
    sb.store.archive("contacts", contact, SEED)
    sb.store.restore("contacts", contact, SEED)
    ident = str(contact.id)
    # the restore arrives first and is processed; the deletion comes late, then both in one batch
    webhooks.persist(engine, cid, [_event("contact", ident, "restored", 1)])
    freshness.process_pending(engine, settings, cid)
    webhooks.persist(engine, cid, [_event("contact", ident, "deleted", 2)])
    freshness.process_pending(engine, settings, cid)
    assert not _deleted(engine, cid, "contact", ident)
    webhooks.persist(engine, cid, [_event("contact", ident, "deleted", 3), _event("contact", ident, "restored", 4)])
    freshness.process_pending(engine, settings, cid)
    assert not _deleted(engine, cid, "contact", ident)


def test_a_webhook_job_killed_before_rescoring_rescores_when_run_again(portal, monkeypatch) -> None:
    sb, settings, engine, cid = portal
    sync_connection(engine, settings, cid)
    score_connection(engine, cid)
    writeback_connection(engine, settings, cid)
    company = str(next(iter(sb.store.tables["companies"].live)))
    sb.store.update("companies", sb.store.tables["companies"].records[int(company)], {"numberofemployees": "90000"},
                    SEED)
    webhooks.persist(engine, cid, [_event("account", company, "updated", 1)])
    real = freshness.score_connection

    def killed(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Killed

    monkeypatch.setattr(freshness, "score_connection", killed)
    monkeypatch.setattr(freshness, "unclaim", lambda engine, token: None)  # SIGKILL: nothing runs after
    with pytest.raises(Killed):
        freshness.process_pending(engine, settings, cid, holder="webhook-job-1")
    with engine.connect() as conn:
        assert conn.execute(sa.select(_EVENTS.c.status)).scalars().all() == ["processing"]
        before = conn.execute(sa.select(_SCORES.c.scored_at).where(_SCORES.c.external_id == company)).scalar_one()
    monkeypatch.setattr(freshness, "score_connection", real)
    # RQ runs the abandoned job again under its id: it takes its own claim back and finishes it
    assert freshness.process_pending(engine, settings, cid, holder="webhook-job-1")["rescored"] == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(_EVENTS.c.status, _EVENTS.c.attempts)).all() == [("processed", 1)]
        after = conn.execute(sa.select(_SCORES.c.scored_at).where(_SCORES.c.external_id == company)).scalar_one()
    assert after > before
