"""HubSpot webhook signatures: the documented vectors, the URI decoding, and every tampering rejected."""

from __future__ import annotations

import json

import pytest
from hubspot.utils.signature import Signature

from adapters.hubspot import settings as hs_settings
from adapters.hubspot import webhooks
from connector.errors import WebhookRejected

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_V1_BODY = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    '"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    '"changeFlag":"NEW","appId":54321}]'
)
CLIENT_BODY = "{'example_field':'example_value'}"
URL = "https://www.example.com/webhook_uri"


@pytest.mark.parametrize(
    ("version", "method", "body", "uri", "timestamp", "expected"),
    [
        ("v1", "POST", DOC_V1_BODY, None, None, "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"),
        ("v2", "GET", "", URL, None, "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"),
        ("v1", "POST", CLIENT_BODY, URL, None, "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"),
        ("v2", "POST", CLIENT_BODY, URL, None, "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"),
        ("v3", "POST", CLIENT_BODY, URL, "15000000", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="),
    ],
)
def test_documented_vectors(version, method, body, uri, timestamp, expected):
    assert Signature.get_signature(SECRET, body, version, uri, method, timestamp) == expected


def _signed(body: str, url: str, ts_ms: int, method: str = "POST") -> dict[str, str]:
    sig = Signature.get_signature(SECRET, body, "v3", webhooks.decode_uri(url), method, str(ts_ms))
    return {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": str(ts_ms)}


def test_v3_vector_verifies_at_its_own_time():
    headers = {"X-HubSpot-Signature-v3": "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
               "X-HubSpot-Request-Timestamp": "15000000"}
    webhooks.verify(headers, CLIENT_BODY.encode(), URL, "POST", SECRET, now=15_000 + 60)
    with pytest.raises(WebhookRejected) as info:  # the same request six minutes later is stale
        webhooks.verify(headers, CLIENT_BODY.encode(), URL, "POST", SECRET, now=15_000 + 360)
    assert info.value.status == 401 and "off" in info.value.message


def test_uri_escapes_are_decoded_as_documented():
    encoded = "https://example.com/hook%3Fa%3D1%2C2%40x%21%24%27%28%29%2A%3B%3Aok%2Fz%20space"
    assert webhooks.decode_uri(encoded) == "https://example.com/hook?a%3D1,2@x!$'()*;:ok/z%20space"
    assert webhooks.decode_uri("https://e.com/a%3fb%2cc") == "https://e.com/a?b,c"
    # one pass over the escapes: an escaped percent sign stays, so "%253A" is not read as ":"
    assert webhooks.decode_uri("https://e.com/a?v=%253A%25%2F") == "https://e.com/a?v=%253A%25/"


def test_receiver_decodes_exactly_as_the_sandbox_signs():
    import random

    from sandbox.hubspot.webhooks import signed_uri

    pieces = [*hs_settings.URI_DECODES, "%3a", "%2f", "%25", "%20", "%3D", "%", "3A", "a", "/", "?", "&", "="]
    rng = random.Random(4)
    for _ in range(500):
        url = "https://rapport.example.com/webhooks/hubspot?" + "".join(rng.choices(pieces, k=rng.randrange(12)))
        assert webhooks.decode_uri(url) == signed_uri(url), url


@pytest.mark.parametrize(("secrets", "expected"), [
    ({"access_token": "pat-na1-x", "app_secret": "private-secret"}, "private-secret"),
    ({"access_token": "pat-na1-x"}, None),
    # a public app signs with its client secret, even if an app secret was stored too
    ({"client_id": "c", "client_secret": "client-secret", "refresh_token": "r", "app_secret": "other"},
     "client-secret"),
    ({"refresh_token": "r", "client_secret": "client-secret"}, "client-secret"),
])
def test_signing_secret_follows_the_kind_of_app(secrets, expected):
    assert webhooks.signing_secret(secrets) == expected


NOW = 1_750_000_000.0
TS = int(NOW * 1000) - 1_000
BODY = DOC_V1_BODY
HOOK = "https://rapport.example.com/webhooks/hubspot?portal=62515&x=%3A"


def test_fresh_signed_request_is_accepted():
    events = webhooks.parse(_signed(BODY, HOOK, TS), BODY.encode(), HOOK, "POST", SECRET, now=NOW)
    assert [(e.object, e.external_id, e.kind, e.source) for e in events] == [("contact", "123", "created", "CRM")]


@pytest.mark.parametrize(
    "tamper",
    ["body", "uri", "query", "method", "timestamp", "secret", "signature"],
)
def test_any_change_is_rejected(tamper):
    headers = _signed(BODY, HOOK, TS)
    body, url, method, secret = BODY, HOOK, "POST", SECRET
    if tamper == "body":
        body = BODY.replace('"objectId":123', '"objectId":124')
    elif tamper == "uri":
        url = HOOK.replace("/webhooks/", "/webhook/")
    elif tamper == "query":
        url = HOOK.replace("portal=62515", "portal=62516")
    elif tamper == "method":
        method = "PUT"
    elif tamper == "timestamp":
        headers["X-HubSpot-Request-Timestamp"] = str(TS + 1)
    elif tamper == "secret":
        secret = SECRET.replace("y", "z")
    else:
        headers["X-HubSpot-Signature-v3"] = headers["X-HubSpot-Signature-v3"][:-4] + "AAA="
    with pytest.raises(WebhookRejected) as info:
        webhooks.parse(headers, body.encode(), url, method, secret, now=NOW)
    assert info.value.status == 401


@pytest.mark.parametrize("age_s", [301, -301, 3600])
def test_stale_or_future_requests_are_rejected(age_s):
    ts = int((NOW - age_s) * 1000)
    with pytest.raises(WebhookRejected) as info:
        webhooks.parse(_signed(BODY, HOOK, ts), BODY.encode(), HOOK, "POST", SECRET, now=NOW)
    assert info.value.status == 401 and "off" in info.value.message


def test_missing_headers_are_rejected():
    with pytest.raises(WebhookRejected) as info:
        webhooks.parse({}, BODY.encode(), HOOK, "POST", SECRET, now=NOW)
    assert info.value.status == 401 and "missing" in info.value.message


def test_event_shapes_become_webhook_events():
    events = [
        {"eventId": 7, "subscriptionId": 3, "portalId": 62515, "occurredAt": 1750000000000, "attemptNumber": 0,
         "subscriptionType": "deal.associationChange", "changeSource": "CRM_UI", "associationType": "DEAL_TO_COMPANY",
         "fromObjectId": 88, "toObjectId": 12, "associationRemoved": False, "isPrimaryAssociation": True},
        {"eventId": 8, "subscriptionId": 4, "portalId": 62515, "occurredAt": 1750000000001, "attemptNumber": 0,
         "subscriptionType": "contact.merge", "objectId": 5, "primaryObjectId": 5, "newObjectId": 5,
         "mergedObjectIds": [9], "changeSource": "CRM_UI"},
        {"eventId": 9, "subscriptionId": 5, "portalId": 62515, "occurredAt": 1750000000002, "attemptNumber": 2,
         "subscriptionType": "object.deletion", "objectTypeId": "0-5", "objectId": 31, "changeSource": "API"},
        {"eventId": 9, "subscriptionId": 6, "portalId": 62515, "occurredAt": 1750000000002, "attemptNumber": 0,
         "subscriptionType": "company.propertyChange", "objectId": 31, "propertyName": "name",
         "propertyValue": "Acme", "changeSource": "INTEGRATION"},
    ]
    parsed = [webhooks.to_event(e) for e in webhooks.parse_body(json.dumps(events).encode())]
    assert [(p.object, p.external_id, p.kind, p.changed_fields, p.source) for p in parsed] == [
        ("deal", "88", "associated", (), "CRM_UI"), ("contact", "5", "merged", (), "CRM_UI"),
        ("case", "31", "deleted", (), "API"), ("account", "31", "updated", ("name",), "INTEGRATION")]
    assert len({p.dedupe_key for p in parsed}) == 4  # eventId 9 twice, still two events
    again = webhooks.to_event({**events[2], "attemptNumber": 3})
    assert again.dedupe_key == parsed[2].dedupe_key  # a redelivery is the same event


@pytest.mark.parametrize("body", [b"", b"{}", b"[]", b"[1]", b"not json",
                                  b'[{"subscriptionType": "contact.creation", "portalId": 1, "objectId": 2}]',
                                  b'[{"subscriptionType": "contact.creation", "portalId": 1, "occurredAt": 5}]',
                                  b'[{"subscriptionType": "x", "portalId": 1, "objectId": 2, "occurredAt": "soon"}]',
                                  b'[{"subscriptionType": "x", "portalId": 1, "objectId": 2, "occurredAt": true}]',
                                  b'[{"subscriptionType": "x", "portalId": 1, "objectId": {}, "occurredAt": 1750000000000}]',
                                  b'[{"subscriptionType": "x\\u0000", "portalId": 1, "objectId": 2, '
                                  b'"occurredAt": 1750000000000}]'])
def test_malformed_bodies_are_refused_with_a_reason(body):
    with pytest.raises(WebhookRejected) as info:
        webhooks.parse_body(body)
    assert info.value.status == 400 and info.value.message
