"""Pure translation for Salesforce: default field mappings, score fields, records to Changes.

No session and no clock: every function takes what it needs and returns plain data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

from adapters.base import Change, FieldSpec, WriteItem
from adapters.salesforce import settings as S

_STR = {"cast": "str"}


def _f(source: str, cast: str = "str", **extra: Any) -> dict[str, Any]:
    return {"source": source, "cast": cast, **extra}


# Unified object -> unified field -> spec. Standard fields only, so every org can use it as is;
# custom fields (reopen counts, CSAT, ...) are added per connection.
DEFAULT_READ: dict[str, dict[str, dict[str, Any]]] = {
    "account": {
        "name": _f("Name"),
        "domain": _f("Website"),
        "industry": _f("Industry"),
        "employees": _f("NumberOfEmployees", "int"),
        "annual_revenue": _f("AnnualRevenue", "float"),
        "owner_id": _f("OwnerId"),
        "created_at": _f("CreatedDate", "datetime"),
        "modified_at": _f("SystemModstamp", "datetime"),
    },
    "contact": {
        "account_external_id": _f("AccountId"),
        "email": _f("Email"),
        "first_name": _f("FirstName"),
        "last_name": _f("LastName"),
        "title": _f("Title"),
        "owner_id": _f("OwnerId"),
        "last_activity_at": _f("LastActivityDate", "datetime"),
        "created_at": _f("CreatedDate", "datetime"),
        "modified_at": _f("SystemModstamp", "datetime"),
    },
    "deal": {
        "account_external_id": _f("AccountId"),
        "contact_external_id": _f("ContactId"),
        "name": _f("Name"),
        "amount": _f("Amount", "float"),
        "stage": _f("StageName"),
        "is_closed": _f("IsClosed", "bool", default=False),
        "is_won": _f("IsWon", "bool", default=False),
        "close_date": _f("CloseDate", "date"),
        "deal_type": _f(
            "Type",
            map={
                "New Customer": "new",
                "New Business": "new",
                "Renewal": "renewal",
                "Existing Customer - Replacement": "renewal",
                "Existing Customer - Upgrade": "expansion",
                "Expansion": "expansion",
            },
        ),
        "owner_id": _f("OwnerId"),
        "created_at": _f("CreatedDate", "datetime"),
        "modified_at": _f("SystemModstamp", "datetime"),
    },
    "case": {
        "account_external_id": _f("AccountId"),
        "contact_external_id": _f("ContactId"),
        "subject": _f("Subject"),
        "priority": _f(
            "Priority",
            map={"Low": "low", "Medium": "medium", "High": "high", "Critical": "urgent", "Urgent": "urgent"},
        ),
        "status": _f(
            "Status", map={"New": "new", "Working": "working", "Escalated": "escalated", "Closed": "closed"}
        ),
        "is_closed": _f("IsClosed", "bool", default=False),
        "is_escalated": _f("IsEscalated", "bool", default=False),
        "opened_at": _f("CreatedDate", "datetime"),
        "closed_at": _f("ClosedDate", "datetime"),
        "created_at": _f("CreatedDate", "datetime"),
        "modified_at": _f("SystemModstamp", "datetime"),
    },
    "activity": {
        "account_external_id": _f("AccountId"),
        "contact_external_id": _f("WhoId"),
        "kind": _f("Type", map={"Call": "call", "Email": "email", "Meeting": "meeting"}),
        "subject": _f("Subject"),
        "occurred_at": _f("CompletedDateTime", "datetime"),
        "created_at": _f("CreatedDate", "datetime"),
        "modified_at": _f("SystemModstamp", "datetime"),
    },
}

DEFAULT_WRITE: dict[str, dict[str, str]] = {
    "account": dict(S.SCORE_FIELDS),
    "contact": dict(S.SCORE_FIELDS),
}

_SCORE_SPECS: dict[
    str, tuple[str, Literal["number", "text", "longtext", "datetime"], int | None, int | None, str]
] = {
    "relationship_score": ("Rapport Relationship Score", "number", 3, 0, "Return on Relationship, 0-100"),
    "experience_score": ("Rapport Experience Score", "number", 3, 0, "Support experience, 0-100"),
    "tier": ("Rapport Tier", "text", None, None, "Relationship tier"),
    "drivers": ("Rapport Drivers", "longtext", None, None, "What moves the scores most"),
    "trend": ("Rapport Trend", "number", 4, 0, "Change of the relationship score over 30 days"),
    "scored_at": ("Rapport Scored At", "datetime", None, None, "When Rapport last scored this record"),
}


def score_fields(object: str) -> list[FieldSpec]:
    """The custom fields `rapport provision` creates on this object (Account or Contact)."""
    targets = DEFAULT_WRITE.get(object)
    if targets is None:
        raise ValueError(f"Rapport writes scores to account and contact only, not {object!r}")
    specs = []
    for key, name in targets.items():
        label, kind, precision, scale, text = _SCORE_SPECS[key]
        spec = FieldSpec(
            name=name, label=label, type=kind, precision=precision, scale=scale, description=text
        )  # type: ignore[arg-type]
        specs.append(spec)
    return specs


def custom_field_metadata(spec: FieldSpec) -> dict[str, Any]:
    """Tooling API CustomField `Metadata` for a wanted field."""
    meta: dict[str, Any] = {
        "label": spec.label,
        "type": S.CUSTOM_FIELD_TYPES[spec.type],
        "description": spec.description,
    }
    if spec.type == "number":
        meta.update(precision=spec.precision or 18, scale=spec.scale or 0)
    elif spec.type == "text":
        meta["length"] = S.TEXT_LENGTH.get(spec.name, 255)
    elif spec.type == "longtext":
        meta.update(length=S.TEXT_LENGTH.get(spec.name, 32_768), visibleLines=S.LONGTEXT_VISIBLE_LINES)
    return meta


def selected_fields(read: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The SOQL field paths a read mapping of one object needs, in first-seen order."""
    seen: dict[str, None] = {}
    for spec in read.values():
        source = spec.get("source") if isinstance(spec, Mapping) else None
        if source and not str(source).startswith(S.DERIVED_PREFIX):
            seen[str(source)] = None
    return list(seen)


# --- values -------------------------------------------------------------------------------------


def parse_datetime(value: str | None) -> datetime | None:
    """A Salesforce datetime ("2024-01-02T03:04:05.000+0000" or ISO with Z) as aware UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """An aware datetime in the form Salesforce returns: 2024-01-02T03:04:05.000+0000."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC")
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


def to_write_value(value: Any, field: str | None = None) -> Any:
    """A Python value as Salesforce accepts it in JSON (datetimes in UTC, long text cut to length)."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and field in S.TEXT_LENGTH:
        return value[: S.TEXT_LENGTH[field]]
    return value


def write_record(sobject: str, item: WriteItem) -> dict[str, Any]:
    """One sObject Collections record: attributes, Id and the values to set."""
    values = {k: to_write_value(v, k) for k, v in item.values.items()}
    return {"attributes": {"type": sobject}, S.ID_FIELD: item.external_id, **values}


# --- records --------------------------------------------------------------------------------------


def to_change(object: str, record: dict[str, Any]) -> Change:
    """A queried record (REST shape) as a Change; deleted rows and merge losers included."""
    stamp = parse_datetime(record.get(S.STAMP_FIELD))
    if stamp is None:
        raise ValueError(f"{object} record {record.get(S.ID_FIELD)} has no {S.STAMP_FIELD}")
    deleted = bool(record.get(S.DELETED_FIELD))
    master = record.get(S.MASTER_FIELD) or None
    return Change(
        object=object,
        external_id=str(record[S.ID_FIELD]),
        modified_at=stamp,
        raw=record,
        deleted=deleted,
        merged_into=str(master) if deleted and master else None,
    )


def _text(s: str) -> Any:
    return s or None


def _bool(s: str) -> Any:
    return None if s == "" else s.lower() == "true"


def _int(s: str) -> Any:
    return None if s == "" else int(s) if s.lstrip("-").isdigit() else int(float(s))


def _float(s: str) -> Any:
    return None if s == "" else float(s)


def _datetime(s: str) -> Any:
    if len(s) == 24 and s[-1] == "Z":  # Bulk CSV "…:09.000Z" -> REST "…:09.000+0000"
        return s[:23] + "+0000"
    parsed = parse_datetime(s)
    return format_datetime(parsed) if parsed else None


_CONVERT = {
    "boolean": _bool,
    "int": _int,
    "long": _int,
    "double": _float,
    "currency": _float,
    "percent": _float,
    "datetime": _datetime,
}


def csv_records(
    sobject: str, text: str, types: Mapping[str, str], api_version: str
) -> Iterator[dict[str, Any]]:
    """Bulk API 2.0 CSV rows in the shape the REST API returns (typed values, nested parents)."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header:
        return
    plan = [(col.split("."), _CONVERT.get(types.get(col, ""), _text)) for col in header]
    flat = all(len(parts) == 1 for parts, _ in plan)
    id_at = header.index(S.ID_FIELD) if S.ID_FIELD in header else None
    url = f"/services/data/v{api_version}/sobjects/{sobject}/"
    for row in rows:
        record: dict[str, Any] = {
            "attributes": {"type": sobject, "url": url + (row[id_at] if id_at is not None else "")}
        }
        if flat:
            for (parts, convert), value in zip(plan, row, strict=True):
                record[parts[0]] = convert(value)
            yield record
            continue
        for (parts, convert), value in zip(plan, row, strict=True):
            node = record
            for parent in parts[:-1]:
                node = node.setdefault(parent, {})
            node[parts[-1]] = convert(value)
        yield _null_empty_parents(record)


def _null_empty_parents(node: dict[str, Any]) -> dict[str, Any]:
    # A parent whose columns are all empty is a null lookup, as the REST API reports it.
    for key, child in list(node.items()):
        if key != "attributes" and isinstance(child, dict):
            _null_empty_parents(child)
            if all(v is None for v in child.values()):
                node[key] = None
    return node


def field_types(described: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Field name -> Salesforce type, from a describe's `fields` list."""
    return {str(f["name"]): str(f.get("type", "string")) for f in described}
