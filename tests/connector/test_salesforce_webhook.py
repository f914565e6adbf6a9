"""The Outbound Message receiver: verify, persist once, answer the exact acknowledgement."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.salesforce import settings as S
from connector.app import create_app
from connector.connections import create_connection
from connector.db import make_engine
from connector.model import WebhookEvent

MESSAGE = (Path(__file__).parents[1] / "adapters" / "salesforce_fixtures" / "outbound_contact.xml").read_bytes()
ORG = "00D5g000004ABCDEAA"
XML = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


@pytest.fixture
def web(db_url, make_settings):
    settings = make_settings(DATABASE_URL=db_url, RAPPORT_WEBHOOK_MAX_BYTES=len(MESSAGE) + 100)
    engine = make_engine(db_url)
    cid = create_connection(engine, settings, kind="salesforce", name="acme", secrets={"access_token": "x"},
                            instance_url="https://acme.my.salesforce.com", external_org_id=ORG)
    create_connection(engine, settings, kind="salesforce", name="no-org", secrets={"access_token": "x"})
    app = create_app(settings)
    yield app.test_client(), engine, cid
    engine.dispose()


def _stored(engine) -> list:
    t = WebhookEvent.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.dedupe_key, t.c.object, t.c.external_id).order_by(t.c.dedupe_key)))


def test_a_message_is_stored_once_and_acknowledged_exactly(web) -> None:
    client, engine, cid = web
    first = client.post("/webhooks/salesforce/acme", data=MESSAGE, headers=XML)
    assert first.status_code == 200
    assert first.data.decode() == S.OUTBOUND_ACK
    assert first.content_type.startswith("text/xml")
    # Salesforce retries a message whose ack it missed: the retry is acknowledged, nothing doubles.
    again = client.post(f"/webhooks/salesforce/{cid}", data=MESSAGE, headers=XML)
    assert again.status_code == 200 and again.data.decode() == S.OUTBOUND_ACK
    assert [tuple(r) for r in _stored(engine)] == [
        ("04l5g00000ABCD1AAA", "contact", "0035g00000XYZ01AAA"),
        ("04l5g00000ABCD2AAA", "case", "5005g00000CAS01AAA"),
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("acme", MESSAGE.replace(ORG.encode(), b"00D5g000009ZZZZEAA"), 403, "organization"),
        ("no-org", MESSAGE, 403, "no organization id"),
        ("acme", MESSAGE + b" " * 200, 413, "limit"),
        ("acme", b"<not-xml", 400, "well-formed"),
        ("acme", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 400, "DTD"),
        ("nobody", MESSAGE, 404, "no Salesforce connection"),
    ],
)
def test_refused_messages_get_a_reason_and_are_stored_nowhere(web, path, body, status, reason) -> None:
    client, engine, _ = web
    response = client.post(f"/webhooks/salesforce/{path}", data=body, headers=XML)
    assert response.status_code == status
    assert reason in response.get_json()["error"]
    assert _stored(engine) == []
