"""The in-memory portal: records, properties, associations, and every write with its side effects.

Each write bumps the record's last-modified stamp (ours included, as HubSpot does) and emits
events that the webhook sender turns into deliveries. Rollups of the companies and contacts a write
touches (`rollups.py`) follow it, as property changes of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot import errors
from sandbox.hubspot.associations import INVERSE, Associations, default_type, primary_type
from sandbox.hubspot.properties import PropertyCatalog
from sandbox.hubspot.records import Record, Table
from sandbox.hubspot.rollups import CLOSED_DEAL_STAGES, ROLLUPS, WON_DEAL_STAGES, compute, feeds
from sandbox.hubspot.schema import LIFECYCLE_OPTIONS, PRIMARY_COMPANY_PROPERTY, SINGULAR, TICKET_STAGES
from sandbox.hubspot.values import iso, normalize, now_ms, parse_ms

FIRST_IDS = {"contacts": 1001, "companies": 4_000_000_001, "deals": 8_000_000_001, "tickets": 1_500_000_001,
             "tasks": 60_000_000_001, "notes": 53_000_000_001, "calls": 50_000_000_001, "emails": 51_000_000_001,
             "meetings": 52_000_000_001}
DEAL_STAGE_PROBABILITY = {"appointmentscheduled": "0.2", "qualifiedtobuy": "0.4", "presentationscheduled": "0.6",
                          "decisionmakerboughtin": "0.8", "contractsent": "0.9", "closedwon": "1", "closedlost": "0"}
CLOSED_TICKET_STAGES = {s[0] for s in TICKET_STAGES if s[2] == "CLOSED"}


@dataclass(frozen=True)
class Source:
    """Who made a change: webhook `changeSource` and `sourceId`."""

    change_source: str
    source_id: str


SEED = Source("IMPORT", "")
CALCULATED = Source("CALCULATED", "")  # what HubSpot sets itself: calculated properties and rollups
MAX_HISTORY = 20  # values kept per property and record (the sandbox's bound)
Listener = Callable[[list[dict[str, Any]]], None]


class Portal:
    """One HubSpot account's CRM data."""

    def __init__(self, portal_id: int) -> None:
        self.portal_id = portal_id
        self.lock = threading.RLock()
        self.tables = {t: Table(t, first) for t, first in FIRST_IDS.items()}
        self.tables["contacts"].unique["email"] = {}
        self.catalog = PropertyCatalog()
        self.assoc = Associations()
        self.listeners: list[Listener] = []
        # Every update per (changeSource, object type, id), identical rewrites included: lets a test
        # tell a record written once from one written twice with the same values.
        self.writes: Counter[tuple[str, str, int]] = Counter()
        # (object type, id) -> latest activity of the calls, emails and meetings a portal seeded without
        # them left out: the last-activity rollups still count them
        self.unloaded_activity: dict[tuple[str, int], int] = {}
        self._clock = 0

    def clock(self) -> int:
        """Now in ms, never going backwards, so every write sorts after the one before."""
        self._clock = max(self._clock, now_ms())
        return self._clock

    def table(self, object_type: str) -> Table:
        """The table of an object type (already resolved by the caller)."""
        return self.tables[object_type]

    def _emit(self, events: list[dict[str, Any]]) -> None:
        if events:
            for listener in self.listeners:
                listener(events)

    def _event(self, kind: str, object_type: str, rec_id: int, stamp: int, source: Source, **extra: Any) -> dict:
        return {"kind": kind, "objectType": object_type, "objectId": rec_id, "occurredAt": stamp,
                "changeSource": source.change_source, "sourceId": source.source_id, **extra}

    # -- validation --------------------------------------------------------------------------

    def check_properties(self, object_type: str, values: dict[str, Any], *, creating: bool) -> dict[str, str]:
        """Normalize written values or raise 400 naming every bad property."""
        if not isinstance(values, dict):
            raise errors.validation("`properties` must be an object of property name to value.")
        defined = self.catalog.defined(object_type)
        out: dict[str, str] = {}
        problems: list[tuple[str, str, str]] = []
        for name, value in values.items():
            prop = defined.get(name)
            if prop is None:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if prop.read_only and not (creating and name == self.tables[object_type].created_prop):
                problems.append((name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'))
                continue
            text, problem = normalize(prop, value)
            if problem is not None:
                code, msg = problem.split(":", 1)
                problems.append((name, code, msg))
            else:
                out[name] = text or ""
        if problems:
            raise errors.invalid_properties(self.portal_id, problems)
        return out

    # -- writes --------------------------------------------------------------------------------

    def create(self, object_type: str, values: dict[str, str], source: Source, *,
               associations: list[tuple[str, int, int]] = (), stamp: int | None = None,  # type: ignore[assignment]
               created: int | None = None, emit: bool = True) -> Record:
        """Create a record from checked values; associations are (to_type, to_id, type_id)."""
        table = self.tables[object_type]
        stamp = stamp if stamp is not None else self.clock()
        created = created if created is not None else stamp
        if "email" in values and values["email"] and object_type == "contacts":
            existing = table.unique["email"].get(values["email"].lower())
            if existing is not None:
                raise errors.ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        for to_type, to_id, _ in associations:
            target = self.tables[to_type].records.get(to_id)
            if target is None or target.archived:
                raise errors.validation(f"No {SINGULAR[to_type]} with ID {to_id} exists to associate with.")
        rid = table.new_id()
        props = {k: v for k, v in values.items() if v != "" and k not in table.derived}
        if values.get(table.created_prop):
            created = parse_ms(values[table.created_prop]) or created
        rec, written = Record(rid, props, created, stamp), set(props)
        derived = self._derive(object_type, rec, written, stamp)
        self._remember(table, rec, {}, written, stamp, source)
        self._remember(table, rec, {}, derived, stamp, CALCULATED)
        table.insert(rec)
        events = [self._event("creation", object_type, rid, stamp, source, changeFlag="NEW")]
        events += [self._event("propertyChange", object_type, rid, stamp, source, propertyName=k, propertyValue=v)
                   for k, v in props.items()]
        events += [self._event("propertyChange", object_type, rid, stamp, source, propertyName=k,
                               propertyValue=table.value(rec, k)) for k in sorted(table.derived)]
        for to_type, to_id, type_id in associations:
            events += self._associate(object_type, rid, to_type, to_id, type_id, stamp, source)
        if emit:
            self._emit(events)
        return rec

    def update(self, object_type: str, rec: Record, values: dict[str, str], source: Source,
               stamp: int | None = None) -> Record:
        """Apply checked values to a live record; every write bumps its last-modified stamp."""
        table = self.tables[object_type]
        stamp = stamp if stamp is not None else self.clock()
        email = values.get("email") if object_type == "contacts" else None
        if email:  # checked before anything changes: a refused write leaves the record as it was
            other = table.unique["email"].get(email.lower())
            if other is not None and other != rec.id:
                raise errors.ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {other}")
        changed = set()
        before = dict(rec.props)
        for name, value in values.items():
            if name == table.created_prop:
                created = parse_ms(value)
                if created is not None and created != rec.created:
                    rec.created = created
                    changed.add(name)
                continue
            old = rec.props.get(name)
            if (old or "") == value:
                continue
            table.set_unique(rec, name, old, value)
            if value == "":
                rec.props.pop(name, None)
            else:
                rec.props[name] = value
            changed.add(name)
        derived = self._derive(object_type, rec, changed, stamp)
        self._remember(table, rec, before, changed, stamp, source)
        self._remember(table, rec, before, derived, stamp, CALCULATED)
        changed |= derived
        table.set_modified(rec, stamp)
        self.writes[(source.change_source, object_type, rec.id)] += 1
        events = [self._event("propertyChange", object_type, rec.id, stamp, source, propertyName=n,
                              propertyValue=table.value(rec, n) or "") for n in sorted(changed)]
        self._emit(events + self._rollups_of(object_type, rec.id, stamp, source, changed))
        return rec

    def archive(self, object_type: str, rec: Record, source: Source) -> None:
        """Archive (delete) a record; it stays readable with `archived=true`."""
        if rec.archived:
            return
        stamp = self.clock()
        table = self.tables[object_type]
        table.archive(rec, stamp)
        rec.modified = stamp
        self._emit([self._event("deletion", object_type, rec.id, stamp, source, changeFlag="DELETED"),
                    *self._rollups_of(object_type, rec.id, stamp, source)])

    def restore(self, object_type: str, rec: Record, source: Source) -> None:
        """Bring an archived record back, as the recycle bin does."""
        if not rec.archived:
            return
        stamp = self.clock()
        table = self.tables[object_type]
        table.restore(rec)
        table.set_modified(rec, stamp)
        # its own rollups were left alone while it was archived
        self._emit([self._event("restore", object_type, rec.id, stamp, source),
                    *self._refresh_rollups(object_type, rec.id, stamp, source),
                    *self._rollups_of(object_type, rec.id, stamp, source)])

    def merge(self, object_type: str, primary: Record, loser: Record, source: Source) -> Record:
        """Merge two records into a new one with a new id, as HubSpot does for every object type.

        The primary's values win and the secondary's fill its gaps (a contact or company keeps the
        lifecycle stage furthest down the funnel); both records are archived, and their ids, and any
        merged into them before, are the new record's `hs_merged_object_ids` and lead to it on read.
        Associations of both move to it, the primary's first: a record keeps one Primary company.
        """
        if primary.id == loser.id:
            raise errors.validation("Cannot merge an object with itself.")
        table = self.tables[object_type]
        stamp = self.clock()
        rollups = {PRIMARY_COMPANY_PROPERTY.get(object_type), *ROLLUPS.get(object_type, ())}
        props = {k: v for k, v in primary.props.items() if k not in rollups}
        fill = {k: v for k, v in loser.props.items()
                if k not in props and k not in rollups and not self.catalog.is_read_only(object_type, k)}
        props |= fill
        funnel = [value for value, _ in LIFECYCLE_OPTIONS if value != "other"]
        stage = max((r.props.get("lifecyclestage", "") for r in (primary, loser)),
                    key=lambda v: funnel.index(v) if v in funnel else -1)
        if stage in funnel:
            props["lifecyclestage"] = stage
        merged_ids = [x for r in (primary, loser)
                      for x in (*r.props.get("hs_merged_object_ids", "").split(";"), str(r.id)) if x]
        props["hs_merged_object_ids"] = ";".join(dict.fromkeys(merged_ids))
        moved = [self.assoc.drop_record(object_type, r.id) for r in (primary, loser)]
        for rec in (primary, loser):
            table.archive(rec, stamp)
        survivor = Record(table.new_id(), props, primary.created, stamp)
        self._remember(table, survivor, {}, set(props), stamp, source)
        table.insert(survivor)
        primary.merged_into = loser.merged_into = survivor.id
        floor = max(self.unloaded_activity.get((object_type, r.id), 0) for r in (primary, loser))
        if floor:
            self.unloaded_activity[(object_type, survivor.id)] = floor
        for edges in moved:
            for to_type, to_id, ids in edges:
                for type_id in sorted(ids):
                    # the non-company side keeps one Primary company: the primary record's
                    if to_type == "companies" and type_id == getattr(primary_type(object_type, to_type), "type_id", None) \
                            and self.assoc.has_primary(object_type, survivor.id, to_type):
                        continue
                    self.assoc.add(object_type, survivor.id, to_type, to_id, type_id)
        events = [self._event("merge", object_type, survivor.id, stamp, source, primaryObjectId=primary.id,
                              mergedObjectIds=[loser.id], newObjectId=survivor.id, numberOfPropertiesMoved=len(fill))]
        # the rollups follow the moved associations: the new record's own, and, when companies
        # merge, the Primary company of every record that pointed at either of them
        events += self._refresh_primary_company(object_type, survivor.id, stamp, source)
        for to_type, to_id, _ in (e for edges in moved for e in edges) if object_type == "companies" else ():
            events += self._refresh_primary_company(to_type, to_id, stamp, source)
        # and the rollups: the new record's own, and those of the records counting either merged one
        events += self._refresh_rollups(object_type, survivor.id, stamp, source)
        for to_type, to_id in dict.fromkeys((t, i) for edges in moved for t, i, _ in edges):
            if feeds(object_type, to_type):
                events += self._refresh_rollups(to_type, to_id, stamp, source)
        self._emit(events)
        return survivor

    def associate(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int,
                  source: Source) -> None:
        """Add one association (both directions) and emit associationChange."""
        self._emit(self._associate(from_type, from_id, to_type, to_id, type_id, self.clock(), source))

    def associate_default(self, from_type: str, from_id: int, to_type: str, to_id: int, source: Source) -> None:
        """The default association: unlabeled, plus Primary if the record has no primary yet."""
        plain = default_type(from_type, to_type)
        if plain is None:
            raise errors.validation(f"{from_type} cannot be associated with {to_type}.")
        stamp = self.clock()
        events = self._associate(from_type, from_id, to_type, to_id, plain.type_id, stamp, source)
        primary = primary_type(from_type, to_type)
        if primary is not None and not self.assoc.has_primary(from_type, from_id, to_type):
            events += self._associate(from_type, from_id, to_type, to_id, primary.type_id, stamp, source)
        self._emit(events)

    def disassociate(self, from_type: str, from_id: int, to_type: str, to_id: int, source: Source,
                     type_ids: set[int] | None = None) -> set[int]:
        """Remove every association between two records, or only the `type_ids` among them; returns the
        type ids removed. Removing the unlabeled type removes the labelled ones too, as HubSpot does."""
        stamp = self.clock()
        plain = default_type(from_type, to_type)
        if type_ids is None or (plain is not None and plain.type_id in type_ids):
            removed = self.assoc.remove(from_type, from_id, to_type, to_id)
        else:
            removed = self.assoc.remove_types(from_type, from_id, to_type, to_id, type_ids)
        events = [e for t in sorted(removed)
                  for e in self._association_events(from_type, from_id, to_type, to_id, t, True, stamp, source)]
        if removed:
            events += self._primary_company_changed(from_type, from_id, to_type, to_id, stamp, source)
            events += self._link_rollups(from_type, from_id, to_type, to_id, stamp, source)
        self._emit(events)
        return removed

    def _associate(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int, stamp: int,
                   source: Source) -> list[dict]:
        if not self.assoc.add(from_type, from_id, to_type, to_id, type_id):
            return []
        events = self._association_events(from_type, from_id, to_type, to_id, type_id, False, stamp, source)
        events += self._primary_company_changed(from_type, from_id, to_type, to_id, stamp, source)
        return events + self._link_rollups(from_type, from_id, to_type, to_id, stamp, source)

    def _association_events(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int,
                            removed: bool, stamp: int, source: Source) -> list[dict]:
        """associationChange as seen from each end: HubSpot announces an association between two object
        types to the subscribers of either (a contact's company to `contact.` and `company.` ones)."""
        ends = [(from_type, from_id, to_type, to_id, type_id)]
        if from_type != to_type:
            ends.append((to_type, to_id, from_type, from_id, INVERSE[type_id]))
        return [self._event("associationChange", f, fid, stamp, source, fromObjectId=fid, toObjectId=tid,
                            associationRemoved=removed, toObjectType=t, associationTypeId=at)
                for f, fid, t, tid, at in ends]

    def _primary_company_changed(self, from_type: str, from_id: int, to_type: str, to_id: int, stamp: int,
                                 source: Source) -> list[dict]:
        """Keep the primary-company property of the non-company side in step (a property change)."""
        if to_type == "companies":
            return self._refresh_primary_company(from_type, from_id, stamp, source)
        if from_type == "companies":
            return self._refresh_primary_company(to_type, to_id, stamp, source)
        return []

    def _refresh_primary_company(self, object_type: str, rec_id: int, stamp: int, source: Source) -> list[dict]:
        """Set `PRIMARY_COMPANY_PROPERTY[object_type]`, a rollup HubSpot keeps itself, to the record's
        Primary company (`_set_calculated`)."""
        prop = PRIMARY_COMPANY_PROPERTY.get(object_type)
        primary = primary_type(object_type, "companies")
        rec = self.tables[object_type].records.get(rec_id) if prop else None
        if rec is None or primary is None or prop is None:
            return []
        company = next((str(cid) for cid, ids in sorted(self.assoc.targets(object_type, rec_id, "companies").items())
                        if primary.type_id in ids), "")
        return self._set_calculated(object_type, rec, {prop: company}, stamp, source)

    def _link_rollups(self, from_type: str, from_id: int, to_type: str, to_id: int, stamp: int,
                      source: Source) -> list[dict]:
        """Refresh the rollups of either end of a changed association that counts the other."""
        events = self._refresh_rollups(to_type, to_id, stamp, source) if feeds(from_type, to_type) else []
        if feeds(to_type, from_type):
            events += self._refresh_rollups(from_type, from_id, stamp, source)
        return events

    def _rollups_of(self, object_type: str, rec_id: int, stamp: int, source: Source,
                    changed: set[str] | None = None) -> list[dict]:
        """Refresh the rollups counting one record (all of them, or those reading a `changed` property)."""
        events: list[dict] = []
        for to_type in ROLLUPS:
            if feeds(object_type, to_type, changed):
                for to_id in self.assoc.target_ids(object_type, rec_id, to_type):
                    events += self._refresh_rollups(to_type, to_id, stamp, source)
        return events

    def _refresh_rollups(self, object_type: str, rec_id: int, stamp: int, source: Source) -> list[dict]:
        """Recompute one live company's or contact's rollups from its associated records (`_set_calculated`)."""
        names = ROLLUPS.get(object_type)
        table = self.tables[object_type]
        rec = table.records.get(rec_id) if names else None
        if rec is None or rec.archived or names is None:
            return []
        values = compute(self.tables, self.assoc, object_type, rec_id,
                         self.unloaded_activity.get((object_type, rec_id), 0))
        return self._set_calculated(object_type, rec, {n: values[n] for n in names}, stamp, source)

    def _set_calculated(self, object_type: str, rec: Record, values: dict[str, str], stamp: int,
                        source: Source) -> list[dict]:
        """Set properties HubSpot computes itself ("" clears one): a value that moves bumps the record's
        last-modified stamp, enters its history as CALCULATED and is announced as a propertyChange
        carrying the source of the write that moved it."""
        moved = {n for n, v in values.items() if rec.props.get(n, "") != v}
        if not moved:
            return []
        table, before = self.tables[object_type], dict(rec.props)
        for name in moved:
            if values[name]:
                rec.props[name] = values[name]
            else:
                rec.props.pop(name, None)
        self._remember(table, rec, before, moved, stamp, CALCULATED)
        table.set_modified(rec, stamp)
        return [self._event("propertyChange", object_type, rec.id, stamp, source, propertyName=n,
                            propertyValue=values[n]) for n in sorted(moved)]

    @staticmethod
    def _remember(table: Table, rec: Record, before: dict[str, str], names: set[str], stamp: int,
                  source: Source) -> None:
        """Add the current value of `names` to the record's property history.

        A property's first remembered write keeps the value it had before (seeded, so IMPORT at the
        record's creation) as its oldest entry.
        """
        names = names - table.derived
        if not names:
            return
        if rec.history is None:
            rec.history = {}
        for name in sorted(names):
            entries = rec.history.get(name)
            if entries is None:
                old = before.get(name)
                entries = rec.history[name] = [(old, rec.created, SEED.change_source, "")] if old else []
            entries.append((rec.props.get(name, ""), stamp, source.change_source, source.source_id))
            del entries[:-MAX_HISTORY]

    def _derive(self, object_type: str, rec: Record, changed: set[str], stamp: int) -> set[str]:
        """Recompute calculated properties after `changed`; returns the ones that moved."""
        props = rec.props
        before = dict(props)
        if object_type == "deals" and "dealstage" in changed:
            stage = props.get("dealstage", "")
            props["hs_is_closed"] = "true" if stage in CLOSED_DEAL_STAGES else "false"
            props["hs_is_closed_won"] = "true" if stage in WON_DEAL_STAGES else "false"
            if stage in DEAL_STAGE_PROBABILITY:
                props["hs_deal_stage_probability"] = DEAL_STAGE_PROBABILITY[stage]
            if stage in WON_DEAL_STAGES:
                props.setdefault("hs_closed_won_date", iso(stamp))
        elif object_type == "tickets" and changed & {"hs_pipeline_stage", "closed_date"}:
            if props.get("hs_pipeline_stage") in CLOSED_TICKET_STAGES:
                props.setdefault("closed_date", iso(stamp))
            elif "hs_pipeline_stage" in changed:
                props.pop("closed_date", None)
            closed = parse_ms(props.get("closed_date", ""))
            if closed is not None:
                props["time_to_close"] = str(max(0, closed - rec.created))
            else:
                props.pop("time_to_close", None)
        elif object_type == "contacts" and "email" in changed:
            email = props.get("email", "")
            if "@" in email:
                props["hs_email_domain"] = email.split("@", 1)[1]
            else:
                props.pop("hs_email_domain", None)
        return {k for k in set(before) | set(props) if before.get(k) != props.get(k)} - changed

    def reset(self) -> None:
        """Drop every record, association and custom property."""
        with self.lock:
            self.tables = {t: Table(t, first) for t, first in FIRST_IDS.items()}
            self.tables["contacts"].unique["email"] = {}
            self.catalog = PropertyCatalog()
            self.assoc.clear()
            self.writes.clear()
            self.unloaded_activity.clear()
