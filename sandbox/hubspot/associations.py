"""Associations between records: HubSpot's default type ids, both directions kept in step.

Type ids are HubSpot's own (`GET /crm/v4/associations/{from}/{to}/labels` on a real portal):
an unlabeled type per direction, plus a "Primary" label for the company side of contacts,
deals and tickets.
"""

from __future__ import annotations

from collections.abc import Callable
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
    ("notes", "companies", 190, 189, None, None),
    ("notes", "contacts", 202, 201, None, None),
    ("notes", "deals", 214, 213, None, None),
    ("notes", "tickets", 228, 227, None, None),
    ("calls", "companies", 182, 181, None, None),
    ("calls", "contacts", 194, 193, None, None),
    ("emails", "companies", 186, 185, None, None),
    ("emails", "contacts", 198, 197, None, None),
    ("meetings", "companies", 188, 187, None, None),
    ("meetings", "contacts", 200, 199, None, None),
)

_SINGLE = {"contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket",
           "tasks": "task", "notes": "note", "calls": "call", "emails": "email", "meetings": "meeting"}


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


# bit of each type within its pair (pairs have at most an unlabeled and a Primary type)
BITS = {(f, t, at.type_id): 1 << i for (f, t), types in PAIR_TYPES.items() for i, at in enumerate(types)}


class Associations:
    """All association edges of a portal, stored from both ends.

    Per (from type, to type): from id -> tuple of `to_id << 2 | type bits`; compact because a
    medium portal holds over a million edges.
    """

    def __init__(self) -> None:
        self._edges: dict[tuple[str, str], dict[int, tuple[int, ...]]] = {}

    def _set(self, pair: tuple[str, str], from_id: int, to_id: int, bit: int) -> bool:
        side = self._edges.get(pair)
        if side is None:
            side = self._edges[pair] = {}
        cur = side.get(from_id)
        if cur is None:
            side[from_id] = (to_id << 2 | bit,)
            return True
        for i, v in enumerate(cur):
            if v >> 2 == to_id:
                if v & bit:
                    return False
                side[from_id] = cur[:i] + (v | bit,) + cur[i + 1:]
                return True
        side[from_id] = cur + (to_id << 2 | bit,)
        return True

    def add(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int) -> bool:
        """Add one typed edge (and its inverse); True if it was new."""
        if not self._set((from_type, to_type), from_id, to_id, BITS[(from_type, to_type, type_id)]):
            return False
        self._set((to_type, from_type), to_id, from_id, BITS[(to_type, from_type, INVERSE[type_id])])
        return True

    def linker(self, from_type: str, to_type: str, type_ids: tuple[int, ...]) -> Callable[[int, int], None]:
        """Bulk loading: a function adding these types between two records not linked yet (no checks)."""
        bits = sum(BITS[(from_type, to_type, t)] for t in type_ids)
        rbits = sum(BITS[(to_type, from_type, INVERSE[t])] for t in type_ids)
        side = self._edges.setdefault((from_type, to_type), {})
        rside = self._edges.setdefault((to_type, from_type), {})

        def link(from_id: int, to_id: int) -> None:
            side[from_id] = side.get(from_id, ()) + (to_id << 2 | bits,)
            rside[to_id] = rside.get(to_id, ()) + (from_id << 2 | rbits,)

        return link

    def _drop(self, pair: tuple[str, str], from_id: int, to_id: int) -> int:
        side = self._edges.get(pair, {})
        cur = side.get(from_id, ())
        kept = tuple(v for v in cur if v >> 2 != to_id)
        if len(kept) == len(cur):
            return 0
        if kept:
            side[from_id] = kept
        else:
            del side[from_id]
        return next(v & 3 for v in cur if v >> 2 == to_id)

    def _types(self, pair: tuple[str, str], bits: int) -> set[int]:
        return {at.type_id for i, at in enumerate(PAIR_TYPES[pair]) if bits >> i & 1}

    def remove(self, from_type: str, from_id: int, to_type: str, to_id: int) -> set[int]:
        """Remove every edge between two records; returns the type ids removed (from side)."""
        bits = self._drop((from_type, to_type), from_id, to_id)
        self._drop((to_type, from_type), to_id, from_id)
        return self._types((from_type, to_type), bits) if bits else set()

    def _clear(self, pair: tuple[str, str], from_id: int, to_id: int, bits: int) -> None:
        side = self._edges.get(pair, {})
        cur = side.get(from_id, ())
        kept = tuple(v & ~bits if v >> 2 == to_id else v for v in cur)
        kept = tuple(v for v in kept if v & 3)
        if kept:
            side[from_id] = kept
        else:
            side.pop(from_id, None)

    def remove_types(self, from_type: str, from_id: int, to_type: str, to_id: int, type_ids: set[int]) -> set[int]:
        """Remove some typed edges between two records (and their inverses); returns the type ids removed."""
        gone = self.targets(from_type, from_id, to_type).get(to_id, set()) & type_ids
        if gone:
            self._clear((from_type, to_type), from_id, to_id, sum(BITS[(from_type, to_type, t)] for t in gone))
            self._clear((to_type, from_type), to_id, from_id,
                        sum(BITS[(to_type, from_type, INVERSE[t])] for t in gone))
        return gone

    def targets(self, from_type: str, from_id: int, to_type: str) -> dict[int, set[int]]:
        """to_id -> type ids for one record."""
        pair = (from_type, to_type)
        return {v >> 2: self._types(pair, v & 3) for v in self._edges.get(pair, {}).get(from_id, ())}

    def target_ids(self, from_type: str, from_id: int, to_type: str) -> list[int]:
        """Ids associated with one record, ascending."""
        return sorted(v >> 2 for v in self._edges.get((from_type, to_type), {}).get(from_id, ()))

    def has_primary(self, from_type: str, from_id: int, to_type: str) -> bool:
        """Whether the record already has a Primary association to `to_type`."""
        primary = primary_type(from_type, to_type)
        if primary is None:
            return False
        bit = BITS[(from_type, to_type, primary.type_id)]
        return any(v & bit for v in self._edges.get((from_type, to_type), {}).get(from_id, ()))

    def drop_record(self, object_type: str, record_id: int) -> list[tuple[str, int, set[int]]]:
        """Forget every edge of one record; returns (to_type, to_id, type ids) removed."""
        removed = []
        for (f, t), side in list(self._edges.items()):
            if f != object_type or record_id not in side:
                continue
            for v in side.pop(record_id):
                removed.append((t, v >> 2, self._types((f, t), v & 3)))
                self._drop((t, f), v >> 2, record_id)
        return removed

    def clear(self) -> None:
        """Remove everything."""
        self._edges.clear()
