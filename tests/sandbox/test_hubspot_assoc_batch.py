"""Associations v4 batch writes through the real client: create, default, archive, archive of labels."""

from __future__ import annotations

import pytest
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicDefaultAssociationMultiPost,
)

from sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hs_fixtures import Receiver, client, fresh_sandbox, raw  # noqa: F401

PLAIN, PRIMARY = 279, 1  # contact -> company: unlabeled, Primary


def _types(*ids: int) -> list[dict]:
    return [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": i} for i in ids]


def _new_contacts(api, n: int) -> list[str]:
    return [api.crm.contacts.basic_api.create({"properties": {"email": f"assoc{i}@example.com"}}).id for i in range(n)]


def _rollup(api, contact_id: str) -> str | None:
    return api.crm.contacts.basic_api.get_by_id(contact_id, properties=["associatedcompanyid"]) \
        .properties["associatedcompanyid"]


def test_batch_create_labelled_with_a_207_for_missing_records(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    a, b = _new_contacts(api, 2)
    first, second = (c.id for c in api.crm.companies.basic_api.get_page(limit=2).results)
    made = api.crm.associations.v4.batch_api.create("contacts", "companies", BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": a}, "to": {"id": first}, "types": _types(PLAIN, PRIMARY)},
                {"from": {"id": b}, "to": {"id": second}, "types": _types(PLAIN)},
                {"from": {"id": "999999999"}, "to": {"id": first}, "types": _types(PLAIN)},
                {"from": {"id": b}, "to": {"id": "888"}, "types": _types(PLAIN)}]))
    assert type(made).__name__ == "BatchResponseLabelsBetweenObjectPairWithErrors"
    by_from = {r.from_object_id: r for r in made.results}
    assert by_from[a].labels == ["Primary"] and by_from[b].labels == []
    assert by_from[a].from_object_type_id == "0-1" and by_from[a].to_object_type_id == "0-2"
    assert made.num_errors == 2
    assert [e.context for e in made.errors] == [{"fromObjectId": ["999999999"]}, {"toObjectId": ["888"]}]
    assert {e.category for e in made.errors} == {"OBJECT_NOT_FOUND"}
    # through the portal's association methods: the Primary one moved the rollup, the plain one did not
    assert _rollup(api, a) == first and _rollup(api, b) is None
    back = api.crm.associations.v4.basic_api.get_page("companies", first, "contacts")
    assert a in {str(r.to_object_id) for r in back.results}
    ok = api.crm.associations.v4.batch_api.create("contacts", "companies", BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": b}, "to": {"id": second}, "types": _types(PRIMARY)}]))
    assert type(ok).__name__ == "BatchResponseLabelsBetweenObjectPair" and ok.results[0].labels == ["Primary"]
    assert _rollup(api, b) == second


def test_batch_create_refuses_bad_types_and_oversized_batches_whole(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    (a,) = _new_contacts(api, 1)
    company = api.crm.companies.basic_api.get_page(limit=1).results[0].id
    path = "/crm/v4/associations/contacts/companies/batch/create"
    good = {"from": {"id": a}, "to": {"id": company}, "types": _types(PLAIN)}
    bad = {"from": {"id": a}, "to": {"id": company}, "types": _types(341)}  # a deal -> company type
    r = raw(fresh_sandbox, "POST", path, json={"inputs": [good, bad]})
    assert r.status_code == 400
    body = r.json()
    assert body["category"] == "VALIDATION_ERROR" and "341" in body["message"] and body["correlationId"]
    assert api.crm.associations.v4.basic_api.get_page("contacts", a, "companies").results == []  # nothing written
    r = raw(fresh_sandbox, "POST", path, json={"inputs": [good] * 2001})
    assert r.status_code == 400 and "2000" in r.json()["message"]
    r = raw(fresh_sandbox, "POST", path, json={"inputs": [{"from": {"id": a}, "types": _types(PLAIN)}]})
    assert r.status_code == 400 and "to.id" in r.json()["message"]


def test_batch_default_associates_what_exists_and_names_the_rest(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    a, b = _new_contacts(api, 2)
    company = api.crm.companies.basic_api.get_page(limit=1).results[0].id
    result = api.crm.associations.v4.batch_api.create_default("contacts", "companies",
                                                              BatchInputPublicDefaultAssociationMultiPost(inputs=[
                                                                  {"from": {"id": a}, "to": {"id": company}},
                                                                  {"from": {"id": b}, "to": {"id": "777"}}]))
    assert [(r._from.id, r.to.id, r.association_spec.association_type_id) for r in result.results] == [
        (a, company, PLAIN)]
    assert result.num_errors == 1 and result.errors[0].context == {"toObjectId": ["777"]}
    types = api.crm.associations.v4.basic_api.get_page("contacts", a, "companies").results[0].association_types
    assert {t.type_id for t in types} == {PLAIN, PRIMARY}  # the first company becomes the Primary one
    assert _rollup(api, a) == company


def test_batch_archive_removes_every_type_and_announces_it_from_both_ends():
    subs = [{"subscriptionType": "contact.associationChange"}, {"subscriptionType": "company.associationChange"},
            {"subscriptionType": "contact.propertyChange", "propertyName": "associatedcompanyid"}]
    with Receiver() as rx:
        sb = HubSpotSandbox("small", seed=7, accounts=3, search_lag_s=0, rate_limits=False, webhook_url=rx.url,
                            webhook_batch_window_s=0.02, webhook_subscriptions=subs).start()
        try:
            api = client(sb)
            a, b = _new_contacts(api, 2)
            first, second = (c.id for c in api.crm.companies.basic_api.get_page(limit=2).results)
            api.crm.associations.v4.batch_api.create("contacts", "companies", BatchInputPublicAssociationMultiPost(
                inputs=[{"from": {"id": a}, "to": {"id": first}, "types": _types(PLAIN, PRIMARY)},
                        {"from": {"id": a}, "to": {"id": second}, "types": _types(PLAIN)},
                        {"from": {"id": b}, "to": {"id": first}, "types": _types(PLAIN, PRIMARY)}]))
            assert sb.webhooks.flush(10)
            before = len(rx.events())
            done = api.crm.associations.v4.batch_api.archive("contacts", "companies",
                                                             BatchInputPublicAssociationMultiArchive(inputs=[
                                                                 {"from": {"id": a}, "to": [{"id": first},
                                                                                            {"id": "123"}]},
                                                                 {"from": {"id": "999999999"}, "to": [{"id": first}]}]))
            assert done is None  # 204
            assert sb.webhooks.flush(10)
            left = api.crm.associations.v4.basic_api.get_page("contacts", a, "companies").results
            assert [str(r.to_object_id) for r in left] == [second]
            assert _rollup(api, a) is None and _rollup(api, b) == first
        finally:
            sb.stop()
    events = rx.events()[before:]
    removed = {(e["subscriptionType"], e["fromObjectId"], e["toObjectId"], e["associationTypeId"])
               for e in events if e.get("associationRemoved")}
    assert removed == {("contact.associationChange", int(a), int(first), PLAIN),
                       ("contact.associationChange", int(a), int(first), PRIMARY),
                       ("company.associationChange", int(first), int(a), 280),
                       ("company.associationChange", int(first), int(a), 2)}
    rollup = [e for e in events if e["subscriptionType"] == "contact.propertyChange"]
    assert [(e["objectId"], e["propertyValue"]) for e in rollup] == [(int(a), "")]


@pytest.mark.parametrize(("archived", "left"), [((PRIMARY,), {PLAIN}), ((PLAIN,), set())])
def test_batch_labels_archive_removes_only_those_labels(fresh_sandbox, archived, left):  # noqa: F811
    api = client(fresh_sandbox)
    (a,) = _new_contacts(api, 1)
    company = api.crm.companies.basic_api.get_page(limit=1).results[0].id
    api.crm.associations.v4.basic_api.create_default("contacts", a, "companies", company)
    api.crm.associations.v4.batch_api.archive_labels("contacts", "companies", BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": a}, "to": {"id": company}, "types": _types(*archived)}]))
    links = api.crm.associations.v4.basic_api.get_page("contacts", a, "companies").results
    assert {t.type_id for r in links for t in r.association_types} == left
    # the Primary label is gone either way, and the rollup with it; the unlabeled type takes every label
    assert _rollup(api, a) is None
    back = api.crm.associations.v4.basic_api.get_page("companies", company, "contacts").results
    assert {t.type_id for r in back if str(r.to_object_id) == a for t in r.association_types} == \
        ({280} if left else set())
