"""The Outbound Message receiver: verify, persist once, answer the exact acknowledgement."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

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


class _FirstAckLost:
    """WSGI middleware: the first delivery reaches the app, but its acknowledgement is lost (HTTP 502)."""

    def __init__(self, app) -> None:
        self.app = app
        self.calls: list[int] = []

    def __call__(self, environ, start_response):
        self.calls.append(1)
        if len(self.calls) > 1:
            return self.app(environ, start_response)
        b"".join(self.app(environ, lambda *a, **k: None))  # the app stores the events...
        start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
        return [b"proxy timeout"]  # ...but Salesforce never sees the ack


def test_a_message_from_the_org_is_retried_after_a_lost_ack_and_stored_once(sqlite_url, make_settings) -> None:
    from adapters.base import ConnectionInfo
    from adapters.salesforce import SalesforceAdapter
    from sandbox.salesforce import SalesforceSandbox

    sandbox = SalesforceSandbox(accounts=3).start()
    settings = make_settings(DATABASE_URL=sqlite_url)
    engine = make_engine(sqlite_url)
    create_connection(engine, settings, kind="salesforce", name="acme", secrets={"access_token": "x"},
                      instance_url=sandbox.info["instance_url"], external_org_id=sandbox.info["organization_id"])
    receiver = _FirstAckLost(create_app(settings))
    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ca = sandbox.info["ca_bundle"]
        hooks = f"{sandbox.info['instance_url']}/__sandbox__/outbound"
        requests.post(hooks, verify=ca, timeout=10, json={
            "url": f"http://127.0.0.1:{server.server_port}/webhooks/salesforce/acme",
            "rules": {"Contact": ["Email", "Title", "SystemModstamp"]}, "backoff_base": 0.2, "batch_window": 0.05,
        }).raise_for_status()
        info = ConnectionInfo(1, "acme", "salesforce", sandbox.info["instance_url"], sandbox.info["organization_id"],
                              {"ca_bundle": ca})
        adapter = SalesforceAdapter(info, {"access_token": sandbox.info["access_token"]})
        contact = adapter.client.call(lambda sf: sf.query("SELECT Id FROM Contact LIMIT 1"))["records"][0]["Id"]
        adapter.client.call(lambda sf: sf.Contact.update(contact, {"Title": "Chief Customer Officer"}))
        deadline = time.monotonic() + 15
        status: dict = {}
        while time.monotonic() < deadline:
            status = requests.get(hooks, verify=ca, timeout=10).json()
            if status["delivered"] >= 1:
                break
            time.sleep(0.1)
        assert status["delivered"] == 1 and status["failed_attempts"] == 1 and status["attempts"] == 2
        assert len(receiver.calls) == 2
        rows = _stored(engine)
        assert [(r.object, r.external_id) for r in rows] == [("contact", contact)]
        t = WebhookEvent.__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            payload = conn.execute(sa.select(t.c.payload)).scalar_one()
        assert payload["record"]["Title"] == "Chief Customer Officer"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        sandbox.stop()
        engine.dispose()
