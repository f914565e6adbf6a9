"""Field mappings in the admin app: the CRM's fields (live describe) beside the unified ones, checks,
a preview of five real records mapped with a draft, saving, YAML import/export and provisioning.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import asdict, replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters import ADAPTERS
from adapters.base import FieldInfo, FieldSpec
from connector import mapping_files
from connector.config import Settings
from connector.connections import connection_info, get_connection, store_secrets
from connector.errors import MappingError, RapportError
from connector.mappings import (
    COLUMNS,
    SCORE_KEYS,
    Mapping,
    apply,
    check_sources,
    load_mapping,
    validate_read,
    validate_write,
)
from connector.model import RECORD_MODELS, SCORED_OBJECTS, UNIFIED_OBJECTS, utcnow
from connector.vault import vault_for
from connector.web.services.common import Invalid, NotFound, connection_row
from connector.web.services.mapping_form import compatible, crm_kind

log = logging.getLogger(__name__)
DESCRIBE_TTL_S = 60.0  # the page shows the CRM's fields as of at most a minute ago
PREVIEW_RECORDS = 5
INTERACTIVE = {"max_retries": 1, "backoff_scale": 0.1, "retries": 1, "retry_backoff_seconds": 0.1}
_describe_cache: dict[tuple[int, str], tuple[float, list[FieldInfo]]] = {}


def check_object(object: str) -> str:
    """The object if Rapport maps it; NotFound otherwise."""
    if object not in UNIFIED_OBJECTS:
        raise NotFound(f"there is no object {object!r}; Rapport maps {', '.join(UNIFIED_OBJECTS)}")
    return object


def interactive_adapter(engine: Engine, settings: Settings, connection_id: int) -> Any:
    """The connection's adapter for a person waiting on a page: one retry, not the workers' patient backoff."""
    row = get_connection(engine, connection_id)
    path = ADAPTERS.get(row.kind, "")
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    secrets = vault_for(settings).decrypt(row.credentials_encrypted)
    info = connection_info(row)
    info = replace(info, options={**info.options, **INTERACTIVE})

    def persist(new: dict[str, Any]) -> None:
        secrets.update(new)  # refresh responses may omit the refresh token: keep it
        store_secrets(engine, settings, connection_id, dict(secrets))

    from connector.budget import budget_for

    return cls(info, dict(secrets), budget=budget_for(settings, row), on_secrets=persist)


def crm_fields(engine: Engine, settings: Settings, row: Any, object: str, *, fresh: bool = False
               ) -> tuple[list[FieldInfo], str | None]:
    """The CRM's fields of an object (described live, kept a minute), or [] and why they could not be read."""
    key = (int(row.id), object)
    cached = _describe_cache.get(key)
    if cached and not fresh and cached[0] > time.monotonic():
        return cached[1], None
    try:
        fields = interactive_adapter(engine, settings, int(row.id)).describe(object)
    except RapportError as exc:
        return [], str(exc)
    except Exception as exc:  # noqa: BLE001 - an unreachable CRM is shown on the page, not a 500
        log.warning("describe %s of connection %s failed: %s", object, row.id, exc)
        return [], f"{type(exc).__name__}: {exc}"
    _describe_cache[key] = (time.monotonic() + DESCRIBE_TTL_S, fields)
    return fields, None


def _field_for(source: str | None, by_name: dict[str, FieldInfo]) -> FieldInfo | None:
    if not source:
        return None
    parts = source.split(".")
    name = parts[-1] if parts[0] == "properties" and len(parts) == 2 else (source if len(parts) == 1 else None)
    return by_name.get(name) if name else None


def type_warnings(object: str, read: dict[str, dict[str, Any]], fields: list[FieldInfo]) -> dict[str, str]:
    """Per unified field, a warning when the CRM field's type does not fit the column without a cast."""
    by_name = {f.name: f for f in fields}
    out: dict[str, str] = {}
    for target, spec in read.items():
        info = _field_for(spec.get("source"), by_name)
        column = COLUMNS[object].get(target)
        if info is None or column is None or spec.get("cast"):
            continue
        have = crm_kind(info.type)
        if have and not compatible(have, column.kind):
            out[target] = f"{info.name} is a {info.type} field but {target} holds a {column.kind}: add a cast"
    return out


def mapping_view(engine: Engine, settings: Settings, ws: int, connection_id: Any, object: str, *,
                 fresh: bool = False) -> dict[str, Any]:
    """Everything the mapping page shows for one object of one connection."""
    row = connection_row(engine, ws, connection_id)
    check_object(object)
    mapping = load_mapping(engine, int(row.id), row.kind)
    read = mapping.read.get(object, {})
    fields, error = crm_fields(engine, settings, row, object, fresh=fresh)
    targets = list(COLUMNS[object]) + sorted(t for t in read if t.startswith("custom."))
    return {
        "connection": {"id": int(row.id), "name": row.name, "kind": row.kind},
        "object": object,
        "origin": {"read": mapping.origin.get((object, "read"), "default"),
                   "write": mapping.origin.get((object, "write"), "default")},
        "unified": [{"name": t, "kind": COLUMNS[object][t].kind if t in COLUMNS[object] else "custom",
                     "spec": read.get(t)} for t in targets],
        "read": read,
        "write": mapping.write.get(object, {}) if object in SCORED_OBJECTS else None,
        "crm_fields": [asdict(f) for f in fields],
        "crm_error": error,
        "warnings": type_warnings(object, read, fields),
    }


def check_draft(object: str, read: dict[str, Any], write: dict[str, Any] | None,
                fields: list[FieldInfo]) -> dict[str, str]:
    """Per field, what is wrong with a draft mapping (empty when it can be saved)."""
    errors: dict[str, str] = {}
    for target, spec in read.items():
        try:
            validate_read(object, target, spec)
            if fields:
                check_sources(object, {target: spec}, fields)
        except MappingError as exc:
            errors[target] = exc.message.split(": ", 1)[-1] + (f" ({exc.hint})" if exc.hint else "")
    if not read:
        errors["read"] = "map at least one field"
    for key, crm_field in (write or {}).items():
        try:
            validate_write(object, key, crm_field)
        except MappingError as exc:
            errors[f"write.{key}"] = exc.message.split(": ", 1)[-1]
    return errors


def save(engine: Engine, settings: Settings, ws: int, connection_id: Any, object: str, read: dict[str, Any],
         write: dict[str, Any] | None, form_errors: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate and store one object's mapping, then re-derive its rows from their raw records."""
    row = connection_row(engine, ws, connection_id)
    check_object(object)
    fields, _ = crm_fields(engine, settings, row, object)
    errors = dict(form_errors or {}) | check_draft(object, read, write, fields)
    if errors:
        raise Invalid(f"the {object} mapping was not saved: fix the fields marked", errors)
    entry: dict[str, Any] = {"read": read}
    if write:
        entry["write"] = write
    doc = {"kind": row.kind, "objects": {object: entry}}
    done = mapping_files.import_document(engine, int(row.id), doc, objects=[object])
    tally = done.tallies.get(object)
    counts = tally.counts.get(object, {}) if tally is not None else {}
    return {"saved": True, "object": object, "rederived": int(counts.get("updated", 0)),
            "skipped": int(counts.get("skipped", 0)), "new_sources": done.new_sources.get(object, [])}


def _sample_ids(engine: Engine, connection_id: int, object: str) -> list[str]:
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.c.external_id).where(t.c.connection_id == connection_id,
                                                                  t.c.is_deleted.is_(False))
                                 .order_by(t.c.modified_at.desc().nulls_last(), t.c.id.desc())
                                 .limit(PREVIEW_RECORDS)).scalars())


def _fetch_samples(adapter: Any, engine: Engine, connection_id: int, object: str) -> list[Any]:
    ids = _sample_ids(engine, connection_id, object)
    if ids:
        return [c for c in adapter.fetch(object, ids) if not c.deleted]
    now = utcnow()
    found: dict[str, Any] = {}
    for since, full in ((now - timedelta(days=30), False), (None, True)):  # before the first sync
        pages = adapter.pull(object, since, now, full=full)
        try:
            for page in pages:
                found.update((c.external_id, c) for c in page.changes if not c.deleted)
                if len(found) >= PREVIEW_RECORDS:
                    return list(found.values())[:PREVIEW_RECORDS]
        finally:
            close = getattr(pages, "close", None)
            if close:
                close()
    return list(found.values())


def preview(engine: Engine, settings: Settings, ws: int, connection_id: Any, object: str,
            read: dict[str, Any]) -> dict[str, Any]:
    """Five real records fetched from the CRM now and mapped with the draft (nothing is stored)."""
    row = connection_row(engine, ws, connection_id)
    check_object(object)
    fields, _ = crm_fields(engine, settings, row, object)
    errors = check_draft(object, read, None, fields)
    if errors:
        raise Invalid("the draft has errors; fix the fields marked before previewing", errors)
    current = load_mapping(engine, int(row.id), row.kind)
    draft = Mapping(kind=row.kind, read={**current.read, object: read}, write=current.write)
    try:
        adapter = interactive_adapter(engine, settings, int(row.id))
        adapter.read_mapping = draft.read  # type: ignore[attr-defined]  # the fields the draft reads are fetched too
        samples = _fetch_samples(adapter, engine, int(row.id), object)
    except RapportError as exc:
        raise Invalid(f"could not read records from the CRM: {exc}") from None
    records = []
    for change in samples[:PREVIEW_RECORDS]:
        try:
            mapped = apply(draft, object, change.raw)
            values = {t: (mapped["custom"].get(t[7:]) if t.startswith("custom.") else mapped.get(t)) for t in read}
            records.append({"external_id": change.external_id, "values": _jsonable(values), "error": None})
        except RapportError as exc:
            records.append({"external_id": change.external_id, "values": {}, "error": exc.message})
    return {"object": object, "targets": list(read), "records": records}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


def export_yaml(engine: Engine, ws: int, connection_id: Any) -> str:
    """The connection's whole mapping as a YAML document."""
    row = connection_row(engine, ws, connection_id)
    mapping = load_mapping(engine, int(row.id), row.kind)
    return mapping_files.dump(mapping_files.export_document(mapping, connection=row.name))


def import_yaml(engine: Engine, settings: Settings, ws: int, connection_id: Any, text: str) -> dict[str, Any]:
    """Validate a YAML mapping whole (sources against the CRM's fields), store it, re-derive rows."""
    row = connection_row(engine, ws, connection_id)
    if not (text or "").strip():
        raise Invalid("nothing to import", {"yaml": "paste or upload a mapping exported from Rapport"})

    def describe(object: str) -> list[FieldInfo]:
        fields, _ = crm_fields(engine, settings, row, object)
        return fields

    try:
        doc = mapping_files.parse(text)
        done = mapping_files.import_document(engine, int(row.id), doc, describe=describe)
    except MappingError as exc:
        raise Invalid("the mapping was not imported; nothing changed", {"yaml": str(exc)}) from None
    return {"imported": sorted(doc["objects"]),
            "rederived": {o: int(t.counts.get(o, {}).get("updated", 0)) for o, t in done.tallies.items()},
            "new_sources": done.new_sources}


def score_specs(kind: str, object: str, targets: dict[str, str]) -> list[FieldSpec]:
    """The score fields of a CRM kind, named as the connection's write mapping says."""
    module = importlib.import_module(f"adapters.{kind}.mapping")
    defaults: dict[str, str] = module.DEFAULT_WRITE.get(object, {})
    by_name = {spec.name: spec for spec in module.score_fields(object)}
    return [replace(by_name[defaults[key]], name=field) for key, field in targets.items()
            if key in SCORE_KEYS and defaults.get(key) in by_name]


def provision(engine: Engine, settings: Settings, ws: int, connection_id: Any) -> dict[str, Any]:
    """Create the missing score fields in the CRM (idempotent); what was created and what was there."""
    row = connection_row(engine, ws, connection_id)
    mapping = load_mapping(engine, int(row.id), row.kind)
    out: dict[str, Any] = {}
    try:
        adapter = interactive_adapter(engine, settings, int(row.id))
        for object in SCORED_OBJECTS:
            specs = score_specs(row.kind, object, mapping.write.get(object, {}))
            created = adapter.ensure_fields(object, specs)
            out[object] = {"created": created, "existing": [s.name for s in specs if s.name not in created]}
            _describe_cache.pop((int(row.id), object), None)
    except RapportError as exc:
        raise Invalid(f"the CRM refused to create the fields: {exc}") from None
    return out

