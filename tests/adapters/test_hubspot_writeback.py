"""HubSpot batch updates refused for a property: one call, every record carrying it failed with the
property named, the others still written; a bad value of one record is still isolated and explained.
"""

from __future__ import annotations

import json

import pytest

from adapters.base import WriteItem
from adapters.hubspot import mapping
from adapters.hubspot.writes import refused_properties
from tests.adapters.test_hubspot_adapter import make_adapter, portal  # noqa: F401


@pytest.fixture
def sb(portal):  # noqa: F811
    portal.reset()
    portal.stats.reset()
    return portal


def batch_updates(sb) -> dict[str, int]:
    """Batch updates answered since the stats were reset, by status."""
    out: dict[str, int] = {}
    for key, n in sb.stats.snapshot()["by_endpoint_status"].items():
        endpoint, status = key.rsplit(" ", 1)
        if endpoint.endswith("/batch/update"):
            out[status] = out.get(status, 0) + n
    return out


def test_a_property_that_does_not_exist_costs_one_call_for_every_batch(sb):
    adapter = make_adapter(sb)
    ids = [str(i) for i in sb.store.tables["contacts"].live[:250]]
    results = adapter.write("contact", [WriteItem("contact", i, {"rapport_relationship_score": 50, "rapport_tier": "A"})
                                        for i in ids])
    assert batch_updates(sb) == {"400": 1}  # before: 199 calls for each batch of 100
    assert [r.external_id for r in results] == ids
    assert {(r.ok, r.error_code, r.retriable) for r in results} == {(False, "PROPERTY_DOESNT_EXIST", False)}
    assert results[0].message == (
        'property "rapport_relationship_score" does not exist on contacts: run `rapport provision hs` or fix '
        'the write mapping; property "rapport_tier" does not exist on contacts: run `rapport provision hs` '
        "or fix the write mapping")


def test_a_read_only_property_fails_its_records_and_the_others_are_written(sb):
    adapter = make_adapter(sb)
    adapter.ensure_fields("account", mapping.score_fields("account"))
    sb.stats.reset()
    companies = sb.store.tables["companies"]
    ids = [str(i) for i in companies.live[:60]]
    items = [WriteItem("account", i, {"rapport_tier": "B", **({"notes_last_updated": 0} if n % 2 else {})})
             for n, i in enumerate(ids)]
    results = adapter.write("account", items)
    assert batch_updates(sb) == {"400": 1, "200": 1}
    refused = [r for r in results if not r.ok]
    assert [r.external_id for r in refused] == ids[1::2]
    assert {(r.error_code, r.retriable) for r in refused} == {("READ_ONLY_VALUE", False)}
    assert refused[0].message == ('property "notes_last_updated" is read-only on companies: map the score to a '
                                  "property that can be written (fix the write mapping)")
    assert all(companies.records[int(i)].props["rapport_tier"] == "B" for i in ids[::2])


def test_a_bad_value_of_one_record_is_isolated_and_explained(sb):
    adapter = make_adapter(sb)
    adapter.ensure_fields("contact", mapping.score_fields("contact"))
    ids = [str(i) for i in sb.store.tables["contacts"].live[:40]]
    items = [WriteItem("contact", i, {"rapport_relationship_score": 50}) for i in ids]
    items[17] = WriteItem("contact", ids[17], {"rapport_relationship_score": "not a number"})
    bad = [r for r in adapter.write("contact", items) if not r.ok]
    assert [(r.external_id, r.error_code, r.retriable) for r in bad] == [(ids[17], "INVALID_FLOAT", False)]
    message = bad[0].message or ""
    assert message.startswith('HubSpot refused the value of property "rapport_relationship_score" on contacts: '
                              "'not a number' was not a valid number.")
    assert "fix the write mapping" in message and "isValid" not in message
    assert sb.store.tables["contacts"].records[int(ids[18])].props["rapport_relationship_score"] == "50"  # written


@pytest.mark.parametrize("body, expected", [
    # property values: the problems are JSON after the message's colon
    ({"category": "VALIDATION_ERROR", "message": "Property values were not valid: " + json.dumps(
        [{"isValid": False, "message": 'Property "a" does not exist', "error": "PROPERTY_DOESNT_EXIST", "name": "a"},
         {"isValid": False, "message": "'x' was not one of the allowed options", "error": "INVALID_OPTION",
          "name": "b"}])},
     [("a", "PROPERTY_DOESNT_EXIST", 'Property "a" does not exist'),
      ("b", "INVALID_OPTION", "'x' was not one of the allowed options")]),
    # the `errors[]` form, with the property in the context
    ({"category": "VALIDATION_ERROR", "message": "Invalid input",
      "errors": [{"message": '"c" is a read only property', "code": "READ_ONLY_VALUE",
                  "context": {"propertyName": ["c"]}}]},
     [("c", "READ_ONLY_VALUE", '"c" is a read only property')]),
    # nothing names a property: the batch is split to find the record
    ({"category": "VALIDATION_ERROR", "message": "Duplicate IDs found in batch input: [1]. IDs must be unique"}, []),
    ({"category": "VALIDATION_ERROR", "message": "Property values were not valid: [cut off"}, []),
])
def test_the_problems_a_refused_batch_names(body, expected):
    assert refused_properties(body) == expected
