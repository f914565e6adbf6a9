"""The pure transform engine of field mappings: read a source path, default, value map, cast.

No session and no clock: a spec and a raw CRM record in, a value out, or a ValueError whose
text says what was wrong with the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

CASTS = ("str", "int", "float", "bool", "datetime", "date", "epoch_ms")
SPEC_KEYS = frozenset({"source", "cast", "map", "default", "constant", "format"})
# What each cast produces, to check it fits the unified column it fills.
CAST_RESULT = {"str": "str", "int": "int", "float": "float", "bool": "bool", "datetime": "datetime",
               "date": "date", "epoch_ms": "datetime"}
_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def get_path(raw: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path ("Account.Name", "properties.amount", "items.0.id"); None if absent."""
    value: Any = raw
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _missing(value: Any) -> bool:
    # HubSpot returns "" for a cleared property; treat it like null everywhere.
    return value is None or (isinstance(value, str) and not value.strip())


def to_str(value: Any, fmt: str | None = None) -> str:
    """Text; booleans become "true"/"false", dates ISO 8601."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    raise ValueError(f"{_show(value)} is a structured value, not text; point the source at one of its fields")


def to_int(value: Any, fmt: str | None = None) -> int:
    """A whole number from a number or numeric text ("12", "12.0")."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    number = to_float(value)
    if not number.is_integer():
        raise ValueError(f"{_show(value)} is not a whole number")
    return int(number)


def to_float(value: Any, fmt: str | None = None) -> float:
    """A finite number from a number or numeric text."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{_show(value)} is not a number") from None
    else:
        raise ValueError(f"{_show(value)} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{_show(value)} is not a finite number")
    return number


def to_bool(value: Any, fmt: str | None = None) -> bool:
    """A boolean from true/false, yes/no, 1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"{_show(value)} is not a boolean (expected true/false, yes/no or 1/0)")


def to_datetime(value: Any, fmt: str | None = None) -> datetime:
    """Aware UTC from ISO 8601 (Z or offset, incl. "+0000"), a date, or text in `fmt`; naive means UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.strptime(value.strip(), fmt) if fmt else datetime.fromisoformat(value.strip())  # noqa: DTZ007 (zone added below)
        except ValueError:
            expected = f"the format {fmt!r}" if fmt else "ISO 8601 such as 2024-01-02T03:04:05Z"
            raise ValueError(f"{_show(value)} is not a date-time in {expected}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{_show(value)} is a number; use cast epoch_ms for millisecond timestamps")
    else:
        raise ValueError(f"{_show(value)} is not a date-time")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def to_date(value: Any, fmt: str | None = None) -> date:
    """A calendar date from "YYYY-MM-DD", a date-time (its UTC day) or text in `fmt`."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and not fmt and len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{_show(value)} is not a date in the form YYYY-MM-DD") from None
    return to_datetime(value, fmt).date()


def to_epoch_ms(value: Any, fmt: str | None = None) -> datetime:
    """Aware UTC from milliseconds since 1970 (HubSpot's "1704164645000"); ISO text is accepted too."""
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not a millisecond timestamp")
    if isinstance(value, int | float):
        millis = float(value)
    elif isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        millis = float(value.strip())
    elif isinstance(value, str | datetime):
        return to_datetime(value, fmt)
    else:
        raise ValueError(f"{_show(value)} is not a millisecond timestamp")
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{_show(value)} is out of range for a millisecond timestamp") from None


CAST_FUNCS: dict[str, Callable[[Any, str | None], Any]] = {
    "str": to_str, "int": to_int, "float": to_float, "bool": to_bool,
    "datetime": to_datetime, "date": to_date, "epoch_ms": to_epoch_ms,
}


def lookup(table: Mapping[Any, Any], value: Any) -> Any:
    """The mapped value of a CRM value (matching also its text, any case); unmapped values pass through."""
    try:
        if value in table:
            return table[value]
    except TypeError:
        return value
    text = to_str(value) if isinstance(value, str | bool | int | float) else None
    if text is not None:
        if text in table:
            return table[text]
        lowered = {str(k).lower(): v for k, v in table.items()}
        if text.lower() in lowered:
            return lowered[text.lower()]
    return value


def evaluate(spec: Mapping[str, Any], raw: Mapping[str, Any]) -> Any:
    """Apply one field spec to a raw record: source or constant, default, map, cast."""
    return compile_spec(spec)(raw)


def compile_spec(spec: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Any]:
    """`evaluate` of one spec as a function of the raw record, with the spec read once (a sync
    applies each spec to every record of a page)."""
    constant, has_constant = spec.get("constant"), "constant" in spec
    source, default, table, fmt = spec.get("source"), spec.get("default"), spec.get("map"), spec.get("format")
    cast = CAST_FUNCS[spec["cast"]] if spec.get("cast") else None
    top = source if isinstance(source, str) and "." not in source else None

    fallback = constant if has_constant else default
    no_fallback = _missing(fallback)

    def value_of(raw: Mapping[str, Any]) -> Any:
        value = None if has_constant else raw.get(top) if top is not None else get_path(raw, source)  # type: ignore[arg-type]
        if value is None or (isinstance(value, str) and not value.strip()):  # missing (inlined: per field, per record)
            if no_fallback:
                return None
            value = fallback
        if table:
            value = lookup(table, value)
            if _missing(value):
                return None
        return value if cast is None else cast(value, fmt)

    return value_of


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
