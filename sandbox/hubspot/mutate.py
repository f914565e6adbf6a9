"""Realistic random changes, as the portal's users make them in the HubSpot UI (changeSource CRM_UI).

Deals move through stages and close won or lost, tickets are opened, escalated, closed and reopened,
contacts are added, archived, restored and merged, calls are logged. Seeded, so a run can be repeated.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sandbox.hubspot.records import Record
from sandbox.hubspot.seed import OPEN_DEAL_STAGES
from sandbox.hubspot.store import Portal, Source
from sandbox.hubspot.values import iso

WEIGHTS = {
    "deal_stage": 20, "deal_won": 8, "deal_lost": 6, "ticket_new": 15, "ticket_escalate": 10,
    "ticket_close": 12, "ticket_reopen": 4, "contact_new": 10, "archive": 5, "restore": 1, "merge": 3,
    "call_logged": 7,
}
SUBJECTS = ("Cannot export report", "Login loop after SSO change", "Invoice shows wrong VAT", "Sync delayed",
            "Feature request: bulk edit", "Dashboard timeout", "API returns 500")
NAMES = ("Ava Reyes", "Noor Haddad", "Liam Berg", "Mina Park", "Oscar Lind", "Iris Novak", "Theo Marsh")


class Mutator:
    """Applies N weighted random changes through the portal's write methods."""

    def __init__(self, portal: Portal, owners: list[dict[str, Any]], seed: int) -> None:
        self.portal = portal
        self.rng = random.Random(seed)
        self.owner_user_ids = [o["userId"] for o in owners] or [9_100_001]

    def _source(self) -> Source:
        return Source("CRM_UI", f"userId:{self.rng.choice(self.owner_user_ids)}")

    def _any(self, object_type: str, test: Callable[[Record], bool] = lambda r: True, tries: int = 40) -> Record | None:
        table = self.portal.tables[object_type]
        if not table.live:
            return None
        for _ in range(tries):
            rec = table.records[table.live[self.rng.randrange(len(table.live))]]
            if test(rec):
                return rec
        return None

    def _live_targets(self, object_type: str, rec_id: int, to_type: str) -> list[int]:
        """Associated records that are live: archived ones keep their edges (a restore brings them back)."""
        records = self.portal.tables[to_type].records
        return [i for i in self.portal.assoc.target_ids(object_type, rec_id, to_type)
                if i in records and not records[i].archived]

    def _company_of(self, object_type: str, rec: Record) -> int | None:
        targets = self._live_targets(object_type, rec.id, "companies")
        return targets[0] if targets else None

    def run(self, count: int, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """Apply `count` changes; returns what was done (kind, object type, id)."""
        names = [k for k in (kinds or list(WEIGHTS)) if k in WEIGHTS]
        weights = [WEIGHTS[k] for k in names]
        done = []
        with self.portal.lock:
            for _ in range(count):
                first = self.rng.choices(names, weights)[0]
                # a kind with nothing to act on (no open deal left, say) falls back to the others
                for kind in [first] + self.rng.sample([n for n in names if n != first], len(names) - 1):
                    result = getattr(self, kind)()
                    if result is not None:
                        done.append({"kind": kind, "objectType": result[0], "id": str(result[1])})
                        break
                else:
                    break  # nothing left that any kind could change
        return done

    def _set(self, object_type: str, rec: Record, values: dict[str, str]) -> tuple[str, int]:
        self.portal.update(object_type, rec, values, self._source())
        return object_type, rec.id

    def deal_stage(self):
        rec = self._any("deals", lambda r: r.props.get("dealstage") in OPEN_DEAL_STAGES[:-1])
        if rec is None:
            return None
        nxt = OPEN_DEAL_STAGES[OPEN_DEAL_STAGES.index(rec.props["dealstage"]) + 1]
        return self._set("deals", rec, {"dealstage": nxt})

    def _close_deal(self, stage: str):
        rec = self._any("deals", lambda r: r.props.get("dealstage") in OPEN_DEAL_STAGES)
        if rec is None:
            return None
        return self._set("deals", rec, {"dealstage": stage, "closedate": iso(self.portal.clock())})

    def deal_won(self):
        return self._close_deal("closedwon")

    def deal_lost(self):
        return self._close_deal("closedlost")

    def ticket_new(self):
        company = self._any("companies")
        if company is None:
            return None
        values = {"subject": self.rng.choice(SUBJECTS), "content": "Reported by phone.", "hs_pipeline": "0",
                  "hs_pipeline_stage": "1", "hs_ticket_priority": self.rng.choice(["LOW", "MEDIUM", "HIGH"]),
                  "hs_ticket_category": "PRODUCT_ISSUE", "source_type": "PHONE", "is_escalated": "false",
                  "reopen_count": "0"}
        assocs = [("companies", company.id, 339), ("companies", company.id, 26)]
        contacts = self._live_targets("companies", company.id, "contacts")
        if contacts:
            assocs.append(("contacts", self.rng.choice(contacts), 16))
        rec = self.portal.create("tickets", values, self._source(), associations=assocs)
        return "tickets", rec.id

    def ticket_escalate(self):
        rec = self._any("tickets", lambda r: r.props.get("hs_pipeline_stage") != "4"
                        and r.props.get("is_escalated") != "true")
        if rec is None:
            return None
        priority = "URGENT" if rec.props.get("hs_ticket_priority") == "HIGH" else "HIGH"
        return self._set("tickets", rec, {"hs_ticket_priority": priority, "is_escalated": "true",
                                          "hs_pipeline_stage": "3"})

    def ticket_close(self):
        rec = self._any("tickets", lambda r: r.props.get("hs_pipeline_stage") != "4")
        if rec is None:
            return None
        values = {"hs_pipeline_stage": "4"}
        if self.rng.random() < 0.4:
            values["csat_score"] = str(self.rng.choice([1, 2, 3, 4, 4, 5, 5]))
        return self._set("tickets", rec, values)

    def ticket_reopen(self):
        rec = self._any("tickets", lambda r: r.props.get("hs_pipeline_stage") == "4")
        if rec is None:
            return None
        count = int(rec.props.get("reopen_count", "0") or 0) + 1
        return self._set("tickets", rec, {"hs_pipeline_stage": "1", "reopen_count": str(count)})

    def contact_new(self):
        company = self._any("companies", lambda r: bool(r.props.get("domain")))
        if company is None:
            return None
        first, last = self.rng.choice(NAMES).split()
        email = f"{first}.{last}.{self.rng.randrange(10**6)}@{company.props['domain']}".lower()
        rec = self.portal.create("contacts", {"email": email, "firstname": first, "lastname": last,
                                              "jobtitle": "Buyer", "lifecyclestage": "customer"}, self._source(),
                                 associations=[("companies", company.id, 279), ("companies", company.id, 1)])
        return "contacts", rec.id

    def archive(self):
        object_type = self.rng.choice(["contacts", "deals"])
        rec = self._any(object_type)
        if rec is None:
            return None
        self.portal.archive(object_type, rec, self._source())
        return object_type, rec.id

    def restore(self):
        """Someone brings a deleted contact or deal back from the recycle bin."""
        object_type = self.rng.choice(["contacts", "deals"])
        table = self.portal.tables[object_type]
        candidates = [i for i in table.archived if not table.records[i].merged_into]
        if not candidates:
            return None
        rec = table.records[self.rng.choice(candidates)]
        if object_type == "contacts" and rec.props.get("email") in table.unique["email"]:
            return None  # the address was reused meanwhile
        self.portal.restore(object_type, rec, self._source())
        return object_type, rec.id

    def merge(self):
        primary = self._any("contacts", lambda r: self._company_of("contacts", r) is not None)
        if primary is None:
            return None
        company = self._company_of("contacts", primary)
        others = [c for c in self._live_targets("companies", company, "contacts") if c != primary.id]
        if not others:
            return None
        loser = self.portal.tables["contacts"].records[self.rng.choice(others)]
        return "contacts", self.portal.merge("contacts", primary, loser, self._source()).id

    def call_logged(self):
        """A rep logs a call with a contact and their company; HubSpot moves the last activity date of both."""
        contact = self._any("contacts", lambda r: self._company_of("contacts", r) is not None)
        if contact is None:
            return None
        company = self._company_of("contacts", contact)
        stamp = self.portal.clock()
        rec = self.portal.create("calls", {"hs_timestamp": iso(stamp), "hs_call_title": "Check-in call",
                                           "hs_call_body": "Logged from the phone app."}, self._source(),
                                 associations=[("contacts", contact.id, 194), ("companies", company, 182)])
        return "calls", rec.id
