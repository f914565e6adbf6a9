"""The connections of a workspace as the admin pages show them: status, API budget today, last sync, webhooks."""

from __future__ import annotations

import logging
from datetime import datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.config import Settings
from connector.connections import set_status
from connector.model import SyncRun, utcnow
from connector.vault import vault_for
from connector.web.services.common import connection_row, iso

log = logging.getLogger(__name__)
_R = SyncRun.__table__  # type: ignore[attr-defined]
SYNC_KINDS = ("sync_incremental", "sync_full", "reconcile")


def _midnight() -> datetime:
    now = utcnow()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def _budget_today(settings: Settings, row: Any) -> dict[str, int]:
    """What the shared budget counted today: our calls, and the CRM's reported use and limit."""
    from connector.budget import RedisBudget, budget_for

    try:
        budget = budget_for(settings, row)
        return budget.today() if isinstance(budget, RedisBudget) else {}
    except Exception as exc:  # noqa: BLE001 - Redis down must not take the page down; the page says so
        log.warning("budget of connection %s unreadable: %s", row.id, exc)
        return {}


def _runs_today(engine: Engine, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_R.c.connection_id, sa.func.coalesce(sa.func.sum(_R.c.api_calls), 0))
                            .where(_R.c.connection_id.in_(ids), _R.c.started_at >= _midnight())
                            .group_by(_R.c.connection_id)).all()
    return {int(cid): int(n) for cid, n in rows}


def _last_syncs(engine: Engine, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    newest = (sa.select(_R.c.connection_id, sa.func.max(_R.c.id).label("id"))
              .where(_R.c.connection_id.in_(ids), _R.c.kind.in_(SYNC_KINDS)).group_by(_R.c.connection_id).subquery())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_R.c.connection_id, _R.c.id, _R.c.kind, _R.c.status, _R.c.started_at,
                                      _R.c.finished_at).join(newest, newest.c.id == _R.c.id)).all()
    return {int(r.connection_id): {"run_id": int(r.id), "kind": r.kind, "status": r.status,
                                   "started_at": iso(r.started_at), "finished_at": iso(r.finished_at)} for r in rows}


def _summary(row: Any, settings: Settings, calls: int, last: dict[str, Any] | None) -> dict[str, Any]:
    budget = _budget_today(settings, row)
    return {
        "id": int(row.id), "name": row.name, "kind": row.kind, "status": row.status,
        "status_detail": row.status_detail, "instance_url": row.instance_url,
        "external_org_id": row.external_org_id, "auth": (row.options or {}).get("auth"),
        "created_at": iso(row.created_at),
        "api_calls_today": calls,
        "budget_today": {"ours": budget.get("ours"), "crm_used": budget.get("used"), "crm_limit": budget.get("limit")},
        "last_sync": last,
    }


def list_connections(engine: Engine, settings: Settings, ws: int) -> list[dict[str, Any]]:
    """Every connection of the workspace with its status, today's API use and last sync."""
    from connector.model import Connection

    t = Connection.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.workspace_id == ws).order_by(t.c.id)).all()
    ids = [int(r.id) for r in rows]
    calls, last = _runs_today(engine, ids), _last_syncs(engine, ids)
    return [_summary(r, settings, calls.get(int(r.id), 0), last.get(int(r.id))) for r in rows]


def webhook_setup(settings: Settings, row: Any, *, reveal: bool) -> dict[str, Any]:
    """Where the CRM should send webhooks and how they are verified (the secret masked unless revealed)."""
    base = settings.public_url.rstrip("/")
    if row.kind == "hubspot":
        from adapters.hubspot import webhooks
        from adapters.hubspot.settings import auth_kind

        secrets = vault_for(settings).decrypt(row.credentials_encrypted) if row.credentials_encrypted else {}
        secret = webhooks.signing_secret(secrets)  # the one the receiver checks signatures with
        shown = secret if reveal else (f"••••••••{secret[-4:]}" if secret else None)
        app = "OAuth app's client secret" if auth_kind(secrets) == "oauth" else "private app's client secret"
        return {"url": f"{base}/webhooks/hubspot", "secret": shown, "secret_set": bool(secret),
                "verification": f"HubSpot signs each request (v3 signature) with the {app}",
                "portal_id": row.external_org_id}
    return {"url": f"{base}/webhooks/salesforce/{row.name}", "secret": None, "secret_set": False,
            "verification": f"Outbound Messages are accepted only from organization {row.external_org_id or '(unknown)'}",
            "organization_id": row.external_org_id}


def connection_detail(engine: Engine, settings: Settings, ws: int, connection_id: Any, *,
                      reveal: bool = False) -> dict[str, Any]:
    """One connection: its summary, the webhook setup, and its latest runs."""
    row = connection_row(engine, ws, connection_id)
    cid = int(row.id)
    detail = _summary(row, settings, _runs_today(engine, [cid]).get(cid, 0), _last_syncs(engine, [cid]).get(cid))
    detail["webhook"] = webhook_setup(settings, row, reveal=reveal)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(_R.c.id, _R.c.kind, _R.c.status, _R.c.started_at, _R.c.api_calls)
                            .where(_R.c.connection_id == cid).order_by(_R.c.id.desc()).limit(5)).all()
    detail["recent_runs"] = [{"id": int(r.id), "kind": r.kind, "status": r.status, "started_at": iso(r.started_at),
                              "api_calls": int(r.api_calls)} for r in runs]
    return detail


def set_enabled(engine: Engine, ws: int, connection_id: Any, enabled: bool) -> None:
    """Disable a connection (webhooks refused, nothing synced) or make it active again."""
    row = connection_row(engine, ws, connection_id)
    set_status(engine, int(row.id), "active" if enabled else "disabled",
               None if enabled else "disabled from the admin app")
