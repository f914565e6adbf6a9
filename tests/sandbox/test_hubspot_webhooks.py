"""Webhook delivery: documented event fields, v1 + v3 signatures, batching, concurrency, retries, clean stop."""

from __future__ import annotations

import time

import requests
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputForCreate
from hubspot.utils.signature import Signature

from sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hs_fixtures import Receiver, client

SUBSCRIPTIONS = [
    {"subscriptionType": "contact.creation"},
    {"subscriptionType": "contact.deletion"},
    {"subscriptionType": "contact.merge"},
    {"subscriptionType": "contact.associationChange"},
    {"subscriptionType": "company.associationChange"},
    {"subscriptionType": "contact.propertyChange", "propertyName": "jobtitle"},
    {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"},
    {"subscriptionType": "ticket.creation"},
]


def _sandbox(url: str, **kw) -> HubSpotSandbox:
    kw.setdefault("webhook_subscriptions", SUBSCRIPTIONS)
    return HubSpotSandbox("small", seed=7, accounts=3, search_lag_s=0, rate_limits=False, webhook_url=url,
                          webhook_batch_window_s=0.02, **kw).start()


def test_events_carry_the_documented_fields_and_both_signatures():
    with Receiver() as rx:
        sb = _sandbox(rx.url)
        try:
            api = client(sb)
            company = api.crm.companies.basic_api.get_page(limit=1).results[0]
            made = api.crm.contacts.basic_api.create({"properties": {"email": "hook@example.com"}, "associations": [
                {"to": {"id": company.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                       "associationTypeId": 279}]}]})
            api.crm.contacts.basic_api.update(made.id, {"properties": {"jobtitle": "COO", "firstname": "Not subscribed"}})
            assert sb.webhooks.flush(10)
        finally:
            sb.stop()
    by_type: dict[str, list[dict]] = {}
    for e in rx.events():
        by_type.setdefault(e["subscriptionType"], []).append(e)
    creation = by_type["contact.creation"][0]
    assert creation["objectId"] == int(made.id) and creation["changeFlag"] == "NEW"
    for e in rx.events():  # our own writes: an integration, with our app as the source
        assert e["changeSource"] == "INTEGRATION" and e["sourceId"] == str(sb.info["app_id"])
        assert e["portalId"] == sb.info["portal_id"] and e["appId"] == sb.info["app_id"]
        assert e["attemptNumber"] == 0 and isinstance(e["eventId"], int) and e["subscriptionId"] > 0
        assert abs(e["occurredAt"] / 1000 - time.time()) < 60
    change = by_type["contact.propertyChange"]
    assert [(e["propertyName"], e["propertyValue"]) for e in change] == [("jobtitle", "COO")]
    assoc = by_type["contact.associationChange"]
    assert {(e["fromObjectId"], e["toObjectId"], e["associationRemoved"]) for e in assoc} == {
        (int(made.id), int(company.id), False)}
    assert {e["associationType"] for e in assoc} == {"CONTACT_TO_COMPANY"}
    # announced to the company's subscribers too, from the company's end
    other_end = by_type["company.associationChange"]
    assert [(e["fromObjectId"], e["toObjectId"], e["associationType"], e["associationTypeId"]) for e in other_end] \
        == [(int(company.id), int(made.id), "COMPANY_TO_CONTACT", 280)]
    secret = sb.info["app_secret"]
    for r in rx.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        assert h["content-type"].startswith("application/json")
        uri = rx.url.replace("%3A", ":").replace("%2C", ",")  # as the guide says to decode before checking
        assert Signature.is_valid(h["x-hubspot-signature-v3"], secret, r["body"], http_uri=uri, http_method="POST",
                                  signature_version="v3", timestamp=h["x-hubspot-request-timestamp"])
        assert h["x-hubspot-signature-version"] == "v1"
        assert Signature.is_valid(h["x-hubspot-signature"], secret, r["body"], signature_version="v1")
        assert not Signature.is_valid(h["x-hubspot-signature"], "wrong-secret", r["body"], signature_version="v1")


def test_ui_changes_merges_and_deletions():
    with Receiver() as rx:
        sb = _sandbox(rx.url)
        try:
            done = requests.post(sb.api_base + "/__sandbox__/mutate",
                                 json={"count": 30, "seed": 1, "kinds": ["deal_stage", "ticket_new"]}, timeout=10).json()
            assert len(done["applied"]) == 30
            api = client(sb)
            a, b = api.crm.contacts.basic_api.get_page(limit=2).results
            merged = requests.post(sb.api_base + "/crm/v3/objects/contacts/merge", timeout=10,
                                   headers={"Authorization": f"Bearer {sb.info['access_token']}"},
                                   json={"primaryObjectId": a.id, "objectIdToMerge": b.id})
            merged.raise_for_status()
            other = api.crm.contacts.basic_api.get_page(limit=1, after=str(int(b.id) + 1)).results[0]
            api.crm.contacts.basic_api.archive(other.id)
            assert sb.webhooks.flush(10)
        finally:
            sb.stop()
    events = rx.events()
    ui = [e for e in events if e["subscriptionType"] in ("deal.propertyChange", "ticket.creation")]
    assert ui and all(e["changeSource"] == "CRM_UI" and e["sourceId"].startswith("userId:") for e in ui)
    assert {e["subscriptionType"] for e in ui} == {"deal.propertyChange", "ticket.creation"}
    merge = next(e for e in events if e["subscriptionType"] == "contact.merge")
    assert merge["primaryObjectId"] == int(a.id) and merge["mergedObjectIds"] == [int(b.id)]
    new_id = int(merged.json()["id"])  # the merge made a new record
    assert new_id != int(a.id) and merge["newObjectId"] == new_id and merge["objectId"] == new_id
    deletion = next(e for e in events if e["subscriptionType"] == "contact.deletion")
    assert deletion["objectId"] == int(other.id) and deletion["changeFlag"] == "DELETED"


def test_a_public_app_signs_with_its_client_secret():
    with Receiver() as rx:
        sb = _sandbox(rx.url)
        try:
            hook = sb.api_base + "/__sandbox__/webhooks"
            assert requests.put(hook, json={"app": "marketplace"}, timeout=10).status_code == 400
            answer = requests.put(hook, json={"app": "public"}, timeout=10).json()
            assert answer["app"] == "public" and answer["appId"] == sb.oauth.public_app_id != sb.info["app_id"]
            client(sb).crm.contacts.basic_api.create({"properties": {"email": "public@example.com"}})
            assert sb.webhooks.flush(10)
        finally:
            sb.stop()
    assert rx.requests
    uri = rx.url.replace("%3A", ":").replace("%2C", ",")
    for r in rx.requests:
        h = {k.lower(): v for k, v in r["headers"].items()}
        for secret, valid in ((sb.info["client_secret"], True), (sb.info["app_secret"], False)):
            assert Signature.is_valid(h["x-hubspot-signature-v3"], secret, r["body"], http_uri=uri,
                                      http_method="POST", signature_version="v3",
                                      timestamp=h["x-hubspot-request-timestamp"]) is valid
            assert Signature.is_valid(h["x-hubspot-signature"], secret, r["body"], signature_version="v1") is valid
        assert {e["appId"] for e in r["events"]} == {sb.oauth.public_app_id}


def test_batches_hold_at_most_100_events_and_at_most_10_requests_fly():
    with Receiver(delay=0.15) as rx:
        sb = _sandbox(rx.url, webhook_subscriptions=[{"subscriptionType": "contact.creation"}])
        try:
            api = client(sb)
            for start in (0, 100, 200):
                api.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                    {"properties": {"email": f"c{i}@example.com"}, "associations": []}
                    for i in range(start, start + 100)]))
            assert sb.webhooks.flush(20)
            assert all(len(r["events"]) <= 100 for r in rx.requests)
            assert len(rx.events()) == 300
            assert len({e["objectId"] for e in rx.events()}) == 300
            requests.put(sb.api_base + "/__sandbox__/webhooks", json={"maxBatch": 1}, timeout=10).raise_for_status()
            rx.max_in_flight = 0
            api.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
                {"properties": {"email": f"d{i}@example.com"}, "associations": []} for i in range(40)]))
            assert sb.webhooks.flush(20)
        finally:
            sb.stop()
    assert 2 <= rx.max_in_flight <= 10


def test_failed_deliveries_are_retried_with_growing_attempt_numbers():
    with Receiver(statuses=[500, 503, 404]) as rx:
        sb = _sandbox(rx.url, webhook_retry_horizon_s=0.5)
        try:
            client(sb).crm.contacts.basic_api.create({"properties": {"email": "retry@example.com"}})
            assert sb.webhooks.flush(15)
        finally:
            sb.stop()
    attempts = [(r["status"], [e["attemptNumber"] for e in r["events"]]) for r in rx.requests]
    assert [a[0] for a in attempts] == [500, 503, 404, 204]
    assert [a[1][0] for a in attempts] == [0, 1, 2, 3]
    ids = [[e["eventId"] for e in r["events"]] for r in rx.requests]
    assert all(i == ids[0] for i in ids)  # the same events, sent again
    stamps = [int(r["headers"]["X-Hubspot-Request-Timestamp"]) for r in rx.requests]
    assert stamps == sorted(stamps)  # each attempt is signed afresh


def test_gives_up_after_ten_retries_and_stops_cleanly():
    with Receiver(statuses=[500] * 20) as rx:
        sb = _sandbox(rx.url, webhook_retry_horizon_s=0.3)
        try:
            client(sb).crm.contacts.basic_api.create({"properties": {"email": "never@example.com"}})
            assert sb.webhooks.flush(15)
        finally:
            sb.stop()
    assert len(rx.requests) == 11  # the first attempt and ten retries
    assert [r["events"][0]["attemptNumber"] for r in rx.requests] == list(range(11))
    with Receiver(statuses=[500] * 5) as rx:
        sb = _sandbox(rx.url, webhook_retry_horizon_s=3600)
        client(sb).crm.contacts.basic_api.create({"properties": {"email": "later@example.com"}})
        deadline = time.monotonic() + 5
        while not rx.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        sb.stop()  # a retry is scheduled far ahead: stopping must not wait for it
        assert time.monotonic() - started < 3
    assert len(rx.requests) == 1


def test_unreachable_target_counts_as_a_failed_attempt():
    sb = _sandbox("http://127.0.0.1:9/hooks", webhook_retry_horizon_s=0.2)
    try:
        client(sb).crm.contacts.basic_api.create({"properties": {"email": "nowhere@example.com"}})
        assert sb.webhooks.flush(15)
        attempts = [d for d in sb.webhooks.deliveries]
    finally:
        sb.stop()
    assert len(attempts) == 11 and all(d["status"] is None and d["error"] for d in attempts)
