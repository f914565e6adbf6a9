"""`POST /webhooks/hubspot`: signed batches are stored once; forged, stale, malformed or oversized ones are not."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from hubspot.utils.signature import Signature

from connector.app import create_app
from connector.connections import create_connection
from connector.db import make_engine
from connector.model import WebhookEvent

SECRET = "9f1c2a4e-0d3b-4c5e-8f6a-7b8c9d0e1f2a"
PORTAL = 62515
PUBLIC = "https://rapport.example.com"


def _events(n: int = 3, *, portal: int = PORTAL, attempt: int = 0) -> list[dict]:
    return [{"eventId": 1000 + i, "subscriptionId": 25, "portalId": portal, "appId": 1160452,
             "occurredAt": 1_750_000_000_000 + i, "subscriptionType": "contact.propertyChange",
             "attemptNumber": attempt, "objectId": 500 + i, "propertyName": "lifecyclestage",
             "propertyValue": "customer", "changeSource": "CRM_UI"} for i in range(n)]


def _headers(body: bytes, url: str, *, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time() * 1000) if ts is None else ts
    sig = Signature.get_signature(secret, body.decode(), "v3", url, "POST", str(ts))
    return {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": str(ts), "Content-Type": "application/json"}


@pytest.fixture
def hook(make_settings, db_url):
    settings = make_settings(DATABASE_URL=db_url, RAPPORT_PUBLIC_URL=PUBLIC, RAPPORT_WEBHOOK_MAX_BYTES=60_000)
    engine = make_engine(settings.sqlalchemy_url)
    create_connection(engine, settings, kind="hubspot", name="hs", external_org_id=str(PORTAL),
                      secrets={"access_token": "pat-na1-x", "app_secret": SECRET})
    app = create_app(settings)
    yield app.test_client(), engine
    engine.dispose()


def _stored(engine) -> list:
    t = WebhookEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t).order_by(t.c.id)))


def _post(client, body: bytes, headers: dict[str, str], query: str = ""):
    return client.post("/webhooks/hubspot" + query, data=body, headers=headers)


def test_signed_batch_is_stored_once(hook):
    client, engine = hook
    body = json.dumps(_events()).encode()
    resp = _post(client, body, _headers(body, PUBLIC + "/webhooks/hubspot"))
    assert resp.status_code == 200, resp.json
    assert resp.json == {"accepted": 3, "duplicates": 0}
    # HubSpot retries the same events (attemptNumber 1): acknowledged, nothing stored twice
    again = json.dumps(_events(attempt=1)).encode()
    resp = _post(client, again, _headers(again, PUBLIC + "/webhooks/hubspot"))
    assert resp.json == {"accepted": 0, "duplicates": 3}
    rows = _stored(engine)
    assert [(r.object, r.external_id, r.kind) for r in rows] == [("contact", str(500 + i), "updated") for i in range(3)]
    assert rows[0].payload["source"] == "CRM_UI" and rows[0].payload["changed_fields"] == ["lifecyclestage"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_signature_over_the_url_the_request_reached(hook):
    client, engine = hook
    body = json.dumps(_events(1)).encode()
    # not behind a proxy: HubSpot called this host directly, query string included
    resp = _post(client, body, _headers(body, "http://localhost/webhooks/hubspot?app=rapport"), "?app=rapport")
    assert resp.status_code == 200, resp.json
    # the query string is part of what is signed
    resp = _post(client, body, _headers(body, PUBLIC + "/webhooks/hubspot"), "?app=rapport")
    assert resp.status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", ["forged", "wrong-secret", "stale", "no-signature", "malformed", "not-array",
                                  "missing-field", "unknown-portal", "oversized"])
def test_refused_requests_store_nothing(hook, case):
    client, engine = hook
    url = PUBLIC + "/webhooks/hubspot"
    events = _events()
    body = json.dumps(events).encode()
    headers = _headers(body, url)
    expected = 401
    if case == "forged":
        tampered = json.dumps(_events(4)).encode()
        headers, body = _headers(body, url), tampered
    elif case == "wrong-secret":
        headers = _headers(body, url, secret="another-secret")
    elif case == "stale":
        headers = _headers(body, url, ts=int(time.time() * 1000) - 301_000)
    elif case == "no-signature":
        headers = {"Content-Type": "application/json"}
    elif case == "malformed":
        body, expected = b'[{"eventId": 1,', 400
        headers = _headers(body, url)
    elif case == "not-array":
        body, expected = json.dumps(events[0]).encode(), 400
        headers = _headers(body, url)
    elif case == "missing-field":
        del events[1]["occurredAt"]
        body, expected = json.dumps(events).encode(), 400
        headers = _headers(body, url)
    elif case == "unknown-portal":
        body, expected = json.dumps(_events(portal=999)).encode(), 404
        headers = _headers(body, url)
    elif case == "oversized":
        body, expected = json.dumps(_events(300)).encode(), 413
        headers = _headers(body, url)
    resp = _post(client, body, headers)
    assert resp.status_code == expected, resp.json
    assert resp.json["error"]  # says why
    assert _stored(engine) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("app", "connected_as"), [("private", "private"), ("public", "oauth"), ("public", "private")])
def test_sandbox_deliveries_are_stored_once_each(make_settings, db_url, app, connected_as):
    import threading

    from werkzeug.serving import make_server

    from sandbox.hubspot import HubSpotSandbox

    settings = make_settings(DATABASE_URL=db_url)
    app_ = create_app(settings)
    server = make_server("127.0.0.1", 0, app_, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # the query string carries escapes that the v3 signature covers decoded
    url = f"http://127.0.0.1:{server.server_port}/webhooks/hubspot?tenant=acme%3Aeu&t=a%2Cb%20c"
    sb = HubSpotSandbox(size="small", seed=4, accounts=10, rate_limits=False, webhook_url=url,
                        webhook_batch_window_s=0.02, webhook_app=app, webhook_retry_horizon_s=0.5).start()
    engine = make_engine(settings.sqlalchemy_url)
    info = sb.info
    # a public (OAuth) app signs with its client secret, a private app with its own secret
    secrets = ({"access_token": info["access_token"], "app_secret": info["app_secret"]} if connected_as == "private"
               else {"client_id": info["client_id"], "client_secret": info["client_secret"],
                     "refresh_token": "na1-refresh", "app_secret": info["app_secret"]})
    try:
        create_connection(engine, settings, kind="hubspot", name="hs", external_org_id=str(sb.portal_id),
                          secrets=secrets)
        sb.mutate(30, seed=2)
        assert sb.webhooks.flush(timeout=20)
        deliveries = list(sb.webhooks.deliveries)
        rows = _stored(engine)
        if app == "public" and connected_as == "private":  # signed with a secret this connection does not hold
            assert deliveries and {d["status"] for d in deliveries} == {401}
            assert rows == []
            return
        assert deliveries and all(d["status"] == 200 for d in deliveries), deliveries[:3]
        sent = sum(d["events"] for d in deliveries)
        assert len(rows) == sent  # every event of every batch, none twice
        assert {r.kind for r in rows} >= {"created", "updated"}
        assert all(r.payload["portalId"] == sb.portal_id for r in rows)
        assert {r.payload["appId"] for r in rows} == {info["app_id"] if app == "private" else sb.oauth.public_app_id}
    finally:
        sb.stop()
        server.shutdown()
        engine.dispose()


# one bad event (index 1 of 3) in a correctly signed batch: each case is (field named, change to the event)
_MALFORMED = {
    "occurredAt-beyond-uint64": ("occurredAt", {"occurredAt": 10**20}),
    "occurredAt-past-year-9999": ("occurredAt", {"occurredAt": 10**18}),
    "occurredAt-in-seconds": ("occurredAt", {"occurredAt": 1_750_000_000}),
    "occurredAt-bool": ("occurredAt", {"occurredAt": True}),
    "objectId-object": ("objectId", {"objectId": {"a": 1}}),
    "objectId-bool": ("objectId", {"objectId": True}),
    "objectId-not-digits": ("objectId", {"objectId": "12a"}),
    "objectId-too-long": ("objectId", {"objectId": "1" * 65}),
    "newObjectId-too-long": ("newObjectId", {"subscriptionType": "contact.merge", "newObjectId": "2" * 65}),
    "primaryObjectId-too-long": ("primaryObjectId", {"subscriptionType": "contact.merge",
                                                     "primaryObjectId": "3" * 65}),
    "fromObjectId-too-long": ("fromObjectId", {"subscriptionType": "deal.associationChange", "objectId": None,
                                               "fromObjectId": "4" * 65, "toObjectId": 12}),
    "portalId-object": ("portalId", {"portalId": {"id": PORTAL}}),
    "nul-in-value": ("propertyValue", {"propertyValue": "cust\u0000omer"}),
    "nul-in-source": ("changeSource", {"changeSource": "\u0000"}),
    "nul-in-list": ("mergedObjectIds[1]", {"mergedObjectIds": [9, "1\u00002"]}),
    "nul-in-name": ("field name", {"extra\u0000": 1}),
}


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_malformed_event_refuses_the_whole_batch(hook, case):
    client, engine = hook
    field, change = _MALFORMED[case]
    events = _events()
    events[1] = {k: v for k, v in {**events[1], **change}.items() if v is not None}
    body = json.dumps(events).encode()
    resp = _post(client, body, _headers(body, PUBLIC + "/webhooks/hubspot"))
    assert resp.status_code == 400, resp.json
    assert "event 1" in resp.json["error"] and field in resp.json["error"], resp.json
    assert _stored(engine) == []


def test_ids_as_digit_strings_up_to_the_column_are_stored(hook):
    client, engine = hook
    events = _events(2)
    events[0]["objectId"] = "9" * 64
    events[1].update(subscriptionType="contact.merge", objectId=7, primaryObjectId="8", newObjectId=8)
    body = json.dumps(events).encode()
    resp = _post(client, body, _headers(body, PUBLIC + "/webhooks/hubspot"))
    assert resp.status_code == 200, resp.json
    assert sorted(r.external_id for r in _stored(engine)) == ["8", "9" * 64]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("secrets", "named", "option"), [
    ({"access_token": "pat-na1-y"}, "app secret", "--app-secret"),
    ({"client_id": "cid", "refresh_token": "na1-refresh"}, "client secret", "--client-secret"),
])
def test_connection_without_a_signing_secret_is_named(hook, make_settings, db_url, secrets, named, option):
    client, engine = hook
    settings = make_settings(DATABASE_URL=db_url)
    create_connection(engine, settings, kind="hubspot", name="hs-unsigned", external_org_id="777", secrets=secrets)
    body = json.dumps(_events(portal=777)).encode()
    resp = _post(client, body, _headers(body, PUBLIC + "/webhooks/hubspot"))
    assert resp.status_code == 409, resp.json
    assert "'hs-unsigned'" in resp.json["error"] and named in resp.json["error"], resp.json
    assert option in resp.json["hint"] and "777" in resp.json["hint"], resp.json
    assert _stored(engine) == []
