"""Record writes as the platform checks them: field existence and types (request-level errors),
then per-record rules (read-only fields, required fields, lengths, numeric ranges, emails,
references, validation rules) that fail one record with a statusCode.
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce import ids
from sandbox.salesforce.schema import FieldDef, ObjectDef
from sandbox.salesforce.store import Org, Record
from sandbox.salesforce.values import NUMERIC, ValueTypeError, coerce, valid_email


class RecordError(Exception):
    """One record refused: statusCode, message and the fields involved."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, fields or []

    def as_error(self) -> dict[str, Any]:
        """The {statusCode, message, fields} item of a save result."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


class UnknownField(Exception):
    """A body names a field the object does not have (the whole request fails, 400 INVALID_FIELD)."""

    def __init__(self, obj: str, name: str) -> None:
        super().__init__(f"No such column '{name}' on sobject of type {obj}")
        self.message = str(self)


class Missing(Exception):
    """The record does not exist, or is deleted."""

    def __init__(self, deleted: bool) -> None:
        super().__init__("entity is deleted" if deleted else "not found")
        self.deleted = deleted


def prepare(org: Org, obj: ObjectDef, body: dict[str, Any], *, creating: bool) -> Record:
    """Check a JSON body and return stored values (UnknownField / ValueTypeError / RecordError)."""
    values: Record = {}
    fdefs: dict[str, FieldDef] = {}
    for key, raw in body.items():
        if key == "attributes" or key.lower() == "id":
            continue
        fdef = obj.field(key)
        if fdef is None:
            raise UnknownField(obj.name, key)
        values[fdef.name] = coerce(fdef, raw)
        fdefs[fdef.name] = fdef
    locked = [n for n, f in fdefs.items() if not (f.createable if creating else f.updateable)]
    if locked:
        raise RecordError(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(locked)}. Please check the security settings of this "
            "field and verify that it is read/write for your profile or permission set.",
            locked,
        )
    if creating:
        missing = [f.name for f in obj.fields.values()
                   if f.required and f.default is None and values.get(f.name) in (None, "")]
    else:
        missing = [n for n, v in values.items() if v in (None, "") and not fdefs[n].nillable]
    if missing:
        raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
    for name, value in values.items():
        if value is not None:
            check_value(org, fdefs[name], value)
    return values


def check_value(org: Org, f: FieldDef, value: Any) -> None:
    """Per-field rules: length, numeric range, email format, reference target."""
    label = f.label or f.name
    if isinstance(value, str) and f.length and len(value) > f.length and f.type not in ("reference", "id"):
        raise RecordError("STRING_TOO_LONG", f"{label}: data value too large: {value[:80]} (max length={f.length})", [f.name])
    if f.type in NUMERIC and f.precision:
        limit = 10 ** (f.precision - f.scale)
        if abs(value) >= limit:
            raise RecordError("NUMBER_OUTSIDE_VALID_RANGE", f"{label}: value outside of valid range on numeric field: {value}", [f.name])
    if f.type == "email" and not valid_email(value):
        raise RecordError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", [f.name])
    if f.type == "reference":
        norm = ids.normalize(value)
        if norm is None:
            raise RecordError("MALFORMED_ID", f"{label}: id value of incorrect type: {value}", [f.name])
        target_obj = org.object_of(norm)
        if target_obj not in f.reference_to:
            raise RecordError("FIELD_INTEGRITY_EXCEPTION", f"{label}: id value of incorrect type: {value}", [f.name])
        target = org.get(norm)
        if target is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if target.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [f.name])


def _normalize_refs(obj: ObjectDef, values: Record) -> None:
    for name, value in values.items():
        if obj.fields[name].type == "reference" and isinstance(value, str):
            values[name] = ids.to18(value)


def create(org: Org, obj: ObjectDef, body: dict[str, Any]) -> Record:
    """Insert one record from a JSON body."""
    if not obj.createable:
        raise RecordError("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", f"entity type cannot be inserted: {obj.name}")
    values = prepare(org, obj, body, creating=True)
    _normalize_refs(obj, values)
    return org.insert(obj.name, values)


def existing(org: Org, obj: ObjectDef, record_id: str) -> tuple[str, Record]:
    """The 18-character id and live record, or RecordError(MALFORMED_ID) / Missing."""
    norm = ids.normalize(record_id)
    if norm is None or org.object_of(norm) != obj.name:
        raise RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
    rec = org.get(norm)
    if rec is None:
        raise Missing(False)
    if rec.get("IsDeleted"):
        raise Missing(True)
    return norm, rec


def update(org: Org, obj: ObjectDef, record_id: str, body: dict[str, Any], *, commit: bool = True) -> Record | None:
    """Update one record (with commit=False only validate it)."""
    norm, _ = existing(org, obj, record_id)
    values = prepare(org, obj, body, creating=False)
    failure = org.validation_failures.get(norm)
    if failure:
        message, fields = failure
        raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, fields)
    _normalize_refs(obj, values)
    return org.replace(obj.name, norm, values) if commit else None


def delete(org: Org, obj: ObjectDef, record_id: str) -> str:
    """Soft-delete one record; returns its 18-character id."""
    norm, _ = existing(org, obj, record_id)
    org.delete(obj.name, norm)
    return norm


__all__ = ["Missing", "RecordError", "UnknownField", "ValueTypeError", "create", "delete", "existing", "prepare", "update"]
