"""`webhooks.persist`: a batch stored in one statement, duplicates skipped, whatever the payload holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.base import WebhookEvent
from connector import webhooks
from connector.connections import create_connection
from connector.model import WebhookEvent as EventRow

_E = EventRow.__table__  # type: ignore[attr-defined]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(n: int, **payload: object) -> WebhookEvent:
    body = {"eventId": n, "objectId": 500 + n, "propertyName": "dealstage", "propertyValue": "closedwon", **payload}
    return WebhookEvent(dedupe_key=f"hs:deal.propertyChange:{n}", object="deal", external_id=str(500 + n),
                        kind="updated", occurred_at=T0 + timedelta(milliseconds=n), changed_fields=("dealstage",),
                        source="CRM_UI", payload=body)


def _stored(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(_E).order_by(_E.c.dedupe_key)))


@pytest.fixture
def cid(engine, make_settings):
    return create_connection(engine, make_settings(), kind="hubspot", name="hs", secrets={"access_token": "x"})


def test_a_batch_is_stored_once_with_its_payload(engine, cid):
    batch = [_event(n) for n in range(100)]
    assert webhooks.persist(engine, cid, [*batch, batch[3]]) == webhooks.Accepted(new=100, duplicates=1)
    assert webhooks.persist(engine, cid, batch[90:] + [_event(100)]) == webhooks.Accepted(new=1, duplicates=10)
    rows = {r.dedupe_key: r for r in _stored(engine)}
    assert len(rows) == 101
    row = rows["hs:deal.propertyChange:7"]
    assert (row.object, row.external_id, row.kind, row.status, row.attempts) == ("deal", "507", "updated", "pending", 0)
    assert row.occurred_at == T0 + timedelta(milliseconds=7) and row.received_at.tzinfo is not None
    assert row.payload == {"eventId": 7, "objectId": 507, "propertyName": "dealstage", "propertyValue": "closedwon",
                           "changed_fields": ["dealstage"], "source": "CRM_UI"}


def test_values_json_cannot_carry_as_such_are_still_stored(engine, cid):
    odd = _event(1, huge=2**70, nested={"list": [1, None, "ü"]})
    assert webhooks.persist(engine, cid, [odd, _event(2)]).new == 2
    payloads = [r.payload for r in _stored(engine)]
    assert payloads[0]["huge"] == 2**70 and payloads[0]["nested"] == {"list": [1, None, "ü"]}


@pytest.mark.postgres
def test_a_batch_meeting_a_stale_connection_is_stored_on_a_new_one(pg_engine, pg_url, make_settings):
    from connector.db import make_engine

    cid = create_connection(pg_engine, make_settings(), kind="hubspot", name="hs", secrets={"access_token": "x"})
    events_engine = make_engine(pg_url, pre_ping=False)  # as the receiver stores batches: no ping first
    try:
        assert webhooks.persist(events_engine, cid, [_event(1)]).new == 1
        with events_engine.connect() as conn:  # the pooled connection the next batch will get
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with pg_engine.connect() as conn:  # the server ends it, as a restart or an idle timeout would
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        accepted = webhooks.persist(events_engine, cid, [_event(2), _event(3)])
        assert (accepted.new, accepted.retried) == (2, True)
        assert [r.dedupe_key for r in _stored(pg_engine)] == [f"hs:deal.propertyChange:{n}" for n in (1, 2, 3)]
    finally:
        events_engine.dispose()
