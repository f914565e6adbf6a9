"""World bundles to HubSpot records: companies, contacts, deals, tickets and engagements, with associations.

World keys map to HubSpot ids in `Seeded.ids`. Values are HubSpot's own: industries and deal stages
by their internal names, priorities upper-case, satisfaction in the portal's `csat_score` property.
"""

from __future__ import annotations

import gc
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.associations import default_type, primary_type
from sandbox.hubspot.records import Record
from sandbox.hubspot.rollups import activity_values, deal_values
from sandbox.hubspot.store import Portal
from sandbox.hubspot.values import iso, ms_of, number_text

INDUSTRIES = {
    "Software": "COMPUTER_SOFTWARE", "Manufacturing": "MECHANICAL_OR_INDUSTRIAL_ENGINEERING", "Retail": "RETAIL",
    "Healthcare": "HOSPITAL_HEALTH_CARE", "Financial Services": "FINANCIAL_SERVICES",
    "Logistics": "LOGISTICS_AND_SUPPLY_CHAIN", "Education": "EDUCATION_MANAGEMENT", "Energy": "OIL_ENERGY",
    "Media": "MEDIA_PRODUCTION", "Telecommunications": "TELECOMMUNICATIONS", "Construction": "CONSTRUCTION",
    "Hospitality": "HOSPITALITY", "Agriculture": "FARMING", "Insurance": "INSURANCE",
    "Professional Services": "MANAGEMENT_CONSULTING", "Government": "GOVERNMENT_ADMINISTRATION",
}
DEAL_TYPES = {"new": "newbusiness", "renewal": "existingbusiness", "expansion": "existingbusiness"}
OPEN_DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
                    "contractsent")
PROBABILITY = {"appointmentscheduled": "0.2", "qualifiedtobuy": "0.4", "presentationscheduled": "0.6",
               "decisionmakerboughtin": "0.8", "contractsent": "0.9", "closedwon": "1", "closedlost": "0"}
TICKET_STAGE = {"new": "1", "working": "2", "escalated": "3", "closed": "4"}
BILLING = ("invoice", "billing")
ENGAGEMENT = {"call": ("calls", "hs_call_title"), "email": ("emails", "hs_email_subject"),
              "meeting": ("meetings", "hs_meeting_title")}
OWNER_BASE = 31_000_001


@dataclass
class Seeded:
    """What seeding produced: world key -> (object type, HubSpot id), and the owners."""

    ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    owners: list[dict[str, Any]] = field(default_factory=list)
    owner_ids: dict[str, str] = field(default_factory=dict)


def _pick(key: str, options: tuple[str, ...]) -> str:
    return options[zlib.crc32(key.encode()) % len(options)]


def owners_json(world_owners: Iterable[Any], created: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """World sales reps as HubSpot owners (`/crm/v3/owners` shape) and key -> owner id."""
    out, ids = [], {}
    for i, o in enumerate(world_owners):
        first, _, last = o.name.partition(" ")
        oid = str(OWNER_BASE + i)
        ids[o.key] = oid
        out.append({"id": oid, "email": o.email, "firstName": first, "lastName": last, "userId": 9_100_001 + i,
                    "userIdIncludingInactive": 9_100_001 + i, "type": "PERSON", "createdAt": iso(created),
                    "updatedAt": iso(created), "archived": False, "teams": []})
    return out, ids


class Seeder:
    """Writes bundles straight into a portal (no events, no validation: the world is trusted)."""

    def __init__(self, portal: Portal, seeded: Seeded, now_ms: int, engagements: bool = True) -> None:
        self.portal = portal
        self.engagements = engagements
        self.seeded = seeded
        self.now_ms = now_ms
        self._linkers: dict[tuple[str, str, bool], Callable[[int, int], None]] = {}

    def _put(self, object_type: str, key: str, props: dict[str, str], created: int, modified: int) -> Record:
        table = self.portal.tables[object_type]
        rid = table.new_id()
        created, modified = min(created, self.now_ms), min(max(modified, created), self.now_ms)
        rec = Record(rid, {k: v for k, v in props.items() if v}, created, modified)
        table.records[rid] = rec  # indexes are built once at the end (Table.rebuild)
        self.seeded.ids[key] = (object_type, rid)
        return rec

    def _link(self, from_type: str, from_id: int, to_type: str, to_id: int, primary: bool) -> None:
        link = self._linkers.get((from_type, to_type, primary))
        if link is None:
            plain, label = default_type(from_type, to_type), primary_type(from_type, to_type)
            assert plain is not None
            types = (plain.type_id, label.type_id) if primary and label is not None else (plain.type_id,)
            link = self._linkers[(from_type, to_type, primary)] = self.portal.assoc.linker(from_type, to_type, types)
        link(from_id, to_id)

    def add(self, bundle: Any) -> None:
        """One account bundle and everything attached to it.

        The company's rollups are computed here from the bundle, as the store would recompute them,
        and its last-modified stamp is the latest change they saw (a contact or deal added, a deal
        closed, an activity logged).
        """
        a = bundle.account
        owner = self.seeded.owner_ids.get(a.owner_key, "")
        stamps = [(ENGAGEMENT[x.kind][0], ms_of(x.occurred_at)) for x in bundle.activities]
        last_activity = max((ms for _, ms in stamps), default=0)
        created = ms_of(a.created_at)
        company = self._put("companies", a.key, {
            "name": a.name, "domain": a.domain, "website": f"https://www.{a.domain}",
            "industry": INDUSTRIES.get(a.industry, ""), "numberofemployees": str(a.employees),
            "annualrevenue": number_text(a.annual_revenue), "hubspot_owner_id": owner, "lifecyclestage": "customer",
        }, created, created)
        contacts: dict[str, int] = {}
        changes = [created, last_activity]
        for c in bundle.contacts:
            seen = ms_of(c.last_activity_at) if c.last_activity_at else 0
            rec = self._put("contacts", c.key, {
                "email": c.email.lower(), "firstname": c.first_name, "lastname": c.last_name, "jobtitle": c.title,
                "company": a.name, "associatedcompanyid": str(company.id), "hubspot_owner_id": owner,
                "lifecyclestage": "customer", "hs_email_domain": c.email.split("@", 1)[-1].lower(),
                # its calls, emails and meetings (all of them: the world has no tasks or notes)
                "notes_last_updated": iso(seen) if seen else "",
                "hs_last_sales_activity_timestamp": iso(seen) if seen else "",
            }, ms_of(c.created_at), max(ms_of(c.created_at), seen))
            contacts[c.key] = rec.id
            changes.append(rec.created)
            if seen and not self.engagements:
                self.portal.unloaded_activity[("contacts", rec.id)] = seen
            self._link("contacts", rec.id, "companies", company.id, primary=True)
        deals = [self._deal(d, company.id, contacts, owner) for d in bundle.deals]
        changes += [max(r.created, r.modified) for r in deals]
        values = {"num_associated_contacts": str(len(contacts)), **deal_values(r.props for r in deals),
                  **activity_values(stamps)}
        company.props.update((k, v) for k, v in values.items() if v)
        company.modified = min(max(changes), self.now_ms)
        if last_activity and not self.engagements:
            self.portal.unloaded_activity[("companies", company.id)] = last_activity
        for k in bundle.cases:
            self._ticket(k, company.id, contacts, owner)
        for act in bundle.activities if self.engagements else ():
            object_type, title = ENGAGEMENT[act.kind]
            at = ms_of(act.occurred_at)
            rec = self._put(object_type, act.key, {"hs_timestamp": iso(at), title: act.subject,
                                                   "hubspot_owner_id": owner}, at, at)
            self._link(object_type, rec.id, "companies", company.id, primary=False)
            if act.contact_key in contacts:
                self._link(object_type, rec.id, "contacts", contacts[act.contact_key], primary=False)

    def _deal(self, d: Any, company_id: int, contacts: dict[str, int], owner: str) -> Record:
        stage = "closedwon" if d.stage == "won" else "closedlost" if d.stage == "lost" else \
            _pick(d.key, OPEN_DEAL_STAGES)
        created = ms_of(d.created_at)
        closed = ms_of(d.closed_at) if d.closed_at else None
        rec = self._put("deals", d.key, {
            "dealname": d.name, "amount": number_text(round(d.amount, 2)), "deal_currency_code": "USD",
            "pipeline": "default", "dealstage": stage, "closedate": iso(ms_of(d.close_date)),
            "dealtype": DEAL_TYPES.get(d.deal_type, ""), "hubspot_owner_id": owner,
            "hs_is_closed": "true" if d.is_closed else "false", "hs_is_closed_won": "true" if d.is_won else "false",
            "hs_deal_stage_probability": PROBABILITY[stage],
            "hs_closed_won_date": iso(closed) if d.is_won and closed else "",
            "hs_primary_associated_company": str(company_id),
        }, created, closed or created)
        self._link("deals", rec.id, "companies", company_id, primary=True)
        if d.contact_key in contacts:
            self._link("deals", rec.id, "contacts", contacts[d.contact_key], primary=False)
        return rec

    def _ticket(self, k: Any, company_id: int, contacts: dict[str, int], owner: str) -> None:
        opened = ms_of(k.opened_at)
        closed = ms_of(k.closed_at) if k.closed_at else None
        subject = k.subject.lower()
        category = "BILLING_ISSUE" if any(w in subject for w in BILLING) else \
            "FEATURE_REQUEST" if "feature" in subject else "PRODUCT_ISSUE"
        rec = self._put("tickets", k.key, {
            "subject": k.subject, "content": f"Customer reported: {k.subject}.", "hs_pipeline": "0",
            "hs_pipeline_stage": TICKET_STAGE[k.status], "hs_ticket_priority": k.priority.upper(),
            "hs_ticket_category": category, "source_type": _pick(k.key, ("EMAIL", "CHAT", "PHONE", "FORM")),
            "closed_date": iso(closed) if closed else "",
            "time_to_close": str(max(0, closed - opened)) if closed else "", "hubspot_owner_id": owner,
            "csat_score": number_text(k.satisfaction) if k.satisfaction is not None else "",
            "is_escalated": "true" if k.is_escalated else "false", "reopen_count": str(k.reopen_count),
            "hs_primary_company_id": str(company_id),
        }, opened, closed or opened)
        self._link("tickets", rec.id, "companies", company_id, primary=True)
        if k.contact_key in contacts:
            self._link("tickets", rec.id, "contacts", contacts[k.contact_key], primary=False)


def seed(portal: Portal, bundles: Iterable[Any], world_owners: Iterable[Any], now_ms: int,
         engagements: bool = True) -> Seeded:
    """Fill an empty portal from world bundles (calls, emails and meetings only if `engagements`)."""
    seeded = Seeded()
    seeded.owners, seeded.owner_ids = owners_json(world_owners, now_ms)
    seeder = Seeder(portal, seeded, now_ms, engagements)
    with portal.lock:
        gc_was_on = gc.isenabled()
        gc.disable()  # millions of small objects, no cycles: collection passes would only slow this down
        try:
            for bundle in bundles:
                seeder.add(bundle)
            for table in portal.tables.values():
                table.rebuild()
        finally:
            if gc_was_on:
                gc.enable()
            gc.freeze()  # keep the seeded portal out of later collections
    return seeded
