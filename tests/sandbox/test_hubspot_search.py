"""Search through the real client: every operator, one sort, paging by offset, the 10,000 cap, index lag."""

from __future__ import annotations

import json
import time

import pytest
from hubspot.crm.contacts import ApiException
from hubspot.crm.deals import PublicObjectSearchRequest

from sandbox.hubspot.store import SEED
from sandbox.hubspot.values import parse_ms
from tests.sandbox.hs_fixtures import client, fresh_sandbox, hs, hubspot_sandbox, raw  # noqa: F401


def _search(hs, filters, *, sorts=None, limit=200, after=None, props=("amount", "dealstage", "dealname", "closedate")):  # noqa: F811
    request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}] if filters else [],
                                        sorts=sorts or [], properties=list(props), limit=limit, after=after)
    return hs.crm.deals.search_api.do_search(public_object_search_request=request)


def _deals(sb):
    table = sb.store.tables["deals"]
    return [table.records[i] for i in table.live]


def _amount(rec):
    return float(rec.props["amount"]) if rec.props.get("amount") else None


@pytest.mark.parametrize(("flt", "check"), [
    ({"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}, lambda r: r.props["dealstage"] == "closedwon"),
    ({"propertyName": "dealstage", "operator": "NEQ", "value": "closedwon"}, lambda r: r.props["dealstage"] != "closedwon"),
    ({"propertyName": "amount", "operator": "LT", "value": "20000"}, lambda r: _amount(r) is not None and _amount(r) < 20000),
    ({"propertyName": "amount", "operator": "LTE", "value": "20000"}, lambda r: _amount(r) is not None and _amount(r) <= 20000),
    ({"propertyName": "amount", "operator": "GT", "value": "20000"}, lambda r: _amount(r) is not None and _amount(r) > 20000),
    ({"propertyName": "amount", "operator": "GTE", "value": "20000"}, lambda r: _amount(r) is not None and _amount(r) >= 20000),
    ({"propertyName": "amount", "operator": "BETWEEN", "value": "10000", "highValue": "30000"},
     lambda r: _amount(r) is not None and 10000 <= _amount(r) <= 30000),
    ({"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "closedlost"]},
     lambda r: r.props["dealstage"] in ("closedwon", "closedlost")),
    ({"propertyName": "dealstage", "operator": "NOT_IN", "values": ["closedwon", "closedlost"]},
     lambda r: r.props["dealstage"] not in ("closedwon", "closedlost")),
    ({"propertyName": "hs_closed_won_date", "operator": "HAS_PROPERTY"}, lambda r: "hs_closed_won_date" in r.props),
    ({"propertyName": "hs_closed_won_date", "operator": "NOT_HAS_PROPERTY"}, lambda r: "hs_closed_won_date" not in r.props),
    ({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "renewal"},
     lambda r: "renewal" in r.props["dealname"].lower().split()),
    ({"propertyName": "dealname", "operator": "NOT_CONTAINS_TOKEN", "value": "renewal"},
     lambda r: "renewal" not in r.props["dealname"].lower().split()),
    ({"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "renew*"},
     lambda r: any(w.startswith("renew") for w in r.props["dealname"].lower().split())),
])
def test_each_operator_matches_exactly_the_right_records(hs, hubspot_sandbox, flt, check):  # noqa: F811
    found = _search(hs, [flt])
    expected = {str(r.id) for r in _deals(hubspot_sandbox) if check(r)}
    assert expected, "the world should have records on both sides of every filter"
    assert {r.id for r in found.results} == expected
    assert found.total == len(expected)


def test_datetime_filters_take_epoch_ms_and_groups_are_ored(hs, hubspot_sandbox):  # noqa: F811
    deals = _deals(hubspot_sandbox)
    cut = sorted(r.modified for r in deals)[len(deals) // 2]
    found = _search(hs, [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(cut)}])
    assert {r.id for r in found.results} == {str(r.id) for r in deals if r.modified >= cut}
    request = PublicObjectSearchRequest(filter_groups=[
        {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]},
        {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedlost"}]}], limit=200)
    either = hs.crm.deals.search_api.do_search(public_object_search_request=request)
    assert {r.id for r in either.results} == {str(r.id) for r in deals if r.props["dealstage"] in ("closedwon", "closedlost")}


def test_one_sort_as_string_or_object_and_offset_paging(hs, hubspot_sandbox):  # noqa: F811
    window = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]
    asc = _search(hs, window, sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}])
    stamps = [parse_ms(r.properties["hs_lastmodifieddate"]) for r in asc.results]
    assert stamps == sorted(stamps) and len(stamps) == asc.total
    desc = _search(hs, window, sorts=["-amount"])
    amounts = [float(r.properties["amount"]) for r in desc.results]
    assert amounts == sorted(amounts, reverse=True)
    pages, after = [], None
    while True:
        page = _search(hs, window, sorts=["hs_lastmodifieddate"], limit=7, after=after)
        pages += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
        assert after == str(len(pages))  # the cursor is a stringified offset
    assert pages == [r.id for r in asc.results]
    two = raw(hubspot_sandbox, "POST", "/crm/v3/objects/deals/search",
              json={"sorts": ["amount", "dealname"], "limit": 5})
    assert two.status_code == 400


def test_request_limits(hubspot_sandbox):  # noqa: F811
    def post(body):
        return raw(hubspot_sandbox, "POST", "/crm/v3/objects/contacts/search", json=body)

    flt = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    assert post({"limit": 200}).status_code == 200
    assert post({"limit": 201}).status_code == 400
    assert post({"filterGroups": [{"filters": [flt]}] * 5}).status_code == 200
    assert post({"filterGroups": [{"filters": [flt]}] * 6}).status_code == 400
    assert post({"filterGroups": [{"filters": [flt] * 6}]}).status_code == 200
    assert post({"filterGroups": [{"filters": [flt] * 7}]}).status_code == 400
    assert post({"filterGroups": [{"filters": [flt] * 6}] * 3}).status_code == 200  # 18 in total
    assert post({"filterGroups": [{"filters": [flt] * 5}] * 4}).status_code == 400  # 20 > 18
    bad = post({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]})
    assert bad.status_code == 400 and "LIKE" in bad.json()["message"]
    unknown = post({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]})
    assert unknown.status_code == 400


def test_filter_limits_are_configurable(fresh_sandbox):  # noqa: F811
    flt = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    body = {"filterGroups": [{"filters": [flt] * 10}] * 2}
    assert raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/search", json=body).status_code == 400
    fresh_sandbox.configure(filters_per_group=10, filters_total=25)
    assert raw(fresh_sandbox, "POST", "/crm/v3/objects/contacts/search", json=body).status_code == 200


def test_results_stop_at_10000(fresh_sandbox):  # noqa: F811
    store = fresh_sandbox.store
    with store.lock:
        for i in range(10_050):
            store.create("tasks", {"hs_task_subject": f"t{i}", "hs_timestamp": "2025-01-01T00:00:00.000Z"}, SEED,
                         stamp=1_700_000_000_000 + i, emit=False)
    api = client(fresh_sandbox)
    body = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], "limit": 200,
            "properties": ["hs_task_subject"]}
    near_end = api.crm.objects.search_api.do_search("tasks", {**body, "after": "9800"})
    assert near_end.total == 10_050 and near_end.paging.next.after == "10000"
    assert near_end.results[-1].properties["hs_task_subject"] == "t9999"
    across = api.crm.objects.search_api.do_search("tasks", {**body, "after": "9900"})  # a page over the cap
    assert len(across.results) == 100 and across.results[-1].properties["hs_task_subject"] == "t9999"
    with pytest.raises(Exception) as err:
        api.crm.objects.search_api.do_search("tasks", {**body, "after": "10000"})
    assert err.value.status == 400 and json.loads(err.value.body)["category"] == "VALIDATION_ERROR"


def test_archived_records_never_appear_and_recent_writes_lag(fresh_sandbox):  # noqa: F811
    fresh_sandbox.configure(search_lag_s=0.6)
    api = client(fresh_sandbox)
    some = api.crm.contacts.basic_api.get_page(limit=2).results
    api.crm.contacts.basic_api.archive(some[0].id)
    api.crm.contacts.basic_api.update(some[1].id, {"properties": {"jobtitle": "Fresh"}})
    query = {"filterGroups": [{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "fresh"}]}]}
    assert api.crm.contacts.search_api.do_search(public_object_search_request=query).total == 0  # not indexed yet
    time.sleep(0.7)
    found = api.crm.contacts.search_api.do_search(public_object_search_request=query)
    assert [r.id for r in found.results] == [some[1].id]
    everyone = api.crm.contacts.search_api.do_search(public_object_search_request={"limit": 200})
    assert some[0].id not in {r.id for r in everyone.results}
    assert everyone.total == len(fresh_sandbox.store.tables["contacts"].live)


def test_free_text_query(hs, hubspot_sandbox):  # noqa: F811
    rec = next(r for r in hubspot_sandbox.store.tables["contacts"].records.values() if not r.archived)
    found = hs.crm.contacts.search_api.do_search(public_object_search_request={
        "query": rec.props["lastname"][:4], "properties": ["lastname"], "limit": 200})
    assert str(rec.id) in {r.id for r in found.results}
    none = hs.crm.contacts.search_api.do_search(public_object_search_request={"query": "zzqqxx", "limit": 10})
    assert none.total == 0 and none.results == []
    with pytest.raises(ApiException):
        hs.crm.contacts.search_api.do_search(public_object_search_request={"query": "x" * 3001})
