"""SOQL text for the incremental window: literals, the field list and the ordered query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from adapters.salesforce import settings as S


def datetime_literal(value: datetime, *, ceil: bool = False) -> str:
    """A SOQL dateTime literal (whole seconds, UTC); `ceil` rounds a fraction up instead of down."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware UTC")
    v = value.astimezone(UTC)
    if ceil and v.microsecond:
        v += timedelta(seconds=1)
    return v.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def string_literal(value: str) -> str:
    """A quoted SOQL string with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def field_list(fields: Sequence[str], system: Sequence[str]) -> list[str]:
    """System fields first, then the mapped ones, each once (SOQL rejects duplicates)."""
    seen: dict[str, None] = {}
    for name in (*system, *fields):
        seen.setdefault(name, None)
    return list(seen)


def window_query(
    sobject: str,
    fields: Sequence[str],
    since: datetime | None,
    until: datetime,
    *,
    ordered: bool = True,
) -> str:
    """SELECT .. WHERE since <= SystemModstamp < until [ORDER BY SystemModstamp, Id].

    Literals are whole seconds, so the bounds are widened to the enclosing seconds (since rounded
    down, until rounded up); the caller drops the few rows outside the exact window.
    """
    where = [f"{S.STAMP_FIELD} < {datetime_literal(until, ceil=True)}"]
    if since is not None:
        where.insert(0, f"{S.STAMP_FIELD} >= {datetime_literal(since)}")
    soql = f"SELECT {', '.join(fields)} FROM {sobject} WHERE {' AND '.join(where)}"
    if ordered:
        soql += f" ORDER BY {S.STAMP_FIELD}, {S.ID_FIELD}"
    return soql


def ids_query(sobject: str, fields: Sequence[str], ids: Sequence[str]) -> str:
    """SELECT .. WHERE Id IN (..)."""
    listed = ", ".join(string_literal(i) for i in ids)
    return f"SELECT {', '.join(fields)} FROM {sobject} WHERE {S.ID_FIELD} IN ({listed})"
