"""HubSpot mapping: pure translations of recorded API shapes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from adapters.base import FieldSpec
from adapters.hubspot import mapping

CONTACT = {"id": "512", "properties": {"email": "a@b.co", "lastmodifieddate": "2024-03-01T10:00:00.125Z",
                                       "hs_merged_object_ids": "77;78", "associatedcompanyid": "9"},
           "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-03-01T10:00:00.125Z", "archived": False}


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-03-01T10:00:00.125Z", datetime(2024, 3, 1, 10, 0, 0, 125000, tzinfo=UTC)),
    ("2024-03-01T12:00:00+02:00", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    ("1709287200000", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    ("", None), (None, None),
])
def test_parse_stamp(value, expected):
    assert mapping.parse_stamp(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, ""), (True, "true"), (72.0, "72"), (72.5, "72.5"), (-3, "-3"), ("A", "A"),
    (datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "1709287200000"),
    (date(2024, 3, 1), "1709251200000"),
])
def test_property_values(value, expected):
    assert mapping.to_property_value(value) == expected


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        mapping.to_property_value(datetime(2024, 3, 1))  # noqa: DTZ001


def test_change_and_merge_losers():
    change = mapping.to_change("contact", "contacts", dict(CONTACT))
    assert change.external_id == "512" and change.modified_at.microsecond == 125000 and not change.deleted
    losers = mapping.merge_changes("contact", change)
    assert [(c.external_id, c.deleted, c.merged_into, c.modified_at) for c in losers] == [
        ("77", True, "512", change.modified_at), ("78", True, "512", change.modified_at)]


def test_archived_record_is_a_deletion_at_its_archive_time():
    record = {**CONTACT, "archived": True, "archivedAt": "2024-04-01T00:00:00Z"}
    change = mapping.to_change("contact", "contacts", record)
    assert change.deleted and change.merged_into is None
    assert change.modified_at == datetime(2024, 4, 1, tzinfo=UTC)


def test_missing_stamp_is_an_error():
    with pytest.raises(ValueError, match="no modified stamp"):
        mapping.to_change("deal", "deals", {"id": "1", "properties": {}})


def test_primary_associations():
    v3 = {"companies": {"results": [{"id": "5", "type": "deal_to_company_unlabeled"},
                                    {"id": "9", "type": "deal_to_company"},
                                    {"id": "9", "type": "deal_to_company_unlabeled"}]}}
    assert mapping.primary_from_v3(v3, "companies") == "9"
    assert mapping.primary_from_v3(v3, "contacts") is None
    v4 = [{"toObjectId": 3, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None}]},
          {"toObjectId": 8, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}]}]
    assert mapping.primary_from_v4(v4) == "8"
    assert mapping.primary_from_v4(v4[:1]) == "3"
    assert mapping.primary_from_v4([]) is None
    # with no Primary one, both reads pick the lowest id as a number ("987" before "1194"), so a full
    # sync and an incremental one link a record alike
    unlabeled = [("1194", 1194), ("987", 987)]
    assert mapping.primary_from_v3({"contacts": {"results": [{"id": i, "type": "deal_to_contact"}
                                                             for i, _ in unlabeled]}}, "contacts") == "987"
    assert mapping.primary_from_v4([{"toObjectId": n, "associationTypes": [{"typeId": 3}]} for _, n in unlabeled]) \
        == "987"


def test_stage_table_resolves_closed_and_won():
    deals = [{"id": "default", "stages": [
        {"id": "contractsent", "label": "Contract Sent", "metadata": {"isClosed": "false", "probability": "0.9"}},
        {"id": "closedwon", "label": "Closed Won", "metadata": {"isClosed": "true", "probability": "1.0"}},
        {"id": "closedlost", "label": "Closed Lost", "metadata": {"isClosed": "true", "probability": "0.0"}}]}]
    table = mapping.stage_table(deals, "deals")
    assert [(v["is_closed"], v["is_won"]) for v in table.values()] == [(False, False), (True, True), (True, False)]
    tickets = [{"id": "0", "stages": [{"id": "1", "label": "New", "metadata": {"ticketState": "OPEN"}},
                                      {"id": "4", "label": "Closed", "metadata": {"ticketState": "CLOSED"}}]}]
    t = mapping.stage_table(tickets, "tickets")
    assert t[("0", "4")] == {"stage": "Closed", "stage_id": "4", "is_closed": True, "is_won": False}
    assert t[("0", "1")]["is_closed"] is False


def test_score_fields_and_their_property_bodies():
    specs = mapping.score_fields("account")
    assert [s.name for s in specs] == ["rapport_relationship_score", "rapport_experience_score", "rapport_tier",
                                       "rapport_drivers", "rapport_trend", "rapport_scored_at"]
    bodies = {s.name: mapping.property_create(s) for s in specs}
    assert (bodies["rapport_tier"]["type"], bodies["rapport_tier"]["field_type"]) == ("string", "text")
    assert (bodies["rapport_drivers"]["type"], bodies["rapport_drivers"]["field_type"]) == ("string", "textarea")
    assert (bodies["rapport_scored_at"]["type"], bodies["rapport_scored_at"]["field_type"]) == ("datetime", "date")
    assert all(b["group_name"] == "rapport" for b in bodies.values())
    assert mapping.DEFAULT_WRITE["contact"]["trend"] == "rapport_trend"
    with pytest.raises(ValueError, match="account and contact"):
        mapping.score_fields("deal")
    with pytest.raises(ValueError, match="no HubSpot property type"):
        mapping.property_create(FieldSpec("x", "X", "blob"))  # type: ignore[arg-type]


def test_requested_properties_follow_the_read_mapping():
    props = mapping.requested_properties("tickets", mapping.DEFAULT_READ["case"], extra=["my_custom"])
    assert {"hs_lastmodifieddate", "csat_score", "is_escalated", "reopen_count", "my_custom"} <= set(props)
    assert len(props) == len(set(props))
