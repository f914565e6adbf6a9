"""Outbound Message verification and parsing, over a recorded message and hostile variants."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.base import ConnectionInfo
from adapters.salesforce import SalesforceAdapter
from adapters.salesforce.webhooks import parse_outbound_message
from connector.errors import WebhookRejected

MESSAGE = (Path(__file__).parent / "salesforce_fixtures" / "outbound_contact.xml").read_bytes()
ORG = "00D5g000004ABCDEAA"
XML = {"Content-Type": "text/xml; charset=utf-8"}


def test_a_message_gives_one_event_per_notification() -> None:
    contact, case = parse_outbound_message(XML, MESSAGE, org_id=ORG)
    assert contact.dedupe_key == "04l5g00000ABCD1AAA"
    assert (contact.object, contact.external_id, contact.kind) == ("contact", "0035g00000XYZ01AAA", "updated")
    assert contact.occurred_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert contact.payload["record"]["Email"] == "ada@example.com"
    assert contact.payload["record"]["Title"] is None  # xsi:nil
    assert contact.changed_fields == ()  # a message carries values, not which fields changed
    assert (case.object, case.external_id) == ("case", "5005g00000CAS01AAA")
    assert case.occurred_at == datetime(2024, 5, 6, 7, 8, 10, tzinfo=UTC)  # LastModifiedDate when no modstamp


def test_the_adapter_checks_its_own_connection_org() -> None:
    info = ConnectionInfo(1, "sf", "salesforce", "https://acme.my.salesforce.com", external_org_id=ORG[:15])
    adapter = SalesforceAdapter(info, {"access_token": "x"})
    assert len(adapter.parse_webhook(XML, MESSAGE, "https://rapport.example/webhooks/salesforce/sf")) == 2
    assert adapter.api_calls == 0  # verifying a message costs no API call


_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>"""
_EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&xxe;</soapenv:Body></soapenv:Envelope>"""


@pytest.mark.parametrize(
    ("body", "org", "headers", "status", "reason"),
    [
        (MESSAGE, "00D5g000009ZZZZEAA", XML, 403, "not this connection's organization"),
        (MESSAGE, None, XML, 403, "no organization id"),
        (MESSAGE, ORG, {"Content-Type": "application/json"}, 415, "text/xml"),
        (MESSAGE + b" " * 10, ORG, XML, 413, "limit"),
        (_BOMB, ORG, XML, 400, "DTD"),
        (_EXTERNAL, ORG, XML, 400, "DTD"),
        (b"<soapenv:Envelope", ORG, XML, 400, "not well-formed"),
        (b"", ORG, XML, 400, "empty"),
        (b"<a/>", ORG, XML, 400, "not an Outbound Message"),
        (MESSAGE.replace(b"<OrganizationId>00D5g000004ABCDEAA</OrganizationId>", b""), ORG, XML, 400, "no OrganizationId"),
        (MESSAGE.replace(b"<Id>04l5g00000ABCD1AAA</Id>", b""), ORG, XML, 400, "no Id"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(body: bytes, org: str | None, headers: dict, status: int, reason: str) -> None:
    limit = len(MESSAGE) + 5
    with pytest.raises(WebhookRejected) as caught:
        parse_outbound_message(headers, body, org_id=org, max_bytes=limit)
    assert caught.value.status == status
    assert reason in caught.value.message


def test_only_post_is_accepted() -> None:
    with pytest.raises(WebhookRejected) as caught:
        parse_outbound_message(XML, MESSAGE, org_id=ORG, method="GET")
    assert caught.value.status == 405


def test_more_than_a_hundred_notifications_is_refused() -> None:
    head, _, rest = MESSAGE.partition(b"<Notification>")
    one = b"<Notification>" + rest.partition(b"</Notification>")[0] + b"</Notification>"
    tail = rest.partition(b"</Notification>")[2]
    body = head + one * 101 + tail
    with pytest.raises(WebhookRejected, match="at most 100"):
        parse_outbound_message(XML, body, org_id=ORG, max_bytes=10_000_000)
