"""Property definitions changed with PATCH, and one property group read, through the real client."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.properties import ApiException as PropertyError
from hubspot.crm.properties import PropertyCreate, PropertyUpdate

from tests.sandbox.hs_fixtures import client, fresh_sandbox, raw  # noqa: F401


def test_a_custom_property_takes_a_new_label_group_and_options(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    api.crm.properties.groups_api.create("tickets", {"name": "rapport", "label": "Rapport"})
    api.crm.properties.core_api.create("tickets", PropertyCreate(
        name="rapport_risk", label="Risk", type="enumeration", field_type="select", group_name="ticketinformation",
        options=[{"label": "Low", "value": "low", "displayOrder": 0, "hidden": False}]))
    before = api.crm.properties.core_api.get_by_name("tickets", "rapport_risk")
    changed = api.crm.properties.core_api.update("tickets", "rapport_risk", PropertyUpdate(
        label="Churn risk", description="Set by Rapport", group_name="rapport", options=[
            {"label": "Low", "value": "low", "displayOrder": 0, "hidden": False},
            {"label": "High", "value": "high", "displayOrder": 1, "hidden": False}]))
    assert (changed.label, changed.description, changed.group_name) == ("Churn risk", "Set by Rapport", "rapport")
    assert [o.value for o in changed.options] == ["low", "high"] and changed.type == "enumeration"
    assert changed.updated_at >= before.updated_at and changed.created_at == before.created_at
    assert api.crm.properties.core_api.get_by_name("tickets", "rapport_risk").label == "Churn risk"
    ticket = api.crm.tickets.basic_api.get_page(limit=1).results[0].id
    r = raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/tickets/{ticket}", json={"properties": {"rapport_risk": "high"}})
    assert r.status_code == 200 and r.json()["properties"]["rapport_risk"] == "high"  # the new option is writable
    r = raw(fresh_sandbox, "PATCH", "/crm/v3/properties/tickets/rapport_risk", json={"fieldType": "textarea"})
    assert r.status_code == 400 and "fieldType" in r.json()["message"]
    r = raw(fresh_sandbox, "PATCH", "/crm/v3/properties/tickets/rapport_risk", json={"groupName": "nowhere"})
    assert r.status_code == 400 and "nowhere" in r.json()["message"]


def test_hubspot_defined_properties_keep_their_type_and_read_only_ones_everything(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    relabelled = api.crm.properties.core_api.update("contacts", "jobtitle", PropertyUpdate(label="Role"))
    assert relabelled.label == "Role" and relabelled.hubspot_defined is True
    meta = relabelled.modification_metadata
    assert (meta.read_only_definition, meta.read_only_options, meta.read_only_value) == (True, True, False)
    with pytest.raises(PropertyError) as err:
        api.crm.properties.core_api.update("contacts", "jobtitle", PropertyUpdate(type="number", field_type="number"))
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert "type" in body["message"] and "jobtitle" in body["message"]
    r = raw(fresh_sandbox, "PATCH", "/crm/v3/properties/contacts/lifecyclestage",
            json={"options": [{"label": "Fan", "value": "fan"}]})
    assert r.status_code == 400 and "options" in r.json()["message"]
    for name in ("hs_email_domain", "lastmodifieddate", "associatedcompanyid"):  # HubSpot sets their values
        r = raw(fresh_sandbox, "PATCH", f"/crm/v3/properties/contacts/{name}", json={"label": "Mine"})
        assert r.status_code == 400 and "read-only" in r.json()["message"], name
    r = raw(fresh_sandbox, "PATCH", "/crm/v3/properties/contacts/no_such_property", json={"label": "X"})
    assert r.status_code == 404 and r.json()["category"] == "OBJECT_NOT_FOUND"


def test_one_property_group_by_name(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    group = api.crm.properties.groups_api.get_by_name("deals", "dealinformation")
    assert (group.name, group.label, group.archived) == ("dealinformation", "Deal information", False)
    with pytest.raises(PropertyError) as err:
        api.crm.properties.groups_api.get_by_name("deals", "nope")
    assert err.value.status == 404 and json.loads(err.value.body)["category"] == "OBJECT_NOT_FOUND"
