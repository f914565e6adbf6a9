"""SOQL through the real simple-salesforce client: operators, parent fields, ordering, errors, paging."""

from __future__ import annotations

import pytest
from simple_salesforce import SalesforceMalformedRequest

from sandbox.salesforce.ids import is_valid, to18
from tests.sandbox.sf_fixtures import sandbox, sf  # noqa: F401


def _ids(sf, soql):  # noqa: F811
    return {r["Id"] for r in sf.query_all(soql)["records"]}


def _live(sandbox, name):  # noqa: F811
    return [r for r in sandbox.org.table(name).rows.values() if not r.get("IsDeleted")]


def test_ids_are_18_characters_with_prefix_and_checksum(sandbox):  # noqa: F811
    assert to18("a0D30000001n7Pi") == "a0D30000001n7PiEAI"  # the documented example
    prefixes = {"Account": "001", "Contact": "003", "Opportunity": "006", "Case": "500", "Task": "00T", "User": "005"}
    for name, prefix in prefixes.items():
        some = next(iter(sandbox.org.table(name).rows))
        assert some.startswith(prefix) and is_valid(some) and len(some) == 18
    assert sandbox.info["organization_id"].startswith("00D")


@pytest.mark.parametrize(
    ("where", "check"),
    [
        ("StageName = 'Closed Won'", lambda r: r["StageName"] == "Closed Won"),
        ("StageName = 'closed won'", lambda r: r["StageName"] == "Closed Won"),  # SOQL = is case-insensitive
        ("StageName != 'Closed Won'", lambda r: r["StageName"] != "Closed Won"),
        ("Amount > 50000", lambda r: r["Amount"] is not None and r["Amount"] > 50000),
        ("Amount <= 10000.5", lambda r: r["Amount"] is not None and r["Amount"] <= 10000.5),
        ("IsWon = true", lambda r: r["IsWon"] is True),
        ("IsClosed = false AND Amount >= 20000", lambda r: not r["IsClosed"] and r["Amount"] >= 20000),
        ("(StageName = 'Closed Won' OR StageName = 'Closed Lost') AND NOT Amount < 30000",
         lambda r: r["IsClosed"] and not r["Amount"] < 30000),
        ("StageName IN ('Prospecting', 'Qualification')", lambda r: r["StageName"] in ("Prospecting", "Qualification")),
        ("StageName NOT IN ('Closed Won', 'Closed Lost')", lambda r: not r["IsClosed"]),
        ("Name LIKE '%Renewal%'", lambda r: "renewal" in r["Name"].lower()),
        ("Name LIKE 'S_lid%'", lambda r: r["Name"].lower().startswith("s") and r["Name"][2:5].lower() == "lid"),
        ("ContactId = null", lambda r: r["ContactId"] is None),
        ("ContactId != null", lambda r: r["ContactId"] is not None),
        ("CloseDate > 2024-06-30", lambda r: r["CloseDate"] > "2024-06-30"),
        ("CreatedDate < 2024-01-01T00:00:00Z", lambda r: r["CreatedDate"] < "2024-01-01T00:00:00.000+0000"),
        ("CreatedDate >= 2024-01-01T02:00:00+02:00", lambda r: r["CreatedDate"] >= "2024-01-01T00:00:00.000+0000"),
        ("Type = 'Renewal'", lambda r: r["Type"] == "Renewal"),
    ],
)
def test_where_operators_match_a_python_filter(sandbox, sf, where, check):  # noqa: F811
    got = _ids(sf, f"SELECT Id FROM Opportunity WHERE {where}")
    want = {r["Id"] for r in _live(sandbox, "Opportunity") if check(r)}
    assert got == want
    assert got, f"the world should have rows for {where}"


def test_parent_fields_nest_with_attributes_or_null(sf):  # noqa: F811
    rows = sf.query_all("SELECT Id, Subject, Account.Name, Account.Owner.Name, Contact.Email FROM Case")["records"]
    with_contact = [r for r in rows if r["Contact"] is not None]
    without = [r for r in rows if r["Contact"] is None]
    assert with_contact and without
    first = with_contact[0]
    assert first["Account"]["attributes"]["type"] == "Account"
    assert first["Account"]["attributes"]["url"].startswith("/services/data/v59.0/sobjects/Account/001")
    assert first["Account"]["Name"] and first["Account"]["Owner"]["Name"]
    assert "@" in first["Contact"]["Email"]
    assert list(first) == ["attributes", "Id", "Subject", "Account", "Contact"]


def test_filter_on_a_parent_field_and_polymorphic_what(sandbox, sf):  # noqa: F811
    account = next(iter(_live(sandbox, "Account")))
    got = _ids(sf, f"SELECT Id FROM Contact WHERE Account.Name = '{account['Name']}'")
    want = {r["Id"] for r in _live(sandbox, "Contact")
            if (sandbox.org.get(r["AccountId"]) or {}).get("Name") == account["Name"]}
    assert got == want and got
    task = sf.query("SELECT Id, What.Name, What.Type FROM Task LIMIT 1")["records"][0]
    assert task["What"]["attributes"]["type"] == "Account"


def test_order_by_several_fields_nulls_and_limit_offset(sandbox, sf):  # noqa: F811
    rows = sf.query("SELECT Id, ContactId, Amount FROM Opportunity ORDER BY ContactId DESC NULLS FIRST, Amount ASC LIMIT 500")["records"]
    nulls = [r for r in rows if r["ContactId"] is None]
    assert rows[: len(nulls)] == nulls and nulls  # nulls first, then descending ids
    rest = [r["ContactId"] for r in rows[len(nulls):]]
    assert rest == sorted(rest, reverse=True)
    amounts = sf.query("SELECT Amount FROM Opportunity WHERE Amount != null ORDER BY Amount DESC LIMIT 5 OFFSET 2")["records"]
    every = sorted((r["Amount"] for r in _live(sandbox, "Opportunity") if r.get("Amount") is not None), reverse=True)
    assert [r["Amount"] for r in amounts] == every[2:7]


def test_count_and_date_literals(sandbox, sf):  # noqa: F811
    open_cases = sum(1 for r in _live(sandbox, "Case") if not r["IsClosed"])
    assert sf.query("SELECT COUNT() FROM Case WHERE IsClosed = false")["totalSize"] == open_cases
    created = sf.Contact.create({"LastName": "Literal", "FirstName": "Today"})
    try:
        today = _ids(sf, "SELECT Id FROM Contact WHERE CreatedDate = TODAY")
        recent = _ids(sf, "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:2")
        assert created["id"] in today and created["id"] in recent
        assert created["id"] not in _ids(sf, "SELECT Id FROM Contact WHERE CreatedDate < YESTERDAY")
    finally:
        sf.Contact.delete(created["id"])


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Id, Foo__c FROM Contact", "INVALID_FIELD",
         "No such column 'Foo__c' on entity 'Contact'. If you are attempting to use a custom field, be sure to append the '__c'"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported."),
        ("SELECT Id FORM Contact", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id FROM Contact WHERE LastName = 'a' AND FirstName = 'b' OR Title = 'c'", "MALFORMED_QUERY", "unexpected token: 'OR'"),
        ("SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01T00:00:00Z'", "INVALID_FIELD",
         "must be of type dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Contact WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        ("SELECT Id, Bogus.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Bogus'"),
        ("SELECT Id, Id FROM Contact", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ],
)
def test_query_errors_are_400_arrays(sf, soql, code, text):  # noqa: F811
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    assert exc.value.status == 400
    body = exc.value.content
    assert isinstance(body, list) and body[0]["errorCode"] == code
    assert text in body[0]["message"]
    if code != "MALFORMED_QUERY" or "token" in text:
        assert "ERROR at Row:1:Column:" in body[0]["message"]


def test_paging_more_than_10000_records_with_batch_size(sandbox, sf):  # noqa: F811
    sandbox.hook("POST", "records", {"object": "Contact", "count": 11000, "fields": {"Title": "Paging"}})
    stats_before = sandbox.hook("GET", "stats")["by_endpoint"]
    rows = sf.query_all("SELECT Id, LastName FROM Contact WHERE Title = 'Paging' ORDER BY SystemModstamp, Id")["records"]
    assert len(rows) == 11000 and len({r["Id"] for r in rows}) == 11000
    stats = sandbox.hook("GET", "stats")["by_endpoint"]
    more = "GET /services/data/v<version:version>/query/<locator>"
    assert stats.get(more, 0) - stats_before.get(more, 0) == 5  # 2000 per page: 1 query + 5 more
    first = sf.query("SELECT Id FROM Contact WHERE Title = 'Paging'", headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(first["records"]) == 500 and first["totalSize"] == 11000 and first["done"] is False
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g") and first["nextRecordsUrl"].endswith("-500")
    tiny = sf.query("SELECT Id FROM Contact WHERE Title = 'Paging'", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(tiny["records"]) == 200  # the minimum batch size
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more("/services/data/v59.0/query/01g8d0000000zzzAAA-2000", identifier_is_url=True)
    assert exc.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_returns_deleted_and_merged_rows(sandbox, sf):  # noqa: F811
    contacts = sf.query("SELECT Id, AccountId FROM Contact WHERE AccountId != null ORDER BY AccountId LIMIT 3")["records"]
    deleted_id = contacts[0]["Id"]
    sf.Contact.delete(deleted_id)
    account_ids = sorted({r["Id"] for r in sf.query("SELECT Id FROM Account LIMIT 2")["records"]})
    winner, loser = account_ids
    children = _ids(sf, f"SELECT Id FROM Contact WHERE AccountId = '{loser}'")
    sandbox.hook("POST", "merge", {"object": "Account", "winner": winner, "losers": [loser]})

    assert deleted_id not in _ids(sf, "SELECT Id FROM Contact")
    rows = sf.query_all("SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE IsDeleted = true", include_deleted=True)["records"]
    assert {"Id": loser, "IsDeleted": True, "MasterRecordId": winner} in [
        {k: r[k] for k in ("Id", "IsDeleted", "MasterRecordId")} for r in rows]
    gone = sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{deleted_id}'", include_deleted=True)["records"]
    assert gone[0]["IsDeleted"] is True
    assert children and children <= _ids(sf, f"SELECT Id FROM Contact WHERE AccountId = '{winner}'")
    assert loser not in _ids(sf, "SELECT Id FROM Account")
