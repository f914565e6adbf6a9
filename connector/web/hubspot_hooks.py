"""`POST /webhooks/hubspot`: verify HubSpot's v3 signature, persist the batch, acknowledge fast.

The portal id in the events names the connection; its signing secret (a private app's secret, an
OAuth app's client secret) checks the signature over the full URL HubSpot called (rebuilt from
RAPPORT_PUBLIC_URL behind a proxy). Anything refused gets a 4xx with the reason and is stored
nowhere; no CRM call happens in the request.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple
from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.engine import Engine

from adapters.hubspot import settings as hs
from adapters.hubspot import webhooks
from connector.db import make_engine
from connector.errors import WebhookRejected
from connector.model import Connection
from connector.vault import vault_for
from connector.webhooks import accept_values

log = logging.getLogger(__name__)
bp = Blueprint("hubspot_hooks", __name__)
_C = Connection.__table__  # type: ignore[attr-defined]


def _refuse(status: int, message: str, hint: str | None = None) -> tuple[Response, int]:
    return jsonify(error=message, hint=hint), status


_CACHE_S = 10.0  # a changed secret or a disabled connection takes effect within this long


class _Receiver(NamedTuple):
    """An active HubSpot connection of a portal and the secret its webhooks are signed with (None: not given)."""

    id: int
    name: str
    secret: str | None
    secret_key: str  # where the secret belongs: app_secret (private app) or client_secret (OAuth)


def _receivers_for(portal: str) -> list[_Receiver]:
    """The portal's active HubSpot connections, cached briefly per process."""
    cache: dict[str, tuple[float, list[_Receiver]]] = current_app.extensions.setdefault(
        "hubspot_webhook_receivers", {})
    hit = cache.get(portal)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    found = _load_receivers(portal)
    if len(cache) > 1000:
        cache.clear()
    cache[portal] = (time.monotonic() + _CACHE_S, found)
    return found


def _load_receivers(portal: str) -> list[_Receiver]:
    engine = current_app.extensions["rapport_engine"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_C.c.id, _C.c.name, _C.c.credentials_encrypted, _C.c.status).where(
            _C.c.kind == hs.CRM, _C.c.external_org_id == portal)).all()
    vault = vault_for(current_app.config["RAPPORT_SETTINGS"])
    out = []
    for row in rows:
        if row.status == "disabled":
            continue
        secrets = vault.decrypt(row.credentials_encrypted)
        out.append(_Receiver(int(row.id), str(row.name), webhooks.signing_secret(secrets),
                             webhooks.signing_secret_key(secrets)))
    return out


def _no_secret(receiver: _Receiver, portal: str) -> tuple[str, str]:
    """The refusal (message, hint) for a portal whose connection holds no secret to check signatures with."""
    if receiver.secret_key == "client_secret":
        what, how = "client secret", ("an OAuth app signs its webhooks with its client secret: connect again with "
                                      f"`rapport connect hubspot NEW_NAME --client-id ID --client-secret SECRET "
                                      f"--refresh-token TOKEN` (portal {portal})")
    else:
        what, how = "app secret", ("a private app signs its webhooks with its client secret (the app's Auth tab in "
                                   f"HubSpot): connect again with `rapport connect hubspot NEW_NAME --token PAT "
                                   f"--portal-id {portal} --app-secret SECRET`")
    return (f"HubSpot connection {receiver.name!r} (portal {portal}) has no {what} to check webhook signatures with",
            f"{how}, then disable {receiver.name!r} in the admin app")


def _events_engine() -> Engine:
    """The engine batches are stored through: PostgreSQL without a ping before each checkout (a
    batch that meets a stale connection is stored on a new one), so a batch costs one round trip."""
    engine: Engine | None = current_app.extensions.get("rapport_events_engine")
    if engine is None:
        url = current_app.config["RAPPORT_SETTINGS"].sqlalchemy_url
        made = current_app.extensions["rapport_engine"] if url.startswith("sqlite") else make_engine(url, pre_ping=False)
        engine = current_app.extensions.setdefault("rapport_events_engine", made)
    return engine


def _urls() -> list[str]:
    """The URLs HubSpot may have signed: the public URL first, then the one this request reached."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if not raw:
        query = request.query_string.decode("latin-1")
        raw = quote(request.script_root + request.path) + (f"?{query}" if query else "")
    public = current_app.config["RAPPORT_SETTINGS"].public_url.rstrip("/")
    return list(dict.fromkeys([public + raw, request.host_url.rstrip("/") + raw]))


@bp.post("/webhooks/hubspot")
def receive():  # type: ignore[no-untyped-def]
    """Verify, persist and acknowledge one batch of HubSpot events."""
    settings = current_app.config["RAPPORT_SETTINGS"]
    limit = settings.webhook_max_bytes
    if request.content_length is not None and request.content_length > limit:
        return _refuse(413, f"the request is {request.content_length} bytes; the limit is {limit}")
    body = request.stream.read(limit + 1)  # never more than the limit, whatever Content-Length said
    if len(body) > limit:
        return _refuse(413, f"the request is over the limit of {limit} bytes")
    headers = request.headers
    try:
        webhooks.check_timestamp(headers)
        events = webhooks.parse_body(body)
        portal = webhooks.portal_of(events)
        receivers = _receivers_for(portal)
        if not receivers:
            return _refuse(404, f"no active HubSpot connection for portal {portal}",
                           f"connect it with `rapport connect hubspot NAME ... --portal-id {portal}`")
        candidates = [(r.id, r.secret) for r in receivers if r.secret]
        if not candidates:
            # 409: the request may be fine; the connection's state (no secret) is what must change
            message, hint = _no_secret(receivers[0], portal)
            log.warning("HubSpot webhook refused: %s", message)
            return _refuse(409, message, hint)
        connection_id = _verified(candidates, body)
        values = [webhooks.row(e) for e in events]
    except WebhookRejected as exc:
        log.warning("HubSpot webhook refused: %s", exc.message)
        return _refuse(exc.status or 400, exc.message, exc.hint)
    accepted = accept_values(_events_engine(), settings, connection_id, values)
    log.info("HubSpot webhook for portal %s: %d new, %d already stored", portal, accepted.new, accepted.duplicates)
    return jsonify(accepted=accepted.new, duplicates=accepted.duplicates), 200


def _verified(candidates: list[tuple[int, str]], body: bytes) -> int:
    """The connection whose secret signed this request; the last refusal otherwise."""
    refusal: WebhookRejected | None = None
    for connection_id, secret in candidates:
        for url in _urls():
            try:
                webhooks.verify(dict(request.headers), body, url, request.method, secret)
                return connection_id
            except WebhookRejected as exc:
                refusal = exc
    assert refusal is not None
    raise refusal
