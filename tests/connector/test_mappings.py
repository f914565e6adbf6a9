"""Field mappings: every transform, table-driven; validation errors that name the field; defaults; storage."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

import adapters
from adapters.base import FieldInfo
from connector import transforms
from connector.errors import InvalidRecord, MappingError
from connector.mappings import (
    Mapping,
    apply,
    check_sources,
    default_mapping,
    load_mapping,
    save_mapping,
    validate,
)
from sandbox.memory import DEFAULT_READ
from tests.connector.sync_helpers import MEMORY

D = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cast", "value", "expected"),
    [
        ("str", "Acme", "Acme"),
        ("str", True, "true"),
        ("str", 42, "42"),
        ("int", "12", 12),
        ("int", "12.0", 12),
        ("int", 7.0, 7),
        ("int", True, 1),
        ("int", "98765432109876543210", 98765432109876543210),
        ("float", "1234.50", 1234.5),
        ("float", 3, 3.0),
        ("bool", "true", True),
        ("bool", "FALSE", False),
        ("bool", "yes", True),
        ("bool", 0, False),
        ("bool", True, True),
        ("datetime", "2024-01-02T03:04:05.000+0000", D),  # Salesforce
        ("datetime", "2024-01-02T03:04:05Z", D),  # HubSpot / ISO with Z
        ("datetime", "2024-01-02T05:04:05+02:00", D),  # offsets become UTC
        ("datetime", "2024-01-02T03:04:05", D),  # naive means UTC
        ("datetime", "2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("datetime", date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
        ("epoch_ms", "1704164645000", D),  # HubSpot
        ("epoch_ms", 1704164645000, D),
        ("epoch_ms", "1704164645000.0", D),
        ("epoch_ms", "2024-01-02T03:04:05Z", D),
        ("date", "2024-01-02", date(2024, 1, 2)),
        ("date", "2024-01-02T23:30:00-02:00", date(2024, 1, 3)),  # the UTC day
        ("date", D, date(2024, 1, 2)),
    ],
)
def test_casts(cast, value, expected):
    result = transforms.CAST_FUNCS[cast](value, None)
    assert result == expected and type(result) is type(expected)
    if isinstance(result, datetime):
        assert result.tzinfo == UTC


@pytest.mark.parametrize(
    ("cast", "value", "message"),
    [
        ("int", "12.5", "'12.5' is not a whole number"),
        ("int", "twelve", "'twelve' is not a number"),
        ("float", "nan", "not a finite number"),
        ("float", [1], "is not a number"),
        ("bool", "maybe", "is not a boolean"),
        ("bool", 2, "is not a boolean"),
        ("datetime", "yesterday", "is not a date-time in ISO 8601"),
        ("datetime", 1704164645000, "use cast epoch_ms"),
        ("date", "2024-13-01", "is not a date in the form YYYY-MM-DD"),
        ("epoch_ms", True, "not a millisecond timestamp"),
        ("epoch_ms", "soon", "is not a date-time"),
        ("str", {"a": 1}, "structured value"),
    ],
)
def test_cast_errors_say_what_is_wrong(cast, value, message):
    with pytest.raises(ValueError, match=message):
        transforms.CAST_FUNCS[cast](value, None)


RAW = {
    "Id": "001",
    "Name": "Acme",
    "Rating": "hot",
    "Blank": "",
    "Opened": "02/01/2024 03:04",
    "properties": {"amount": "99.5", "stage": "closedwon"},
    "items": [{"id": "a"}, {"id": "b"}],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"source": "Name"}, "Acme"),
        ({"source": "properties.amount", "cast": "float"}, 99.5),
        ({"source": "items.1.id"}, "b"),
        ({"source": "items.9.id"}, None),
        ({"source": "Missing"}, None),
        ({"source": "Missing", "default": "n/a"}, "n/a"),
        ({"source": "Blank", "default": 0, "cast": "int"}, 0),  # "" counts as missing
        ({"source": "Rating", "map": {"Hot": "high", "Cold": "low"}}, "high"),  # any case
        ({"source": "properties.stage", "map": {"closedwon": True}, "cast": "bool"}, True),
        ({"source": "Name", "map": {"Other": "x"}}, "Acme"),  # unmapped values pass through
        ({"constant": "USD"}, "USD"),
        ({"source": "Opened", "cast": "datetime", "format": "%d/%m/%Y %H:%M"}, datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
    ],
)
def test_evaluate(spec, expected):
    assert transforms.evaluate(spec, RAW) == expected


def mapping(read: dict) -> Mapping:
    validate(read, {})
    return Mapping(kind="memory", read=read, write={})


def test_apply_builds_a_whole_row_with_custom_fields():
    m = mapping({"deal": {"name": {"source": "Name"}, "amount": {"source": "properties.amount"},
                          "is_won": {"source": "Won"}, "custom.rating": {"source": "Rating"},
                          "custom.opened": {"source": "Opened", "cast": "datetime", "format": "%d/%m/%Y %H:%M"}}})
    row = apply(m, "deal", RAW)
    assert row["name"] == "Acme" and row["amount"] == 99.5  # numeric text fits the float column without a cast
    assert row["is_won"] is False and row["is_closed"] is False  # not-null columns get their default
    assert row["stage"] is None and row["close_date"] is None  # unmapped columns are reset, not kept
    assert row["custom"] == {"rating": "hot", "opened": "2024-01-02T03:04:00+00:00"}
    assert "raw" not in row and "external_id" not in row


def test_apply_truncates_text_to_the_column_but_keeps_raw():
    m = mapping({"account": {"industry": {"source": "Name"}}})
    assert len(apply(m, "account", {"Name": "x" * 500})["industry"]) == 120


def test_a_value_that_cannot_fit_makes_the_record_invalid_naming_the_field():
    m = mapping({"account": {"employees": {"source": "Size"}}})
    with pytest.raises(InvalidRecord, match=r"account.employees from Size: 'large' is not a number"):
        apply(m, "account", {"Size": "large"})


@pytest.mark.parametrize(
    ("read", "write", "message"),
    [
        ({"account": {"nmae": {"source": "Name"}}}, {}, r"account.nmae: unknown unified field"),
        ({"account": {"raw": {"source": "Name"}}}, {}, r"account.raw: this field is set by the sync itself"),
        ({"account": {"account_id": {"source": "X"}}}, {}, r"account.account_id: this field is set by the sync"),
        ({"lead": {"name": {"source": "Name"}}}, {}, r"lead.name: unknown object"),
        ({"account": {"name": {"source": "Name", "cast": "text"}}}, {}, r"account.name: unknown cast 'text'"),
        ({"account": {"name": {"source": "Name", "constant": "x"}}}, {}, r"give exactly one of source"),
        ({"account": {"name": {}}}, {}, r"account.name: give exactly one of source"),
        ({"account": {"name": {"source": "Name", "trim": True}}}, {}, r"account.name: unknown key\(s\) trim"),
        ({"account": {"name": "Name"}}, {}, r"account.name: the spec must be a mapping"),
        ({"account": {"name": {"source": "a..b"}}}, {}, r"source 'a..b' is not a field path"),
        ({"account": {"employees": {"source": "E", "cast": "datetime"}}}, {},
         r"account.employees: cast datetime gives a datetime but the field holds a int"),
        ({"account": {"name": {"source": "N", "format": "%Y"}}}, {}, r"format .* needs cast datetime or date"),
        ({"account": {"employees": {"source": "E", "default": "many"}}}, {}, r"default 'many' does not fit"),
        ({"deal": {"is_won": {"constant": "perhaps", "cast": "bool"}}}, {}, r"deal.is_won: constant 'perhaps'"),
        ({"account": {"custom.bad name": {"source": "X"}}}, {}, r"custom field name takes letters"),
        ({}, {"account": {"score": "X__c"}}, r"account.score: unknown score key"),
        ({}, {"deal": {"tier": "X__c"}}, r"deal.tier: scores are written to account and contact only"),
        ({}, {"contact": {"tier": ""}}, r"contact.tier: the CRM field must be a field name"),
    ],
)
def test_bad_mappings_are_rejected_naming_object_field_and_reason(read, write, message):
    with pytest.raises(MappingError, match=message):
        validate(read, write)


FIELDS = [FieldInfo("Id", "Id", "id"), FieldInfo("Name", "Name", "string"),
          FieldInfo("AccountId", "Account", "reference"), FieldInfo("Region__c", "Region", "reference", custom=True)]


def test_sources_are_checked_against_the_fields_the_crm_describes():
    check_sources("contact", {"name": {"source": "Name"}, "a": {"source": "Account.Name"},
                              "r": {"source": "Region__r.Name"}, "d": {"source": "_rapport.account_id"},
                              "c": {"constant": 1}}, FIELDS)
    with pytest.raises(MappingError, match=r"contact.last_name: source 'Nmae' names no field .* did you mean Name\?"):
        check_sources("contact", {"last_name": {"source": "Nmae"}}, FIELDS)
    with pytest.raises(MappingError, match=r"source 'Title' names no field"):
        check_sources("contact", {"title": {"source": "Title"}}, FIELDS)


@pytest.mark.parametrize("kind", ["salesforce", "hubspot"])
def test_the_crm_default_mappings_are_valid(kind):
    read, write = default_mapping(kind)
    validate(read, write)
    assert {"account", "contact", "deal", "case"} <= set(read) and set(write) == {"account", "contact"}


def test_stored_entries_replace_the_defaults_per_object_and_direction(engine, make_settings, monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    from connector.connections import create_connection

    cid = create_connection(engine, make_settings(), kind="memory", name="m", secrets={})
    m = load_mapping(engine, cid, "memory")
    assert m.read == DEFAULT_READ and m.origin[("account", "read")] == "default"
    with engine.begin() as conn:
        save_mapping(conn, cid, "account", "read", {"name": {"source": "Website"}, "custom.tier": {"constant": "gold"}})
        save_mapping(conn, cid, "contact", "write", {"tier": "Tier__x"})
    m = load_mapping(engine, cid, "memory")
    assert m.read["account"] == {"name": {"source": "Website"}, "custom.tier": {"constant": "gold"}}
    assert m.read["contact"] == DEFAULT_READ["contact"] and m.write["contact"] == {"tier": "Tier__x"}
    assert m.origin[("account", "read")] == "stored" and m.origin[("contact", "read")] == "default"
