"""`propertiesWithHistory` on reads by id, list pages and batch reads, through the real client."""

from __future__ import annotations

from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

from tests.sandbox.hs_fixtures import client, fresh_sandbox, hubspot_sandbox, raw  # noqa: F401


def _entries(history: list) -> list[tuple]:
    return [(h.value, h.source_type, h.source_id, h.updated_by_user_id) for h in history]


def test_history_lists_every_write_newest_first_after_the_seeded_value(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    app = str(fresh_sandbox.info["app_id"])
    seeded = api.crm.contacts.basic_api.get_page(limit=1, properties=["jobtitle", "firstname"]).results[0]
    for title in ("CFO", "CEO"):
        api.crm.contacts.basic_api.update(seeded.id, {"properties": {"jobtitle": title}})
    read = api.crm.contacts.basic_api.get_by_id(seeded.id, properties=["jobtitle"],
                                                properties_with_history=["jobtitle", "firstname", "no_such"])
    assert set(read.properties_with_history) == {"jobtitle", "firstname"}  # unknown names are ignored
    jobtitle = read.properties_with_history["jobtitle"]
    assert _entries(jobtitle) == [("CEO", "INTEGRATION", app, None), ("CFO", "INTEGRATION", app, None),
                                  (seeded.properties["jobtitle"], "IMPORT", None, None)]
    assert jobtitle[0].timestamp >= jobtitle[1].timestamp > jobtitle[2].timestamp
    assert jobtitle[2].timestamp == seeded.created_at  # the seeded value was set when the record was
    assert _entries(read.properties_with_history["firstname"]) == [
        (seeded.properties["firstname"], "IMPORT", None, None)]
    assert "propertiesWithHistory" not in raw(fresh_sandbox, "GET", f"/crm/v3/objects/contacts/{seeded.id}").json()


def test_records_made_through_the_api_and_ui_changes_keep_their_sources(fresh_sandbox):  # noqa: F811
    api = client(fresh_sandbox)
    made = api.crm.contacts.basic_api.create({"properties": {"email": "history@example.com", "jobtitle": "Buyer"}})
    api.crm.contacts.basic_api.update(made.id, {"properties": {"jobtitle": ""}})
    read = api.crm.contacts.basic_api.get_by_id(made.id, properties_with_history=["jobtitle", "hs_email_domain",
                                                                                  "phone"])
    app = str(fresh_sandbox.info["app_id"])
    assert _entries(read.properties_with_history["jobtitle"]) == [("", "INTEGRATION", app, None),
                                                                  ("Buyer", "INTEGRATION", app, None)]
    assert _entries(read.properties_with_history["hs_email_domain"]) == [("example.com", "CALCULATED", None, None)]
    assert read.properties_with_history["phone"] == []  # never set
    done = fresh_sandbox.mutate(1, seed=3, kinds=["deal_stage", "deal_won", "deal_lost"])[0]
    deal = api.crm.deals.basic_api.get_by_id(done["id"], properties_with_history=["dealstage",
                                                                                 "hs_deal_stage_probability"])
    stage = deal.properties_with_history["dealstage"][0]
    assert stage.source_type == "CRM_UI"  # someone moved it in HubSpot
    assert stage.source_id == f"userId:{stage.updated_by_user_id}" and stage.updated_by_user_id > 0
    probability = deal.properties_with_history["hs_deal_stage_probability"][0]
    assert (probability.source_type, probability.timestamp) == ("CALCULATED", stage.timestamp)


def test_reads_with_history_hold_at_most_50_records(hubspot_sandbox):  # noqa: F811
    api = client(hubspot_sandbox)
    page = api.crm.contacts.basic_api.get_page(limit=100, properties_with_history=["email"])
    assert len(page.results) == 50 and page.paging.next.after
    assert all(r.properties_with_history["email"][0].value == r.properties["email"] for r in page.results)
    after = api.crm.contacts.basic_api.get_page(limit=100, after=page.paging.next.after)
    live = len(hubspot_sandbox.store.tables["contacts"].live)
    assert live > 100 and len(after.results) == min(100, live - 50)  # without history, the page size asked for
    ids = [{"id": r.id} for r in page.results]
    batch = api.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=ids, properties=["email"], properties_with_history=["lastmodifieddate"]))
    assert len(batch.results) == 50
    assert {r.properties_with_history["lastmodifieddate"][0].source_type for r in batch.results} == {"CALCULATED"}
    r = raw(hubspot_sandbox, "POST", "/crm/v3/objects/contacts/batch/read",
            json={"inputs": ids + [{"id": "1"}], "properties": [], "propertiesWithHistory": ["email"]})
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR" and "50" in r.json()["message"]
    r = raw(hubspot_sandbox, "POST", "/crm/v3/objects/contacts/batch/read",
            json={"inputs": ids * 2, "properties": [], "propertiesWithHistory": []})
    assert r.status_code == 200  # without history, 100 as ever
