"""Property values on the wire: strings, datetimes as ISO 8601 with ms and Z, and their checks."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sandbox.hubspot.schema import PropDef

EPOCH = date(1970, 1, 1)


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


@cache
def _day(days: int) -> str:
    return (EPOCH + timedelta(days=days)).isoformat()


def iso(ms: int) -> str:
    """Epoch ms to HubSpot's `2024-01-02T03:04:05.678Z` (arithmetic: called for every record read)."""
    days, rest = divmod(ms, 86_400_000)
    secs, milli = divmod(rest, 1000)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    return f"{_day(days)}T{hours:02d}:{mins:02d}:{secs:02d}.{milli:03d}Z"


def ms_of(dt: datetime | date) -> int:
    """A datetime (aware) or date (midnight UTC) to epoch ms."""
    if not isinstance(dt, datetime):
        dt = datetime(dt.year, dt.month, dt.day, tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@lru_cache(maxsize=65536)
def parse_ms(text: str) -> int | None:
    """Epoch-ms digits, an ISO 8601 datetime or a date to epoch ms; None if unreadable."""
    text = text.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            return ms_of(date.fromisoformat(text))
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def number_text(value: float) -> str:
    """A number as HubSpot writes it back: integers without a decimal point."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def normalize(prop: PropDef, value: Any) -> tuple[str | None, str | None]:
    """A written value to its stored string: (value, None) or (None, error code + message)."""
    if value is None or value == "":
        return "", None
    if prop.type == "number":
        try:
            num = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            num = math.nan
        if math.isnan(num) or math.isinf(num):
            return None, f"INVALID_FLOAT:{value!r} was not a valid number."
        return number_text(num), None
    if prop.type == "bool":
        text = str(value).lower()
        if text not in ("true", "false"):
            return None, f"INVALID_BOOLEAN:{value!r} was not a valid boolean; use true or false."
        return text, None
    if prop.type in ("datetime", "date"):
        ms = value if isinstance(value, int) and not isinstance(value, bool) else parse_ms(str(value))
        if ms is None:
            return None, f"INVALID_DATE:{value!r} was not a valid date; use epoch milliseconds or ISO 8601."
        if prop.type == "date":
            if ms % 86_400_000:
                return None, f"INVALID_DATE:{value!r} is not midnight UTC; date properties take a day only."
            return iso(ms)[:10], None
        return iso(ms), None
    if prop.type == "enumeration":
        text = str(value)
        if prop.options and not prop.external_options:
            allowed = {v for v, _ in prop.options}
            for part in text.split(";"):
                if part not in allowed:
                    return None, (f"INVALID_OPTION:{part!r} was not one of the allowed options: "
                                  f"[{', '.join(sorted(allowed))}]")
        return text, None
    if isinstance(value, (dict, list)):
        return None, f"INVALID_STRING:{prop.name} takes a string, not {type(value).__name__}."
    return str(value).lower() if prop.name == "email" else str(value), None


def sort_key(prop_type: str, value: str | None) -> Any:
    """A comparable key for a stored value of a property type (None sorts last)."""
    if value is None or value == "":
        return None
    if prop_type == "number":
        try:
            return float(value)
        except ValueError:
            return None
    if prop_type in ("datetime", "date"):
        return parse_ms(value)
    return value.lower()
