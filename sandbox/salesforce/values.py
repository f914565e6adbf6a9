"""Field values as the REST API shows them: datetimes `2024-01-02T03:04:05.000+0000` (UTC), dates
`2024-01-02`, numbers and booleans as JSON. Stored values use that canonical text, so datetimes and
dates order correctly as plain strings. Also the org clock.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

from sandbox.salesforce.schema import FieldDef

_DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NUMERIC = frozenset({"int", "double", "currency", "percent"})


class ValueTypeError(ValueError):
    """A value that cannot be read as the field's type (JSON_PARSER_ERROR in the API)."""


def fmt_dt(value: datetime) -> str:
    """Canonical REST datetime text, always UTC with milliseconds."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "+0000"


def parse_dt(text: str) -> datetime:
    """Read an ISO 8601 / Salesforce datetime (Z, +hh:mm or +hhmm); naive means UTC."""
    m = _DT_RE.match(text.strip())
    if not m:
        raise ValueTypeError(f"not a dateTime: {text!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), micro, tzinfo=UTC)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt


def parse_date(text: str) -> date:
    """Read a YYYY-MM-DD date."""
    m = _DATE_RE.match(text.strip())
    if not m:
        raise ValueTypeError(f"not a date: {text!r}")
    return date(int(m[1]), int(m[2]), int(m[3]))


def bulk_dt(text: str) -> str:
    """The Bulk API CSV form of a stored datetime (`...000Z`)."""
    return text[:-5] + "Z"


def coerce(fdef: FieldDef, value: object) -> object:
    """Turn a JSON value into the stored form for `fdef` (raises ValueTypeError)."""
    if value is None:
        return None
    t = fdef.type
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueTypeError(f"Cannot deserialize instance of boolean from {_kind(value)} value {value}")
    if t in NUMERIC:
        if isinstance(value, bool):
            raise ValueTypeError(f"Cannot deserialize instance of {t} from VALUE_TRUE value {value}")
        if isinstance(value, int | float):
            return int(value) if t == "int" else float(value)
        if isinstance(value, str):
            try:
                return int(value) if t == "int" else float(value)
            except ValueError:
                pass
        raise ValueTypeError(f"Cannot deserialize instance of {t} from {_kind(value)} value {value}")
    if t == "datetime":
        if not isinstance(value, str):
            raise ValueTypeError(f"Cannot deserialize instance of datetime from {_kind(value)} value {value}")
        if _DATE_RE.match(value):
            value += "T00:00:00Z"
        return fmt_dt(parse_dt(value))
    if t == "date":
        if not isinstance(value, str):
            raise ValueTypeError(f"Cannot deserialize instance of date from {_kind(value)} value {value}")
        text = value[:10] if _DT_RE.match(value) else value
        return parse_date(text).isoformat()
    if isinstance(value, dict | list):
        raise ValueTypeError(f"Cannot deserialize instance of string from {_kind(value)} value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_csv(fdef: FieldDef, text: str) -> object:
    """Read a Bulk API CSV cell for `fdef` ('#N/A' means null)."""
    if text == "#N/A":
        return None
    if fdef.type in NUMERIC or fdef.type in ("boolean", "datetime", "date"):
        return coerce(fdef, text)
    return text


def to_csv(value: object, type_: str) -> str:
    """A stored value as a Bulk API CSV cell (before quoting)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_ == "datetime" and isinstance(value, str):
        return bulk_dt(value)
    if isinstance(value, float) and value.is_integer() and type_ == "int":
        return str(int(value))
    return str(value)


def valid_email(text: str) -> bool:
    """Loose check of an email address, as the platform does."""
    return bool(_EMAIL_RE.match(text))


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int | float):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "START_ARRAY"


class Clock:
    """The org's clock: wall time plus an offset, never going backwards, in milliseconds."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current org time, truncated to the millisecond (equal stamps are possible)."""
        wall = datetime.fromtimestamp(time.time(), UTC) + self.offset
        wall = wall.replace(microsecond=wall.microsecond // 1000 * 1000)
        with self._lock:
            if wall < self._last:
                wall = self._last
            self._last = wall
        return wall

    def stamp(self) -> str:
        """The current org time in canonical text."""
        return fmt_dt(self.now())

    def catch_up(self, latest: datetime) -> None:
        """Move the clock forward (by an offset) so that it is past `latest`."""
        ahead = latest - datetime.fromtimestamp(time.time(), UTC)
        if ahead > -timedelta(seconds=1):
            self.offset = max(self.offset, ahead + timedelta(seconds=1))
