"""Records of one object type, with the indexes reads need: by id, by last-modified, by unique value.

The id and the create / last-modified stamps live on the record itself and are rendered as the
`hs_object_id`, `createdate` and `lastmodifieddate` / `hs_lastmodifieddate` properties on read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sortedcontainers import SortedList

from sandbox.hubspot.schema import created_property, default_returned, modified_property
from sandbox.hubspot.values import iso

ID_SPACE = 10**11  # every id is below this, so (stamp, id) packs into one int key


# One remembered value: (value, epoch ms, sourceType, sourceId); "" is a cleared value.
Change = tuple[str, int, str, str]


class Record:
    """One CRM record; `props` holds only properties that have a value (absent reads as null).

    `history` keeps, per property written since the portal was seeded, its values oldest first
    (the value it had before, if any, leads); None until the first such write, so a seeded
    portal of a million records carries none.
    """

    __slots__ = ("id", "props", "created", "modified", "archived", "archived_at", "merged_into", "history")

    def __init__(self, record_id: int, props: dict[str, str], created: int, modified: int) -> None:
        self.id = record_id
        self.props = props
        self.created = created
        self.modified = modified
        self.archived = False
        self.archived_at = 0
        self.merged_into = 0
        self.history: dict[str, list[Change]] | None = None


def _change_json(change: Change) -> dict[str, Any]:
    """One entry of `propertiesWithHistory` (HubSpot's ValueWithTimestamp)."""
    value, stamp, source_type, source_id = change
    out: dict[str, Any] = {"value": value, "timestamp": iso(stamp), "sourceType": source_type}
    if source_id:
        out["sourceId"] = source_id
        if source_id.startswith("userId:") and source_id[7:].isdigit():
            out["updatedByUserId"] = int(source_id[7:])
    return out


class Table:
    """All records of one object type and their indexes."""

    def __init__(self, object_type: str, first_id: int) -> None:
        self.type = object_type
        self.modified_prop = modified_property(object_type)
        self.created_prop = created_property(object_type)
        self.derived = {"hs_object_id", self.created_prop, self.modified_prop}
        self.records: dict[int, Record] = {}
        self.live: SortedList = SortedList()
        self.archived: SortedList = SortedList()
        # `modified * ID_SPACE + id` of live records: search windows on these without scanning
        self.by_modified: SortedList = SortedList()
        self.unique: dict[str, dict[str, int]] = {}
        self.next_id = first_id

    def new_id(self) -> int:
        """Allocate the next record id."""
        rid = self.next_id
        self.next_id += 1
        return rid

    def value(self, rec: Record, name: str) -> str | None:
        """A property's wire value, derived ones included."""
        if name == "hs_object_id":
            return str(rec.id)
        if name == self.modified_prop:
            return iso(rec.modified)
        if name == self.created_prop:
            return iso(rec.created)
        return rec.props.get(name)

    def insert(self, rec: Record) -> None:
        """Add a new live record to every index."""
        self.records[rec.id] = rec
        self.next_id = max(self.next_id, rec.id + 1)
        self.live.add(rec.id)
        self.by_modified.add(rec.modified * ID_SPACE + rec.id)
        for name, index in self.unique.items():
            value = rec.props.get(name)
            if value:
                index[value.lower()] = rec.id

    def rebuild(self) -> None:
        """Rebuild every index from `records` (after a bulk load that filled `records` directly)."""
        live = [r for r in self.records.values() if not r.archived]
        self.live = SortedList(r.id for r in live)
        self.archived = SortedList(r.id for r in self.records.values() if r.archived)
        self.by_modified = SortedList(r.modified * ID_SPACE + r.id for r in live)
        for name, index in self.unique.items():
            index.clear()
            index.update((r.props[name].lower(), r.id) for r in live if r.props.get(name))
        if self.records:
            self.next_id = max(self.next_id, max(self.records) + 1)

    def set_modified(self, rec: Record, stamp: int) -> None:
        """Move a live record to a new last-modified stamp."""
        if not rec.archived:
            self.by_modified.discard(rec.modified * ID_SPACE + rec.id)
            self.by_modified.add(stamp * ID_SPACE + rec.id)
        rec.modified = stamp

    def set_unique(self, rec: Record, name: str, old: str | None, new: str | None) -> None:
        """Keep a unique-value index in step with one change."""
        index = self.unique.get(name)
        if index is None:
            return
        if old and index.get(old.lower()) == rec.id:
            del index[old.lower()]
        if new and not rec.archived:
            index[new.lower()] = rec.id

    def archive(self, rec: Record, stamp: int) -> None:
        """Take a record out of the live indexes."""
        self.live.discard(rec.id)
        self.by_modified.discard(rec.modified * ID_SPACE + rec.id)
        for name in self.unique:
            self.set_unique(rec, name, rec.props.get(name), None)
        rec.archived = True
        rec.archived_at = stamp
        self.archived.add(rec.id)

    def restore(self, rec: Record) -> None:
        """Put an archived record back into the live indexes."""
        self.archived.discard(rec.id)
        rec.archived = False
        rec.archived_at = 0
        rec.merged_into = 0
        self.live.add(rec.id)
        self.by_modified.add(rec.modified * ID_SPACE + rec.id)
        for name in self.unique:
            self.set_unique(rec, name, None, rec.props.get(name))

    def find(self, id_property: str | None, key: str) -> Record | None:
        """A record by id (following merges) or by a unique property value."""
        if not id_property or id_property == "hs_object_id":
            try:
                rec = self.records.get(int(key))
            except ValueError:
                return None
            while rec is not None and rec.merged_into:
                rec = self.records.get(rec.merged_into)
            return rec
        index = self.unique.get(id_property)
        if index is None:
            return None
        rid = index.get(key.lower())
        return self.records.get(rid) if rid is not None else None

    def page(self, after: int, limit: int, archived: bool) -> tuple[list[Record], int | None]:
        """One page of the list endpoint by ascending id; returns (records, next after)."""
        ids = self.archived if archived else self.live
        start = ids.bisect_left(after)
        chunk = list(ids.islice(start, start + limit + 1))
        nxt = chunk[limit] if len(chunk) > limit else None
        return [self.records[i] for i in chunk[:limit]], nxt

    def names(self, requested: Iterable[str] | None, defined: dict[str, Any]) -> list[str]:
        """Property names a read returns: the requested ones that exist, plus the stamps."""
        if not requested:
            return list(default_returned(self.type))
        out = [n for n in dict.fromkeys(requested) if n in defined]
        for always in ("hs_object_id", self.created_prop, self.modified_prop):
            if always not in out:
                out.append(always)
        return out

    def history_names(self, requested: Iterable[str] | None, defined: dict[str, Any]) -> list[str]:
        """The `propertiesWithHistory` a read returns: the requested ones that exist (none by default)."""
        return [n for n in dict.fromkeys(requested or ()) if n in defined or n in self.derived]

    def history(self, rec: Record, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        """`propertiesWithHistory` of one record, newest value first.

        A property never written since seeding shows its current value alone, set when the record
        was (IMPORT); the id and stamps show theirs, kept by HubSpot itself (CALCULATED).
        """
        out: dict[str, list[dict[str, Any]]] = {}
        kept = rec.history or {}
        for name in names:
            if name in self.derived:
                stamp = rec.modified if name == self.modified_prop else rec.created
                out[name] = [_change_json((self.value(rec, name) or "", stamp, "CALCULATED", ""))]
            elif name in kept:
                out[name] = [_change_json(c) for c in reversed(kept[name])]
            else:
                value = rec.props.get(name)
                out[name] = [_change_json((value, rec.created, "IMPORT", ""))] if value else []
        return out

    def projector(self, names: list[str], history: list[str] | None = None) -> Callable[[Record], dict[str, Any]]:
        """A function rendering records as HubSpot's SimplePublicObject with these properties (and these
        properties' history)."""
        want_id = "hs_object_id" in names
        want_created = self.created_prop in names
        want_modified = self.modified_prop in names
        created_prop, modified_prop = self.created_prop, self.modified_prop

        def project(rec: Record) -> dict[str, Any]:
            props = rec.props
            created, modified = iso(rec.created), iso(rec.modified)
            values = {n: props.get(n) for n in names}
            if want_id:
                values["hs_object_id"] = str(rec.id)
            if want_created:
                values[created_prop] = created
            if want_modified:
                values[modified_prop] = modified
            out: dict[str, Any] = {"id": str(rec.id), "properties": values, "createdAt": created,
                                   "updatedAt": modified, "archived": rec.archived}
            if rec.archived:
                out["archivedAt"] = iso(rec.archived_at)
            if history:
                out["propertiesWithHistory"] = self.history(rec, history)
            return out

        return project

    def all_names(self, rec: Record) -> list[str]:
        """Every property the record has a value for, plus the stamps (create / update answers)."""
        return sorted(set(rec.props) | self.derived)
