"""Write-back to HubSpot score properties that were never provisioned: one refused call, every record
held with the property named, no retry run after run, and all written on the first run after
`rapport provision`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from adapters.hubspot.mapping import DEFAULT_WRITE
from connector.commands.salesforce import provision_fields
from connector.connections import create_connection, open_adapter
from connector.model import SyncRun, WritebackState, utcnow
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import writeback_connection
from sandbox.hubspot import HubSpotSandbox

_W = WritebackState.__table__  # type: ignore[attr-defined]
_RUN = SyncRun.__table__  # type: ignore[attr-defined]


def batch_updates(portal) -> dict[str, int]:
    """Batch updates the portal answered since its stats were reset, by status."""
    out: dict[str, int] = {}
    for key, n in portal.stats.snapshot()["by_endpoint_status"].items():
        endpoint, status = key.rsplit(" ", 1)
        if endpoint.startswith("POST /crm/v3/objects/") and endpoint.endswith("/batch/update"):
            out[status] = out.get(status, 0) + n
    return out


@pytest.fixture(scope="module")
def portal():
    sb = HubSpotSandbox(size="small", seed=21, accounts=40, search_lag_s=0, rate_limits=False,
                        engagements=False).start()
    yield sb
    sb.stop()


@pytest.fixture
def world(portal, engine, make_settings):
    """A HubSpot connection, synced and scored, whose score properties do not exist yet."""
    portal.reset()
    settings = make_settings(DATABASE_URL=str(engine.url.render_as_string(hide_password=False)))
    name = f"hs-{uuid.uuid4().hex[:6]}"
    cid = create_connection(engine, settings, kind="hubspot", name=name, instance_url=portal.info["api_base"],
                            external_org_id=str(portal.portal_id), options={"auth": "private_app", "budget": "off"},
                            secrets={"access_token": portal.info["access_token"],
                                     "app_secret": portal.info["app_secret"]})
    sync_connection(engine, settings, cid, full=True)
    score_connection(engine, cid)
    return settings, cid, name


def _writeback(portal, engine, settings, cid) -> tuple[dict, dict]:
    """One write-back through a fresh adapter; its result and the batch updates the portal answered, by status."""
    portal.stats.reset()
    out = writeback_connection(engine, settings, cid, adapter=open_adapter(engine, settings, cid))
    return out, batch_updates(portal)


def _states(engine, cid) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(_W).where(_W.c.connection_id == cid)))


def _last_run(engine, cid):
    with engine.connect() as conn:
        return conn.execute(sa.select(_RUN).where(_RUN.c.connection_id == cid, _RUN.c.kind == "writeback")
                            .order_by(_RUN.c.id.desc()).limit(1)).one()


def test_unprovisioned_properties_cost_one_call_wait_for_provisioning_then_are_all_written(portal, engine, world):
    settings, cid, name = world
    contacts = len(portal.store.tables["contacts"].live)
    assert contacts > 100  # several batches of contacts: the refused property is not sent again

    out, answered = _writeback(portal, engine, settings, cid)
    scored = out["failed"]
    assert out["written"] == 0 and scored > contacts
    assert answered == {"400": 2}  # one refused batch per object; before: 199 calls per 100 records
    states = _states(engine, cid)
    assert len(states) == scored
    for row in states:
        assert row.gave_up and row.last_error_code == "PROPERTY_DOESNT_EXIST"
        t = "companies" if row.object == "account" else "contacts"
        assert f'property "rapport_relationship_score" does not exist on {t}' in row.last_error
        assert f"rapport provision {name}" in row.last_error and "{" not in row.last_error
    run = _last_run(engine, cid)
    assert run.status == "failed" and run.api_calls == 2
    assert "does not exist on companies" in run.error and "does not exist on contacts" in run.error
    assert f"`rapport provision {name}`" in run.error

    # later runs send nothing, however long after: the records wait for the properties, and each run says why
    with engine.begin() as conn:
        conn.execute(sa.update(_W).where(_W.c.connection_id == cid).values(next_attempt_at=utcnow() - timedelta(days=1)))
    again, answered = _writeback(portal, engine, settings, cid)
    assert answered == {} and again["written"] == 0
    run = _last_run(engine, cid)
    assert run.status == "failed" and f"`rapport provision {name}`" in run.error
    assert run.counts["account"]["waiting_for_fix"] + run.counts["contact"]["waiting_for_fix"] == scored
    assert all(r.gave_up and r.failure_count == 1 for r in _states(engine, cid))

    provision_fields(engine, settings, cid)
    fixed, answered = _writeback(portal, engine, settings, cid)
    assert fixed["written"] == scored and fixed["failed"] == 0 and fixed["error"] is None
    assert answered == {"200": -(-contacts // 100) + -(-len(portal.store.tables["companies"].live) // 100)}
    assert all(r.last_error is None and not r.gave_up and r.written for r in _states(engine, cid))
    assert _last_run(engine, cid).status == "succeeded"
    companies = portal.store.tables["companies"]
    assert all(companies.records[i].props.get("rapport_relationship_score") for i in companies.live)
    assert writeback_connection(engine, settings, cid)["written"] == 0


def test_a_read_only_target_is_refused_once_and_named(portal, engine, world):
    settings, cid, name = world
    provision_fields(engine, settings, cid)
    defaults = {"account": {**DEFAULT_WRITE["account"], "relationship_score": "notes_last_updated"},
                "contact": DEFAULT_WRITE["contact"]}
    portal.stats.reset()
    out = writeback_connection(engine, settings, cid, defaults=defaults)
    assert batch_updates(portal)["400"] == 1 and out["written"] == len(portal.store.tables["contacts"].live)
    assert {(f["object"], f["code"]) for f in out["failures"]} == {("account", "READ_ONLY_VALUE")}
    assert all('property "notes_last_updated" is read-only on companies' in f["message"] for f in out["failures"])
    assert "fix the write mapping" in out["error"] and _last_run(engine, cid).status == "partial"
    portal.stats.reset()
    again = writeback_connection(engine, settings, cid, defaults=defaults)
    assert again["written"] == 0 and again["failures"] == [] and batch_updates(portal) == {}
    assert 'property "notes_last_updated" of account records is read-only in HubSpot' in again["error"]
