"""Bulk API 2.0 through simple-salesforce's bulk2 handler: query with locator paging, ingest results."""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce import SalesforceMalformedRequest

from tests.sandbox.sf_fixtures import sandbox, sf  # noqa: F401


def test_bulk_query_pages_with_locators(sandbox, sf):  # noqa: F811
    expected = {r["Id"]: r for r in sandbox.org.table("Contact").rows.values() if not r.get("IsDeleted")}
    pages = list(sf.bulk2.Contact.query("SELECT Id, LastName, Account.Name, CreatedDate FROM Contact",
                                        max_records=400, wait=0))
    assert len(pages) == -(-len(expected) // 400)
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert {r["Id"] for r in rows} == set(expected)
    sample = rows[0]
    assert list(sample) == ["Id", "LastName", "Account.Name", "CreatedDate"]
    assert sample["CreatedDate"].endswith(".000Z")
    stats = sandbox.hook("GET", "stats")["by_endpoint"]
    assert stats["GET /services/data/v<version:version>/jobs/query/<job_id>/results"] == len(pages)


def test_bulk_query_all_includes_deleted_and_rejects_bad_soql(sf):  # noqa: F811
    doomed = sf.Contact.create({"LastName": "Bulk gone"})["id"]
    sf.Contact.delete(doomed)
    live = "".join(sf.bulk2.Contact.query(f"SELECT Id FROM Contact WHERE Id = '{doomed}'", wait=0))
    every = "".join(sf.bulk2.Contact.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{doomed}'", wait=0))
    assert doomed not in live and f'"{doomed}","true"' in every
    with pytest.raises(SalesforceMalformedRequest) as exc:
        list(sf.bulk2.Contact.query("SELECT Id, Nope__c FROM Contact", wait=0))
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_bulk_ingest_update_with_a_failed_record(sandbox, sf):  # noqa: F811
    rows = sf.query("SELECT Id FROM Account ORDER BY Id LIMIT 3")["records"]
    ok1, ok2, doomed = (r["Id"] for r in rows)
    sf.Account.delete(doomed)
    result = sf.bulk2.Account.update(records=[
        {"Id": ok1, "Description": "bulk one"},
        {"Id": ok2, "Description": "bulk two"},
        {"Id": doomed, "Description": "never"},
    ], wait=0)
    assert result[0]["numberRecordsProcessed"] == 3 and result[0]["numberRecordsFailed"] == 1
    job = result[0]["job_id"]
    assert sf.Account.get(ok1)["Description"] == "bulk one"
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_successful_records(job))))
    failed = list(csv.DictReader(io.StringIO(sf.bulk2.Account.get_failed_records(job))))
    assert [r["sf__Id"] for r in ok] == [ok1, ok2] and ok[0]["sf__Created"] == "false"
    assert failed[0]["sf__Error"].startswith("ENTITY_IS_DELETED") and failed[0]["Id"] == doomed
    unprocessed = sf.bulk2.Account.get_unprocessed_records(job).strip().splitlines()
    assert len(unprocessed) == 1 and set(unprocessed[0].split(",")) == {'"Id"', '"Description"'}


def test_bulk_ingest_upsert_on_id_creates_and_updates(sf):  # noqa: F811
    existing = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
    result = sf.bulk2.Contact.upsert(records=[
        {"Id": existing, "LastName": "Upserted"},
        {"Id": "", "LastName": "Brand New"},
    ], external_id_field="Id", wait=0)
    assert result[0]["numberRecordsFailed"] == 0
    ok = list(csv.DictReader(io.StringIO(sf.bulk2.Contact.get_successful_records(result[0]["job_id"]))))
    assert [r["sf__Created"] for r in ok] == ["false", "true"]
    assert sf.Contact.get(existing)["LastName"] == "Upserted"
