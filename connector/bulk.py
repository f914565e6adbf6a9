"""The fast lane of `store.upsert`: values converted once per column type and sent straight to the driver.

PostgreSQL gets the rows by COPY into a staging table; SQLite one prepared statement and `executemany`.
"""

# SQLAlchemy's per-row parameter processing costs more than the database's own work on a bulk
# load, so for the plain column types of the model the INSERT … ON CONFLICT is rendered once and
# values are converted here exactly as the SQLAlchemy types would (UTC-aware datetimes, naive ones
# refused; ISO text dates and datetimes on SQLite; JSON text). Other column types take the
# SQLAlchemy path.

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from connector.model import UTCDateTime

Converter = Callable[..., Any] | None  # a function, or a class whose instances convert (one per call)


def _utc_text(value: datetime) -> str:
    # The text SQLAlchemy's SQLite DATETIME writes: "YYYY-MM-DD HH:MM:SS.ffffff" in UTC.
    zone = value.tzinfo
    if zone is not UTC:
        if zone is None:
            raise ValueError(f"naive datetime {value!r}: Rapport stores timezone-aware UTC only")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


class _UtcSqlite:
    """Marks the datetime columns of a SQLite plan: they are formatted a column at a time."""


def _utc_column(column: Sequence[datetime | None], done: list[tuple[Sequence[Any], list[Any]]]) -> list[Any]:
    """UTC text for one column, reusing text already made for the very same datetime object.

    Rows repeat datetime objects (one `synced_at` for a whole page, `modified_at` often the very
    object of `created_at`), and formatting is the costliest step of a row.
    """
    out: list[Any] = []
    last: datetime | None = None
    last_text = ""
    for k, value in enumerate(column):
        if value is None:
            out.append(None)
            continue
        if value is not last:
            for raw, text in done:
                if raw[k] is value:
                    last_text = text[k]
                    break
            else:
                last_text = _utc_text(value)
            last = value
        out.append(last_text)
    return out


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _json_text(value: Any) -> str:
    # orjson is several times faster; what it declines (say, a huge int) goes to json.dumps,
    # which also raises where SQLAlchemy's serializer would (a datetime, an object).
    if type(value) is dict and not value:
        return "{}"
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(value)


def _utc_pg(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: Rapport stores timezone-aware UTC only")
    return value


def _date_sqlite(value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"SQLite Date type only accepts Python date objects as input, got {value!r}")
    return value.isoformat()


def _converter(column: sa.Column, dialect: sa.Dialect) -> tuple[bool, Converter]:
    """(supported, converter or None for pass-through) for one column."""
    sqlite = dialect.name == "sqlite"
    if isinstance(column.type, UTCDateTime):
        return True, _UtcSqlite if sqlite else _utc_pg
    impl = column.type.dialect_impl(dialect)
    if isinstance(impl, sa.JSON):
        return True, getattr(dialect, "_json_serializer", None) or _json_text
    if isinstance(impl, sa.TypeDecorator | sa.Enum | sa.DateTime) or (
        isinstance(impl, sa.Numeric) and not isinstance(impl, sa.Float)
    ):
        return False, None
    if isinstance(impl, sa.Date):
        return True, _date_sqlite if sqlite else None
    if isinstance(impl, sa.Integer | sa.String | sa.Float | sa.Boolean):
        return True, None
    return False, None


@lru_cache(maxsize=256)
def _plan(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...], update: tuple[str, ...]
) -> tuple[list[Converter], str] | None:
    """Converters and the statement for these columns, or None when a type is not supported."""
    converters: list[Converter] = []
    for name in columns:
        if name not in table.c:
            raise ValueError(f"{table.name} has no column {name!r}: fix the row keys")
        ok, convert = _converter(table.c[name], dialect)
        if not ok:
            return None
        converters.append(convert)
    return converters, _upsert_sql(dialect, table.name, columns, keys, update)


def _upsert_sql(
    dialect: sa.Dialect, table: str, columns: Sequence[str], keys: Sequence[str], update: Sequence[str], source: str = ""
) -> str:
    """INSERT … ON CONFLICT from one row of placeholders (SQLite) or from a staging table (PostgreSQL)."""
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if source:
        body = f"SELECT {names} FROM {source}"
    else:
        body = "VALUES (" + ", ".join("?" for _ in columns) + ")"
    conflict = ", ".join(quote(k) for k in keys)
    if update:
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update)
        return f"INSERT INTO {quote(table)} ({names}) {body} ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    return f"INSERT INTO {quote(table)} ({names}) {body} ON CONFLICT ({conflict}) DO NOTHING"


def fast_upsert(
    bind: SAConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> bool:
    """Upsert `rows` (all with the keys of the first) and return True, or False if a type needs SQLAlchemy."""
    columns = tuple(rows[0])
    if not set(keys) <= set(columns):
        return False
    plan = _plan(bind.dialect, table, columns, tuple(keys), tuple(update))
    if plan is None:
        return False
    converters, sql = plan
    pick = itemgetter(*columns)
    width = len(columns)
    try:
        picked = [pick(row) for row in rows if len(row) == width]
        if len(picked) != len(rows):
            raise KeyError(None)
    except KeyError:
        number, row = next((n, r) for n, r in enumerate(rows) if len(r) != width or not set(columns) <= set(r))
        raise ValueError(
            f"row {number} of {table.name} has columns {sorted(row)}, the first row {sorted(columns)}"
        ) from None
    if width == 1:
        picked = [(v,) for v in picked]
    # Convert column by column: one tight loop per converted column instead of calls per row.
    values: list[Sequence[Any]] = list(zip(*picked, strict=True))
    done: list[tuple[Sequence[Any], list[Any]]] = []  # datetime columns already formatted
    for i, convert in enumerate(converters):
        if convert is _UtcSqlite:
            formatted = _utc_column(values[i], done)
            done.append((values[i], formatted))
            values[i] = formatted
        elif convert is not None:
            values[i] = list(map(convert, values[i]))
    params = list(zip(*values, strict=True))
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql(sql, params)
    else:
        _pg_copy(bind, table.name, columns, tuple(keys), tuple(update), params)
    return True


def _pg_copy(
    bind: SAConnection,
    table: str,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    update: tuple[str, ...],
    params: Sequence[Sequence[Any]],
) -> None:
    """COPY the rows into a per-connection staging table, then one INSERT … SELECT … ON CONFLICT."""
    quote = bind.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    stage = quote(f"_rapport_stage_{table}_{zlib.crc32(','.join(columns).encode()):08x}")
    # One statement may not touch a row twice (ON CONFLICT DO UPDATE refuses), so the last row
    # per key wins, as it would had the rows been sent one by one.
    key_index = [columns.index(k) for k in keys]
    latest = {tuple(values[i] for i in key_index): values for values in params}
    driver = bind.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur:
        # The staging table lives as long as the connection and is emptied at every commit.
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
            f"AS SELECT {names} FROM {quote(table)} WITH NO DATA"
        )
        with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for values in latest.values():
                copy.write_row(values)
        cur.execute(_upsert_sql(bind.dialect, table, columns, keys, update, source=stage))
        cur.execute(f"DELETE FROM {stage}")
