"""Realistic random activity in the org, seeded: deals move through stages or change amount, cases
are closed, reopened, escalated, rated or opened, contacts and tasks are added, and now and then a
record is deleted or two duplicates are merged. Every change goes through the org's normal write
path, so stamps move and outbound messages fire.
"""

from __future__ import annotations

import random
from typing import Any

from sandbox.salesforce.schema import OPEN_STAGES
from sandbox.salesforce.store import Org

KINDS: dict[str, int] = {
    "deal_stage": 22, "deal_amount": 10, "close_case": 14, "new_case": 10, "new_contact": 8, "escalate": 7,
    "reopen_case": 5, "csat": 6, "new_task": 8, "delete": 5, "merge": 5,
}
_FIRST = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Robin", "Avery")
_LAST = ("Reed", "Hart", "Lane", "Fox", "Stone", "Wells", "Hayes", "Cole", "Page", "Shaw")
_SUBJECTS = ("Sync delayed", "Export stuck", "Login loop", "Wrong invoice total", "API timeout", "Report missing data")


class Mutator:
    """Applies N random changes; the same seed on the same data gives the same changes."""

    def __init__(self, org: Org, seed: int = 0) -> None:
        self.org = org
        self.rng = random.Random(seed)

    def run(self, count: int, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """Make `count` changes of the given kinds (all kinds by default); returns what changed."""
        unknown = set(kinds or []) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown mutation kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        names = kinds or list(KINDS)
        weights = [KINDS[k] for k in names]
        self._pool: dict[str, list[str]] = {}
        changes = []
        for _ in range(count):
            kind = self.rng.choices(names, weights)[0]
            change = getattr(self, kind)()
            if change:
                changes.append({"kind": kind, **change})
        return changes

    def _pick(self, name: str, test: Any = None, tries: int = 40) -> dict[str, Any] | None:
        pool = self._pool.get(name)
        if pool is None:
            pool = self._pool[name] = sorted(self.org.table(name).rows)
        for _ in range(tries):
            if not pool:
                return None
            rec = self.org.get(self.rng.choice(pool))
            if rec and not rec.get("IsDeleted") and (test is None or test(rec)):
                return rec
        return None

    def _update(self, name: str, rec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        self.org.replace(name, rec["Id"], changes)
        return {"object": name, "id": rec["Id"], "changes": changes}

    def deal_stage(self) -> dict[str, Any] | None:
        rec = self._pick("Opportunity", lambda r: not r.get("IsClosed"))
        if rec is None:
            return None
        i = OPEN_STAGES.index(rec["StageName"]) if rec.get("StageName") in OPEN_STAGES else 0
        roll = self.rng.random()
        stage = "Closed Won" if roll < 0.25 else "Closed Lost" if roll < 0.4 else OPEN_STAGES[min(i + 1, len(OPEN_STAGES) - 1)]
        return self._update("Opportunity", rec, {"StageName": stage})

    def deal_amount(self) -> dict[str, Any] | None:
        rec = self._pick("Opportunity", lambda r: not r.get("IsClosed") and r.get("Amount"))
        if rec is None:
            return None
        return self._update("Opportunity", rec, {"Amount": round(rec["Amount"] * self.rng.uniform(0.7, 1.4), 2)})

    def close_case(self) -> dict[str, Any] | None:
        rec = self._pick("Case", lambda r: not r.get("IsClosed"))
        return self._update("Case", rec, {"Status": "Closed"}) if rec else None

    def reopen_case(self) -> dict[str, Any] | None:
        rec = self._pick("Case", lambda r: r.get("IsClosed"))
        if rec is None:
            return None
        return self._update("Case", rec, {"Status": "Working", "Reopen_Count__c": (rec.get("Reopen_Count__c") or 0) + 1})

    def escalate(self) -> dict[str, Any] | None:
        rec = self._pick("Case", lambda r: not r.get("IsClosed") and not r.get("IsEscalated"))
        return self._update("Case", rec, {"Status": "Escalated", "IsEscalated": True}) if rec else None

    def csat(self) -> dict[str, Any] | None:
        rec = self._pick("Case", lambda r: r.get("IsClosed") and r.get("CSAT__c") is None)
        return self._update("Case", rec, {"CSAT__c": float(self.rng.randint(1, 5))}) if rec else None

    def new_case(self) -> dict[str, Any] | None:
        contact = self._pick("Contact", lambda r: r.get("AccountId"))
        if contact is None:
            return None
        rec = self.org.insert("Case", {
            "AccountId": contact["AccountId"], "ContactId": contact["Id"], "Subject": self.rng.choice(_SUBJECTS),
            "Priority": self.rng.choice(("Low", "Medium", "Medium", "High", "Urgent")), "Status": "New",
            "Origin": self.rng.choice(("Email", "Phone", "Web")), "Reopen_Count__c": 0.0,
            "OwnerId": contact.get("OwnerId"),
        })
        return {"object": "Case", "id": rec["Id"], "created": True}

    def new_contact(self) -> dict[str, Any] | None:
        account = self._pick("Account")
        if account is None:
            return None
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        domain = (account.get("Website") or "example.com").removeprefix("www.")
        rec = self.org.insert("Contact", {
            "AccountId": account["Id"], "FirstName": first, "LastName": last, "OwnerId": account.get("OwnerId"),
            "Email": f"{first}.{last}{self.rng.randint(1, 999)}@{domain}".lower(), "Title": "Manager",
        })
        return {"object": "Contact", "id": rec["Id"], "created": True}

    def new_task(self) -> dict[str, Any] | None:
        contact = self._pick("Contact", lambda r: r.get("AccountId"))
        if contact is None:
            return None
        today = self.org.clock.now().date().isoformat()
        rec = self.org.insert("Task", {
            "WhatId": contact["AccountId"], "WhoId": contact["Id"], "Subject": "Follow-up call", "Status": "Completed",
            "Priority": "Normal", "Type": "Call", "TaskSubtype": "Call", "ActivityDate": today,
            "OwnerId": contact.get("OwnerId"),
        })
        return {"object": "Task", "id": rec["Id"], "created": True}

    def delete(self) -> dict[str, Any] | None:
        name = self.rng.choice(("Contact", "Opportunity", "Case", "Contact"))
        rec = self._pick(name)
        if rec is None:
            return None
        self.org.delete(name, rec["Id"])
        return {"object": name, "id": rec["Id"], "deleted": True}

    def merge(self) -> dict[str, Any] | None:
        name = self.rng.choice(("Account", "Contact"))
        winner = self._pick(name)
        if winner is None:
            return None
        if name == "Contact":  # duplicates of a person live at the same account
            siblings = sorted(i for i in self.org.children.get(winner.get("AccountId") or "", ())
                              if i.startswith("003") and i != winner["Id"])
            live = [i for i in siblings if not (self.org.get(i) or {}).get("IsDeleted")]
            loser = self.org.get(self.rng.choice(live)) if live else None
        else:
            loser = self._pick(name, lambda r: r["Id"] != winner["Id"])
        if loser is None:
            return None
        moved = self.org.merge(name, winner["Id"], [loser["Id"]])
        return {"object": name, "id": loser["Id"], "merged_into": winner["Id"], "children_moved": len(moved)}
