"""Company and contact rollups (associated counts, closed-won revenue, last activity) through the real client.

Each follows the associated records' writes, bumps the record's last-modified stamp when its value
moves (so an incremental search finds it), stays put otherwise, and cannot be written.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import pytest
from hubspot.crm.companies import ApiException, PublicObjectSearchRequest
from hubspot.crm.contacts import PublicMergeInput

from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.store import Source
from tests.sandbox.hs_fixtures import client, hubspot_sandbox  # noqa: F401

COUNTS = ["num_associated_contacts", "num_associated_deals", "hs_num_open_deals"]
DEALS = ["total_revenue", "recent_deal_amount", "recent_deal_close_date"]
ACTIVITY = ["notes_last_updated", "hs_last_sales_activity_timestamp"]
COMPANY = COUNTS + DEALS + ACTIVITY
ENGAGEMENTS = ("calls", "emails", "meetings", "notes", "tasks")
SALES = ("calls", "emails", "meetings")


@pytest.fixture
def sb() -> Iterator[HubSpotSandbox]:
    """A portal of the test's own: four accounts with their engagements, no index lag, no limits."""
    s = HubSpotSandbox("small", seed=5, accounts=4, search_lag_s=0, rate_limits=False).start()
    try:
        yield s
    finally:
        s.stop()


def _ms(text: str | None) -> int | None:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) if text else None


def _tick() -> None:
    time.sleep(0.005)  # the portal's clock is in ms: a write right after a read lands on a later stamp


def _company(api, cid):
    return api.crm.companies.basic_api.get_by_id(str(cid), properties=COMPANY)


def _contact(api, cid):
    return api.crm.contacts.basic_api.get_by_id(str(cid), properties=ACTIVITY)


def _modified_after(api, kind: str, stamp: datetime) -> set[str]:
    """Ids an incremental search finds: last-modified strictly after `stamp`."""
    prop = "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"
    request = PublicObjectSearchRequest(filter_groups=[{"filters": [
        {"propertyName": prop, "operator": "GT", "value": str(int(stamp.timestamp() * 1000))}]}], limit=200)
    return {r.id for r in getattr(api.crm, kind).search_api.do_search(public_object_search_request=request).results}


def _assoc(to_id, type_id: int) -> dict:
    return {"to": {"id": str(to_id)}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


def _live(sb, from_type: str, rec_id: int, to_type: str) -> list[int]:
    records = sb.store.tables[to_type].records
    return [i for i in sb.store.assoc.target_ids(from_type, rec_id, to_type) if not records[i].archived]


def _all(api, object_type: str, props: list[str], assocs: list[str]) -> list:
    out, after = [], None
    while True:
        page = api.crm.objects.basic_api.get_page(object_type, limit=100, after=after, properties=props,
                                                   associations=assocs)
        out += page.results
        if not page.paging:
            return out
        after = page.paging.next.after


def _linked(rec, to_type: str) -> set[str]:
    return {a.id for a in rec.associations[to_type].results} if rec.associations and to_type in rec.associations \
        else set()


def test_seeded_rollups_equal_a_recomputation_from_the_portal(hubspot_sandbox):  # noqa: F811
    api = client(hubspot_sandbox)
    stages = [s for p in api.crm.pipelines.pipelines_api.get_all("deals").results for s in p.stages]
    closed = {s.id for s in stages if s.metadata["isClosed"] == "true"}
    won = {s.id for s in stages if s.id in closed and float(s.metadata["probability"]) == 1.0}
    companies = _all(api, "companies", COMPANY, [])
    contacts = _all(api, "contacts", ACTIVITY, ["companies"])
    deals = _all(api, "deals", ["dealstage", "amount", "closedate"], ["companies"])
    activities = {t: _all(api, t, ["hs_timestamp"], ["companies", "contacts"]) for t in ENGAGEMENTS}
    assert won and all(len(activities[t]) for t in SALES)
    for company in companies:
        p = company.properties
        mine = [d for d in deals if company.id in _linked(d, "companies")]
        wins = [d for d in mine if d.properties["dealstage"] in won]
        assert p["num_associated_contacts"] == str(sum(company.id in _linked(c, "companies") for c in contacts))
        assert p["num_associated_deals"] == str(len(mine))
        assert p["hs_num_open_deals"] == str(sum(d.properties["dealstage"] not in closed for d in mine))
        assert Decimal(p["total_revenue"]) == sum(Decimal(d.properties["amount"]) for d in wins)
        last = max(wins, key=lambda d: (_ms(d.properties["closedate"]), int(d.id)), default=None)
        assert p["recent_deal_amount"] == (last.properties["amount"] if last else None)
        assert p["recent_deal_close_date"] == (last.properties["closedate"] if last else None)
    for rec, kind in [(c, "companies") for c in companies] + [(c, "contacts") for c in contacts]:
        stamps = {t: [_ms(a.properties["hs_timestamp"]) for a in activities[t] if rec.id in _linked(a, kind)]
                  for t in ENGAGEMENTS}
        latest = max((ms for t in ENGAGEMENTS for ms in stamps[t]), default=None)
        sales = max((ms for t in SALES for ms in stamps[t]), default=None)
        assert (_ms(rec.properties["notes_last_updated"]), _ms(rec.properties["hs_last_sales_activity_timestamp"])) \
            == (latest, sales), (kind, rec.id)
    assert any(c.properties["notes_last_updated"] for c in contacts)


def test_a_portal_seeded_without_engagements_keeps_the_same_rollups():
    values = []
    for engagements in (True, False):
        with HubSpotSandbox("small", seed=5, accounts=4, rate_limits=False, engagements=engagements) as s:
            api = client(s)
            values.append(([c.properties for c in _all(api, "companies", COMPANY, [])],
                           [c.properties for c in _all(api, "contacts", ACTIVITY, [])]))
    assert values[0] == values[1]
    assert all(p["num_associated_contacts"] and p["total_revenue"] for p in values[1][0])


def test_contact_count_follows_creation_archiving_merging_and_restoring(sb):
    api = client(sb)
    cid = next(c for c in sb.store.tables["companies"].live if len(_live(sb, "companies", c, "contacts")) >= 2)
    before = _company(api, cid)
    n = len(_live(sb, "companies", cid, "contacts"))
    assert before.properties["num_associated_contacts"] == str(n)
    _tick()
    made = api.crm.contacts.basic_api.create({"properties": {"email": "rollup@example.com"},
                                              "associations": [_assoc(cid, 279)]})
    after = api.crm.companies.basic_api.get_by_id(str(cid), properties=COMPANY,
                                                  properties_with_history=["num_associated_contacts"])
    assert after.properties["num_associated_contacts"] == str(n + 1)
    assert after.updated_at > before.updated_at and after.properties["hs_lastmodifieddate"] > \
        before.properties["hs_lastmodifieddate"]
    assert str(cid) in _modified_after(api, "companies", before.updated_at)
    newest = after.properties_with_history["num_associated_contacts"][0]
    assert (newest.value, newest.source_type, newest.timestamp) == (str(n + 1), "CALCULATED", after.updated_at)
    steps = [(lambda: api.crm.contacts.basic_api.archive(made.id), n)]
    a, b = _live(sb, "companies", cid, "contacts")[:2]
    steps.append((lambda: api.crm.contacts.basic_api.merge(PublicMergeInput(primary_object_id=str(a),
                                                                            object_id_to_merge=str(b))), n - 1))
    archived = sb.store.tables["contacts"].records[int(made.id)]
    steps.append((lambda: sb.store.restore("contacts", archived, Source("CRM_UI", "userId:9100001")), n))
    for step, count in steps:
        before = _company(api, cid)
        _tick()
        step()
        after = _company(api, cid)
        assert after.properties["num_associated_contacts"] == str(count)
        assert after.updated_at > before.updated_at
        assert str(cid) in _modified_after(api, "companies", before.updated_at)


def test_deal_rollups_follow_a_deal_won_lost_and_moved_to_another_company(sb):
    api = client(sb)
    cid, other = list(sb.store.tables["companies"].live)[:2]
    base, base_other = _company(api, cid).properties, _company(api, other).properties
    deals, open_deals = int(base["num_associated_deals"]), int(base["hs_num_open_deals"])
    total = Decimal(base["total_revenue"])

    def step(write, **expected):
        before = _company(api, cid)
        _tick()
        write()
        after = _company(api, cid)
        assert {k: after.properties[k] for k in expected} == expected
        assert after.updated_at > before.updated_at
        assert str(cid) in _modified_after(api, "companies", before.updated_at)

    made = []
    step(lambda: made.append(api.crm.deals.basic_api.create({
        "properties": {"dealname": "Rollup deal", "dealstage": "appointmentscheduled", "amount": "1000.5"},
        "associations": [_assoc(cid, 341)]})),
         num_associated_deals=str(deals + 1), hs_num_open_deals=str(open_deals + 1), total_revenue=str(total))
    deal = made[0].id
    closed = "2030-01-02T00:00:00.000Z"  # later than every seeded close date: the most recent
    step(lambda: api.crm.deals.basic_api.update(deal, {"properties": {"dealstage": "closedwon", "closedate": closed}}),
         hs_num_open_deals=str(open_deals), total_revenue=str(total + Decimal("1000.5")),
         recent_deal_amount="1000.5", recent_deal_close_date=closed)
    step(lambda: api.crm.deals.basic_api.update(deal, {"properties": {"amount": "2000"}}),
         total_revenue=str(total + 2000), recent_deal_amount="2000")
    step(lambda: api.crm.deals.basic_api.update(deal, {"properties": {"dealstage": "closedlost"}}),
         num_associated_deals=str(deals + 1), hs_num_open_deals=str(open_deals), total_revenue=str(total),
         recent_deal_amount=base["recent_deal_amount"], recent_deal_close_date=base["recent_deal_close_date"])
    v4 = api.crm.associations.v4.basic_api
    step(lambda: (v4.archive("deals", deal, "companies", str(cid)), v4.create_default("deals", deal, "companies",
                                                                                       str(other))),
         num_associated_deals=str(deals))
    moved = _company(api, other).properties
    assert moved["num_associated_deals"] == str(int(base_other["num_associated_deals"]) + 1)
    assert moved["hs_num_open_deals"] == base_other["hs_num_open_deals"]  # a lost deal is not open


def test_a_logged_activity_moves_last_activity_on_its_contact_and_company(sb):
    api = client(sb)
    cid = next(c for c in sb.store.tables["contacts"].live if _live(sb, "contacts", c, "companies"))
    company = _live(sb, "contacts", cid, "companies")[0]
    old_sales = {"contacts": _contact(api, cid).properties["hs_last_sales_activity_timestamp"],
                 "companies": _company(api, company).properties["hs_last_sales_activity_timestamp"]}
    at = ["2030-03-04T05:06:07.000Z", "2030-03-05T00:00:00.000Z", "2030-03-06T00:00:00.000Z"]

    def step(write, notes: str, sales: str | None):
        before = [_contact(api, cid), _company(api, company)]
        _tick()
        write()
        for kind, rec, old in zip(("contacts", "companies"), (_contact(api, cid), _company(api, company)), before,
                                  strict=True):
            assert (rec.properties["notes_last_updated"], rec.properties["hs_last_sales_activity_timestamp"]) \
                == (notes, sales or old_sales[kind]), kind
            assert rec.updated_at > old.updated_at and rec.id in _modified_after(api, kind, old.updated_at)

    calls = []
    step(lambda: calls.append(api.crm.objects.basic_api.create("calls", {
        "properties": {"hs_timestamp": at[0], "hs_call_title": "Rollup call"},
        "associations": [_assoc(cid, 194), _assoc(company, 182)]})), at[0], at[0])
    step(lambda: api.crm.objects.basic_api.create("notes", {  # a note is an activity, not a sales one
        "properties": {"hs_timestamp": at[1], "hs_note_body": "Rollup note"},
        "associations": [_assoc(cid, 202), _assoc(company, 190)]}), at[1], at[0])
    step(lambda: api.crm.objects.basic_api.update("calls", calls[0].id, {"properties": {"hs_timestamp": at[2]}}),
         at[2], at[2])
    step(lambda: api.crm.objects.basic_api.archive("calls", calls[0].id), at[1], None)  # back to the seeded one


def test_a_call_logged_in_the_ui_moves_last_activity_as_a_rollup(sb):
    api = client(sb)
    done = sb.mutate(1, kinds=["call_logged"])[0]
    contact = sb.store.assoc.target_ids("calls", int(done["id"]), "contacts")[0]
    company = sb.store.assoc.target_ids("calls", int(done["id"]), "companies")[0]
    call = api.crm.objects.basic_api.get_by_id("calls", done["id"], properties=["hs_timestamp"])
    read = api.crm.contacts.basic_api.get_by_id(str(contact), properties=ACTIVITY, properties_with_history=ACTIVITY)
    assert read.properties["notes_last_updated"] == call.properties["hs_timestamp"]
    assert {h[0].source_type for h in read.properties_with_history.values()} == {"CALCULATED"}
    assert sb.store.writes[("CRM_UI", "contacts", contact)] == 0  # nobody wrote the contact itself
    assert _company(api, company).properties["notes_last_updated"] == call.properties["hs_timestamp"]


def test_writes_that_change_no_rollup_leave_the_company_alone(sb: HubSpotSandbox) -> None:
    api = client(sb)
    cid = next(c for c in sb.store.tables["companies"].live
               if _live(sb, "companies", c, "deals") and _live(sb, "companies", c, "contacts"))
    deal = _live(sb, "companies", cid, "deals")[0]
    contact = _live(sb, "companies", cid, "contacts")[0]
    before = _company(api, cid)
    events: list[dict] = []
    sb.store.listeners.append(events.extend)
    _tick()
    api.crm.deals.basic_api.update(str(deal), {"properties": {"dealname": "Renamed", "description": "No rollup"}})
    if sb.store.tables["deals"].records[deal].props["dealstage"] != "closedwon":
        api.crm.deals.basic_api.update(str(deal), {"properties": {"amount": "12345"}})  # not won: no revenue
    api.crm.associations.v4.basic_api.create_default("contacts", str(contact), "companies", str(cid))  # already
    api.crm.objects.basic_api.create("calls", {"properties": {"hs_timestamp": "1990-01-01T00:00:00.000Z"},
                                               "associations": [_assoc(cid, 182)]})  # older than the last one
    after = _company(api, cid)
    assert after.properties == before.properties and after.updated_at == before.updated_at
    assert str(cid) not in _modified_after(api, "companies", before.updated_at)
    assert not [e for e in events if e["objectType"] == "companies" and e["kind"] == "propertyChange"]
    # a call that does move it changes the two activity rollups only
    api.crm.objects.basic_api.create("calls", {"properties": {"hs_timestamp": "2031-01-01T00:00:00.000Z"},
                                               "associations": [_assoc(cid, 182)]})
    moved = [e["propertyName"] for e in events if e["objectType"] == "companies" and e["kind"] == "propertyChange"]
    assert sorted(moved) == sorted(ACTIVITY)


def test_rollups_are_read_only_calculated_definitions(hubspot_sandbox):  # noqa: F811
    api = client(hubspot_sandbox)
    cid = str(hubspot_sandbox.store.tables["companies"].live[0])
    groups = {}
    for name in COMPANY:
        prop = api.crm.properties.core_api.get_by_name("companies", name)
        assert prop.modification_metadata.read_only_value and prop.calculated, name
        groups[name] = prop.group_name
        with pytest.raises(ApiException) as refused:
            api.crm.companies.basic_api.update(cid, {"properties": {name: "1"}})
        assert refused.value.status == 400 and "READ_ONLY_VALUE" in refused.value.body, name
    assert groups["num_associated_contacts"] == "companyinformation"
    assert {groups[n] for n in ("num_associated_deals", "hs_num_open_deals", *DEALS)} == {"deal_information"}
    with pytest.raises(ApiException) as refused:
        api.crm.companies.basic_api.create({"properties": {"name": "Rollup Inc", "total_revenue": "5"}})
    assert refused.value.status == 400 and "READ_ONLY_VALUE" in refused.value.body
