"""Pure Salesforce translation, table-driven over recorded API payloads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.base import WriteItem
from adapters.salesforce import mapping, soql
from adapters.salesforce import settings as S
from connector.mappings import Mapping as UnifiedMapping
from connector.mappings import apply, load_mapping, validate

FIXTURES = Path(__file__).parent / "salesforce_fixtures"


def _page() -> dict:
    return json.loads((FIXTURES / "query_page.json").read_text())


@pytest.mark.parametrize(
    ("index", "deleted", "merged_into", "stamp"),
    [
        (0, False, None, datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        (1, True, None, datetime(2024, 5, 6, 7, 8, 10, 120000, tzinfo=UTC)),
        (2, True, "0035g00000XYZ01AAA", datetime(2024, 5, 6, 7, 8, 11, tzinfo=UTC)),
    ],
)
def test_query_records_become_changes(index: int, deleted: bool, merged_into: str | None, stamp: datetime) -> None:
    record = _page()["records"][index]
    change = mapping.to_change("contact", record)
    assert (change.object, change.external_id) == ("contact", record["Id"])
    assert change.deleted is deleted
    assert change.merged_into == merged_into
    assert change.modified_at == stamp
    assert change.raw is record  # kept exactly as the API returned it


def test_a_record_without_stamp_is_refused() -> None:
    with pytest.raises(ValueError, match="SystemModstamp"):
        mapping.to_change("account", {"Id": "001"})


def test_bulk_csv_rows_take_the_rest_shape() -> None:
    text = (FIXTURES / "bulk_page.csv").read_text()
    types = {"SystemModstamp": "datetime", "IsDeleted": "boolean", "NumberOfEmployees": "int", "AccountId": "reference"}
    live, gone = mapping.csv_records("Contact", text, types, "59.0")
    rest = _page()["records"][0]
    for key in ("Id", "SystemModstamp", "IsDeleted", "MasterRecordId", "AccountId", "Email", "attributes"):
        assert live[key] == rest[key], key
    assert live["Account"]["Name"] == "Acme"
    assert live["NumberOfEmployees"] == 12
    assert gone["IsDeleted"] is True and gone["Account"] is None and gone["AccountId"] is None
    assert mapping.to_change("contact", gone).modified_at == datetime(2024, 5, 6, 7, 8, 10, 120000, tzinfo=UTC)
    assert list(mapping.csv_records("Contact", "", types, "59.0")) == []


def test_default_mapping_is_valid_and_maps_a_recorded_record() -> None:
    validate(mapping.DEFAULT_READ, mapping.DEFAULT_WRITE)
    m = UnifiedMapping(kind="salesforce", read=mapping.DEFAULT_READ, write=mapping.DEFAULT_WRITE)
    case = {
        "Id": "5005g00000CAS01AAA", "SystemModstamp": "2024-05-06T07:08:09.000+0000", "AccountId": "0015g00000ACC01AAA",
        "ContactId": None, "Subject": "Broken", "Priority": "Urgent", "Status": "Escalated", "IsClosed": False,
        "IsEscalated": True, "CreatedDate": "2024-05-01T00:00:00.000+0000", "ClosedDate": None,
    }
    row = apply(m, "case", case)
    assert row["priority"] == "urgent" and row["status"] == "escalated" and row["is_escalated"] is True
    assert row["opened_at"] == datetime(2024, 5, 1, tzinfo=UTC)
    deal = {"Type": "Existing Customer - Upgrade", "CloseDate": "2024-06-30", "Amount": 1200.5, "IsWon": True}
    row = apply(m, "deal", deal)
    assert (row["deal_type"], row["close_date"], row["amount"], row["is_won"]) == ("expansion", date(2024, 6, 30), 1200.5, True)


def test_selected_fields_skip_derived_and_constant_sources() -> None:
    read = {
        "name": {"source": "Name"},
        "account_external_id": {"source": "Account.Id"},
        "other": {"source": "Name"},
        "x": {"source": "_rapport.account_id"},
        "currency": {"constant": "USD"},
    }
    assert mapping.selected_fields(read) == ["Name", "Account.Id"]


def test_score_fields_are_the_agreed_custom_fields() -> None:
    specs = {s.name: s for s in mapping.score_fields("account")}
    assert set(specs) == set(S.SCORE_FIELDS.values())
    score = specs["Rapport_Relationship_Score__c"]
    assert (score.type, score.precision, score.scale) == ("number", 3, 0)
    assert specs["Rapport_Trend__c"].type == "number"
    assert specs["Rapport_Drivers__c"].type == "longtext"
    assert specs["Rapport_Scored_At__c"].type == "datetime"
    assert mapping.custom_field_metadata(specs["Rapport_Tier__c"]) == {
        "label": "Rapport Tier", "type": "Text", "description": "Relationship tier", "length": 1,
    }
    assert mapping.custom_field_metadata(specs["Rapport_Drivers__c"])["type"] == "LongTextArea"
    with pytest.raises(ValueError, match="account and contact"):
        mapping.score_fields("deal")


def test_write_records_carry_type_id_and_formatted_values() -> None:
    item = WriteItem("account", "0015g00000ACC01AAA", {
        "Rapport_Scored_At__c": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "Rapport_Tier__c": "AB",
        "Rapport_Relationship_Score__c": 71,
        "Rapport_Trend__c": None,
    })
    assert mapping.write_record("Account", item) == {
        "attributes": {"type": "Account"},
        "Id": "0015g00000ACC01AAA",
        "Rapport_Scored_At__c": "2024-05-06T07:08:09.123+0000",
        "Rapport_Tier__c": "A",  # cut to the field's length instead of failing the record
        "Rapport_Relationship_Score__c": 71,
        "Rapport_Trend__c": None,
    }


@pytest.mark.parametrize(
    ("since", "until", "where"),
    [
        (None, datetime(2024, 1, 2, tzinfo=UTC), "WHERE SystemModstamp < 2024-01-02T00:00:00Z"),
        (
            datetime(2024, 1, 1, 0, 0, 0, 900000, tzinfo=UTC),
            datetime(2024, 1, 2, 0, 0, 0, 100000, tzinfo=UTC),
            "WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND SystemModstamp < 2024-01-02T00:00:01Z",
        ),
    ],
)
def test_window_query_widens_to_whole_seconds(since: datetime | None, until: datetime, where: str) -> None:
    text = soql.window_query("Account", ["Id", "SystemModstamp"], since, until)
    assert text == f"SELECT Id, SystemModstamp FROM Account {where} ORDER BY SystemModstamp, Id"
    assert "ORDER BY" not in soql.window_query("Account", ["Id"], since, until, ordered=False)


def test_soql_strings_are_escaped() -> None:
    assert soql.string_literal("O'Brien\\") == "'O\\'Brien\\\\'"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        soql.datetime_literal(datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        mapping.format_datetime(datetime(2024, 1, 1))  # noqa: DTZ001


def test_stored_mapping_round_trip_keeps_salesforce_defaults(engine, make_settings) -> None:
    from connector.connections import create_connection

    cid = create_connection(engine, make_settings(), kind="salesforce", name="sf", secrets={"access_token": "x"})
    loaded = load_mapping(engine, cid, "salesforce")
    assert loaded.read["deal"]["deal_type"]["source"] == "Type"
    assert loaded.write["account"]["tier"] == "Rapport_Tier__c"
