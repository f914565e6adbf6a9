"""The org's data in memory: one table per object with an id index, a (SystemModstamp, Id) ordered
index for incremental queries, a parent -> children index, the deletion log and change listeners.

Records are plain dicts replaced on every write (copy on write), so readers never see half a write.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from sandbox.salesforce.ids import IdFactory
from sandbox.salesforce.schema import CASE_STATUSES, STAGES, ObjectDef, Schema
from sandbox.salesforce.values import Clock

Record = dict[str, Any]
Listener = Callable[[str, str, Record], None]
# Reference fields whose children move to the survivor in a merge and go with a deleted parent.
CHILD_LINKS = ("AccountId", "ContactId", "WhatId", "WhoId")
# Key under which a record keeps its last rendered JSON; a write replaces the dict and drops it.
CACHE_KEY = "\x00json"


@dataclass
class Table:
    """The rows of one object."""

    obj: ObjectDef
    rows: dict[str, Record] = field(default_factory=dict)
    order: SortedList = field(default_factory=SortedList)


class Org:
    """One Salesforce org: schema, records, clock and the ids it mints."""

    def __init__(self, schema: Schema | None = None, clock: Clock | None = None) -> None:
        self.schema = schema or Schema()
        self.clock = clock or Clock()
        self.ids = IdFactory()
        self.lock = threading.RLock()
        self.tables: dict[str, Table] = {o.name: Table(o) for o in self.schema.objects()}
        self._prefix = {o.key_prefix: o.name for o in self.schema.objects()}
        self.children: dict[str, set[str]] = {}
        self.deleted_log: dict[str, list[tuple[str, str]]] = {name: [] for name in self.tables}
        self.listeners: list[Listener] = []
        self.validation_failures: dict[str, tuple[str, list[str]]] = {}
        self.org_id = self.ids.for_object("Organization")
        self.user_id = ""
        self._case_numbers = itertools.count(1000)
        self._fill = {o.name: self._fill_rules(o) for o in self.schema.objects()}

    @staticmethod
    def _fill_rules(obj: ObjectDef) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, Any], ...]]:
        stamps = tuple(f for f in ("CreatedDate", "LastModifiedDate", "SystemModstamp") if f in obj.fields)
        users = tuple(f for f in ("CreatedById", "LastModifiedById", "OwnerId") if f in obj.fields)
        defaults = tuple((f.name, f.default) for f in obj.fields.values() if f.default is not None)
        return stamps, users, defaults

    def refresh_fields(self, name: str) -> None:
        """Recompute insert defaults after a field was added to an object."""
        self._fill[name] = self._fill_rules(self.tables[name].obj)

    # -- reads -----------------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        """The table of an object (by its canonical name)."""
        return self.tables[name]

    def object_of(self, record_id: str) -> str | None:
        """The object name an id belongs to, from its key prefix."""
        return self._prefix.get(record_id[:3])

    def get(self, record_id: str) -> Record | None:
        """The record with this 18-character id in any table (deleted ones included), or None."""
        name = self._prefix.get(record_id[:3])
        return self.tables[name].rows.get(record_id) if name else None

    def live(self, name: str) -> Iterator[Record]:
        """Records of an object that are not deleted."""
        return (r for r in self.tables[name].rows.values() if not r.get("IsDeleted"))

    def count(self, name: str, *, deleted: bool = False) -> int:
        """How many records an object has (live only unless `deleted`)."""
        rows = self.tables[name].rows
        return len(rows) if deleted else sum(1 for r in rows.values() if not r.get("IsDeleted"))

    # -- writes (callers hold no lock; every write takes it) ------------------------------------
    def insert(self, name: str, values: Record, *, stamp: str | None = None, notify: bool = True,
               index: bool = True) -> Record:
        """Insert a new record; audit fields default to now and the API user.

        index=False skips the SystemModstamp index (bulk loads call `reindex()` once at the end).
        """
        with self.lock:
            table = self.tables[name]
            rec: Record = dict(values)  # absent keys read as null; saves memory on large worlds
            if not rec.get("Id"):
                rec["Id"] = self.ids.new(table.obj.key_prefix)
            stamps, users, defaults = self._fill[name]
            now = stamp
            for f in stamps:
                if not rec.get(f):
                    now = now or self.clock.stamp()
                    rec[f] = now
            for f in users:
                if not rec.get(f):
                    rec[f] = self.user_id or None
            for f, default in defaults:
                if rec.get(f) is None:
                    rec[f] = default
            if name == "Case" and not rec.get("CaseNumber"):
                rec["CaseNumber"] = f"{next(self._case_numbers):08d}"
            self._derive(name, rec, None)
            self._put(table, None, rec, index)
        if notify:
            self._emit("created", name, rec)
        return rec

    def replace(self, name: str, record_id: str, changes: Record, *, notify: bool = True,
                stamp: str | None = None) -> Record:
        """Apply `changes` to a record and bump LastModifiedDate and SystemModstamp."""
        with self.lock:
            table = self.tables[name]
            old = table.rows[record_id]
            rec = dict(old)
            rec.pop(CACHE_KEY, None)
            rec.update(changes)
            now = stamp or self.clock.stamp()
            if "LastModifiedDate" in rec:
                rec["LastModifiedDate"] = now
                rec["LastModifiedById"] = self.user_id or rec.get("LastModifiedById")
            if "SystemModstamp" in rec:
                rec["SystemModstamp"] = now
            self._derive(name, rec, old)
            self._put(table, old, rec)
        if notify:
            self._emit("updated", name, rec)
        return rec

    def delete(self, name: str, record_id: str, *, master: str | None = None) -> Record:
        """Soft-delete a record (and, for an account, its contacts, opportunities, cases and tasks)."""
        with self.lock:
            now = self.clock.stamp()
            changes: Record = {"IsDeleted": True}
            if master:
                changes["MasterRecordId"] = master
            rec = self.replace(name, record_id, changes, notify=False, stamp=now)
            self.deleted_log[name].append((record_id, now))
            if name == "Account" and not master:
                for child_id in sorted(self.children.get(record_id, ())):
                    child_name = self.object_of(child_id)
                    child = self.get(child_id)
                    if child_name and child and not child.get("IsDeleted") and child_name != "Account":
                        self.replace(child_name, child_id, {"IsDeleted": True}, notify=False, stamp=now)
                        self.deleted_log[child_name].append((child_id, now))
        self._emit("deleted", name, rec)
        return rec

    def merge(self, name: str, winner_id: str, loser_ids: list[str]) -> list[Record]:
        """Merge losers into the winner: children move over, losers end deleted with MasterRecordId."""
        moved: list[Record] = []
        with self.lock:
            for loser_id in loser_ids:
                for child_id in sorted(self.children.get(loser_id, ())):
                    child_name = self.object_of(child_id)
                    child = self.get(child_id)
                    if not child_name or not child or child.get("IsDeleted"):
                        continue
                    links = {f: winner_id for f in CHILD_LINKS if child.get(f) == loser_id}
                    if links:
                        moved.append(self.replace(child_name, child_id, links))
                self.delete(name, loser_id, master=winner_id)
            self.replace(name, winner_id, {})
        return moved

    def undelete(self, name: str, record_id: str) -> Record:
        """Restore a soft-deleted record from the recycle bin."""
        return self.replace(name, record_id, {"IsDeleted": False, "MasterRecordId": None})

    def next_case_number(self) -> str:
        """The next auto-number for a case."""
        return f"{next(self._case_numbers):08d}"

    # -- internals -------------------------------------------------------------------------------
    def load(self, name: str, rec: Record) -> str:
        """Seeding fast path: `rec` (owned by the org from now on) already carries its stamps and
        audit fields; no listeners, no modstamp index (call `reindex()` when done)."""
        table = self.tables[name]
        if not rec.get("Id"):
            rec["Id"] = self.ids.new(table.obj.key_prefix)
        for f, default in self._fill[name][2]:
            if rec.get(f) is None:
                rec[f] = default
        if name == "Case" and not rec.get("CaseNumber"):
            rec["CaseNumber"] = f"{next(self._case_numbers):08d}"
        self._derive(name, rec, None)
        rid: str = rec["Id"]
        children = self.children
        for link in CHILD_LINKS:
            parent = rec.get(link)
            if parent:
                children.setdefault(parent, set()).add(rid)
        table.rows[rid] = rec
        return rid

    def reindex(self) -> None:
        """Rebuild every (SystemModstamp, Id) index from the rows."""
        with self.lock:
            for table in self.tables.values():
                table.order = SortedList((r["SystemModstamp"], i) for i, r in table.rows.items() if r.get("SystemModstamp"))

    def _put(self, table: Table, old: Record | None, rec: Record, index: bool = True) -> None:
        rid = rec["Id"]
        if old is not None and old.get("SystemModstamp"):
            table.order.discard((old["SystemModstamp"], rid))
        if index and rec.get("SystemModstamp"):
            table.order.add((rec["SystemModstamp"], rid))
        for link in CHILD_LINKS:
            before = old.get(link) if old else None
            after = rec.get(link)
            if before != after:
                if before:
                    self.children.get(before, set()).discard(rid)
                if after:
                    self.children.setdefault(after, set()).add(rid)
        table.rows[rid] = rec

    def _derive(self, name: str, rec: Record, old: Record | None) -> None:
        """Fields the platform computes: names, closed/won flags, closed date, task account."""
        if name in ("Contact", "User"):
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        elif name == "Opportunity":
            stage = STAGES.get(rec.get("StageName") or "")
            if stage:
                prob, forecast, closed, won = stage
                if old is None or old.get("StageName") != rec.get("StageName"):
                    rec["Probability"] = rec.get("Probability") if old is None and rec.get("Probability") is not None else prob
                    rec["ForecastCategoryName"] = forecast
                rec["IsClosed"], rec["IsWon"] = closed, won
            amount, prob_now = rec.get("Amount"), rec.get("Probability")
            rec["ExpectedRevenue"] = None if amount is None or prob_now is None else round(amount * prob_now / 100, 2)
        elif name == "Case":
            closed = rec.get("Status") == CASE_STATUSES[-1]
            if closed and not rec.get("ClosedDate"):
                rec["ClosedDate"] = rec.get("LastModifiedDate")
            if not closed:
                rec["ClosedDate"] = None
            rec["IsClosed"] = closed
        elif name == "Task":
            rec["IsClosed"] = rec.get("Status") == "Completed"
            rec["IsHighPriority"] = rec.get("Priority") == "High"
            if rec["IsClosed"] and not rec.get("CompletedDateTime"):
                rec["CompletedDateTime"] = rec.get("LastModifiedDate")
            rec["AccountId"] = self._task_account(rec)

    def _task_account(self, rec: Record) -> str | None:
        what = rec.get("WhatId")
        if what:
            if what.startswith("001"):
                return what
            parent = self.get(what)
            if parent and parent.get("AccountId"):
                return parent["AccountId"]
        who = rec.get("WhoId")
        parent = self.get(who) if who else None
        return parent.get("AccountId") if parent else None

    def _emit(self, kind: str, name: str, rec: Record) -> None:
        for listener in list(self.listeners):
            listener(kind, name, rec)
