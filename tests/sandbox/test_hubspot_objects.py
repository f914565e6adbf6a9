"""CRM objects through the real hubspot-api-client: list paging, reads, writes, batches, merges."""

from __future__ import annotations

import pytest
from hubspot.crm.companies import ApiException as CompanyError
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects import SimplePublicObjectInputForCreate as ObjectCreate

from sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hs_fixtures import client, fresh_sandbox, hs, hubspot_sandbox, raw  # noqa: F401


def _body(exc: ApiException) -> dict:
    import json

    return json.loads(exc.body)


def test_list_pages_by_after_until_no_paging(hs, hubspot_sandbox):  # noqa: F811
    first = hs.crm.contacts.basic_api.get_page()
    assert len(first.results) == 10  # the default limit
    seen, after = [], None
    while True:
        page = hs.crm.contacts.basic_api.get_page(limit=100, after=after, archived=False)
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    live = sorted(hubspot_sandbox.store.tables["contacts"].live)
    assert seen == [str(i) for i in live]
    assert len(seen) > 100  # more than one page


def test_the_next_link_asks_for_the_same_page(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    contacts = fresh_sandbox.store.tables["contacts"]
    for rid in list(contacts.live[:3]):
        api.crm.contacts.basic_api.archive(str(rid))
    first = raw(fresh_sandbox, "GET", "/crm/v3/objects/contacts?limit=2&archived=true&properties=email").json()
    link = first["paging"]["next"]["link"]
    following = raw(fresh_sandbox, "GET", link.removeprefix(fresh_sandbox.api_base)).json()
    assert [r["archived"] for r in following["results"]] == [True]  # still the archived list, 2 a page
    assert set(following["results"][0]["properties"]) == {"email", "createdate", "lastmodifieddate", "hs_object_id"}


def test_list_limit_above_100_is_refused(hubspot_sandbox):  # noqa: F811
    r = raw(hubspot_sandbox, "GET", "/crm/v3/objects/contacts?limit=101")
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]


def test_properties_repeated_or_comma_separated_give_the_same_answer(hs, hubspot_sandbox):  # noqa: F811
    page = hs.crm.deals.basic_api.get_page(limit=5, properties=["dealname", "amount", "dealstage"])
    props = page.results[0].properties
    assert set(props) == {"dealname", "amount", "dealstage", "hs_object_id", "createdate", "hs_lastmodifieddate"}
    comma = raw(hubspot_sandbox, "GET", "/crm/v3/objects/deals?limit=5&properties=dealname,amount,dealstage").json()
    assert [r["properties"] for r in comma["results"]] == [r.properties for r in page.results]
    mixed = raw(hubspot_sandbox, "GET",
                "/crm/v3/objects/deals?limit=5&properties=dealname,amount&properties=dealstage").json()
    assert mixed["results"] == comma["results"]  # (each next link repeats its own query as it was sent)
    assert mixed["paging"]["next"]["after"] == comma["paging"]["next"]["after"]


def test_values_are_strings_or_null_and_datetimes_iso_with_ms(hs):  # noqa: F811
    page = hs.crm.companies.basic_api.get_page(limit=3, properties=["name", "annualrevenue", "nonexistent",
                                                                     "industry", "city"])
    for company in page.results:
        assert "nonexistent" not in company.properties  # unknown names are ignored
        assert company.properties["city"] is None  # known but empty
        assert isinstance(company.properties["annualrevenue"], str)
        stamp = company.properties["hs_lastmodifieddate"]
        assert stamp.endswith("Z") and len(stamp) == 24 and stamp[19] == "."


@pytest.mark.parametrize("value", ["true", "True", "false", "False"])
def test_archived_accepts_any_case(hubspot_sandbox, value):  # noqa: F811
    r = raw(hubspot_sandbox, "GET", f"/crm/v3/objects/contacts?limit=1&archived={value}")
    assert r.status_code == 200
    assert raw(hubspot_sandbox, "GET", "/crm/v3/objects/contacts?archived=maybe").status_code == 400


def test_associations_in_the_v3_list_shape(hs, hubspot_sandbox):  # noqa: F811
    page = hs.crm.contacts.basic_api.get_page(limit=5, associations=["companies"])
    links = page.results[0].associations["companies"].results
    types = {a.type for a in links}
    assert types == {"contact_to_company", "contact_to_company_unlabeled"}
    company_id = links[0].id
    assert page.results[0].properties.get("hs_object_id") == page.results[0].id
    company = hs.crm.companies.basic_api.get_by_id(company_id, associations=["contacts"])
    assert page.results[0].id in {a.id for a in company.associations["contacts"].results}


def test_get_by_id_by_email_and_unknown(hs, hubspot_sandbox):  # noqa: F811
    some = hs.crm.contacts.basic_api.get_page(limit=1, properties=["email"]).results[0]
    by_email = hs.crm.contacts.basic_api.get_by_id(some.properties["email"].upper(), id_property="email")
    assert by_email.id == some.id
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.basic_api.get_by_id("999999999")
    assert err.value.status == 404 and _body(err.value)["category"] == "OBJECT_NOT_FOUND"
    with pytest.raises(CompanyError) as err:
        hs.crm.companies.basic_api.get_by_id(some.id)  # a contact id is no company id
    assert err.value.status == 404


def test_create_with_association_update_and_archive(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    company = api.crm.companies.basic_api.get_page(limit=1).results[0]
    created = api.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "New.Person@Example.com", "firstname": "New"},
        associations=[{"to": {"id": company.id},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]))
    assert created.properties["email"] == "new.person@example.com"
    assert created.created_at == created.updated_at
    links = api.crm.associations.v4.basic_api.get_page("contacts", created.id, "companies")
    assert [str(r.to_object_id) for r in links.results] == [company.id]
    before = created.properties["lastmodifieddate"]
    updated = api.crm.contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"jobtitle": "CFO"}))
    assert updated.properties["jobtitle"] == "CFO"
    assert updated.properties["lastmodifieddate"] >= before and updated.updated_at >= created.updated_at
    with pytest.raises(ApiException) as err:  # the same email again
        api.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "new.person@example.com"}))
    assert err.value.status == 409 and _body(err.value)["category"] == "CONFLICT"
    api.crm.contacts.basic_api.archive(created.id)
    with pytest.raises(ApiException):
        api.crm.contacts.basic_api.get_by_id(created.id)
    archived = api.crm.contacts.basic_api.get_by_id(created.id, archived=True)
    assert archived.archived is True and archived.archived_at is not None
    listed = api.crm.contacts.basic_api.get_page(limit=100, archived=True)
    assert created.id in {r.id for r in listed.results}


def test_invalid_property_values_are_refused_and_nothing_changes(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    deal = api.crm.deals.basic_api.get_page(limit=1, properties=["amount", "dealstage"]).results[0]
    r = raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/deals/{deal.id}",
            json={"properties": {"amount": "lots", "dealstage": "nowhere", "no_such": "x"}})
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR"
    for name in ("amount", "dealstage", "no_such"):
        assert name in body["message"]
    again = api.crm.deals.basic_api.get_by_id(deal.id, properties=["amount", "dealstage"])
    assert again.properties == deal.properties
    r = raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/deals/{deal.id}",
            json={"properties": {"hs_lastmodifieddate": "0"}})
    assert r.status_code == 400 and "READ_ONLY_VALUE" in r.json()["message"]


def test_batch_read_207_names_the_missing_ids(hs, hubspot_sandbox):  # noqa: F811
    ids = [r.id for r in hs.crm.contacts.basic_api.get_page(limit=3).results]
    ok = hs.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in ids], properties=["email"], properties_with_history=[]))
    assert ok.status == "COMPLETE" and sorted(r.id for r in ok.results) == sorted(ids)
    partial = hs.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": ids[0]}, {"id": "424242"}, {"id": "434343"}], properties=["email"],
        properties_with_history=[]))
    assert type(partial).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert partial.num_errors == 1 and [r.id for r in partial.results] == [ids[0]]
    error = partial.errors[0]
    assert error.category == "OBJECT_NOT_FOUND" and sorted(error.context["ids"]) == ["424242", "434343"]


def test_batches_take_at_most_100_inputs(hubspot_sandbox):  # noqa: F811
    for op in ("read", "create", "update", "upsert", "archive"):
        r = raw(hubspot_sandbox, "POST", f"/crm/v3/objects/contacts/batch/{op}",
                json={"inputs": [{"id": str(i)} for i in range(101)], "properties": []})
        assert r.status_code == 400, op
        assert r.json()["category"] == "VALIDATION_ERROR"


def test_batch_create_update_upsert_archive(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    made = api.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": f"batch{i}@example.com", "firstname": f"B{i}"}, "associations": []}
        for i in range(3)]))
    assert made.status == "COMPLETE" and len(made.results) == 3
    ids = [r.id for r in made.results]
    updated = api.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": ids[0], "properties": {"jobtitle": "CTO"}}, {"id": "987654321", "properties": {"jobtitle": "x"}}]))
    assert updated.num_errors == 1 and updated.errors[0].context["ids"] == ["987654321"]
    assert updated.results[0].properties["jobtitle"] == "CTO"
    dup = raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/batch/update", json={"inputs": [
        {"id": ids[0], "properties": {"jobtitle": "A"}}, {"id": ids[0], "properties": {"jobtitle": "B"}}]})
    assert dup.status_code == 400 and "Duplicate IDs" in dup.json()["message"]
    upserted = api.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "batch1@example.com", "idProperty": "email", "properties": {"lastname": "Known"}},
        {"id": "brand.new@example.com", "idProperty": "email", "properties": {"lastname": "New"}}]))
    by_new = {r.new: r for r in upserted.results}
    assert by_new[False].id == ids[1] and by_new[True].properties["email"] == "brand.new@example.com"
    api.crm.contacts.batch_api.archive({"inputs": [{"id": ids[2]}]})
    assert fresh_sandbox.store.tables["contacts"].records[int(ids[2])].archived


def test_batch_create_with_write_trace_ids_fails_only_the_bad_inputs(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    taken = api.crm.contacts.basic_api.get_page(limit=1, properties=["email"]).results[0].properties["email"]
    made = api.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": "traced@example.com"}, "associations": [], "objectWriteTraceId": "t-ok"},
        {"properties": {"email": "bad@example.com", "lifecyclestage": "nowhere"}, "associations": [],
         "objectWriteTraceId": "t-bad-value"},
        {"properties": {"email": taken}, "associations": [], "objectWriteTraceId": "t-taken"}]))
    assert type(made).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert [(r.object_write_trace_id, r.properties["email"]) for r in made.results] == [("t-ok", "traced@example.com")]
    assert made.num_errors == 2
    errors = {e.context["objectWriteTraceId"][0]: e for e in made.errors}
    assert errors["t-bad-value"].category == "VALIDATION_ERROR" and "lifecyclestage" in errors["t-bad-value"].message
    assert errors["t-taken"].category == "CONFLICT" and errors["t-taken"].status == "error"
    emails = fresh_sandbox.store.tables["contacts"].unique["email"]
    assert "traced@example.com" in emails and "bad@example.com" not in emails
    clean = api.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        {"properties": {"email": "traced2@example.com"}, "associations": [], "objectWriteTraceId": "t-2"}]))
    assert type(clean).__name__ == "BatchResponseSimplePublicObject"
    assert clean.results[0].object_write_trace_id == "t-2"
    # without trace ids one bad input still refuses the whole batch, as before
    r = raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/batch/create", json={"inputs": [
        {"properties": {"email": "untraced@example.com"}},
        {"properties": {"email": "bad2@example.com", "lifecyclestage": "nowhere"}}]})
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"
    assert "untraced@example.com" not in emails


def test_tasks_for_alerts_are_created_with_associations_and_listed(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    company = api.crm.companies.basic_api.get_page(limit=1).results[0]
    task = api.crm.objects.basic_api.create("tasks", ObjectCreate(properties={
        "hs_task_subject": "Score dropped", "hs_timestamp": "2026-01-05T09:00:00Z", "hs_task_status": "NOT_STARTED",
        "hs_task_type": "TODO"}, associations=[{"to": {"id": company.id}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]}]))
    assert task.properties["hs_timestamp"] == "2026-01-05T09:00:00.000Z"
    listed = api.crm.objects.basic_api.get_page("tasks", properties=["hs_task_subject"], associations=["companies"])
    assert listed.results[0].properties["hs_task_subject"] == "Score dropped"
    assert listed.results[0].associations["companies"].results[0].id == company.id
    r = raw(fresh_sandbox, "POST", "/crm/v3/objects/tasks", json={"properties": {"hs_task_subject": "no due"}})
    assert r.status_code == 400


def test_a_merge_makes_a_new_record_that_both_ids_lead_to(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    props = ["email", "jobtitle", "lifecyclestage", "hs_merged_object_ids", "associatedcompanyid"]
    a, b = api.crm.contacts.basic_api.get_page(limit=2, properties=props).results
    raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/contacts/{a.id}", json={"properties": {"jobtitle": "",
                                                                                        "lifecyclestage": "lead"}})
    raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/contacts/{b.id}", json={"properties": {"jobtitle": "Buyer"}})
    merged = raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/merge",
                 json={"primaryObjectId": a.id, "objectIdToMerge": b.id})
    assert merged.status_code == 200
    new_id = merged.json()["id"]
    assert new_id not in (a.id, b.id)
    survivor = api.crm.contacts.basic_api.get_by_id(new_id, properties=props)
    assert survivor.properties["hs_merged_object_ids"].split(";") == [a.id, b.id]
    # the primary's values win, the other's fill its gaps, the stage furthest down the funnel stays
    assert survivor.properties["email"] == a.properties["email"]
    assert survivor.properties["jobtitle"] == "Buyer"
    assert survivor.properties["lifecyclestage"] == "customer"
    assert survivor.properties["associatedcompanyid"] == a.properties["associatedcompanyid"]
    assert survivor.created_at == a.created_at and survivor.updated_at > a.updated_at
    archived = {r.id for r in api.crm.contacts.basic_api.get_page(limit=100, archived=True).results}
    assert {a.id, b.id} <= archived
    for old in (a.id, b.id):  # reads of either merged id land on the new record
        assert api.crm.contacts.basic_api.get_by_id(old).id == new_id
    # merged again, the new record's own merged ids carry over
    c = api.crm.contacts.basic_api.get_page(limit=1, after=str(int(b.id) + 1)).results[0]
    again = raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/merge",
                json={"primaryObjectId": c.id, "objectIdToMerge": new_id}).json()
    assert again["properties"]["hs_merged_object_ids"].split(";") == [c.id, a.id, b.id, new_id]
    assert api.crm.contacts.basic_api.get_by_id(a.id).id == again["id"]


def test_engagements_from_world_activities(hs, hubspot_sandbox):  # noqa: F811
    calls = hs.crm.objects.basic_api.get_page("calls", limit=5, properties=["hs_timestamp", "hs_call_title"],
                                              associations=["companies", "contacts"])
    first = calls.results[0]
    assert first.properties["hs_call_title"] and first.properties["hs_timestamp"].endswith("Z")
    assert first.associations["companies"].results[0].type == "call_to_company"
    quiet = HubSpotSandbox("small", seed=3, accounts=2, engagements=False)
    assert not quiet.store.tables["calls"].records and quiet.store.tables["contacts"].records


def test_a_refused_email_change_leaves_the_contact_as_it_was(fresh_sandbox):  # noqa: F811
    a, b = client(fresh_sandbox).crm.contacts.basic_api.get_page(limit=2, properties=["email", "jobtitle"]).results
    r = raw(fresh_sandbox, "PATCH", f"/crm/v3/objects/contacts/{a.id}",
            json={"properties": {"jobtitle": "Changed", "email": b.properties["email"]}})
    assert r.status_code == 409 and r.json()["message"] == f"Contact already exists. Existing ID: {b.id}"
    after = client(fresh_sandbox).crm.contacts.basic_api.get_by_id(a.id, properties=["email", "jobtitle"])
    assert after.properties == a.properties
