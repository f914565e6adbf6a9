"""The sync engine over the Salesforce adapter and sandbox: full, then incremental, equal to the org."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from adapters.salesforce import settings as S
from connector.connections import create_connection
from connector.db import make_engine
from connector.errors import BudgetExhausted
from connector.model import RECORD_MODELS, SyncRun
from connector.sync import sync_connection
from tests.adapters.salesforce_support import Org, org_fixture, sf_sandbox_fixture  # noqa: F401 - fixtures

NAMES = {"account": "Name", "contact": "Email", "deal": "StageName", "case": "Status", "activity": "Subject"}


@pytest.fixture
def synced(org: Org, sqlite_url, make_settings):
    settings = make_settings(DATABASE_URL=sqlite_url)
    engine = make_engine(sqlite_url)
    cid = create_connection(engine, settings, kind="salesforce", name="acme", secrets={"access_token": "x"},
                            instance_url=org.url, external_org_id=org.info["organization_id"], options=org.options())
    yield engine, settings, cid
    engine.dispose()


def _unified(engine, object: str) -> dict[str, tuple]:
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.external_id, t.c.is_deleted, t.c.raw)).all()
    return {r.external_id: (r.is_deleted, r.raw.get(NAMES[object])) for r in rows}


def _org(org: Org, object: str) -> dict[str, tuple]:
    rows = org.sandbox.org.table(S.OBJECTS[object]).rows.values()
    return {r["Id"]: (bool(r.get("IsDeleted")), r.get(NAMES[object])) for r in rows}


def _assert_equal(engine, org: Org) -> None:
    for object in S.OBJECTS:
        mine, theirs = _unified(engine, object), _org(org, object)
        live = {k: v for k, v in theirs.items() if not v[0]}
        assert {k: v for k, v in mine.items() if not v[0]} == live, object
        # Deleted rows are marked deleted; one created and deleted between two syncs never needs a row.
        assert all(theirs[k][0] for k, v in mine.items() if v[0]), object


def test_full_then_incremental_sync_leaves_the_tables_equal_to_the_org(org: Org, synced) -> None:
    engine, settings, cid = synced
    adapter = org.adapter()
    sync_connection(engine, settings, cid, full=True, adapter=adapter)
    _assert_equal(engine, org)
    changes = org.hook("mutate", {"count": 150, "seed": 3})["count"]
    assert changes > 100
    org.hook("faults", {"error_rate": 0.05, "statuses": [500, 503], "seed": 11, "fail_next": 2})
    run = sync_connection(engine, settings, cid, adapter=org.adapter())
    _assert_equal(engine, org)
    assert sum(org.hook("faults", method="GET")["injected"].values()) >= 1  # the failures did happen
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        status = conn.execute(sa.select(t.c.status).where(t.c.id == run)).scalar_one()
    assert status == "succeeded"


def test_a_spent_budget_share_pauses_the_sync_with_the_reason(org: Org, synced) -> None:
    engine, settings, cid = synced
    org.hook("limits", {"used": 496, "max": 1000})
    with pytest.raises(BudgetExhausted):
        sync_connection(engine, settings, cid, full=True, adapter=org.adapter(api_budget_share=0.5))
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        run = conn.execute(sa.select(t.c.status, t.c.error, t.c.api_calls)).one()
    assert run.status == "paused" and "share is 50%" in run.error
    assert org.hook("limits", {})["used"] == 500
