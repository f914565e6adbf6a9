"""`POST /webhooks/salesforce/<connection>`: receive Outbound Messages, persist them, acknowledge.

The message is verified (size, safe XML, the connection's organization id) and its notifications
are stored (deduplicated by notification id) before the exact acknowledgement goes back; anything
refused gets a 4xx with the reason and is stored nowhere. Processing happens later in a job.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request

from adapters.salesforce import settings as S
from adapters.salesforce.webhooks import parse_outbound_message
from connector.errors import WebhookRejected
from connector.model import Connection
from connector.web.services.common import MAX_ID
from connector.webhooks import accept

log = logging.getLogger(__name__)
bp = Blueprint("salesforce_hooks", __name__)
_C = Connection.__table__  # type: ignore[attr-defined]


def _refuse(status: int, message: str, hint: str | None = None) -> tuple[Response, int]:
    return jsonify(error=message, hint=hint), status


def _connection(name_or_id: str) -> sa.Row | None:
    engine = current_app.extensions["rapport_engine"]
    with engine.connect() as conn:
        where = _C.c.name == name_or_id
        if name_or_id.isdigit() and int(name_or_id) <= MAX_ID:
            where = sa.or_(where, _C.c.id == int(name_or_id))
        return conn.execute(
            sa.select(_C.c.id, _C.c.kind, _C.c.external_org_id, _C.c.status).where(where)
        ).first()


@bp.post("/webhooks/salesforce/<connection>")
def outbound_message(connection: str):  # type: ignore[no-untyped-def]
    """Verify, persist and acknowledge one Outbound Message."""
    settings = current_app.config["RAPPORT_SETTINGS"]
    limit = settings.webhook_max_bytes
    if request.content_length is not None and request.content_length > limit:
        return _refuse(413, f"the message is {request.content_length} bytes; the limit is {limit}")
    body = request.stream.read(limit + 1)  # never more than the limit, whatever Content-Length said
    row = _connection(connection)
    if row is None or row.kind != S.CRM:
        return _refuse(404, f"no Salesforce connection named {connection!r}")
    if row.status == "disabled":
        return _refuse(403, f"connection {connection!r} is disabled")
    try:
        events = parse_outbound_message(
            dict(request.headers), body, org_id=row.external_org_id, max_bytes=limit, method=request.method
        )
    except WebhookRejected as exc:
        log.warning("outbound message for %s refused: %s", connection, exc.message)
        return _refuse(exc.status or 400, exc.message, exc.hint)
    accepted = accept(current_app.extensions["rapport_engine"], settings, row.id, events)
    log.info(
        "outbound message for %s: %d new, %d already stored", connection, accepted.new, accepted.duplicates
    )
    return Response(S.OUTBOUND_ACK, status=200, content_type=S.OUTBOUND_CONTENT_TYPE)
