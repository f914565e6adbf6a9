"""`POST /crm/v3/objects/{type}/search`: request checks, filter evaluation, sorting, offset paging.

The common sync query (a window on the last-modified property, sorted by it) is answered from the
sorted index by position, so a page costs O(log n + limit) whatever the portal size.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot import errors
from sandbox.hubspot.records import ID_SPACE, Record, Table
from sandbox.hubspot.schema import QUERY_PROPERTIES, PropDef
from sandbox.hubspot.values import parse_ms, sort_key

OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
MAX_GROUPS = 5
MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_QUERY = 3000
RANGE_OPS = {"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"}
TOKEN = re.compile(r"[^\w@.]+")
BIG = 1 << 62


@dataclass(frozen=True)
class SearchLimits:
    """Limits that differ between HubSpot's documents, and the index lag."""

    filters_per_group: int = 6
    filters_total: int = 18
    lag_ms: int = 2000


@dataclass
class Filter:
    """One compiled filter."""

    prop: str
    op: str
    kind: str  # number | time | bool | text
    value: Any = None
    high: Any = None
    values: tuple = ()
    derived: str = ""  # "id" | "created" | "modified": read from the record, not its props

    def test(self, rec: Record) -> bool:
        """Whether a record passes this filter."""
        op = self.op
        if self.derived:
            if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                return op == "HAS_PROPERTY"
            got = rec.modified if self.derived == "modified" else rec.created if self.derived == "created" \
                else (float(rec.id) if self.kind == "number" else str(rec.id))
            return self._compare(got)
        raw = rec.props.get(self.prop)
        if op == "HAS_PROPERTY":
            return bool(raw)
        if op == "NOT_HAS_PROPERTY":
            return not raw
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            found = bool(raw) and _contains_token(raw or "", self.value)
            return found if op == "CONTAINS_TOKEN" else not found
        if not raw:
            return op in ("NEQ", "NOT_IN")
        got = _typed(self.kind, raw)
        if got is None:
            return op in ("NEQ", "NOT_IN")
        if self.kind == "text" and ";" in raw and op in ("EQ", "NEQ", "IN", "NOT_IN"):
            parts = {p.lower() for p in raw.split(";")}
            hit = bool(parts & (set(self.values) if op in ("IN", "NOT_IN") else {self.value}))
            return hit if op in ("EQ", "IN") else not hit
        return self._compare(got)

    def _compare(self, got: Any) -> bool:
        op = self.op
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            found = _contains_token(str(got), self.value)
            return found if op == "CONTAINS_TOKEN" else not found
        if op == "EQ":
            return got == self.value
        if op == "NEQ":
            return got != self.value
        if op == "IN":
            return got in self.values
        if op == "NOT_IN":
            return got not in self.values
        try:
            if op == "LT":
                return got < self.value
            if op == "LTE":
                return got <= self.value
            if op == "GT":
                return got > self.value
            if op == "GTE":
                return got >= self.value
            return self.value <= got <= self.high  # BETWEEN
        except TypeError:
            return False


def _contains_token(raw: str, pattern: str) -> bool:
    tokens = [t for t in TOKEN.split(raw.lower()) if t]
    if "*" in pattern:
        return fnmatch.fnmatchcase(raw.lower(), pattern) or any(fnmatch.fnmatchcase(t, pattern) for t in tokens)
    return pattern in tokens or pattern == raw.lower()


def _kind(prop: PropDef) -> str:
    if prop.type == "number":
        return "number"
    if prop.type in ("datetime", "date"):
        return "time"
    if prop.type == "bool":
        return "bool"
    return "text"


def _typed(kind: str, raw: Any) -> Any:
    if kind == "number":
        try:
            return float(raw)
        except (TypeError, ValueError):
            return None
    if kind == "time":
        return parse_ms(str(raw))
    return str(raw).lower()


def _compile(f: Any, defined: dict[str, PropDef], table: Table) -> Filter:
    if not isinstance(f, dict):
        raise errors.validation("Each filter must be an object with propertyName and operator.")
    name, op = f.get("propertyName"), f.get("operator")
    if not name or not op:
        raise errors.validation("Each filter needs a propertyName and an operator.")
    if op not in OPERATORS:
        raise errors.validation(f"Invalid operator {op!r}; use one of {', '.join(OPERATORS)}.")
    prop = defined.get(name)
    if prop is None:
        raise errors.validation(f"There was a problem with the request: property {name!r} does not exist.")
    kind = _kind(prop)
    derived = {"hs_object_id": "id", table.created_prop: "created", table.modified_prop: "modified"}.get(name, "")
    out = Filter(name, op, kind, derived=derived)
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return out
    if op in ("IN", "NOT_IN"):
        values = f.get("values")
        if not isinstance(values, list) or not values:
            raise errors.validation(f"Operator {op} on {name!r} needs a non-empty `values` list.")
        out.values = tuple(_checked(kind, v, name) for v in values)
        return out
    if f.get("value") is None:
        raise errors.validation(f"Operator {op} on {name!r} needs a `value`.")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        out.value = str(f["value"]).lower()
        return out
    out.value = _checked(kind, f["value"], name)
    if op == "BETWEEN":
        if f.get("highValue") is None:
            raise errors.validation(f"BETWEEN on {name!r} needs a `highValue`.")
        out.high = _checked(kind, f["highValue"], name)
    return out


def _checked(kind: str, value: Any, name: str) -> Any:
    typed = _typed(kind, value)
    if typed is None:
        hint = "epoch milliseconds" if kind == "time" else "a number"
        raise errors.validation(f"Invalid filter value {value!r} for {name!r}; expected {hint}.")
    return typed


def _sort(raw: Any, defined: dict[str, PropDef]) -> tuple[str, bool] | None:
    if not raw:
        return None
    if not isinstance(raw, list) or len(raw) > 1:
        raise errors.validation("Search accepts at most one sort.")
    s = raw[0]
    if isinstance(s, str):
        name, desc = s.lstrip("-"), s.startswith("-")
    elif isinstance(s, dict) and s.get("propertyName"):
        name = s["propertyName"]
        direction = str(s.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise errors.validation(f"Invalid sort direction {direction!r}; use ASCENDING or DESCENDING.")
        desc = direction == "DESCENDING"
    else:
        raise errors.validation("A sort is a property name or {propertyName, direction}.")
    if name not in defined:
        raise errors.validation(f"Cannot sort by {name!r}: no such property.")
    return name, desc


def _paging(body: dict) -> tuple[int, int]:
    try:
        limit = int(body.get("limit", 10) or 10)
        after = int(body.get("after") or 0)
    except (TypeError, ValueError) as exc:
        raise errors.validation("`limit` must be a number and `after` a numeric offset string.") from exc
    if limit < 1 or limit > MAX_LIMIT:
        raise errors.validation(f"limit must be between 1 and {MAX_LIMIT}; got {limit}.")
    if after < 0 or after >= MAX_RESULTS:
        raise errors.validation(f"Search results are limited to {MAX_RESULTS} records; after={after} is past "
                                "the end. Narrow the filters (for example a later last-modified window).")
    return limit, after


def search(table: Table, defined: dict[str, PropDef], body: Any, limits: SearchLimits, now: int) -> dict:
    """Run one search request against a table; raises ApiError on bad requests."""
    if not isinstance(body, dict):
        raise errors.validation("The search body must be a JSON object.")
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise errors.validation("`filterGroups` must be a list.")
    if len(groups) > MAX_GROUPS:
        raise errors.validation(f"Too many filter groups ({len(groups)}); the maximum is {MAX_GROUPS}.")
    compiled: list[list[Filter]] = []
    for g in groups:
        filters = g.get("filters") if isinstance(g, dict) else None
        if not isinstance(filters, list):
            raise errors.validation("Each filter group needs a `filters` list.")
        if len(filters) > limits.filters_per_group:
            raise errors.validation(f"Too many filters in a group ({len(filters)}); the maximum is "
                                    f"{limits.filters_per_group}.")
        compiled.append([_compile(f, defined, table) for f in filters])
    if sum(len(g) for g in compiled) > limits.filters_total:
        raise errors.validation(f"Too many filters ({sum(len(g) for g in compiled)}); the maximum in total is "
                                f"{limits.filters_total}.")
    sort = _sort(body.get("sorts"), defined)
    limit, after = _paging(body)
    limit = min(limit, MAX_RESULTS - after)  # nothing past the 10,000th result is ever returned
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY):
        raise errors.validation(f"`query` must be a string of at most {MAX_QUERY} characters.")
    props = body.get("properties")
    names = table.names(props if isinstance(props, list) else None, defined)
    cutoff = now - limits.lag_ms
    fast = _fast_window(table, compiled, sort, query, cutoff)
    if fast is not None:
        lo, hi, desc = fast
        total = max(0, hi - lo)
        start = hi - after - limit if desc else lo + after
        stop = hi - after if desc else lo + after + limit
        keys = list(table.by_modified.islice(max(start, lo), min(stop, hi)))
        recs = [table.records[k % ID_SPACE] for k in (reversed(keys) if desc else keys)]
    else:
        matched = _evaluate(table, compiled, query, cutoff)
        _order(table, matched, sort, defined)
        total = len(matched)
        recs = matched[after:after + limit]
    project = table.projector(names)
    out: dict[str, Any] = {"total": total, "results": [project(r) for r in recs]}
    if after + limit < total:  # the page ending at the 10,000th still links on: that link is refused
        out["paging"] = {"next": {"after": str(after + limit)}}
    return out


def _fast_window(table: Table, groups: list[list[Filter]], sort: tuple[str, bool] | None, query: Any,
                 cutoff: int) -> tuple[int, int, bool] | None:
    """Index positions [lo, hi) when the request is a window on last-modified sorted by it."""
    mod = table.modified_prop
    if query or len(groups) > 1 or (sort is not None and sort[0] != mod) or sort is None:
        return None
    lo_ms, hi_ms = -BIG, cutoff
    for f in groups[0] if groups else []:
        if f.prop != mod or f.op not in RANGE_OPS:
            return None
        v = int(f.value)
        if f.op in ("GTE", "EQ", "BETWEEN"):
            lo_ms = max(lo_ms, v)
        if f.op == "GT":
            lo_ms = max(lo_ms, v + 1)
        if f.op in ("LTE", "EQ"):
            hi_ms = min(hi_ms, v)
        if f.op == "LT":
            hi_ms = min(hi_ms, v - 1)
        if f.op == "BETWEEN":
            hi_ms = min(hi_ms, int(f.high))
    index = table.by_modified
    lo = index.bisect_left(max(lo_ms, 0) * ID_SPACE)
    hi = index.bisect_left((hi_ms + 1) * ID_SPACE) if hi_ms >= 0 else 0
    return lo, max(lo, hi), sort[1]


def _evaluate(table: Table, groups: list[list[Filter]], query: Any, cutoff: int) -> list[Record]:
    records = table.records
    words = [w for w in TOKEN.split(query.lower()) if w] if query else []
    qprops = QUERY_PROPERTIES.get(table.type, ())
    seen: dict[int, Record] = {}
    for group in groups or [[]]:
        candidates = _candidates(table, group)
        for rid in candidates:
            rec = records[rid]
            if rid in seen or rec.modified > cutoff or not all(f.test(rec) for f in group):
                continue
            if words and not _query_match(rec, words, qprops):
                continue
            seen[rid] = rec
    return list(seen.values())


def _candidates(table: Table, group: list[Filter]) -> Any:
    """Ids worth testing: a slice of a date index when a filter bounds one, else every live id."""
    for f in group:
        if f.op in ("GTE", "GT", "BETWEEN", "EQ") and f.derived == "modified":
            return [k % ID_SPACE for k in table.by_modified.irange(max(int(f.value), 0) * ID_SPACE, None)]
    return list(table.live)


def _query_match(rec: Record, words: list[str], qprops: tuple[str, ...]) -> bool:
    tokens: set[str] = set()
    for p in qprops:
        v = rec.props.get(p)
        if v:
            tokens.update(t for t in TOKEN.split(v.lower()) if t)
    return all(any(t.startswith(w) for t in tokens) for w in words)


def _order(table: Table, recs: list[Record], sort: tuple[str, bool] | None, defined: dict[str, PropDef]) -> None:
    if sort is None:
        recs.sort(key=lambda r: r.id)
        return
    name, desc = sort
    ptype = defined[name].type
    keyed = [(sort_key(ptype, table.value(r, name)), r) for r in recs]
    present = [(k, r) for k, r in keyed if k is not None]
    missing = [r for k, r in keyed if k is None]
    present.sort(key=lambda kr: (kr[0], kr[1].id), reverse=desc)
    missing.sort(key=lambda r: r.id)
    recs[:] = [r for _, r in present] + missing
