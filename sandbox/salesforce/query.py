"""SOQL execution: checks a parsed query against the org's schema, compiles the WHERE clause to
Python closures, walks the (SystemModstamp, Id) index when the filter and order allow it, and
renders records in the REST shape (parent fields nested with their own `attributes`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson

from sandbox.salesforce import ids
from sandbox.salesforce.schema import FieldDef, ObjectDef
from sandbox.salesforce.soql import (
    BoolOp,
    Compare,
    FieldRef,
    InList,
    Like,
    Literal,
    Not,
    Query,
    SoqlError,
    located,
    parse,
)
from sandbox.salesforce.store import CACHE_KEY, Org, Record
from sandbox.salesforce.values import NUMERIC, fmt_dt, parse_dt

Getter = Callable[[Record], Any]
Pred = Callable[[Record], bool]
_NO_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to "
    "append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
_NO_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom relationship, "
    "be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the "
    "describe call for the appropriate names."
)
_NO_TYPE = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append "
    "the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
)


@dataclass
class Column:
    """One selected field: its path of canonical names and how to read it."""

    path: tuple[str, ...]
    fdef: FieldDef
    getter: Getter


@dataclass
class Plan:
    """A compiled query, ready to run and to render."""

    query: Query
    obj: ObjectDef
    columns: list[Column]
    predicate: Pred | None
    stamp_range: tuple[str | None, bool, str | None, bool] | None
    id_set: set[str] | None
    sort: list[tuple[Getter, bool, bool, bool]]
    by_stamp: bool

    def __post_init__(self) -> None:
        self.flat = all(len(c.path) == 1 for c in self.columns)
        self.signature = (self.obj.name, *(c.fdef.name for c in self.columns))


class Compiler:
    """Resolves names against one org and builds a Plan."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def plan(self, text: str, *, bulk: bool = False) -> Plan:
        """Parse and check a query; raises SoqlError with the platform's code and message."""
        q = parse(text)
        obj = self.org.schema.get(q.sobject)
        if obj is None:
            raise SoqlError("INVALID_TYPE", located(text, q.sobject_pos, _NO_TYPE.format(name=q.sobject)))
        if bulk and (q.count or q.offset is not None):
            raise SoqlError("INVALIDJOB", "COUNT() and OFFSET are not supported by Bulk API 2.0 query")
        columns: list[Column] = []
        seen: set[tuple[str, ...]] = set()
        for ref in q.fields:
            col = self.column(obj, ref, q)
            key = tuple(p.lower() for p in col.path)
            if key in seen:
                raise SoqlError("MALFORMED_QUERY", located(text, ref.pos, f"duplicate field selected: {'.'.join(col.path)}"))
            seen.add(key)
            columns.append(col)
        predicate = self.condition(obj, q.where, q) if q.where is not None else None
        sort = []
        for item in q.order:
            col = self.column(obj, item.field, q)
            sort.append((col.getter, item.desc, item.nulls_last, col.fdef.is_text))
        order_names = [self.column(obj, i.field, q).path for i in q.order]
        by_stamp = "SystemModstamp" in obj.fields and (
            not q.order
            or (order_names[0] == ("SystemModstamp",) and not q.order[0].desc
                and (len(q.order) == 1 or (len(q.order) == 2 and order_names[1] == ("Id",) and not q.order[1].desc)))
        )
        stamp_range, id_set = self.index_hints(obj, q.where, q)
        return Plan(q, obj, columns, predicate, stamp_range, id_set, [] if by_stamp else sort, by_stamp)

    # -- names ----------------------------------------------------------------------------------
    def column(self, obj: ObjectDef, ref: FieldRef, q: Query) -> Column:
        """Resolve a dotted field path into a Column with a getter."""
        path = list(ref.path)
        if len(path) > 1 and path[0].lower() == obj.name.lower():
            path = path[1:]  # "Contact.Name" from Contact is allowed
        current = obj
        links: list[FieldDef] = []
        for part in path[:-1]:
            rel = current.relationship(part)
            if rel is None:
                raise SoqlError("INVALID_FIELD", located(q.text, ref.pos, _NO_RELATIONSHIP.format(name=part)))
            links.append(rel)
            target = self.org.schema.get(rel.reference_to[0])
            assert target is not None
            current = target
        fdef = current.field(path[-1])
        if fdef is None:
            if len(path) == 1 and current.relationship(path[-1]) is not None:
                message = f"Didn't understand relationship '{path[-1]}' in field path."
                raise SoqlError("INVALID_FIELD", located(q.text, ref.pos, message))
            raise SoqlError("INVALID_FIELD", located(q.text, ref.pos, _NO_COLUMN.format(name=path[-1], entity=current.name)))
        names = tuple(link.relationship_name or "" for link in links) + (fdef.name,)
        return Column(names, fdef, self.getter(links, fdef))

    def getter(self, links: list[FieldDef], fdef: FieldDef) -> Getter:
        """A function reading the field through its relationship chain (None when a link is empty)."""
        name = fdef.name
        if not links:
            return lambda r: r.get(name)
        org = self.org
        chain = [link.name for link in links]

        def walk(r: Record) -> Any:
            cur: Record | None = r
            for ref_field in chain:
                target = cur.get(ref_field) if cur else None
                cur = org.get(target) if target else None
                if cur is None or cur.get("IsDeleted"):
                    return None
            return cur.get(name) if cur else None

        return walk

    # -- WHERE ------------------------------------------------------------------------------------
    def condition(self, obj: ObjectDef, node: object, q: Query) -> Pred:
        """Compile a condition node into a predicate."""
        if isinstance(node, BoolOp):
            parts = [self.condition(obj, item, q) for item in node.items]
            if node.op == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        if isinstance(node, Not):
            inner = self.condition(obj, node.item, q)
            return lambda r: not inner(r)
        if isinstance(node, Compare):
            col = self.column(obj, node.field, q)
            return self.compare(col, node.op, node.value, q)
        if isinstance(node, InList):
            col = self.column(obj, node.field, q)
            values = {self.value(col, lit, q) for lit in node.values}
            get = self.normalized(col)
            if node.negate:
                return lambda r: get(r) not in values
            return lambda r: (v := get(r)) is not None and v in values
        if isinstance(node, Like):
            col = self.column(obj, node.field, q)
            if node.pattern.kind != "string":
                raise SoqlError("MALFORMED_QUERY", located(q.text, node.pattern.pos, "LIKE needs a quoted string"))
            regex = like_regex(node.pattern.raw)
            get = col.getter
            return lambda r: (v := get(r)) is not None and regex.match(str(v)) is not None
        raise SoqlError("MALFORMED_QUERY", "unsupported condition")

    def normalized(self, col: Column) -> Getter:
        """The getter, lower-casing text so comparisons are case-insensitive as in SOQL."""
        get = col.getter
        if col.fdef.is_text:
            return lambda r: v.lower() if isinstance(v := get(r), str) else v
        return get

    def compare(self, col: Column, op: str, lit: Literal, q: Query) -> Pred:
        """One comparison, with SOQL's null and date-literal semantics."""
        get = self.normalized(col)
        if lit.kind == "null":
            if op == "=":
                return lambda r: get(r) is None
            if op == "!=":
                return lambda r: get(r) is not None
            raise SoqlError("MALFORMED_QUERY", located(q.text, lit.pos, "null can only be used with = and !="))
        if lit.kind == "dateliteral":
            start, end = self.literal_range(col, lit, q)
            ranged: dict[str, Pred] = {
                "=": lambda r: (v := get(r)) is not None and start <= v < end,
                "!=": lambda r: (v := get(r)) is None or not (start <= v < end),
                "<": lambda r: (v := get(r)) is not None and v < start,
                "<=": lambda r: (v := get(r)) is not None and v < end,
                ">": lambda r: (v := get(r)) is not None and v >= end,
                ">=": lambda r: (v := get(r)) is not None and v >= start,
            }
            return ranged[op]
        value = self.value(col, lit, q)
        ops: dict[str, Pred] = {
            "=": lambda r: get(r) == value,
            "!=": lambda r: get(r) != value,
            "<": lambda r: (v := get(r)) is not None and v < value,
            "<=": lambda r: (v := get(r)) is not None and v <= value,
            ">": lambda r: (v := get(r)) is not None and v > value,
            ">=": lambda r: (v := get(r)) is not None and v >= value,
        }
        return ops[op]

    def value(self, col: Column, lit: Literal, q: Query) -> Any:
        """The literal in the stored form of the column's type; refuses mismatched literals."""
        t = col.fdef.type
        name = col.fdef.name
        if lit.kind == "null":
            return None

        def wrong(expected: str, quotes: str) -> SoqlError:
            msg = f"value of filter criterion for field '{name}' must be of type {expected} and {quotes}"
            return SoqlError("INVALID_FIELD", located(q.text, lit.pos, msg))

        if t == "datetime":
            if lit.kind != "datetime":
                raise wrong("dateTime", "should not be enclosed in quotes")
            return fmt_dt(parse_dt(str(lit.value)))
        if t == "date":
            if lit.kind != "date":
                raise wrong("date", "should not be enclosed in quotes")
            return lit.value
        if t == "boolean":
            if lit.kind != "bool":
                raise wrong("boolean", "should not be enclosed in quotes")
            return lit.value
        if t in NUMERIC:
            if lit.kind != "number":
                raise wrong("double" if t != "int" else "int", "should not be enclosed in quotes")
            return lit.value
        if lit.kind != "string":
            raise wrong("string", "should be enclosed in quotes")
        if t in ("id", "reference"):
            norm = ids.normalize(str(lit.value))
            if norm is None:
                raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", located(q.text, lit.pos, f"invalid ID field: {lit.value}"))
            return norm
        return str(lit.value).lower() if col.fdef.is_text else lit.value

    def literal_range(self, col: Column, lit: Literal, q: Query) -> tuple[str, str]:
        """[start, end) of a date literal in the column's stored form."""
        if col.fdef.type not in ("date", "datetime"):
            raise SoqlError("INVALID_FIELD", located(q.text, lit.pos, f"value of filter criterion for field '{col.fdef.name}' must be of type {col.fdef.type}"))
        today = self.org.clock.now().date()
        one = timedelta(days=1)
        ranges: dict[str, tuple[date, date]] = {
            "TODAY": (today, today + one),
            "YESTERDAY": (today - one, today),
            "TOMORROW": (today + one, today + 2 * one),
            # LAST_N_DAYS:n includes today: LAST_N_DAYS:1 is yesterday and today.
            "LAST_N_DAYS": (today - lit.n * one, today + one),
            "NEXT_N_DAYS": (today + one, today + (lit.n + 1) * one),
            "N_DAYS_AGO": (today - lit.n * one, today - (lit.n - 1) * one),
        }
        start, end = ranges[str(lit.value)]
        if col.fdef.type == "date":
            return start.isoformat(), end.isoformat()
        return fmt_dt(datetime.combine(start, time(), tzinfo=UTC)), fmt_dt(datetime.combine(end, time(), tzinfo=UTC))

    def index_hints(self, obj: ObjectDef, node: object, q: Query) -> tuple[Any, set[str] | None]:
        """SystemModstamp bounds and Id sets found among the top-level AND terms."""
        terms = list(node.items) if isinstance(node, BoolOp) and node.op == "AND" else [node] if node else []
        low: str | None = None
        low_incl = True
        high: str | None = None
        high_incl = True
        id_set: set[str] | None = None
        for term in terms:
            if isinstance(term, Compare) and term.field.path[-1].lower() == "systemmodstamp" and len(term.field.path) == 1 \
                    and term.value.kind == "datetime" and term.op in ("<", "<=", ">", ">=", "="):
                v = fmt_dt(parse_dt(str(term.value.value)))
                if term.op in (">", ">=", "=") and (low is None or v >= low):
                    low, low_incl = v, term.op != ">"
                if term.op in ("<", "<=", "=") and (high is None or v <= high):
                    high, high_incl = v, term.op != "<"
            if isinstance(term, Compare | InList) and len(term.field.path) == 1 and term.field.path[0].lower() == "id":
                if isinstance(term, Compare) and term.op == "=" and term.value.kind == "string":
                    id_set = {ids.normalize(str(term.value.value)) or ""}
                elif isinstance(term, InList) and not term.negate:
                    id_set = {ids.normalize(str(v.value)) or "" for v in term.values}
        stamp_range = (low, low_incl, high, high_incl) if (low or high) and "SystemModstamp" in obj.fields else None
        return stamp_range, id_set


def like_regex(raw: str) -> re.Pattern[str]:
    """SOQL LIKE (case-insensitive, % and _ wildcards, backslash escapes) as a regex."""
    out, i = [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            out.append(re.escape(raw[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.I | re.S)


def run(org: Org, plan: Plan, *, include_deleted: bool) -> list[str]:
    """The ids matching a plan, in result order, with LIMIT and OFFSET applied."""
    table = org.table(plan.obj.name)
    pred = plan.predicate
    skip_deleted = not include_deleted and "IsDeleted" in plan.obj.fields
    with org.lock:
        rows = table.rows
        candidates: Iterable[Record]
        if plan.id_set is not None:
            candidates = [r for i in sorted(plan.id_set) if (r := rows.get(i)) is not None]
            if plan.by_stamp:
                candidates = sorted(candidates, key=lambda r: (r.get("SystemModstamp") or "", r["Id"]))
        elif plan.by_stamp:
            if plan.stamp_range:
                low, low_incl, high, high_incl = plan.stamp_range
                keys = table.order.irange(
                    (low, "") if low else None, (high, "\uffff") if high else None, inclusive=(True, True)
                )
            else:
                keys = iter(table.order)
            candidates = (rows[i] for _, i in keys)
        else:
            candidates = list(rows.values())
        matched = [
            r for r in candidates
            if not (skip_deleted and r.get("IsDeleted")) and (pred is None or pred(r))
        ]
    for get, desc, nulls_last, text in reversed(plan.sort):
        matched.sort(key=_sort_key(get, desc, nulls_last, text), reverse=desc)
    start = plan.query.offset or 0
    end = start + plan.query.limit if plan.query.limit is not None else None
    return [r["Id"] for r in matched[start:end]]


def _sort_key(get: Getter, desc: bool, nulls_last: bool, text: bool) -> Callable[[Record], tuple[bool, Any]]:
    # With reverse=True the flag order flips, so the flag is inverted to keep nulls where asked.
    nulls_high = nulls_last != desc

    def key(r: Record) -> tuple[bool, Any]:
        v = get(r)
        if text and isinstance(v, str):
            v = v.lower()
        return ((v is None) if nulls_high else (v is not None), v)

    return key


def render_json(org: Org, plan: Plan, record: Record, version: str) -> bytes:
    """A record as JSON bytes; flat selections are cached on the record until its next write."""
    if not plan.flat:
        return orjson.dumps(render(org, plan, record, version))
    sig = (plan.signature, version)
    cached = record.get(CACHE_KEY)
    if cached is not None and cached[0] == sig:
        return cached[1]
    data = orjson.dumps(render(org, plan, record, version))
    record[CACHE_KEY] = (sig, data)
    return data


def render(org: Org, plan: Plan, record: Record, version: str) -> dict[str, Any]:
    """One record in the REST query shape: attributes, then the selected fields in order."""
    out: dict[str, Any] = {"attributes": attributes(plan.obj.name, record["Id"], version)}
    for col in plan.columns:
        if len(col.path) == 1:
            out[col.fdef.name] = record.get(col.fdef.name)
        else:
            _nest(org, plan.obj, record, col.path, out, version)
    return out


def attributes(object_name: str, record_id: str, version: str) -> dict[str, str]:
    """The `attributes` block of a record."""
    return {"type": object_name, "url": f"/services/data/v{version}/sobjects/{object_name}/{record_id}"}


def _nest(org: Org, obj: ObjectDef, record: Record, path: tuple[str, ...], out: dict[str, Any], version: str) -> None:
    rel_name, rest = path[0], path[1:]
    link = obj.relationship(rel_name)
    if link is None:
        return
    if rel_name in out and out[rel_name] is None:
        return
    target_id = record.get(link.name)
    parent = org.get(target_id) if target_id else None
    if parent is None or parent.get("IsDeleted"):
        out[rel_name] = None
        return
    parent_obj_name = org.object_of(parent["Id"]) or link.reference_to[0]
    parent_obj = org.schema.get(parent_obj_name)
    assert parent_obj is not None
    nested = out.get(rel_name)
    if nested is None:
        nested = {"attributes": attributes(parent_obj_name, parent["Id"], version)}
        out[rel_name] = nested
    if len(rest) == 1:
        nested[rest[0]] = parent.get(rest[0]) if parent_obj.field(rest[0]) else None
    else:
        _nest(org, parent_obj, parent, rest, nested, version)
