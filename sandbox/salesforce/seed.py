"""Turns the synthetic world into org records: users for the sales reps, then per account bundle
the Account, Contacts, Opportunities, Cases (with CSAT__c and Reopen_Count__c) and Tasks, with the
world's own dates as CreatedDate / LastModifiedDate / SystemModstamp.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sandbox.salesforce.schema import OPEN_STAGES
from sandbox.salesforce.store import Org
from sandbox.salesforce.values import fmt_dt

DEAL_TYPES = {"new": "New Customer", "renewal": "Renewal", "expansion": "Existing Customer - Upgrade"}
PRIORITIES = {"low": "Low", "medium": "Medium", "high": "High", "urgent": "Urgent"}
STATUSES = {"new": "New", "working": "Working", "escalated": "Escalated", "closed": "Closed"}
ACTIVITY = {"call": ("Call", "Call"), "email": ("Email", "Email"), "meeting": ("Meeting", "Task")}
ORIGINS = ("Email", "Phone", "Web")


def _pick(key: str, options: tuple[str, ...]) -> str:
    return options[zlib.crc32(key.encode()) % len(options)]


def seed_users(org: Org, owners: Iterable[Any], api_username: str) -> dict[str, str]:
    """The API user (org.user_id) and one user per sales rep; returns rep key -> user id."""
    api = org.insert("User", {"Username": api_username, "FirstName": "Rapport", "LastName": "Integration",
                              "Email": api_username, "Alias": "rapport", "IsActive": True, "Title": "Integration User"},
                     notify=False)
    org.user_id = api["Id"]
    org.insert("Organization", {"Id": org.org_id, "Name": "Rapport Sandbox", "OrganizationType": "Enterprise Edition",
                                "InstanceName": "SBX1", "IsSandbox": True}, notify=False)
    users = {}
    for rep in owners:
        first, _, last = rep.name.partition(" ")
        users[rep.key] = org.insert("User", {
            "Username": rep.email, "FirstName": first, "LastName": last or first, "Email": rep.email,
            "Alias": (first[:1] + last[:4]).lower(), "IsActive": True, "Title": "Account Executive",
        }, notify=False)["Id"]
    return users


def seed_world(org: Org, bundles: Iterable[Any], users: dict[str, str]) -> tuple[dict[str, str], datetime | None]:
    """Insert every bundle; returns world key -> record id and the latest stamp written."""
    keys: dict[str, str] = {}
    latest: datetime | None = None

    def put(name: str, key: str, values: dict[str, Any], created: datetime, modified: datetime) -> str:
        nonlocal latest
        stamp = fmt_dt(modified)
        values.update(CreatedDate=fmt_dt(created), LastModifiedDate=stamp, SystemModstamp=stamp)
        values.setdefault("CreatedById", org.user_id)
        values.setdefault("LastModifiedById", org.user_id)
        values.setdefault("OwnerId", org.user_id)
        rid = org.load(name, values)
        keys[key] = rid
        if latest is None or modified > latest:
            latest = modified
        return rid

    with org.lock:
        for b in bundles:
            _bundle(b, users, keys, put)
    org.reindex()
    return keys, latest


def _bundle(b: Any, users: dict[str, str], keys: dict[str, str], put: Any) -> None:
    """Insert one account bundle."""
    a = b.account
    owner = users.get(a.owner_key)
    last_activity = max((x.occurred_at for x in b.activities), default=None)
    account_id = put("Account", a.key, {
        "Name": a.name, "Industry": a.industry, "NumberOfEmployees": a.employees,
        "AnnualRevenue": float(a.annual_revenue), "Website": f"www.{a.domain}", "OwnerId": owner,
        "Type": "Customer - Direct" if any(d.is_won for d in b.deals) else "Prospect",
        "LastActivityDate": last_activity.date().isoformat() if last_activity else None,
        "CreatedById": owner, "LastModifiedById": owner,
    }, a.created_at, a.created_at)
    for c in b.contacts:
        put("Contact", c.key, {
            "AccountId": account_id, "FirstName": c.first_name, "LastName": c.last_name, "Email": c.email,
            "Title": c.title, "OwnerId": owner, "CreatedById": owner, "LastModifiedById": owner,
            "LastActivityDate": c.last_activity_at.date().isoformat() if c.last_activity_at else None,
        }, c.created_at, c.created_at)
    for d in b.deals:
        stage = "Closed Won" if d.stage == "won" else "Closed Lost" if d.stage == "lost" else _pick(d.key, OPEN_STAGES)
        put("Opportunity", d.key, {
            "AccountId": account_id, "ContactId": keys.get(d.contact_key or ""), "Name": d.name,
            "Amount": round(float(d.amount), 2), "Type": DEAL_TYPES.get(d.deal_type, d.deal_type), "StageName": stage,
            "CloseDate": d.close_date.isoformat(), "OwnerId": owner, "CreatedById": owner, "LastModifiedById": owner,
        }, d.created_at, d.closed_at or d.created_at)
    for k in b.cases:
        put("Case", k.key, {
            "AccountId": account_id, "ContactId": keys.get(k.contact_key or ""), "Subject": k.subject,
            "Priority": PRIORITIES.get(k.priority, k.priority), "Status": STATUSES.get(k.status, k.status),
            "IsEscalated": bool(k.is_escalated), "Origin": _pick(k.key, ORIGINS), "OwnerId": owner,
            "ClosedDate": fmt_dt(k.closed_at) if k.closed_at else None, "CSAT__c": k.satisfaction,
            "Reopen_Count__c": float(k.reopen_count), "CreatedById": owner, "LastModifiedById": owner,
        }, k.opened_at, k.closed_at or k.opened_at)
    for t in b.activities:
        type_, subtype = ACTIVITY.get(t.kind, ("Other", "Task"))
        when = fmt_dt(t.occurred_at)
        put("Task", t.key, {
            "WhatId": account_id, "WhoId": keys.get(t.contact_key or ""), "Subject": t.subject,
            "ActivityDate": t.occurred_at.date().isoformat(), "Status": "Completed", "Priority": "Normal",
            "Type": type_, "TaskSubtype": subtype, "OwnerId": owner, "CompletedDateTime": when,
            "CreatedById": owner, "LastModifiedById": owner,
        }, t.occurred_at, t.occurred_at)
