"""Field mappings: CRM record → unified row (read) and score → CRM field (write), per connection.

A read spec is `{"source": "<dotted path>", "cast", "map", "default", "format"}` or
`{"constant": value}`; its target is a column of the unified model or `custom.<name>`. Defaults
per CRM kind come from the adapter's `mapping` module; stored rows replace them per object.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters import ADAPTERS
from adapters.base import FieldInfo
from connector import transforms
from connector.errors import ConfigError, InvalidRecord, MappingError
from connector.model import RECORD_MODELS, SCORED_OBJECTS, UNIFIED_OBJECTS, FieldMapping, utcnow

SCORE_KEYS = ("relationship_score", "experience_score", "tier", "drivers", "trend", "scored_at")
# Set by the sync engine itself, never by a mapping.
RESERVED = frozenset({"id", "connection_id", "external_id", "account_id", "raw", "custom", "synced_at",
                      "is_deleted", "merged_into"})
DERIVED_PREFIX = "_rapport."
_CUSTOM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_SPEC_ORDER = ("source", "constant", "cast", "format", "map", "default")
_FM = FieldMapping.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Column:
    """A unified column a mapping may fill: its kind, text length and whether it takes null."""

    kind: str
    length: int | None
    nullable: bool


def _kind(col: sa.Column) -> str:
    t = col.type
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Float):
        return "float"
    if isinstance(t, sa.Date) and not isinstance(t, sa.DateTime):
        return "date"
    if isinstance(t, sa.String):
        return "str"
    return "datetime"


COLUMNS: dict[str, dict[str, Column]] = {
    obj: {
        c.name: Column(_kind(c), getattr(c.type, "length", None), bool(c.nullable))
        for c in model.__table__.c  # type: ignore[attr-defined]
        if c.name not in RESERVED
    }
    for obj, model in RECORD_MODELS.items()
}
# A unified row before mapping: null, or zero of its kind where the column takes no null.
_BLANK = {obj: {name: (None if col.nullable else transforms.CAST_FUNCS[col.kind](0, None)) for name, col in cols.items()}
          for obj, cols in COLUMNS.items()}
_COMPATIBLE = {("int", "float"), ("float", "int"), ("datetime", "date"), ("date", "datetime"), ("bool", "int")}


Compiled = tuple[str, dict[str, Any], "Column | None", Callable[[MappingABC[str, Any]], Any]]


@dataclass
class Mapping:
    """The read and write mapping of one connection; `origin` says which parts are stored vs default."""

    kind: str
    read: dict[str, dict[str, dict[str, Any]]]
    write: dict[str, dict[str, str]]
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    _compiled: dict[str, list[Compiled]] = field(default_factory=dict, repr=False)

    def objects(self) -> list[str]:
        """The unified objects this mapping reads, parents first."""
        return [o for o in UNIFIED_OBJECTS if self.read.get(o)]

    def compiled(self, object: str) -> list[Compiled]:
        """(target, spec, column or None for custom, reader) of one object, computed once."""
        if object not in self._compiled:
            cols = COLUMNS[object]
            fields = [(t, s, None if t.startswith("custom.") else cols[t]) for t, s in self.read.get(object, {}).items()]
            self._compiled[object] = [(t, s, c, field_reader(s, c)) for t, s, c in fields]
        return self._compiled[object]


def _bad(object: str, target: str, reason: str, hint: str | None = None) -> MappingError:
    return MappingError(f"mapping of {object}.{target}: {reason}", object=object, hint=hint)


def validate_read(object: str, target: str, spec: Any) -> None:
    """Reject a read spec that cannot work, naming the object, the field and the reason."""
    if object not in COLUMNS:
        raise _bad(object, target, f"unknown object; Rapport reads {', '.join(UNIFIED_OBJECTS)}")
    if target.startswith("custom."):
        if not _CUSTOM_NAME.match(target[len("custom."):]):
            raise _bad(object, target, "a custom field name takes letters, digits and _ only")
        column = None
    elif target in RESERVED:
        raise _bad(object, target, "this field is set by the sync itself and cannot be mapped")
    elif target not in COLUMNS[object]:
        known = ", ".join(sorted(COLUMNS[object]))
        raise _bad(object, target, "unknown unified field", hint=f"use one of {known}, or custom.<name>")
    else:
        column = COLUMNS[object][target]
    if not isinstance(spec, MappingABC):
        raise _bad(object, target, f"the spec must be a mapping with a source, got {spec!r}")
    extra = set(spec) - transforms.SPEC_KEYS
    if extra:
        raise _bad(object, target, f"unknown key(s) {', '.join(sorted(map(str, extra)))}",
                   hint=f"a spec takes {', '.join(sorted(transforms.SPEC_KEYS))}")
    if ("source" in spec) == ("constant" in spec):
        raise _bad(object, target, "give exactly one of source (a CRM field path) or constant")
    if "source" in spec:
        source = spec["source"]
        if not isinstance(source, str) or not source.strip() or any(not p for p in source.split(".")):
            raise _bad(object, target, f"source {source!r} is not a field path such as Name or properties.name")
    cast = spec.get("cast")
    if cast is not None and cast not in transforms.CASTS:
        raise _bad(object, target, f"unknown cast {cast!r}", hint=f"use one of {', '.join(transforms.CASTS)}")
    if cast and column is not None:
        made = transforms.CAST_RESULT[cast]
        if made != column.kind and column.kind != "str" and (made, column.kind) not in _COMPATIBLE:
            raise _bad(object, target, f"cast {cast} gives a {made} but the field holds a {column.kind}")
    if "map" in spec and not isinstance(spec["map"], MappingABC):
        raise _bad(object, target, "map must be a mapping of CRM value to unified value")
    if "format" in spec:
        if not isinstance(spec["format"], str) or (cast or (column.kind if column else "")) not in ("datetime", "date"):
            raise _bad(object, target, "format (a strptime pattern) needs cast datetime or date")
    for key in ("constant", "default"):
        if spec.get(key) is not None:
            try:
                _fitter(spec, column)(spec[key])
            except ValueError as exc:
                raise _bad(object, target, f"{key} {spec[key]!r} does not fit: {exc}") from None


def validate_write(object: str, target: str, crm_field: Any) -> None:
    """Reject a write entry: scores go to account/contact, from a known score key, into a named CRM field."""
    if object not in SCORED_OBJECTS:
        raise _bad(object, target, f"scores are written to {' and '.join(SCORED_OBJECTS)} only")
    if target not in SCORE_KEYS:
        raise _bad(object, target, "unknown score key", hint=f"use one of {', '.join(SCORE_KEYS)}")
    if not isinstance(crm_field, str) or not crm_field.strip():
        raise _bad(object, target, f"the CRM field must be a field name, got {crm_field!r}")


def validate(read: MappingABC[str, Any], write: MappingABC[str, Any]) -> None:
    """Validate a whole mapping (every object, every field) or raise the first MappingError."""
    for object, specs in read.items():
        if not isinstance(specs, MappingABC):
            raise MappingError(f"mapping of {object}: expected field: spec pairs", object=object)
        for target, spec in specs.items():
            validate_read(object, str(target), spec)
    for object, targets in write.items():
        if not isinstance(targets, MappingABC):
            raise MappingError(f"write mapping of {object}: expected score key: CRM field pairs", object=object)
        for target, crm_field in targets.items():
            validate_write(object, str(target), crm_field)


def check_sources(object: str, specs: MappingABC[str, MappingABC[str, Any]], fields: Sequence[FieldInfo]) -> None:
    """Reject a source path naming no field the CRM describes on this object."""
    known = {f.name for f in fields}
    for f in fields:
        if f.type == "reference" and f.name.endswith("Id"):  # lookups are read through their relationship
            known.add(f.name[:-2])
        elif f.type == "reference" and f.name.endswith("__c"):
            known.add(f.name[:-3] + "__r")
    for target, spec in specs.items():
        source = spec.get("source")
        if not source or source.startswith(DERIVED_PREFIX):
            continue
        if not any(part in known for part in source.split(".")):
            close = difflib.get_close_matches(source.split(".")[-1], sorted(known), n=1)
            raise _bad(object, target, f"source {source!r} names no field the CRM has on this object",
                       hint=f"did you mean {close[0]}?" if close else "check the field's API name in the CRM")


def _fitter(spec: MappingABC[str, Any], column: Column | None) -> Callable[[Any], Any]:
    """Cast a value as the spec says, then fit it to the unified column (JSON-ready for a custom
    field); ValueError if it cannot be."""
    cast = transforms.CAST_FUNCS[spec["cast"]] if spec.get("cast") else None
    fmt = spec.get("format")
    fit = transforms.CAST_FUNCS[column.kind] if column is not None else None
    length = column.length if column is not None else None

    def fitted(value: Any) -> Any:
        if cast is not None:
            value = cast(value, fmt)
        if fit is None:
            return value.isoformat() if hasattr(value, "isoformat") else value
        value = fit(value, fmt)
        if length is not None and len(value) > length:
            value = value[:length]  # the raw record keeps the full text
        return value

    return fitted


def field_reader(spec: MappingABC[str, Any], column: Column | None) -> Callable[[MappingABC[str, Any]], Any]:
    """The value of one mapped field from a raw record: the spec's source, default and map, then cast
    and fitted; ValueError if it cannot be."""
    value_of = transforms.compile_spec({k: v for k, v in spec.items() if k != "cast"})
    fitted = _fitter(spec, column)

    def read(raw: MappingABC[str, Any]) -> Any:
        value = value_of(raw)
        return None if value is None else fitted(value)

    return read


def apply(mapping: Mapping, object: str, raw: MappingABC[str, Any]) -> dict[str, Any]:
    """A unified row (every mappable column, plus `custom`) from a raw record; InvalidRecord if a value cannot fit."""
    row = dict(_BLANK[object])
    custom: dict[str, Any] = {}
    for target, spec, column, read in mapping.compiled(object):
        try:
            value = read(raw)
        except ValueError as exc:
            where = spec.get("source") or "constant"
            raise InvalidRecord(f"{object}.{target} from {where}: {exc}", object=object,
                                hint="fix the value in the CRM or the field mapping") from None
        if column is None:
            custom[target[len("custom."):]] = value
        elif value is not None or column.nullable:
            row[target] = value
    row["custom"] = custom
    return row


def default_mapping(kind: str) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, str]]]:
    """The default read and write mapping of a CRM kind, from its adapter's `mapping` module."""
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown CRM kind {kind!r}", hint=f"use one of {', '.join(ADAPTERS)}")
    package = ADAPTERS[kind].partition(":")[0]
    try:
        module = importlib.import_module(package + ".mapping")
    except ModuleNotFoundError as exc:
        if exc.name != package + ".mapping":
            raise
        module = importlib.import_module(package)
    read = {o: {f: dict(s) for f, s in specs.items()} for o, specs in module.DEFAULT_READ.items()}
    write = {o: dict(t) for o, t in module.DEFAULT_WRITE.items()}
    return read, write


def load_mapping(engine: Engine, connection_id: int, kind: str) -> Mapping:
    """The connection's mapping: stored entries per (object, direction), defaults where none are stored."""
    read, write = default_mapping(kind)
    origin = {(o, "read"): "default" for o in read} | {(o, "write"): "default" for o in write}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_FM).where(_FM.c.connection_id == connection_id).order_by(_FM.c.id)).all()
    stored: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entries = stored.setdefault((r.object, r.direction), {})
        spec = ({"source": r.source} if r.source is not None else {}) | dict(r.transform)
        entries[r.target] = {k: spec[k] for k in _SPEC_ORDER if k in spec} | spec  # JSONB does not keep key order
        if r.direction == "write":
            entries[r.target] = r.source
    for (object, direction), entries in stored.items():
        (read if direction == "read" else write)[object] = entries
        origin[(object, direction)] = "stored"
    mapping = Mapping(kind=kind, read=read, write=write, origin=origin)
    validate(mapping.read, mapping.write)
    return mapping


def save_mapping(conn: sa.Connection, connection_id: int, object: str, direction: str,
                 entries: MappingABC[str, Any]) -> None:
    """Replace the stored entries of one object and direction (validate them first)."""
    conn.execute(sa.delete(_FM).where(_FM.c.connection_id == connection_id, _FM.c.object == object,
                                      _FM.c.direction == direction))
    now = utcnow()
    rows = []
    for target, spec in entries.items():
        if direction == "read":
            rest = {k: v for k, v in spec.items() if k != "source"}
            rows.append(dict(target=target, source=spec.get("source"), transform=rest))
        else:
            rows.append(dict(target=target, source=spec, transform={}))
    if rows:
        conn.execute(sa.insert(_FM), [dict(r, connection_id=connection_id, object=object, direction=direction,
                                           updated_at=now) for r in rows])
