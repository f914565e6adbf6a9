"""Writes through simple-salesforce: CRUD, sObject Collections, getDeleted/getUpdated, Tooling, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import SalesforceMalformedRequest, SalesforceRefusedRequest, SalesforceResourceNotFound

from tests.sandbox.sf_fixtures import sandbox, sf  # noqa: F401


def test_crud_round_trip_bumps_stamps(sandbox, sf):  # noqa: F811
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    created = sf.Contact.create({"LastName": "Okafor", "FirstName": "Ada", "Email": "ada@example.com", "AccountId": account})
    assert created["success"] is True and created["errors"] == [] and created["id"].startswith("003")
    first = sf.Contact.get(created["id"])
    assert first["Name"] == "Ada Okafor" and first["AccountId"] == account and first["IsDeleted"] is False
    assert first["CreatedById"] == sandbox.info["user_id"]
    assert sf.Contact.update(created["id"], {"Title": "CTO"}) == 204
    second = sf.Contact.get(created["id"])
    assert second["Title"] == "CTO" and second["SystemModstamp"] >= first["SystemModstamp"]
    assert second["LastModifiedDate"] == second["SystemModstamp"]
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Contact.get(created["id"])
    assert exc.value.content == [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}]
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Contact.get("0038d00000zzzzzAAA")
    assert exc.value.content[0]["errorCode"] == "NOT_FOUND"


def test_single_record_errors(sf):  # noqa: F811
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.create({"FirstName": "No last name"})
    assert exc.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING" and exc.value.content[0]["fields"] == ["LastName"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.create({"LastName": "X", "Nope__c": 1})
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.create({"LastName": "X", "Email": "not-an-email"})
    assert exc.value.content[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"


def test_opportunity_and_case_derived_fields(sf):  # noqa: F811
    opp = sf.query("SELECT Id FROM Opportunity WHERE IsClosed = false LIMIT 1")["records"][0]["Id"]
    sf.Opportunity.update(opp, {"StageName": "Closed Won"})
    row = sf.Opportunity.get(opp)
    assert row["IsClosed"] is True and row["IsWon"] is True and row["Probability"] == 100
    case = sf.query("SELECT Id FROM Case WHERE IsClosed = false LIMIT 1")["records"][0]["Id"]
    sf.Case.update(case, {"Status": "Closed"})
    closed = sf.Case.get(case)
    assert closed["IsClosed"] is True and closed["ClosedDate"] == closed["LastModifiedDate"]


def test_composite_update_with_failing_records_keeps_the_others(sandbox, sf):  # noqa: F811
    rows = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 4")["records"]
    good, deleted, guarded, readonly = (r["Id"] for r in rows)
    sf.Contact.delete(deleted)
    sandbox.hook("POST", "validation", {"ids": [guarded], "message": "Title is locked for key contacts"})
    try:
        payload = {"allOrNone": False, "records": [
            {"attributes": {"type": "Contact"}, "id": good, "Title": "Score 80"},
            {"attributes": {"type": "Contact"}, "id": deleted, "Title": "x"},
            {"attributes": {"type": "Contact"}, "id": "003xx000004TmiQQQ", "Title": "x"},
            {"attributes": {"type": "Contact"}, "id": guarded, "Title": "x"},
            {"attributes": {"type": "Contact"}, "id": readonly, "Name": "x"},
        ]}
        results = sf.restful("composite/sobjects", method="PATCH", json=payload)
        codes = [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]
        assert codes == [None, "ENTITY_IS_DELETED", "MALFORMED_ID", "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                         "INVALID_FIELD_FOR_INSERT_UPDATE"]
        assert results[0] == {"id": good, "success": True, "errors": []}
        assert results[3]["errors"][0]["message"] == "Title is locked for key contacts"
        assert sf.Contact.get(good)["Title"] == "Score 80"

        payload["allOrNone"] = True
        payload["records"][0]["Title"] = "Score 90"
        results = sf.restful("composite/sobjects", method="PATCH", json=payload)
        assert all(r["success"] is False for r in results)
        assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
        assert sf.Contact.get(good)["Title"] == "Score 80"
    finally:
        sandbox.hook("DELETE", "validation")


def test_composite_limits_create_retrieve_delete(sf):  # noqa: F811
    too_many = {"records": [{"attributes": {"type": "Contact"}, "id": "0038d0000000001AAA"}] * 201}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("composite/sobjects", method="PATCH", json=too_many)
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    created = sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Contact"}, "LastName": "One"},
        {"attributes": {"type": "Account"}, "Name": "Two Inc"},
        {"attributes": {"type": "Contact"}, "FirstName": "no last name"},
    ]})
    assert [r["success"] for r in created] == [True, True, False]
    got = sf.restful("composite/sobjects/Contact", method="GET", params={"ids": created[0]["id"], "fields": "LastName"})
    assert got[0]["LastName"] == "One"
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": f"{created[0]['id']},{created[1]['id']}"})
    assert [r["success"] for r in deleted] == [True, True]


def test_get_deleted_and_updated(sf):  # noqa: F811
    start = datetime.now(UTC) - timedelta(minutes=5)
    contact = sf.Contact.create({"LastName": "Replicated"})["id"]
    sf.Contact.delete(contact)
    end = datetime.now(UTC) + timedelta(minutes=2)
    gone = sf.Contact.deleted(start, end)
    assert contact in [d["id"] for d in gone["deletedRecords"]]
    assert {"earliestDateAvailable", "latestDateCovered"} <= set(gone)
    other = sf.Contact.create({"LastName": "Updated"})["id"]
    assert other in sf.Contact.updated(start, end)["ids"]
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Contact.updated(start - timedelta(days=40), end)
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_tooling_custom_field_then_describe_and_write(sf):  # noqa: F811
    before = {f["name"] for f in sf.Account.describe()["fields"]}
    assert "Rapport_Relationship_Score__c" not in before
    body = {"FullName": "Account.Rapport_Relationship_Score__c",
            "Metadata": {"label": "Rapport Relationship Score", "type": "Number", "precision": 3, "scale": 0}}
    result = sf.toolingexecute("sobjects/CustomField", method="POST", data=body)
    assert result["success"] is True and result["id"].startswith("00N")
    field = next(f for f in sf.Account.describe()["fields"] if f["name"] == "Rapport_Relationship_Score__c")
    assert (field["type"], field["precision"], field["scale"], field["custom"]) == ("double", 3, 0, True)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.toolingexecute("sobjects/CustomField", method="POST", data=body)
    assert exc.value.content[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"
    listed = sf.toolingexecute("query/?q=SELECT+Id,DeveloperName+FROM+CustomField+WHERE+TableEnumOrId='Account'")
    assert "Rapport_Relationship_Score" in [r["DeveloperName"] for r in listed["records"]]
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    results = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Account"}, "id": account, "Rapport_Relationship_Score__c": 87},
        {"attributes": {"type": "Account"}, "id": account, "Rapport_Relationship_Score__c": 1000},
    ]})
    assert results[0]["success"] and results[1]["errors"][0]["statusCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    assert sf.query(f"SELECT Rapport_Relationship_Score__c FROM Account WHERE Id = '{account}'")["records"][0][
        "Rapport_Relationship_Score__c"] == 87
    case_fields = {f["name"] for f in sf.Case.describe()["fields"]}
    assert {"CSAT__c", "Reopen_Count__c"} <= case_fields


def test_limits_header_and_exhaustion(sandbox, sf):  # noqa: F811
    sf.query("SELECT Id FROM Account LIMIT 1")
    used, total = sf.api_usage["api-usage"]
    assert total == 100_000 and used >= 1
    assert sf.limits()["DailyApiRequests"]["Max"] == 100_000
    sandbox.hook("POST", "limits", {"exhaust": True})
    try:
        with pytest.raises(SalesforceRefusedRequest) as exc:
            sf.query("SELECT Id FROM Account LIMIT 1")
        assert exc.value.status == 403
        assert exc.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    finally:
        sandbox.hook("POST", "limits", {"used": used})
