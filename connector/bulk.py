"""The fast lane of `store.upsert`: values converted once per column type and sent straight to the driver.

SQLite gets one prepared statement and `executemany`. PostgreSQL gets a few rows as one JSON document
per statement and many by COPY through a staging table, stored on a second thread while this one
converts the next chunk (or, with `fast_upsert_many`, the next table's rows).
"""

# SQLAlchemy's per-row parameter processing costs more than the database's own work on a bulk
# load, so for the plain column types of the model the INSERT … ON CONFLICT is rendered once and
# values are converted here exactly as the SQLAlchemy types would: UTC-aware datetimes (naive ones
# refused), ISO text for dates and datetimes on SQLite, JSON text for JSON columns (a None there
# is JSON null). Other column types, and values JSON cannot carry, take the SQLAlchemy path.

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from functools import lru_cache, partial
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from connector.model import UTCDateTime

PG_COPY_MIN_ROWS = 500  # from this many rows PostgreSQL gets them by COPY rather than in a JSON document
PG_COPY_CHUNK = 1000  # rows per COPY and upsert statement
# A COPY chunk is first sent straight into its table, as new records mostly are (a first sync, the
# records a change brings): that skips the staging table, its scan and the conflict probe, a third
# of the server's work. A key already stored makes PostgreSQL refuse the chunk (unique violation);
# it is rolled back to a savepoint and the same text goes through the staging table's upsert. After
# a refusal the table's next DIRECT_BACKOFF chunks go the staged way at once, so a re-sync of stored
# records pays for one refused try in so many chunks. At most DIRECT_PER_CALL chunks of one call go
# straight (each is a subtransaction, and PostgreSQL tracks only 64 of them per transaction cheaply).
DIRECT_BACKOFF = 32
DIRECT_PER_CALL = 32
_UNIQUE_VIOLATION = "23505"
_backoff: dict[str, int] = {}  # table -> chunks still to send staged

Converter = Callable[..., Any] | None


def utc_text(value: datetime) -> str:
    """One aware datetime as the text SQLAlchemy's SQLite DATETIME writes: "YYYY-MM-DD HH:MM:SS.ffffff" in UTC."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: Rapport stores timezone-aware UTC only")
    return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _utc_column(column: Sequence[datetime | None], zone: str) -> list[Any]:
    """UTC text ("YYYY-MM-DD HH:MM:SS.ffffff" + `zone`) for a column of aware datetimes, None kept.

    Formatting is the costliest step of a row, so the column goes through numpy's datetime64 in
    one pass: each value's instant as whole seconds since the epoch (its float timestamp minus its
    microseconds, rounded: exact for the years 1-9999) plus its microseconds, then numpy writes the
    ISO text of all of them at once.
    """
    first = column[0] if column else None
    if first is not None and all(value is first for value in column):  # one stamp for the page (synced_at)
        return [utc_text(first) + zone] * len(column)
    naive = next((value for value in column if value is not None and value.tzinfo is None), None)
    if naive is not None:
        raise ValueError(f"naive datetime {naive!r}: Rapport stores timezone-aware UTC only")
    stamps = [_NO_TIME if value is None else value.timestamp() for value in column]
    fraction = np.array([0 if value is None else value.microsecond for value in column], dtype=np.int64)
    seconds = np.rint(np.array(stamps, dtype=np.float64) - fraction * 1e-6)
    missing = np.isnan(seconds)
    micros = np.where(missing, 0, seconds).astype(np.int64) * 1_000_000 + fraction
    iso = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us").astype("U26")  # YYYY-MM-DDTHH:MM:SS.ffffff
    width = 26 + len(zone)
    chars = np.empty((len(iso), width), dtype="U1")  # the text as a grid of characters: the T and the zone set per column
    chars[:, :26] = iso.view("U1").reshape(-1, 26)
    chars[:, 10] = " "
    for k, char in enumerate(zone):
        chars[:, 26 + k] = char
    out: list[Any] = chars.view(f"U{width}").ravel().tolist()
    if missing.any():
        for k in np.flatnonzero(missing).tolist():
            out[k] = None
    return out


_NO_TIME = float("nan")


def _utc_sqlite(column: Sequence[datetime | None]) -> list[Any]:
    return _utc_column(column, "")


def _utc_pg(column: Sequence[datetime | None]) -> list[Any]:
    return _utc_column(column, "+00")  # the offset, so the session's time zone plays no part


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


def _date_sqlite(value: date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"SQLite Date type only accepts Python date objects as input, got {value!r}")
    return value.isoformat()


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _converter(column: sa.Column, dialect: sa.Dialect) -> tuple[bool, Converter]:
    """(supported, how values of this column are converted: None to pass them as they are)."""
    sqlite = dialect.name == "sqlite"
    if isinstance(column.type, UTCDateTime):
        return True, _utc_sqlite if sqlite else _utc_pg
    impl = column.type.dialect_impl(dialect)
    if isinstance(impl, sa.JSON):
        return True, getattr(dialect, "_json_serializer", None) or _json_text
    if isinstance(impl, sa.TypeDecorator | sa.Enum | sa.DateTime) or (
        isinstance(impl, sa.Numeric) and not isinstance(impl, sa.Float)
    ):
        return False, None
    if isinstance(impl, sa.Date):
        return True, _date_sqlite if sqlite else None
    if isinstance(impl, sa.Float):
        return True, None if sqlite else _finite  # JSON has no NaN or infinity
    if isinstance(impl, sa.Integer | sa.String | sa.Boolean):
        return True, None
    return False, None


class Stage(NamedTuple):
    """PostgreSQL, for many rows: COPY straight into the table, or create the staging table, empty it,
    COPY into it and upsert from it."""

    table: str
    direct: str
    create: str
    empty: str
    copy: str
    upsert: str


class Plan(NamedTuple):
    converters: list[Converter]
    sql: str  # SQLite: one row of parameters; PostgreSQL: one JSON document of rows
    stage: Stage | None = None


@lru_cache(maxsize=256)
def _plan(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...], update: tuple[str, ...]
) -> Plan | None:
    """Converters and the statements for these columns, or None when a type is not supported."""
    converters: list[Converter] = []
    for name in columns:
        if name not in table.c:
            raise ValueError(f"{table.name} has no column {name!r}: fix the row keys")
        ok, convert = _converter(table.c[name], dialect)
        if not ok:
            return None
        converters.append(convert)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    conflict = ", ".join(quote(k) for k in keys)
    action = "DO NOTHING"
    if update:
        action = "DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in update)
    insert = f"INSERT INTO {quote(table.name)} ({names}) {{}} ON CONFLICT ({conflict}) {action}"
    if dialect.name == "sqlite":
        return Plan(converters, insert.format("VALUES (" + ", ".join("?" for _ in columns) + ")"))
    # Rows arrive typed by the table's own column types, as one JSON array of row objects (a few
    # rows) or as COPY text in a temporary table (many: the server reads COPY faster than JSON);
    # JSON columns travel as JSON text.
    fields, select = [], []
    for name in columns:
        column = table.c[name]
        if isinstance(column.type.dialect_impl(dialect), sa.JSON):
            fields.append(f"{quote(name)} text")
            kind = column.type.compile(dialect=dialect).lower()  # json or jsonb
            select.append(f"COALESCE(x.{quote(name)}::{kind}, 'null'::{kind})")
        else:
            fields.append(f"{quote(name)} {column.type.compile(dialect=dialect)}")
            select.append(f"x.{quote(name)}")
    # One staging table per column set, kept for the session and emptied at each commit (cheaper
    # than creating and dropping one per transaction); emptied before use too, for a second batch
    # of the same transaction.
    stage = quote(f"{table.name}_stage_{zlib.crc32(names.encode()):08x}")
    return Plan(
        converters,
        insert.format(f"SELECT {', '.join(select)} FROM json_to_recordset(%s::json) AS x({', '.join(fields)})"),
        Stage(
            table.name,
            f"COPY {quote(table.name)} ({names}) FROM STDIN",
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({', '.join(fields)}) ON COMMIT DELETE ROWS",
            f"DELETE FROM {stage}",
            f"COPY {stage} ({names}) FROM STDIN",
            insert.format(f"SELECT {', '.join(select)} FROM {stage} AS x"),
        ),
    )


def _prepared(
    bind: SAConnection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]
) -> tuple[Plan, tuple[str, ...], list[Any]] | None:
    """The plan, columns and picked values of `rows` (all with the keys of the first), or None when a
    type needs SQLAlchemy."""
    columns = tuple(rows[0])
    if not set(keys) <= set(columns):
        return None
    plan = _plan(bind.dialect, table, columns, tuple(keys), tuple(update))
    if plan is None:
        return None
    width = len(columns)
    pick = itemgetter(*columns)
    try:
        picked = [pick(row) for row in rows if len(row) == width]
        if len(picked) != len(rows):
            raise KeyError(None)
    except KeyError:
        number, row = next((n, r) for n, r in enumerate(rows) if len(r) != width or not set(columns) <= set(r))
        raise ValueError(
            f"row {number} of {table.name} has columns {sorted(row)}, the first row {sorted(columns)}"
        ) from None
    return plan, columns, picked


def fast_upsert(
    bind: SAConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> bool:
    """Upsert `rows` (all with the keys of the first) and return True, or False if a type needs SQLAlchemy."""
    prepared = _prepared(bind, table, rows, keys, update)
    if prepared is None:
        return False
    plan, columns, picked = prepared
    if bind.dialect.name == "postgresql":
        if len(picked) >= PG_COPY_MIN_ROWS and plan.stage:
            return _pipelined(bind, [_copy_steps(plan, table, columns, keys, picked, _Call())])
        document = _json_document(plan, columns, keys, picked)
        if document is None:
            return False
        bind.exec_driver_sql(plan.sql, (document,))
        return True
    values = _convert(plan.converters, picked, len(columns))
    if values is None:
        return False
    bind.exec_driver_sql(plan.sql, list(zip(*values, strict=True)))
    return True


def fast_upsert_many(
    bind: SAConnection, batches: Sequence[tuple[sa.Table, Sequence[dict[str, Any]], Sequence[str], Sequence[str]]]
) -> bool:
    """PostgreSQL: upsert several tables' rows (table, rows, keys, update columns), in order, as one
    pipeline: while the server stores one table's rows this thread converts the next's, so a
    transaction that writes a few hundred rows of each of several tables keeps both cores busy, as
    one large batch of a single table does. Returns False, having written nothing, when some rows
    need SQLAlchemy."""
    steps: list[Iterable[Step]] = []
    call = _Call()
    for table, rows, keys, update in batches:
        if not rows:
            continue
        prepared = _prepared(bind, table, rows, keys, update)
        if prepared is None:
            return False
        plan, columns, picked = prepared
        if len(picked) >= PG_COPY_MIN_ROWS and plan.stage:
            steps.append(_copy_steps(plan, table, columns, keys, picked, call))
        else:
            steps.append(_json_steps(plan, columns, keys, picked))
    return _pipelined(bind, steps)


def _json_document(plan: Plan, columns: tuple[str, ...], keys: Sequence[str], picked: Sequence[Any]) -> str | None:
    """The rows as the JSON document of the PostgreSQL statement, or None when a value needs SQLAlchemy."""
    values = _convert(plan.converters, picked, len(columns))
    if values is None:
        return None
    values = _last_per_key(values, columns, keys)
    try:
        return orjson.dumps([dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]).decode()
    except TypeError:  # a value JSON cannot carry (a Decimal, a huge int): SQLAlchemy adapts it
        return None


def _convert(converters: list[Converter], picked: Sequence[Any], width: int) -> list[Sequence[Any]] | None:
    """The rows' values column by column, converted (one tight loop per column instead of calls per
    row); None when a value needs the SQLAlchemy path."""
    values: list[Sequence[Any]] = list(zip(*picked, strict=True)) if width > 1 else [list(picked)]  # one column: scalars
    for i, convert in enumerate(converters):
        if convert is _utc_sqlite or convert is _utc_pg:
            values[i] = convert(values[i])
        elif convert is _finite:
            if not all(map(_finite, values[i])):
                return None
        elif convert is not None:
            values[i] = list(map(convert, values[i]))
    return values


def _last_per_key(values: list[Sequence[Any]], columns: tuple[str, ...], keys: Sequence[str]) -> list[Sequence[Any]]:
    # One statement may not touch a row twice (ON CONFLICT DO UPDATE refuses), so the last row
    # per key wins, as it would had the rows been sent one by one.
    key_columns = [values[columns.index(k)] for k in keys]
    latest = list({key: n for n, key in enumerate(zip(*key_columns, strict=True))}.values())
    if len(latest) == len(values[0]):
        return values
    return [[column[n] for n in latest] for column in values]


_COPY_SPECIALS = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))  # backslash first


def copy_escaped(column: list[Any], *, json: bool = False) -> list[Any]:
    """Text values as COPY's text format needs them: backslash, tab, newline and carriage return
    escaped (serialised JSON, `json=True`, holds no raw control character, only backslashes); None
    is kept, for the caller to write as NULL.

    One scan of the whole column in C finds whether any value needs escaping; then each special
    is replaced by `str.replace`, which copies in C. (`str.translate` with a mapping to two
    characters looks up every character in Python and took 20 s for a million drivers.)"""
    probe = "\x00".join(filter(None, column))
    specials = [pair for pair in _COPY_SPECIALS[: 1 if json else 4] if pair[0] in probe]
    out = column
    for char, escape in specials:
        out = [v if v is None else v.replace(char, escape) for v in out]
    return out


def _copy_column(column: sa.Column, values: Sequence[Any]) -> list[str]:
    """One column as COPY text-format fields: NULL as \\N, text with its specials escaped."""
    if isinstance(column.type, sa.Boolean):
        return ["\\N" if v is None else ("t" if v else "f") for v in values]
    if isinstance(column.type, sa.Date):
        return ["\\N" if v is None else v.isoformat() for v in values]
    if isinstance(column.type, sa.Float):
        return ["\\N" if v is None else repr(float(v)) for v in values]
    if isinstance(column.type, sa.JSON):  # None is JSON null (the staged upsert's COALESCE does the same)
        values = ["null" if v is None else v for v in values]
    text = copy_escaped([v if v is None or type(v) is str else str(v) for v in values])
    return ["\\N" if v is None else v for v in text]


class _NeedsSQLAlchemy(Exception):
    pass


Step = Callable[[Any], None]  # a statement to run on the driver's cursor, its values converted already


def _json_steps(plan: Plan, columns: tuple[str, ...], keys: Sequence[str], picked: Sequence[Any]) -> Iterator[Step]:
    document = _json_document(plan, columns, keys, picked)
    if document is None:
        raise _NeedsSQLAlchemy
    yield partial(_run, plan.sql, (document,))


def _run(sql: str, params: tuple[Any, ...], cur: Any) -> None:
    cur.execute(sql, params)


class _Call:
    """What one pipelined call did so far: chunks sent straight, staging tables created."""

    def __init__(self) -> None:
        self.direct = 0
        self.staged: set[str] = set()


def _copy_steps(
    plan: Plan, table: sa.Table, columns: tuple[str, ...], keys: Sequence[str], picked: Sequence[Any], call: _Call
) -> Iterator[Step]:
    """The rows as COPY text, one chunk at a time, each step storing its chunk (straight into the
    table, or through the staging table)."""
    assert plan.stage is not None
    for start in range(0, len(picked), PG_COPY_CHUNK):
        values = _convert(plan.converters, picked[start : start + PG_COPY_CHUNK], len(columns))
        if values is None:
            raise _NeedsSQLAlchemy
        values = _last_per_key(values, columns, keys)
        fields = [_copy_column(table.c[name], column) for name, column in zip(columns, values, strict=True)]
        text = ("\n".join(map("\t".join, zip(*fields, strict=True))) + "\n").encode()
        yield partial(_store_copy, plan.stage, call, text)


def _store_copy(stage: Stage, call: _Call, text: bytes, cur: Any) -> None:
    if _backoff.get(stage.table, 0) > 0:
        _backoff[stage.table] -= 1
    elif call.direct < DIRECT_PER_CALL:
        call.direct += 1
        cur.execute("SAVEPOINT rapport_direct")
        try:
            with cur.copy(stage.direct) as copy:
                copy.write(text)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT rapport_direct; RELEASE SAVEPOINT rapport_direct")
            _backoff[stage.table] = DIRECT_BACKOFF
        else:
            cur.execute("RELEASE SAVEPOINT rapport_direct")
            return
    if stage.create not in call.staged:
        cur.execute(stage.create)
        call.staged.add(stage.create)
    cur.execute(stage.empty)
    with cur.copy(stage.copy) as copy:
        copy.write(text)
    cur.execute(stage.upsert)


def join_transaction(bind: SAConnection) -> bool:
    """Make sure the caller's transaction has begun before a savepoint is taken in it; True when it
    begins here (it then holds nothing yet).

    Both drivers begin a transaction lazily, at its first statement (sqlite3 at its first write).
    A savepoint taken before that would open a transaction of its own, committed when it is
    released, and the caller's rollback could no longer undo what was stored under it."""
    raw = bind.connection.driver_connection
    if bind.dialect.name == "sqlite":
        if raw.isolation_level is not None and not raw.in_transaction:  # type: ignore[union-attr]
            raw.execute("BEGIN")  # type: ignore[union-attr]
            return True
    elif not raw.autocommit and raw.info.transaction_status.name == "IDLE":  # type: ignore[union-attr]
        raw.execute("SELECT 1")  # type: ignore[union-attr]  # the driver begins the transaction first
        return True
    return False


def _pipelined(bind: SAConnection, batches: Iterable[Iterable[Step]]) -> bool:
    """Run the steps in order on a second thread while this one converts the next (the driver
    releases the GIL while it waits for the server, so the two cores work at once). All or
    nothing: the steps share one savepoint, and False (nothing written) when a value turns out to
    need SQLAlchemy. The driver's errors come out as SQLAlchemy's, as on the other paths."""
    join_transaction(bind)
    raw = bind.connection.driver_connection
    driver_error = bind.dialect.loaded_dbapi.Error
    try:  # a savepoint, or a transaction if the connection autocommits (the staging table needs one)
        with raw.transaction(), raw.cursor() as cur, ThreadPoolExecutor(1) as pool:  # type: ignore[union-attr]
            pending: Future[None] | None = None
            for step in chain.from_iterable(batches):  # converting happens as the steps are drawn
                if pending is not None:
                    pending.result()
                pending = pool.submit(step, cur)
            if pending is not None:
                pending.result()
    except _NeedsSQLAlchemy:
        return False
    except driver_error as exc:
        raise sa.exc.DBAPIError.instance("bulk upsert", None, exc, driver_error, dialect=bind.dialect) from exc
    return True
