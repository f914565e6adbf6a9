"""Writing to the Salesforce sandbox: score fields, score updates with refused records, tasks."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.base import TaskSpec, WriteItem
from adapters.salesforce import mapping
from adapters.salesforce import settings as S
from tests.adapters.salesforce_support import Org, later, org_fixture, sf_sandbox_fixture  # noqa: F401 - fixtures

TOOLING = "POST /services/data/v<version:version>/tooling/sobjects/CustomField"
COMPOSITE = "PATCH /services/data/v<version:version>/composite/sobjects"


def _provision(adapter) -> dict[str, list[str]]:
    return {o: adapter.ensure_fields(o, mapping.score_fields(o)) for o in ("account", "contact")}


def test_provisioning_creates_the_score_fields_once(org: Org) -> None:
    adapter = org.adapter()
    created = _provision(adapter)
    assert created["account"] == list(S.SCORE_FIELDS.values())
    assert created["contact"] == list(S.SCORE_FIELDS.values())
    fields = {f.name: f for f in adapter.describe("account")}
    assert fields["Rapport_Relationship_Score__c"].custom and fields["Rapport_Relationship_Score__c"].type == "double"
    assert fields["Rapport_Scored_At__c"].type == "datetime"
    assert fields["Rapport_Drivers__c"].type == "textarea"
    assert org.stats()[TOOLING] == 12
    # A second provision (another process: nothing cached) creates nothing and posts nothing.
    again = org.adapter()
    assert _provision(again) == {"account": [], "contact": []}
    assert org.stats()[TOOLING] == 12


def test_a_field_created_meanwhile_counts_as_there(org: Org) -> None:
    adapter = org.adapter()
    adapter.catalog.fields("Account")  # describe cached before someone else creates the field
    org.adapter().ensure_fields("account", mapping.score_fields("account")[:1])
    created = adapter.ensure_fields("account", mapping.score_fields("account"))
    assert "Rapport_Relationship_Score__c" not in created and len(created) == 5


def _scores(n: int, ids: list[str], **extra) -> list[WriteItem]:
    at = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    return [
        WriteItem("account", i, {"Rapport_Relationship_Score__c": 40 + k % 50, "Rapport_Tier__c": "B",
                                 "Rapport_Drivers__c": "More meetings\nFewer open cases", "Rapport_Trend__c": -3,
                                 "Rapport_Scored_At__c": at, **extra})
        for k, i in enumerate(ids[:n])
    ]


def test_a_composite_write_records_refused_records_and_writes_the_rest(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 200})
    adapter = org.adapter()
    _provision(adapter)
    ids = [c.external_id for p in adapter.pull("account", None, later()) for c in p.changes]
    deleted, invalid = ids[3], ids[210]
    adapter.client.call(lambda sf: sf.Account.delete(deleted))
    org.hook("validation", {"ids": [invalid], "message": "Tier must be set by RevOps", "fields": ["Rapport_Tier__c"]})
    org.hook("stats", method="DELETE")
    items = _scores(250, ids)
    results = adapter.write("account", items)
    assert [r.external_id for r in results] == [i.external_id for i in items]
    refused = {r.external_id: r for r in results if not r.ok}
    assert set(refused) == {deleted, invalid}
    assert refused[deleted].error_code == "ENTITY_IS_DELETED" and not refused[deleted].retriable
    assert refused[invalid].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert "Tier must be set by RevOps" in (refused[invalid].message or "")
    assert org.stats() == {COMPOSITE: 2}  # 250 records, 200 a call
    written = org.sandbox.org.get(ids[0])
    assert written["Rapport_Relationship_Score__c"] == 40 and written["Rapport_Tier__c"] == "B"
    assert written["Rapport_Scored_At__c"].startswith("2025-07-01T12:00:00.000")
    assert org.sandbox.org.get(ids[249])["Rapport_Trend__c"] == -3


def test_a_large_write_goes_through_a_bulk_ingest_job(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 60})
    adapter = org.adapter(bulk_write_threshold=20, bulk_poll_seconds=0)
    _provision(adapter)
    ids = [c.external_id for p in adapter.pull("account", None, later()) for c in p.changes]
    deleted = ids[5]
    adapter.client.call(lambda sf: sf.Account.delete(deleted))
    items = _scores(60, ids, Rapport_Trend__c=None)
    results = adapter.write("account", items)
    assert [r.external_id for r in results] == [i.external_id for i in items]
    assert [r.external_id for r in results if not r.ok] == [deleted]
    assert next(r for r in results if not r.ok).error_code == "ENTITY_IS_DELETED"
    assert not any(k.startswith("PATCH") and "composite" in k for k in org.stats())
    assert org.sandbox.org.get(ids[0])["Rapport_Relationship_Score__c"] == 40
    assert org.sandbox.org.get(ids[0]).get("Rapport_Trend__c") is None


def test_a_task_lands_on_the_record_for_its_owner(org: Org) -> None:
    adapter = org.adapter()
    account = next(iter(adapter.pull("account", None, later()))).changes[0]
    owner = account.raw["OwnerId"]
    due = datetime(2025, 7, 8, tzinfo=UTC)
    task_id = adapter.create_task(TaskSpec("account", account.external_id, "Relationship score fell 22 points",
                                           "Drivers: fewer meetings", owner_id=owner, due=due))
    task = org.sandbox.org.get(task_id)
    assert task_id.startswith("00T")
    assert (task["WhatId"], task["OwnerId"], task["Subject"]) == (account.external_id, owner, "Relationship score fell 22 points")
    assert (task["Description"], task["ActivityDate"], task["Status"]) == ("Drivers: fewer meetings", "2025-07-08", "Not Started")
    contact = next(iter(adapter.pull("contact", None, later()))).changes[0]
    on_contact = org.sandbox.org.get(adapter.create_task(TaskSpec("contact", contact.external_id, "Call", "")))
    assert on_contact["WhoId"] == contact.external_id
