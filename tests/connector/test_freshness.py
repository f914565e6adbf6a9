"""Webhook freshness: a CRM change becomes a fresh score on the CRM record; our own echo changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

import adapters
from adapters.base import FieldSpec, WebhookEvent
from connector import connections, freshness, jobs, queues, webhooks
from connector.errors import RetriableError
from connector.model import Contact, ScoreHistory, SyncRun, utcnow
from connector.model import WebhookEvent as EventRow
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import writeback_connection
from sandbox.memory import DEFAULT_WRITE, MemoryAdapter, MemoryCRM, sample, stamp_text

_E = EventRow.__table__  # type: ignore[attr-defined]
_RUN = SyncRun.__table__  # type: ignore[attr-defined]


@pytest.fixture
def settings(make_settings, redis_url: str, db_url: str):
    s = make_settings(REDIS_URL=redis_url, DATABASE_URL=db_url)
    queues.bind(s)
    yield s
    queues.bind(None)  # type: ignore[arg-type]


@pytest.fixture
def world(settings, monkeypatch):
    """A memory CRM with 6 accounts, contacts, deals and cases, synced, scored and written back."""
    monkeypatch.setitem(adapters.ADAPTERS, "memory", "sandbox.memory:MemoryAdapter")
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    crm = MemoryCRM.by_name(name)
    engine = jobs._engine(settings)
    accounts = [crm.create("account", sample("account", n)) for n in range(6)]
    n = 0
    for i, acc in enumerate(accounts):
        for _ in range(2):
            n += 1
            contact = crm.create("contact", sample("contact", n, account=acc))
            crm.create("deal", sample("deal", n + i, account=acc, contact=contact))
            crm.create("case", sample("case", n, account=acc, contact=contact))
    cid = connections.create_connection(engine, settings, kind="memory", name=name, secrets={})
    sync_connection(engine, settings, cid, full=True)
    score_connection(engine, cid)
    adapter = connections.open_adapter(engine, settings, cid)
    for obj in ("account", "contact"):
        adapter.ensure_fields(obj, [FieldSpec(f, f, "text") for f in DEFAULT_WRITE[obj].values()])
    writeback_connection(engine, settings, cid, adapter=adapter)
    return engine, crm, cid, accounts


def event(object: str, external_id: str, kind: str = "updated", *, fields: tuple[str, ...] = (), key: str | None = None):
    return WebhookEvent(dedupe_key=key or f"{object}:{external_id}:{kind}:{uuid.uuid4().hex}", object=object,
                        external_id=external_id, kind=kind, occurred_at=utcnow(), changed_fields=fields)  # type: ignore[arg-type]


def _count(engine, table, **where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(
            *[table.c[k] == v for k, v in where.items()])).scalar_one()


def test_a_won_deal_reaches_the_crm_record_and_only_that_one(world, settings) -> None:
    engine, crm, cid, accounts = world
    target, other = accounts[0], accounts[1]
    before = crm.records["account"][target].fields["RelationshipScore__x"]
    other_stamp = crm.records["account"][other].stamp
    deal = crm.create("deal", {"AccountId": target, "Name": "Big renewal", "Amount": "2500000", "Stage": "Closed Won",
                               "Closed": "true", "Won": "true", "Kind": "Renewal",
                               "CloseDate": utcnow().date().isoformat(), "CreatedDate": stamp_text(utcnow())})
    accepted = webhooks.accept(engine, settings, cid, [event("deal", deal, "created")])
    assert accepted.new == 1
    assert queues.drain(settings) >= 1
    after = crm.records["account"][target].fields["RelationshipScore__x"]
    assert after > before, "the won deal must raise the account's relationship score in the CRM"
    assert crm.records["account"][other].stamp == other_stamp, "an untouched account is not written"
    with engine.connect() as conn:
        assert conn.execute(sa.select(_E.c.status)).scalars().all() == ["processed"]


def test_a_connection_is_known_to_receive_webhooks_once_a_job_processed_them(world, settings) -> None:
    engine, crm, cid, accounts = world
    assert not connections.open_adapter(engine, settings, cid).info.webhooks_arriving  # type: ignore[attr-defined]
    webhooks.accept(engine, settings, cid, [event("account", accounts[0])])
    queues.drain(settings)
    assert connections.open_adapter(engine, settings, cid).info.webhooks_arriving  # type: ignore[attr-defined]
    assert 0 < queues.redis_for(settings).ttl(webhooks.receiving_key(cid)) <= webhooks.RECEIVING_TTL_S


def test_our_own_write_coming_back_rescores_nothing(world, settings) -> None:
    engine, crm, cid, accounts = world
    target = accounts[2]
    scores_before = _count(engine, ScoreHistory.__table__)
    runs_before = _count(engine, _RUN, kind="score")
    # HubSpot style: the event names the property that changed, which is ours.
    # Salesforce style: no field list, so the record is fetched and found unchanged.
    webhooks.accept(engine, settings, cid, [event("account", target, fields=("RelationshipScore__x",)),
                                            event("account", target), event("contact", next(iter(crm.records["contact"])))])
    queues.drain(settings)
    assert _count(engine, ScoreHistory.__table__) == scores_before
    assert _count(engine, _RUN, kind="score") == runs_before
    with engine.connect() as conn:
        statuses = sorted(conn.execute(sa.select(_E.c.status)).scalars())
    assert statuses == ["ignored", "processed", "processed"]


def test_duplicates_are_processed_once_and_deletes_apply(world, settings) -> None:
    engine, crm, cid, accounts = world
    contact = next(i for i, r in crm.records["contact"].items() if r.fields.get("AccountId") == accounts[3])
    crm.delete("contact", contact)
    same = event("contact", contact, "deleted", key="dup-1")
    first = webhooks.accept(engine, settings, cid, [same, same])
    second = webhooks.accept(engine, settings, cid, [same])
    assert (first.new, first.duplicates, second.new) == (1, 1, 0)
    queues.drain(settings)
    with engine.connect() as conn:
        deleted = conn.execute(sa.select(Contact.__table__.c.is_deleted).where(
            Contact.__table__.c.external_id == contact)).scalar_one()
        rescored = conn.execute(sa.select(sa.func.count()).select_from(ScoreHistory.__table__).where(
            ScoreHistory.__table__.c.external_id == accounts[3])).scalar_one()
    assert deleted and rescored == 2, "the contact is gone and its account was rescored once more"


def test_a_failed_job_hands_its_events_back(world, settings, monkeypatch) -> None:
    engine, crm, cid, accounts = world
    webhooks.persist(engine, cid, [event("account", accounts[4])])
    calls = {"n": 0}
    real = MemoryAdapter.fetch

    def flaky(self, object, ids):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RetriableError("CRM unavailable", status=503)
        return real(self, object, ids)

    monkeypatch.setattr(MemoryAdapter, "fetch", flaky)
    with pytest.raises(RetriableError):
        freshness.process_pending(engine, settings, cid)
    with engine.connect() as conn:
        assert conn.execute(sa.select(_E.c.status)).scalars().all() == ["pending"]
    assert freshness.process_pending(engine, settings, cid)["events"] == 1


def test_claims_of_a_dead_worker_are_released(world, settings) -> None:
    engine, crm, cid, accounts = world
    webhooks.persist(engine, cid, [event("account", accounts[5])])
    assert len(freshness.claim(engine, cid, "dead-job")) == 1
    assert freshness.claim(engine, cid, "other-job") == [], "a claimed event is not claimed twice"
    with engine.begin() as conn:
        conn.execute(sa.update(_E).values(claimed_at=utcnow() - freshness.STALE_CLAIM - timedelta(seconds=1)))
    assert freshness.process_pending(engine, settings, cid)["events"] == 1


def test_a_job_run_again_finishes_the_events_it_had_claimed(world, settings) -> None:
    engine, crm, cid, accounts = world
    webhooks.persist(engine, cid, [event("account", accounts[0])])
    assert len(freshness.claim(engine, cid, "job-1")) == 1  # then its worker was killed; nothing is pending
    assert freshness.process_pending(engine, settings, cid, holder="job-1")["events"] == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(_E.c.status)).scalars().all() == ["processed"]


def test_a_burst_enqueues_one_job(world, settings) -> None:
    engine, crm, cid, accounts = world
    for acc in accounts:
        webhooks.accept(engine, settings, cid, [event("account", acc)])
    assert sum(q.count for q in queues.queues_for(settings)) == 1
    queues.drain(settings)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(_E.c.status)).scalars()) == {"processed"}


def test_batches_are_spaced_by_the_budget_of_a_crm_with_a_short_window_limit() -> None:
    from types import SimpleNamespace

    from adapters.hubspot import settings as hs

    private = SimpleNamespace(kind="hubspot", options={"auth": "private_app"})
    per_call = (hs.RATE_WINDOW_MS + hs.BUDGET_WINDOW_MARGIN_MS) / 1000 / int(190 * hs.BUDGET_HEADROOM)
    assert freshness.coalesce_window(private) == pytest.approx(freshness.BATCH_CALLS * per_call)
    assert freshness.coalesce_window(SimpleNamespace(kind="hubspot", options={"auth": "oauth"})) > \
        freshness.coalesce_window(private), "a public app's smaller budget spaces batches further"
    assert freshness.coalesce_window(SimpleNamespace(kind="salesforce", options={})) == 0, "daily limits only"
    assert freshness.coalesce_window(SimpleNamespace(kind="hubspot", options={"budget": "off"})) == 0
    assert freshness.coalesce_window(SimpleNamespace(kind="hubspot", options={"webhook_coalesce_s": 2})) == 2


def test_a_job_waits_its_turn_and_gives_it_back(world, settings) -> None:
    engine, crm, cid, accounts = world
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE connection SET options = :o WHERE id = :c"),
                     {"o": '{"webhook_coalesce_s": 30}', "c": cid})
    redis = queues.redis_for(settings)
    redis.set(freshness._turn_key(cid), "another-job", px=200)  # a batch of another worker just started
    webhooks.persist(engine, cid, [event("account", accounts[1]), event("account", accounts[2])])
    assert freshness.process_pending(engine, settings, cid)["events"] == 2
    # with nothing left to claim the job frees its turn: the next change need not wait 30 s
    assert not redis.exists(freshness._turn_key(cid))
    webhooks.persist(engine, cid, [event("account", accounts[3])])
    assert freshness.process_pending(engine, settings, cid)["events"] == 1
