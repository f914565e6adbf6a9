"""Full and incremental syncs of a HubSpot sandbox through the sync engine leave the unified tables equal to it."""

from __future__ import annotations

import copy
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.hubspot import settings as hs
from adapters.hubspot import webhooks as hs_webhooks
from connector import freshness
from connector.connections import create_connection
from connector.db import make_engine
from connector.errors import ConfigError
from connector.model import RECORD_MODELS, Connection, SyncRun
from connector.sync import sync_connection
from connector.webhooks import accept_values
from sandbox.hubspot import HubSpotSandbox, meta_api
from sandbox.hubspot.faults import FaultConfig
from sandbox.hubspot.store import Source

TYPES = {"account": ["companies"], "contact": ["contacts"], "deal": ["deals"], "case": ["tickets"],
         "activity": ["calls", "emails", "meetings"]}
OPTIONS = {"auth": "private_app", "budget": "off", "client_side_validation": True, "backoff_scale": 0.01}


@pytest.fixture
def world(make_settings, db_url, faults):
    sb = HubSpotSandbox(size="small", seed=8, accounts=40, rate_limits=False, search_lag_s=0).start()
    settings = make_settings(DATABASE_URL=db_url)
    engine = make_engine(settings.sqlalchemy_url)
    # with faults, reads take the production path (JSON only, no client models), which must retry cut bodies
    options = {**OPTIONS, "client_side_validation": not faults}
    cid = create_connection(engine, settings, kind="hubspot", name="hs", instance_url=sb.info["api_base"],
                            external_org_id=str(sb.portal_id), options=options,
                            secrets={"access_token": sb.info["access_token"], "app_secret": sb.info["app_secret"]})
    yield sb, settings, engine, cid
    engine.dispose()
    sb.stop()


def _rows(engine, obj, cid):
    t = RECORD_MODELS[obj].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {r.external_id: r for r in conn.execute(sa.select(t).where(t.c.connection_id == cid))}


def _company(sb, t, rid):
    targets = sb.store.assoc.targets(t, rid, "companies")
    primary = [to for to, ids in targets.items() if ids & hs.PRIMARY_COMPANY_TYPE_IDS]
    return str(min(primary or targets)) if targets else None


def assert_equal_to_portal(sb, engine, cid, *, plain_deletions=True):
    """Rows equal to the portal; without `plain_deletions`, records archived (not merged) may still be live."""
    for obj, types in TYPES.items():
        rows = _rows(engine, obj, cid)
        tables = [sb.store.tables[t] for t in types]
        live = {str(i): (tb.type, tb.records[i]) for tb in tables for i in tb.live}
        archived = {str(r.id): r for tb in tables for r in tb.records.values() if r.archived}
        pending = set() if plain_deletions else {i for i, r in archived.items() if not r.merged_into}
        assert {i for i, r in rows.items() if not r.is_deleted} - pending == set(live), obj
        for ident, rec in archived.items():
            if ident in rows and ident not in pending:
                assert rows[ident].is_deleted
                assert rows[ident].merged_into == (str(rec.merged_into) if rec.merged_into else None)
        for ident, (t, rec) in live.items():
            row, props = rows[ident], rec.props
            assert row.modified_at == datetime.fromtimestamp(rec.modified // 1000, UTC) + timedelta(
                milliseconds=rec.modified % 1000), (obj, ident)
            if obj == "account":
                assert (row.name, row.domain) == (props.get("name"), props.get("domain"))
            elif obj == "contact":
                assert (row.email, row.account_external_id) == (props.get("email"), props.get("associatedcompanyid"))
            elif obj == "deal":
                assert row.account_external_id == _company(sb, t, rec.id)
                assert (row.is_closed, row.is_won) == (props["dealstage"] in ("closedwon", "closedlost"),
                                                       props["dealstage"] == "closedwon")
                assert row.amount == (float(props["amount"]) if props.get("amount") else None)
            elif obj == "case":
                assert row.account_external_id == _company(sb, t, rec.id)
                assert row.is_closed == (props["hs_pipeline_stage"] == "4")
                assert row.priority == (props.get("hs_ticket_priority") or "").lower() or None
            else:
                assert row.kind == hs.ACTIVITY_OBJECTS[t]


@pytest.mark.parametrize(("db_url", "faults"), [("sqlite", 0.0), pytest.param("postgres", 0.05, marks=pytest.mark.postgres)],
                         ids=["sqlite-clean", "postgres-5pct-faults"], indirect=["db_url"])
def test_full_then_incremental_sync_equals_the_portal(world, faults):
    sb, settings, engine, cid = world
    sb.faults.configure(FaultConfig(error_rate=faults, truncate_rate=faults / 2, seed=3))
    run = sync_connection(engine, settings, cid, full=True)
    assert_equal_to_portal(sb, engine, cid)
    done = sb.mutate(80, seed=1)
    assert {d["kind"] for d in done} >= {"merge", "archive", "deal_won", "ticket_new"}
    run = sync_connection(engine, settings, cid)
    # plain deletions come by webhook (none here) or with a reconcile run; merges come by search
    assert_equal_to_portal(sb, engine, cid, plain_deletions=False)
    swept = sync_connection(engine, settings, cid, reconcile=True)
    assert_equal_to_portal(sb, engine, cid)
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        status = conn.execute(sa.select(t.c.status, t.c.api_calls).where(t.c.id == run)).one()
        kinds = conn.execute(sa.select(t.c.kind).where(t.c.id.in_([run, swept])).order_by(t.c.id)).scalars().all()
    assert status.status == "succeeded" and status.api_calls > 0
    assert kinds == ["sync_incremental", "reconcile"]
    if faults:
        assert sum(sb.faults.describe()["injected"].values()) > 0


def _contact_of(sb, t, rid):
    targets = sb.store.assoc.target_ids(t, rid, "contacts")
    return str(targets[0]) if targets else None


@pytest.mark.parametrize(("db_url", "faults"), [("sqlite", 0.0), pytest.param("postgres", 0.05, marks=pytest.mark.postgres)],
                         ids=["sqlite-clean", "postgres-5pct-faults"], indirect=["db_url"])
def test_deals_the_sync_never_stored_alive_get_their_company_and_contact(world, faults, db_url, make_settings):
    """A deal restored from the recycle bin, and one created before the window start whose creation no
    run saw (it changed again past that run's bound), come by search without associations."""
    sb, _, engine, cid = world
    settings = make_settings(DATABASE_URL=db_url, RAPPORT_SYNC_LOOKBACK_SECONDS=0)
    store, ui = sb.store, Source("CRM_UI", "userId:1")
    deals = store.tables["deals"]
    with store.lock:
        linked = [deals.records[i] for i in deals.live if _contact_of(sb, "deals", i) and _company(sb, "deals", i)]
        restored, model = linked[0], linked[1]
        store.archive("deals", restored, ui)
    sb.faults.configure(FaultConfig(error_rate=faults, truncate_rate=faults / 2, seed=4))
    sync_connection(engine, settings, cid, full=True)
    assert str(restored.id) not in _rows(engine, "deal", cid)  # archived before the sync ever saw it

    with store.lock:
        store.restore("deals", restored, ui)
        base = store.clock() + 1
        edges = [(to, tid, ids) for to in ("companies", "contacts")
                 for tid, ids in store.assoc.targets("deals", model.id, to).items()]
        late = store.create("deals", {"dealname": "Late starter", "dealstage": "appointmentscheduled",
                                      "pipeline": "default", "amount": "900"}, ui,
                            associations=[(to, tid, min(ids)) for to, tid, ids in edges], stamp=base)
        store.update("deals", model, {"amount": "1234"}, ui, stamp=base + 2)
        store.update("deals", late, {"amount": "950"}, ui, stamp=base + 4)
    bound = datetime.fromtimestamp((base + 3) / 1000, UTC)
    sync_connection(engine, settings, cid, until=bound)  # sees the restore and the model's change, not `late`
    sync_connection(engine, settings, cid)  # starts past `late`'s creation
    rows = _rows(engine, "deal", cid)
    for rec in (late, restored):
        row = rows[str(rec.id)]
        assert not row.is_deleted
        assert (row.account_external_id, row.contact_external_id) == (
            _company(sb, "deals", rec.id), _contact_of(sb, "deals", rec.id)), rec.id
        assert row.account_id is not None
    assert rows[str(late.id)].amount == 950.0
    assert_equal_to_portal(sb, engine, cid)


@pytest.mark.parametrize(("db_url", "faults"), [("sqlite", 0.0), pytest.param("postgres", 0.0, marks=pytest.mark.postgres)],
                         ids=["sqlite", "postgres"], indirect=["db_url"])
def test_merged_companies_lead_to_the_new_record_and_stay_merged(world, db_url, make_settings):
    """HubSpot merges two companies into a new one with a new id; a later reconcile run, whose archived
    list shows the merged-away ones as plain archived records, leaves them merged."""
    sb, _, engine, cid = world
    settings = make_settings(DATABASE_URL=db_url, RAPPORT_SYNC_LOOKBACK_SECONDS=0)
    store, ui = sb.store, Source("CRM_UI", "userId:1")
    companies, deals = store.tables["companies"], store.tables["deals"]
    sync_connection(engine, settings, cid, full=True)
    with store.lock:
        a, b = (companies.records[int(_company(sb, "deals", i))] for i in deals.live[:2])
        owned = [str(i) for i in deals.live if _company(sb, "deals", i) in (str(a.id), str(b.id))]
        new = store.merge("companies", a, b, ui)
    time.sleep(0.01)
    sync_connection(engine, settings, cid)
    time.sleep(0.05)
    with store.lock:  # the next run's window starts past the merge
        store.update("companies", companies.records[companies.live[0]], {"description": "moved on"}, ui)
    time.sleep(0.01)
    sync_connection(engine, settings, cid)
    swept = sync_connection(engine, settings, cid, reconcile=True)
    accounts, deal_rows = _rows(engine, "account", cid), _rows(engine, "deal", cid)
    assert not accounts[str(new.id)].is_deleted and accounts[str(new.id)].name == a.props.get("name")
    for old in (a, b):
        assert accounts[str(old.id)].is_deleted and accounts[str(old.id)].merged_into == str(new.id)
    assert owned and {deal_rows[i].account_external_id for i in owned} == {str(new.id)}
    assert all(deal_rows[i].account_id == accounts[str(new.id)].id for i in owned)
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        counts = conn.execute(sa.select(t.c.counts).where(t.c.id == swept)).scalar_one()
    assert counts["account"].get("deleted", 0) == 0 and counts["account"].get("merged", 0) == 0
    assert_equal_to_portal(sb, engine, cid)


@pytest.mark.parametrize(("db_url", "faults"), [("sqlite", 0.0)], indirect=["db_url"])
def test_a_merge_webhook_buries_both_merged_contacts(world, db_url, redis_url, make_settings):
    """The merge event names the new record, the primary one and the other; both old ones are merged away."""
    sb, _, engine, cid = world
    settings = make_settings(DATABASE_URL=db_url, REDIS_URL=redis_url)
    store, ui = sb.store, Source("CRM_UI", "userId:1")
    sync_connection(engine, settings, cid, full=True)
    events: list[dict] = []
    store.listeners.append(events.extend)
    with store.lock:
        contacts = store.tables["contacts"]
        a = next(contacts.records[i] for i in contacts.live if store.assoc.target_ids("contacts", i, "companies"))
        b = next(contacts.records[i] for i in contacts.live if i != a.id)
        new = store.merge("contacts", a, b, ui)
    merge = next(e for e in events if e["kind"] == "merge")
    delivered = {"eventId": 1, "subscriptionId": 1, "portalId": sb.portal_id, "appId": 1, "attemptNumber": 0,
                 "occurredAt": merge["occurredAt"], "subscriptionType": "contact.merge", "objectId": new.id,
                 "changeSource": "CRM_UI", "primaryObjectId": a.id, "mergedObjectIds": [b.id],
                 "newObjectId": new.id, "numberOfPropertiesMoved": merge["numberOfPropertiesMoved"]}
    accept_values(engine, settings, cid, [hs_webhooks.row(delivered)])
    freshness.process_pending(engine, settings, cid)
    rows = _rows(engine, "contact", cid)
    assert not rows[str(new.id)].is_deleted and rows[str(new.id)].email == a.props["email"]
    assert {i: (rows[i].is_deleted, rows[i].merged_into) for i in (str(a.id), str(b.id))} == {
        str(a.id): (True, str(new.id)), str(b.id): (True, str(new.id))}


def _pipeline_reads(sb, object_type="") -> int:
    return sum(n for call, n in sb.stats.snapshot()["calls"].items()
               if call.startswith(f"GET /crm/v3/pipelines/{object_type}"))


@pytest.mark.parametrize(("db_url", "faults"), [("sqlite", 0.0)], indirect=["db_url"])
def test_pipelines_are_kept_between_runs_and_a_new_stage_is_read_at_once(world, monkeypatch):
    sb, settings, engine, cid = world
    ui = Source("CRM_UI", "userId:1")
    sync_connection(engine, settings, cid, full=True)
    deals = sb.store.tables["deals"]
    open_deals = [deals.records[i] for i in sorted(deals.live) if deals.records[i].props.get("dealstage") == "qualifiedtobuy"]
    assert len(open_deals) >= 2

    # a later run reads no pipelines: the stages the first one read are kept
    sb.stats.reset()
    with sb.store.lock:
        sb.store.update("deals", open_deals[0], {"amount": "4321"}, ui)
    sync_connection(engine, settings, cid)
    assert _pipeline_reads(sb) == 0
    assert _rows(engine, "deal", cid)[str(open_deals[0].id)].amount == 4321.0

    # an admin adds a closed-won stage; a deal moved into it sends the next run to read the pipelines again
    pipelines = copy.deepcopy(meta_api.PIPELINES)
    stage = {**pipelines["deals"][0]["stages"][-1], "id": "contractsigned", "label": "Contract signed",
             "metadata": {"isClosed": "true", "probability": "1.0"}}
    pipelines["deals"][0]["stages"].append(stage)
    monkeypatch.setattr(meta_api, "PIPELINES", pipelines)
    sb.stats.reset()
    with sb.store.lock:
        sb.store.update("deals", open_deals[1], {"dealstage": "contractsigned"}, ui)
    sync_connection(engine, settings, cid)
    assert (_pipeline_reads(sb, "deals"), _pipeline_reads(sb, "tickets")) == (1, 0)
    row = _rows(engine, "deal", cid)[str(open_deals[1].id)]
    assert (row.stage, row.is_closed, row.is_won) == ("Contract signed", True, True)

    # a full sync reads them anew, kept or not
    sb.stats.reset()
    sync_connection(engine, settings, cid, full=True)
    assert (_pipeline_reads(sb, "deals"), _pipeline_reads(sb, "tickets")) == (1, 1)

    # a connection that keeps nothing reads them on every run that meets a deal or ticket
    with engine.begin() as conn:
        t = Connection.__table__  # type: ignore[attr-defined]
        conn.execute(sa.update(t).where(t.c.id == cid).values(options={**OPTIONS, "pipelines_cache_seconds": 0}))
    sb.stats.reset()
    with sb.store.lock:
        sb.store.update("deals", open_deals[0], {"amount": "5000"}, ui)
    sync_connection(engine, settings, cid)
    assert _pipeline_reads(sb, "deals") == 1


@pytest.mark.parametrize(("option", "value", "says"), [
    ("pipelines_cache_seconds", "an hour", "a number of seconds, 0 or more"),
    ("pipelines_cache_seconds", -5, "a number of seconds, 0 or more"),
    ("pipelines_cache_seconds", [60], "a number of seconds, 0 or more"),
    ("association_batch_limit", "lots", "a whole number of records, 1 or more"),
    ("association_batch_limit", 0, "a whole number of records, 1 or more"),
    ("rate_limit", 12.5, "a whole number of calls per window, 1 or more"),
    ("search_rate_limit", "fast", "a number of calls per second, 0.1 or more"),
])
def test_a_bad_numeric_option_is_refused_naming_it(option, value, says):
    from adapters.base import ConnectionInfo
    from adapters.hubspot import HubSpotAdapter
    from adapters.hubspot.settings import budget_rates

    options = {"auth": "private_app", option: value}
    info = ConnectionInfo(id=1, name="hs", kind="hubspot", instance_url="https://api.hubapi.com", options=options)
    with pytest.raises(ConfigError, match=re.escape(f"{option} must be {says}, not {value!r}")):
        HubSpotAdapter(info, {"access_token": "pat-na1-x"})
        budget_rates(options)  # the budget's options are read when the budget is built
