"""Pure translation for HubSpot: default field mappings, score properties, records to Changes.

No session and no clock: every function takes what it needs and returns plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from adapters.base import Change, FieldSpec
from adapters.hubspot import settings as hs


def _f(source: str, cast: str = "str", **extra: Any) -> dict[str, Any]:
    return {"source": source, "cast": cast, **extra}


def _p(name: str, cast: str = "str", **extra: Any) -> dict[str, Any]:
    return _f("properties." + name, cast, **extra)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIORITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "URGENT": "urgent"}
# default ticket pipeline stage labels; other labels pass through as they are
_TICKET_STATUS = {"New": "new", "Waiting on contact": "working", "Waiting on us": "working", "Closed": "closed"}

# Unified object -> unified field -> spec. `_rapport.*` values are derived by the adapter from
# associations, pipelines and the engagement type; ticket CSAT / escalation / reopen counts are
# the custom properties a service team typically adds (remap them per connection if named otherwise).
DEFAULT_READ: dict[str, dict[str, dict[str, Any]]] = {
    "account": {
        "name": _p("name"),
        "domain": _p("domain"),
        "industry": _p("industry"),
        "employees": _p("numberofemployees", "int"),
        "annual_revenue": _p("annualrevenue", "float"),
        "owner_id": _p("hubspot_owner_id"),
        "created_at": _p("createdate", "datetime"),
        "modified_at": _p("hs_lastmodifieddate", "datetime"),
    },
    "contact": {
        "account_external_id": _f("_rapport.account_id"),
        "email": _p("email"),
        "first_name": _p("firstname"),
        "last_name": _p("lastname"),
        "title": _p("jobtitle"),
        "owner_id": _p("hubspot_owner_id"),
        "last_activity_at": _p("notes_last_updated", "datetime"),
        "created_at": _p("createdate", "datetime"),
        "modified_at": _p("lastmodifieddate", "datetime"),
    },
    "deal": {
        "account_external_id": _f("_rapport.account_id"),
        "contact_external_id": _f("_rapport.contact_id"),
        "name": _p("dealname"),
        "amount": _p("amount", "float"),
        "currency": _p("deal_currency_code"),
        "stage": _f("_rapport.stage"),
        "is_closed": _f("_rapport.is_closed", "bool", default=False),
        "is_won": _f("_rapport.is_won", "bool", default=False),
        "close_date": _p("closedate", "date"),
        "deal_type": _p("dealtype", map={"newbusiness": "new", "existingbusiness": "renewal"}),
        "owner_id": _p("hubspot_owner_id"),
        "created_at": _p("createdate", "datetime"),
        "modified_at": _p("hs_lastmodifieddate", "datetime"),
    },
    "case": {
        "account_external_id": _f("_rapport.account_id"),
        "contact_external_id": _f("_rapport.contact_id"),
        "subject": _p("subject"),
        "priority": _p("hs_ticket_priority", map=_PRIORITY),
        "status": _f("_rapport.stage", map=_TICKET_STATUS),
        "is_closed": _f("_rapport.is_closed", "bool", default=False),
        "is_escalated": _p("is_escalated", "bool", default=False),
        "opened_at": _p("createdate", "datetime"),
        "closed_at": _p("closed_date", "datetime"),
        "reopen_count": _p("reopen_count", "int", default=0),
        "satisfaction": _p("csat_score", "float"),
        "created_at": _p("createdate", "datetime"),
        "modified_at": _p("hs_lastmodifieddate", "datetime"),
    },
    "activity": {
        "account_external_id": _f("_rapport.account_id"),
        "contact_external_id": _f("_rapport.contact_id"),
        "kind": _f("_rapport.kind"),
        "subject": _f("_rapport.subject"),
        "occurred_at": _p("hs_timestamp", "datetime"),
        "created_at": _p("hs_createdate", "datetime"),
        "modified_at": _p("hs_lastmodifieddate", "datetime"),
    },
}

DEFAULT_WRITE: dict[str, dict[str, str]] = {obj: dict(hs.SCORE_PROPERTIES) for obj in hs.SCORED_OBJECTS}

_SCORE_SPECS: dict[str, tuple[str, str, str]] = {
    "relationship_score": ("Rapport relationship score", "number", "Return on Relationship, 0-100"),
    "experience_score": ("Rapport experience score", "number", "Support experience, 0-100"),
    "tier": ("Rapport tier", "text", "Relationship tier: A, B or C"),
    "drivers": ("Rapport drivers", "longtext", "What moves the scores most"),
    "trend": ("Rapport trend", "number", "Change of the relationship score over 30 days"),
    "scored_at": ("Rapport scored at", "datetime", "When Rapport last scored this record"),
}


def score_fields(object: str) -> list[FieldSpec]:
    """The properties `rapport provision` creates on companies ("account") or contacts."""
    targets = DEFAULT_WRITE.get(object)
    if targets is None:
        raise ValueError(f"Rapport writes scores to account and contact only, not {object!r}")
    out = []
    for key, name in targets.items():
        label, kind, text = _SCORE_SPECS[key]
        out.append(FieldSpec(name=name, label=label, type=kind, description=text))  # type: ignore[arg-type]
    return out


def property_create(spec: FieldSpec, group: str = hs.SCORE_GROUP) -> dict[str, Any]:
    """The body of `POST /crm/v3/properties/{type}` for one FieldSpec."""
    try:
        kind, field_type = hs.PROPERTY_TYPES[spec.type]
    except KeyError:
        raise ValueError(f"no HubSpot property type for field type {spec.type!r}") from None
    return {"name": spec.name, "label": spec.label, "type": kind, "field_type": field_type,
            "group_name": group, "description": spec.description}


def requested_properties(object_type: str, read: Mapping[str, Mapping[str, Any]] | None = None,
                         extra: Iterable[str] = ()) -> list[str]:
    """The properties to ask for: the defaults, any `properties.*` a read mapping names, and extras."""
    seen: dict[str, None] = dict.fromkeys(hs.PROPERTIES.get(object_type, ()))
    for spec in (read or {}).values():
        source = str(spec.get("source") or "") if isinstance(spec, Mapping) else ""
        if source.startswith("properties."):
            seen[source.split(".", 1)[1]] = None
    seen.update(dict.fromkeys(extra))
    return list(seen)


# --- values -------------------------------------------------------------------------------------


def parse_stamp(value: Any) -> datetime | None:
    """A HubSpot timestamp (ISO 8601 string or epoch milliseconds) as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    text = str(value)
    if text.isdigit():
        return _EPOCH + timedelta(milliseconds=int(text))
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def epoch_ms(value: datetime) -> str:
    """An aware datetime as the epoch-millisecond string HubSpot filters and writes take."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC")
    return str((value - _EPOCH) // timedelta(milliseconds=1))  # exact, unlike float timestamp() * 1000


def to_property_value(value: Any) -> str:
    """A Python value as a HubSpot property value (strings; empty clears the property)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, date):
        return epoch_ms(datetime.combine(value, time(0), tzinfo=UTC))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    return str(value)


# --- records ------------------------------------------------------------------------------------


def record_stamp(object_type: str, record: Mapping[str, Any]) -> datetime:
    """A record's last-modified time: the object's modified property, else `updatedAt`."""
    props = record.get("properties") or {}
    stamp = parse_stamp(props.get(hs.MODIFIED_PROPERTY.get(object_type, ""))) or parse_stamp(record.get("updatedAt"))
    if stamp is None:
        raise ValueError(f"{object_type} record {record.get('id')} has no modified stamp")
    return stamp


def created_stamp(object_type: str, record: Mapping[str, Any]) -> datetime | None:
    """When a record was created: `createdAt`, else its create-date property."""
    props = record.get("properties") or {}
    return parse_stamp(record.get("createdAt")) or parse_stamp(props.get(hs.CREATED_PROPERTY.get(object_type, "")))


def to_change(object: str, object_type: str, record: dict[str, Any]) -> Change:
    """A live or archived record as a Change (archived ones are deletions, stamped `archivedAt`)."""
    if record.get("archived"):
        stamp = parse_stamp(record.get("archivedAt")) or record_stamp(object_type, record)
        return Change(object=object, external_id=str(record["id"]), modified_at=stamp, raw=record, deleted=True)
    return Change(object=object, external_id=str(record["id"]), modified_at=record_stamp(object_type, record),
                  raw=record)


def merged_ids(record: Mapping[str, Any]) -> list[str]:
    """The ids merged into this record (`hs_merged_object_ids`, semicolon-separated)."""
    value = (record.get("properties") or {}).get(hs.MERGED_IDS_PROPERTY)
    return [part.strip() for part in str(value or "").split(";") if part.strip()]


def merge_changes(object: str, survivor: Change) -> list[Change]:
    """One Change per merged-away record of a survivor: deleted, `merged_into` the survivor."""
    return [
        Change(object=object, external_id=loser, modified_at=survivor.modified_at,
               raw={"id": loser, "mergedInto": survivor.external_id}, deleted=True,
               merged_into=survivor.external_id)
        for loser in merged_ids(survivor.raw)
        if loser != survivor.external_id
    ]


def primary_from_v3(associations: Mapping[str, Any] | None, to_type: str) -> str | None:
    """The primary associated id from a v3 read's `associations` (labelled type wins over unlabeled)."""
    results = ((associations or {}).get(to_type) or {}).get("results") or []
    keys = [_pick(not str(r.get("type", "")).endswith("_unlabeled"), str(r["id"])) for r in results if r.get("id")]
    return min(keys)[2] if keys else None


def _pick(primary: bool, ident: str) -> tuple[bool, int, str]:
    """Sort key of an associated id: a Primary one first, then the lowest id, as a number (as v3 and v4 reads agree)."""
    return not primary, int(ident) if ident.isdigit() else 0, ident


def primary_from_v4(targets: Iterable[Mapping[str, Any]]) -> str | None:
    """The primary associated id from a v4 batch read's `to` list (Primary type wins, then lowest id)."""
    best: tuple[bool, int, str] | None = None
    for target in targets:
        ident = str(target.get("toObjectId"))
        primary = any(t.get("typeId") in hs.PRIMARY_COMPANY_TYPE_IDS or (t.get("label") or "") == "Primary"
                      for t in target.get("associationTypes") or [])
        key = _pick(primary, ident)
        best = key if best is None or key < best else best
    return best[2] if best else None


def stage_table(pipelines: Iterable[Mapping[str, Any]], object_type: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(pipeline id, stage id) -> {stage, is_closed, is_won} from a pipelines response."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for pipeline in pipelines:
        for stage in pipeline.get("stages") or []:
            meta = stage.get("metadata") or {}
            closed = str(meta.get("isClosed", "")).lower() == "true" or meta.get("ticketState") == hs.CLOSED_TICKET_STATE
            won = closed and object_type == "deals" and _probability(meta.get("probability")) >= 1.0
            table[(str(pipeline["id"]), str(stage["id"]))] = {"stage": stage.get("label"), "stage_id": stage["id"],
                                                              "is_closed": closed, "is_won": won}
    return table


def _probability(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
