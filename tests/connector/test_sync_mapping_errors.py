"""A mapping the CRM cannot serve fails its own object only; the adapter is told what the mapping reads."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import adapters
from connector.errors import MappingError
from connector.model import SyncRun
from connector.sync import sync_connection
from sandbox.memory import MemoryAdapter, MemoryCRM
from tests.connector.sync_helpers import MEMORY, memory_connection, rows


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> MemoryCRM:
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    return MemoryCRM(page_size=3)


def test_a_broken_object_mapping_skips_that_object_and_says_why(engine, make_settings, crm, monkeypatch):
    settings = make_settings()
    accounts = [crm.create("account") for _ in range(3)]
    for a in accounts:
        crm.create("contact", {"AccountId": a})
    crm.tick()
    cid, adapter = memory_connection(engine, settings, crm)
    real = MemoryAdapter.pull

    def pull(self, object, since, until, *, full=False, reconcile=False):
        if object == "contact":
            raise MappingError("the CRM has no field Region__c on Contact", object="contact",
                               hint="create it or remove it from the mapping")
        return real(self, object, since, until, full=full)

    monkeypatch.setattr(MemoryAdapter, "pull", pull)
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        run = conn.execute(sa.select(t).where(t.c.id == run_id)).mappings().one()
    assert run["status"] == "partial"
    assert any(e["object"] == "contact" and "Region__c" in e["message"] for e in run["errors"])
    assert len(rows(engine, "account", cid)) == 3
    assert rows(engine, "contact", cid) == {}


def test_the_adapter_is_given_the_stored_read_mapping(engine, make_settings, crm):
    settings = make_settings()
    cid, adapter = memory_connection(engine, settings, crm)
    adapter.read_mapping = {}  # type: ignore[attr-defined]
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert adapter.read_mapping["account"]["name"] == {"source": "Name"}  # type: ignore[attr-defined]
