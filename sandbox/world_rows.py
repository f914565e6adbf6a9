"""World bundles as unified-model rows, ready for `connector.store.upsert_records` (no CRM in between)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox.world_records import Bundle


def unified_rows(bundle: Bundle, connection_id: int, *, synced_at: datetime | None = None) -> dict[str, list[dict]]:
    """Rows per unified object (account, contact, deal, case, activity) keyed by world keys."""
    synced = synced_at or datetime.now(UTC)
    a = bundle.account
    owner = a.owner_key
    common: dict[str, Any] = {
        "connection_id": connection_id,
        "is_deleted": False,
        "merged_into": None,
        "synced_at": synced,
    }
    accounts = [
        {
            **common,
            "external_id": a.key,
            "name": a.name,
            "domain": a.domain,
            "industry": a.industry,
            "employees": a.employees,
            "annual_revenue": a.annual_revenue,
            "owner_id": owner,
            "created_at": a.created_at,
            "modified_at": a.created_at,
            "custom": {},
            "raw": {"key": a.key, "name": a.name, "domain": a.domain, "employees": a.employees},
        }
    ]
    contacts = [
        {
            **common,
            "external_id": c.key,
            "account_external_id": c.account_key,
            "account_id": None,
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "title": c.title,
            "owner_id": owner,
            "last_activity_at": c.last_activity_at,
            "created_at": c.created_at,
            "modified_at": c.last_activity_at or c.created_at,
            "custom": {},
            "raw": {"key": c.key, "email": c.email},
        }
        for c in bundle.contacts
    ]
    deals = [
        {
            **common,
            "external_id": d.key,
            "account_external_id": d.account_key,
            "account_id": None,
            "contact_external_id": d.contact_key,
            "name": d.name,
            "amount": d.amount,
            "currency": "USD",
            "stage": d.stage,
            "is_closed": d.is_closed,
            "is_won": d.is_won,
            "close_date": d.close_date,
            "deal_type": d.deal_type,
            "owner_id": owner,
            "created_at": d.created_at,
            "modified_at": d.closed_at or d.created_at,
            "custom": {},
            "raw": {"key": d.key, "amount": d.amount, "stage": d.stage, "type": d.deal_type},
        }
        for d in bundle.deals
    ]
    cases = [
        {
            **common,
            "external_id": k.key,
            "account_external_id": k.account_key,
            "account_id": None,
            "contact_external_id": k.contact_key,
            "subject": k.subject,
            "priority": k.priority,
            "status": k.status,
            "is_closed": k.is_closed,
            "is_escalated": k.is_escalated,
            "opened_at": k.opened_at,
            "closed_at": k.closed_at,
            "reopen_count": k.reopen_count,
            "satisfaction": k.satisfaction,
            "created_at": k.opened_at,
            "modified_at": k.closed_at or k.opened_at,
            "custom": {},
            "raw": {"key": k.key, "priority": k.priority, "status": k.status},
        }
        for k in bundle.cases
    ]
    activities = [
        {
            **common,
            "external_id": t.key,
            "account_external_id": t.account_key,
            "contact_external_id": t.contact_key,
            "kind": t.kind,
            "subject": t.subject,
            "occurred_at": t.occurred_at,
            "created_at": t.occurred_at,
            "modified_at": t.occurred_at,
            "custom": {},
            "raw": {"key": t.key, "kind": t.kind},
        }
        for t in bundle.activities
    ]
    return {"account": accounts, "contact": contacts, "deal": deals, "case": cases, "activity": activities}
