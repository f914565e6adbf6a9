"""Field mappings as YAML documents: export what a connection uses, import a changed one.

An import is validated whole (layout, every spec, and each source against the fields the CRM
describes) before anything is stored; then the objects whose read mapping changed are
re-derived from their stored raw records, without calling the CRM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.engine import Engine

from adapters.base import FieldInfo
from connector.connections import get_connection
from connector.errors import MappingError
from connector.mappings import Mapping, check_sources, load_mapping, save_mapping, validate
from connector.model import UNIFIED_OBJECTS
from connector.records import Tally
from connector.sync import reapply

DIRECTIONS = ("read", "write")
_LAYOUT_HINT = "export the current mapping with `rapport mappings export NAME` to see the layout"


def export_document(mapping: Mapping, *, connection: str, objects: Sequence[str] | None = None) -> dict[str, Any]:
    """The mapping as a plain document: connection, kind, and per object its read and write entries."""
    doc: dict[str, Any] = {"connection": connection, "kind": mapping.kind, "objects": {}}
    for object in UNIFIED_OBJECTS:
        if objects and object not in objects:
            continue
        entry = {d: dict(part[object]) for d, part in (("read", mapping.read), ("write", mapping.write))
                 if part.get(object)}
        if entry:
            doc["objects"][object] = entry
    return doc


def dump(doc: MappingABC[str, Any]) -> str:
    """YAML text of a document, keys in their given order."""
    return yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, default_flow_style=None, width=110)


def parse(text: str) -> dict[str, Any]:
    """A document from YAML text; MappingError with the line for a syntax error."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MappingError(f"the mapping file is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), dict):
        raise MappingError("the mapping file has no `objects:` section", hint=_LAYOUT_HINT)
    return doc


def read_document(doc: MappingABC[str, Any], kind: str, *,
                  objects: Sequence[str] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The (object, direction) → entries a document sets, validated; MappingError names what is wrong."""
    if doc.get("kind") not in (None, kind):
        raise MappingError(f"this mapping is for a {doc['kind']} connection, not {kind}",
                           hint="import it into a connection of that kind, or export this one's mapping")
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for object, entry in doc["objects"].items():
        if objects and object not in objects:
            continue
        if object not in UNIFIED_OBJECTS:
            raise MappingError(f"unknown object {object!r} in the mapping file",
                               hint=f"use one of {', '.join(UNIFIED_OBJECTS)}")
        if not isinstance(entry, dict) or not entry or set(entry) - set(DIRECTIONS):
            raise MappingError(f"mapping of {object}: expected `read:` and/or `write:` sections", object=object,
                               hint=_LAYOUT_HINT)
        for direction in DIRECTIONS:
            if direction not in entry:
                continue
            entries = entry[direction]
            if not isinstance(entries, dict) or not entries:
                raise MappingError(f"{direction} mapping of {object}: expected at least one field", object=object,
                                   hint=_LAYOUT_HINT)
            parts[(object, direction)] = {str(k): v for k, v in entries.items()}
    if objects and not parts:
        raise MappingError(f"the mapping file has nothing for {', '.join(objects)}")
    validate({o: e for (o, d), e in parts.items() if d == "read"},
             {o: e for (o, d), e in parts.items() if d == "write"})
    return parts


@dataclass
class Imported:
    """What an import did: the re-derivation per object, and sources the stored raw records may lack."""

    tallies: dict[str, Tally]
    new_sources: dict[str, list[str]]


def import_document(engine: Engine, connection_id: int, doc: MappingABC[str, Any], *,
                    describe: Callable[[str], list[FieldInfo]] | None = None,
                    objects: Sequence[str] | None = None) -> Imported:
    """Validate and store a document's mappings, then re-derive the rows of objects whose read mapping changed.

    `describe` (the adapter's) checks each source against the CRM's fields; nothing is stored
    unless the whole document is valid. Sources the previous mapping did not read are reported:
    the stored raw records hold only what was read, so those need a full sync.
    """
    row = get_connection(engine, connection_id)
    parts = read_document(doc, row.kind, objects=objects)
    if describe is not None:
        for (object, direction), entries in parts.items():
            if direction == "read":
                check_sources(object, entries, describe(object))
    before = load_mapping(engine, connection_id, row.kind)
    with engine.begin() as conn:
        for (object, direction), entries in parts.items():
            save_mapping(conn, connection_id, object, direction, entries)
    mapping = load_mapping(engine, connection_id, row.kind)
    changed = [o for o in UNIFIED_OBJECTS if (o, "read") in parts]
    new_sources = {}
    for object in changed:
        known = _sources(before.read.get(object, {}))
        fresh = [s for s in _sources(mapping.read[object]) if s not in known]
        if fresh:
            new_sources[object] = fresh
    return Imported({o: reapply(engine, connection_id, o, mapping=mapping) for o in changed}, new_sources)


def _sources(specs: MappingABC[str, MappingABC[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(s["source"]) for s in specs.values() if s.get("source")))
