"""Properties, pipelines, owners and associations v4 through the real client."""

from __future__ import annotations

import json

import pytest
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.properties import ApiException as PropertyError
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from tests.sandbox.hs_fixtures import client, fresh_sandbox, hs, hubspot_sandbox, raw  # noqa: F401


def test_default_properties_have_the_full_shape(hs):  # noqa: F811
    props = {p.name: p for p in hs.crm.properties.core_api.get_all("companies").results}
    for name in ("name", "domain", "industry", "numberofemployees", "annualrevenue", "hubspot_owner_id",
                 "createdate", "hs_lastmodifieddate", "hs_merged_object_ids", "hs_object_id"):
        assert name in props, name
    industry = props["industry"]
    assert industry.type == "enumeration" and industry.field_type == "select" and industry.hubspot_defined
    assert "COMPUTER_SOFTWARE" in {o.value for o in industry.options}
    assert props["hs_lastmodifieddate"].modification_metadata.read_only_value is True
    tickets = {p.name: p for p in hs.crm.properties.core_api.get_all("tickets").results}
    assert [o.value for o in tickets["hs_ticket_priority"].options] == ["LOW", "MEDIUM", "HIGH", "URGENT"]
    for custom in ("csat_score", "is_escalated", "reopen_count"):
        assert tickets[custom].hubspot_defined is False
    deals = {p.name: p for p in hs.crm.properties.core_api.get_all("deals").results}
    assert {o.value for o in deals["dealtype"].options} == {"newbusiness", "existingbusiness"}
    assert deals["hs_is_closed_won"].calculated is True


def test_create_property_then_duplicate_and_bad_types(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    group = api.crm.properties.groups_api.create("companies", PropertyGroupCreate(name="rapport", label="Rapport"))
    assert group.name == "rapport" and group.archived is False
    assert "rapport" in {g.name for g in api.crm.properties.groups_api.get_all("companies").results}
    with pytest.raises(PropertyError) as err:
        api.crm.properties.groups_api.create("companies", PropertyGroupCreate(name="rapport", label="Again"))
    assert err.value.status == 409
    spec = PropertyCreate(name="rapport_relationship_score", label="Relationship score", type="number",
                          field_type="number", group_name="rapport", description="0-100")
    created = api.crm.properties.core_api.create("companies", spec)
    assert created.name == "rapport_relationship_score" and created.hubspot_defined is False
    assert created.modification_metadata.archivable is True
    with pytest.raises(PropertyError) as err:
        api.crm.properties.core_api.create("companies", spec)
    assert err.value.status == 409 and json.loads(err.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    bad = {"name": "rapport_x", "label": "X", "type": "number", "fieldType": "select", "groupName": "rapport"}
    r = raw(fresh_sandbox, "POST", "/crm/v3/properties/companies", json=bad)
    assert r.status_code == 400 and "fieldType" in r.json()["message"]
    r = raw(fresh_sandbox, "POST", "/crm/v3/properties/companies", json={**bad, "type": "money"})
    assert r.status_code == 400
    r = raw(fresh_sandbox, "POST", "/crm/v3/properties/companies", json={**bad, "fieldType": "number",
                                                                         "groupName": "nope"})
    assert r.status_code == 400 and "nope" in r.json()["message"]
    company = api.crm.companies.basic_api.get_page(limit=1).results[0]
    api.crm.companies.basic_api.update(company.id, {"properties": {"rapport_relationship_score": 87}})
    read = api.crm.companies.basic_api.get_by_id(company.id, properties=["rapport_relationship_score"])
    assert read.properties["rapport_relationship_score"] == "87"


def test_required_properties_on_create(hubspot_sandbox):  # noqa: F811
    r = raw(hubspot_sandbox, "POST", "/crm/v3/objects/tickets", json={"properties": {"subject": "x"}})
    assert r.status_code == 400
    assert r.json()["message"].endswith("required properties were missing: [hs_pipeline_stage]")
    r = raw(hubspot_sandbox, "POST", "/crm/v3/objects/contacts", json={"properties": {"jobtitle": "CEO"}})
    assert r.status_code == 400 and "email" in r.json()["message"]


def test_pipelines_with_closed_and_probability_metadata(hs):  # noqa: F811
    deals = hs.crm.pipelines.pipelines_api.get_all("deals").results
    stages = {s.id: s.metadata for s in deals[0].stages}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["appointmentscheduled"]["isClosed"] == "false"
    tickets = hs.crm.pipelines.pipelines_api.get_by_id("tickets", "0")
    assert {s.id: s.metadata["ticketState"] for s in tickets.stages} == {"1": "OPEN", "2": "OPEN", "3": "OPEN",
                                                                         "4": "CLOSED"}
    assert len(hs.crm.pipelines.pipeline_stages_api.get_all("tickets", "0").results) == 4


def test_owners_list(hs, hubspot_sandbox):  # noqa: F811
    owners = hs.crm.owners.owners_api.get_page(limit=100).results
    assert owners and all(o.email for o in owners)
    company = hubspot_sandbox.store.tables["companies"].records[min(hubspot_sandbox.store.tables["companies"].live)]
    assert company.props["hubspot_owner_id"] in {o.id for o in owners}


def test_associations_v4_read_with_types_and_labels(hs, hubspot_sandbox):  # noqa: F811
    deal = hs.crm.deals.basic_api.get_page(limit=1).results[0]
    links = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "companies")
    types = {t.type_id: t.label for t in links.results[0].association_types}
    assert types == {341: None, 5: "Primary"}
    labels = {(t.type_id, t.label) for t in hs.crm.associations.v4.schema.definitions_api.get_all(
        "tickets", "companies").results}
    assert labels == {(339, None), (26, "Primary")}
    batch = hs.crm.associations.v4.batch_api.get_page("deals", "companies", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": deal.id}, {"id": "77"}]))
    assert type(batch).__name__.endswith("WithErrors")
    assert batch.results[0]._from.id == deal.id
    assert batch.errors[0].sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert batch.errors[0].context["fromObjectId"] == ["77"]
    ids = [{"id": str(i)} for i in hubspot_sandbox.store.tables["deals"].live]
    big = raw(hubspot_sandbox, "POST", "/crm/v4/associations/deals/companies/batch/read",
              json={"inputs": (ids * 1000)[:1000]})
    assert big.status_code == 200  # up to 1,000 ids per call
    assert raw(hubspot_sandbox, "POST", "/crm/v4/associations/deals/companies/batch/read",
               json={"inputs": (ids * 1000)[:1001]}).status_code == 400


REQUIRED = {"contacts": {"email": "linked@example.com"}, "deals": {"dealname": "D", "dealstage": "qualifiedtobuy"},
            "tickets": {"subject": "S", "hs_pipeline_stage": "1"}}


@pytest.mark.parametrize(("from_type", "to_type", "type_id"), [
    ("contacts", "companies", 279), ("deals", "companies", 341), ("deals", "contacts", 3),
    ("tickets", "companies", 339), ("tickets", "contacts", 16),
])
def test_create_default_and_labelled_associations(fresh_sandbox, from_type, to_type, type_id):  # noqa: F811
    api = client(fresh_sandbox)
    created = api.crm.objects.basic_api.create(from_type, {"properties": REQUIRED[from_type]})
    target = api.crm.objects.basic_api.get_page(to_type, limit=1).results[0]
    result = api.crm.associations.v4.basic_api.create_default(from_type, created.id, to_type, target.id)
    assert type_id in {r.association_spec.association_type_id for r in result.results}
    back = api.crm.associations.v4.basic_api.get_page(to_type, target.id, from_type)
    assert created.id in {str(r.to_object_id) for r in back.results}
    other = api.crm.objects.basic_api.get_page(to_type, limit=2).results[1]
    pair = api.crm.associations.v4.basic_api.create(from_type, created.id, to_type, other.id, [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}])
    assert str(pair.to_object_id) == other.id
    api.crm.associations.v4.basic_api.archive(from_type, created.id, to_type, other.id)
    left = api.crm.associations.v4.basic_api.get_page(from_type, created.id, to_type)
    assert [str(r.to_object_id) for r in left.results] == [target.id]


@pytest.mark.parametrize(("object_type", "prop"), [
    ("contacts", "associatedcompanyid"), ("deals", "hs_primary_associated_company"),
    ("tickets", "hs_primary_company_id"),
])
def test_primary_company_rollup_follows_the_primary_association(fresh_sandbox, object_type, prop):  # noqa: F811
    api = client(fresh_sandbox)
    modified = "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"

    def read() -> dict:
        return api.crm.objects.basic_api.get_by_id(object_type, created.id, properties=[prop, modified]).properties

    created = api.crm.objects.basic_api.create(object_type, {"properties": REQUIRED[object_type]})
    first, second = (c.id for c in api.crm.companies.basic_api.get_page(limit=2).results)
    assert read()[prop] is None  # no company yet
    api.crm.associations.v4.basic_api.create_default(object_type, created.id, "companies", first)
    linked = read()
    assert linked[prop] == first  # the default association made it the Primary company
    api.crm.associations.v4.basic_api.create_default(object_type, created.id, "companies", second)
    assert read() == linked  # a second, unlabeled company moves neither the rollup nor the stamp
    api.crm.associations.v4.basic_api.archive(object_type, created.id, "companies", first)
    after = read()
    assert after[prop] is None and after[modified] > linked[modified]  # no Primary left: a property change
    r = raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/{object_type}/{created.id}", json={"properties": {prop: second}})
    assert r.status_code == 400 and "is a read only property" in r.json()["message"]


def test_company_merge_moves_the_rollups_to_the_survivor(fresh_sandbox):  # noqa: F811
    store = fresh_sandbox.store
    deal = store.tables["deals"].records[min(store.tables["deals"].live)]
    loser = int(deal.props["hs_primary_associated_company"])
    primary = next(i for i in store.tables["companies"].live if i != loser)
    merged = raw(fresh_sandbox, "POST", "/crm/v3/objects/companies/merge",
                 json={"primaryObjectId": str(primary), "objectIdToMerge": str(loser)})
    assert merged.status_code == 200
    new_id = merged.json()["id"]  # the merge made a new company
    assert new_id not in (str(primary), str(loser))
    assert client(fresh_sandbox).crm.deals.basic_api.get_by_id(
        str(deal.id), properties=["hs_primary_associated_company"]).properties["hs_primary_associated_company"] \
        == new_id
