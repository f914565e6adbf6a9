"""Associations between records: HubSpot's default type ids, both directions kept in step.

Type ids are HubSpot's own (`GET /crm/v4/associations/{from}/{to}/labels` on a real portal):
an unlabeled type per direction, plus a "Primary" label for the company side of contacts,
deals and tickets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssocType:
    """One association type in one direction."""

    from_type: str
    to_type: str
    type_id: int
    label: str | None
    name: str  # the v3 `type` string, e.g. contact_to_company_unlabeled


# (from, to, unlabeled id, reverse unlabeled id, primary id, reverse primary id)
_PAIRS = (
    ("contacts", "companies", 279, 280, 1, 2),
    ("deals", "companies", 341, 342, 5, 6),
    ("tickets", "companies", 339, 340, 26, 25),
    ("deals", "contacts", 3, 4, None, None),
    ("tickets", "contacts", 16, 15, None, None),
    ("deals", "tickets", 27, 28, None, None),
    ("tasks", "companies", 192, 191, None, None),
    ("tasks", "contacts", 204, 203, None, None),
    ("tasks", "deals", 216, 215, None, None),
    ("tasks", "tickets", 230, 229, None, None),
    ("calls", "companies", 182, 181, None, None),
    ("calls", "contacts", 194, 193, None, None),
    ("emails", "companies", 186, 185, None, None),
    ("emails", "contacts", 198, 197, None, None),
    ("meetings", "companies", 188, 187, None, None),
    ("meetings", "contacts", 200, 199, None, None),
)

_SINGLE = {"contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket",
           "tasks": "task", "calls": "call", "emails": "email", "meetings": "meeting"}


def _build() -> tuple[dict[tuple[str, str, int], AssocType], dict[int, int], dict[tuple[str, str], list[AssocType]]]:
    by_key: dict[tuple[str, str, int], AssocType] = {}
    inverse: dict[int, int] = {}
    by_pair: dict[tuple[str, str], list[AssocType]] = {}
    for a, b, plain, rplain, primary, rprimary in _PAIRS:
        for f, t, tid, rid, pid, rpid in ((a, b, plain, rplain, primary, rprimary), (b, a, rplain, plain, rprimary, primary)):
            base = f"{_SINGLE[f]}_to_{_SINGLE[t]}"
            types = [AssocType(f, t, tid, None, base + ("_unlabeled" if pid is not None else ""))]
            inverse[tid] = rid
            if pid is not None and rpid is not None:
                types.append(AssocType(f, t, pid, "Primary", base))
                inverse[pid] = rpid
            by_pair[(f, t)] = types
            for at in types:
                by_key[(f, t, at.type_id)] = at
    return by_key, inverse, by_pair


TYPES, INVERSE, PAIR_TYPES = _build()


def default_type(from_type: str, to_type: str) -> AssocType | None:
    """The unlabeled type a default association uses, or None if the pair is not associable."""
    types = PAIR_TYPES.get((from_type, to_type))
    return types[0] if types else None


def primary_type(from_type: str, to_type: str) -> AssocType | None:
    """The "Primary" labelled type of a pair, if it has one."""
    for at in PAIR_TYPES.get((from_type, to_type), ()):
        if at.label == "Primary":
            return at
    return None


class Associations:
    """All association edges of a portal, stored from both ends."""

    def __init__(self) -> None:
        self._edges: dict[tuple[str, str], dict[int, dict[int, set[int]]]] = {}

    def add(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int) -> bool:
        """Add one typed edge (and its inverse); True if it was new."""
        side = self._edges.setdefault((from_type, to_type), {}).setdefault(from_id, {}).setdefault(to_id, set())
        if type_id in side:
            return False
        side.add(type_id)
        self._edges.setdefault((to_type, from_type), {}).setdefault(to_id, {}).setdefault(from_id, set()).add(
            INVERSE[type_id])
        return True

    def remove(self, from_type: str, from_id: int, to_type: str, to_id: int) -> set[int]:
        """Remove every edge between two records; returns the type ids removed (from side)."""
        fwd = self._edges.get((from_type, to_type), {}).get(from_id, {})
        removed = fwd.pop(to_id, set())
        back = self._edges.get((to_type, from_type), {}).get(to_id, {})
        back.pop(from_id, None)
        return removed

    def targets(self, from_type: str, from_id: int, to_type: str) -> dict[int, set[int]]:
        """to_id -> type ids for one record (a live view: do not mutate)."""
        return self._edges.get((from_type, to_type), {}).get(from_id, {})

    def has_primary(self, from_type: str, from_id: int, to_type: str) -> bool:
        """Whether the record already has a Primary association to `to_type`."""
        primary = primary_type(from_type, to_type)
        if primary is None:
            return False
        return any(primary.type_id in ids for ids in self.targets(from_type, from_id, to_type).values())

    def drop_record(self, object_type: str, record_id: int) -> list[tuple[str, int, set[int]]]:
        """Forget every edge of one record; returns (to_type, to_id, type ids) removed."""
        removed = []
        for (f, t), by_from in self._edges.items():
            if f != object_type or record_id not in by_from:
                continue
            for to_id, ids in list(by_from.pop(record_id).items()):
                removed.append((t, to_id, ids))
                self._edges.get((t, f), {}).get(to_id, {}).pop(record_id, None)
        return removed

    def clear(self) -> None:
        """Remove everything."""
        self._edges.clear()
