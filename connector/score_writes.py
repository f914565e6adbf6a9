"""Storing scores: rewrite the `score` rows that changed and append their `score_history` snapshots.

In a sweep of the whole portfolio a record's row is written, with a snapshot, when it is new, when
any stored value differs (scores, tier, at-risk, trend, drivers, components, model version), or when
it was last written on an earlier UTC day. An unchanged record therefore gets at most one snapshot a
day, which is all the trend needs (it compares with the snapshot nearest 30 days earlier), and a
second sweep the same day writes only what moved; `scored_at` says when a row was last written.
Rescoring named accounts (their data just changed) rewrites their rows and snapshots them all, so
the history shows each such rescore. On SQLite, a few rows go through a multi-row upsert whose DO
UPDATE only fires for the rows that moved and RETURNs them; many rows are compared with the stored
rows read in one pass, then updated by id or inserted, and snapshotted inside the database. On
PostgreSQL the comparison runs in the database. A few rows come as arrays: an UPDATE of the changed
rows and an INSERT of the new ones, whose RETURNING rows are the snapshots. Many rows are COPYed into
a staging table; the moved rows are deleted and inserted again with the new ones (so they get new
ids), and the inserted rows are the snapshots. When nothing of that connection and object is stored
yet, they are COPYed straight into the table. JSON goes over already serialised: per-row ORM
processing would dominate the run.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection as SAConnection

from connector.bulk import copy_escaped, utc_text
from connector.store import lock_connection_rows
from enrichment.scores import Scored

BULK_MIN = 2000  # from this many rows PostgreSQL gets them by COPY rather than as array parameters
SQLITE_ROWS = 4000  # rows per SQLite statement (8 parameters each, under its 32766 limit)
SQLITE_BULK = 2000  # from this many rows SQLite compares with the stored rows in Python
COPY_ROWS = 20_000  # lines per COPY chunk
SCORE_KEYS = ("connection_id", "object", "external_id")
# per-row values; connection, object, model version and stamp are bound once per statement
_VALUES = ("external_id", "relationship", "experience", "tier", "at_risk", "trend", "drivers", "components")
_COMPARED = ("relationship", "experience", "tier", "at_risk", "trend", "drivers", "components", "model_version")
_COLUMNS = ("connection_id", "object", *_VALUES, "model_version", "scored_at")
_HISTORY = ("connection_id", "object", "external_id", "relationship", "experience", "tier", "at_risk",
            "model_version", "scored_at")


def _values(scored: Scored) -> list[list[Any]]:
    """The per-row values as plain Python columns (in `_VALUES` order); NaN trend becomes NULL."""
    trend = np.round(scored.trend, 1)
    return [
        scored.ids.tolist(),
        np.round(scored.relationship.score, 1).tolist(),
        np.round(scored.experience.score, 1).tolist(),
        [str(t) for t in scored.tier.tolist()],
        np.asarray(scored.at_risk, dtype=bool).tolist(),
        [None if t != t else t for t in trend.tolist()],
        list(scored.drivers),
        scored.components_json(),
    ]


def write_scores(conn: SAConnection, connection_id: int, object: str, scored: Scored, version: int,
                 now: datetime, *, every: bool = False) -> int:
    """Store the scores of `object` records with a history snapshot for each row written: only rows that
    changed or were last written before today, or `every` row; returns how many rows were written."""
    if len(scored.ids) == 0:
        return 0
    lock_connection_rows(conn, connection_id)  # rescoring on other workers writes the same rows
    now = now.astimezone(UTC)
    # rows last written before this moment are rewritten even when unchanged
    day = datetime.max.replace(tzinfo=UTC) if every else now.replace(hour=0, minute=0, second=0, microsecond=0)
    values = _values(scored)
    if conn.dialect.name == "postgresql":
        return _pg_write(conn, (connection_id, object, version, now, day), values)
    return _sqlite_write(conn, (connection_id, object, version, utc_text(now), utc_text(day)), values)


# --- SQLite: multi-row upsert, RETURNING the rows it wrote --------------------------------------

@lru_cache(maxsize=8)
def _sqlite_upsert(rows: int) -> str:
    # ?1..?5: connection, object, model version, stamp, start of the day; then 8 values per row
    width = len(_VALUES)
    tuples = ",".join(
        "(?1,?2," + ",".join(f"?{6 + i * width + j}" for j in range(width)) + ",?3,?4)" for i in range(rows))
    changed = " OR ".join(f"score.{c} IS NOT excluded.{c}" for c in _COMPARED)
    updates = ",".join(f"{c}=excluded.{c}" for c in _COLUMNS if c not in SCORE_KEYS)
    return (f"INSERT INTO score ({','.join(_COLUMNS)}) VALUES {tuples} "
            f"ON CONFLICT (connection_id, object, external_id) DO UPDATE SET {updates} "
            f"WHERE {changed} OR score.scored_at < ?5 RETURNING id")


_SQLITE_HISTORY = (f"INSERT INTO score_history ({','.join(_HISTORY)}) SELECT {','.join(_HISTORY)} FROM score "
                   "WHERE id IN (SELECT value FROM json_each(?))")


def _sqlite_write(conn: SAConnection, consts: tuple[Any, ...], values: list[list[Any]]) -> int:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    if len(values[0]) >= SQLITE_BULK:
        return _sqlite_bulk(raw, consts, values)
    per = min(SQLITE_ROWS, (raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 5) // len(_VALUES))
    rows = list(zip(*values, strict=True))
    written: list[int] = []
    cur = raw.cursor()
    try:
        for start in range(0, len(rows), per):
            batch = rows[start : start + per]
            cur.execute(_sqlite_upsert(len(batch)), [*consts, *itertools.chain.from_iterable(batch)])
            written.extend(r[0] for r in cur.fetchall())
        if written:  # the snapshots are the rows just written, copied inside the database
            cur.execute(_SQLITE_HISTORY, ("[" + ",".join(map(str, written)) + "]",))
    finally:
        cur.close()
    return len(written)


# A row last written before the day (or by another model version) is rewritten whatever its values:
# its JSON is not read (most of the bytes), so the next day's sweep compares nothing it need not.
_CURRENT = "scored_at >= :day AND model_version = :version"
_SQLITE_STORED = (f"SELECT external_id, id, relationship, experience, tier, at_risk, trend, CASE WHEN {_CURRENT} THEN "
                  f"drivers END, CASE WHEN {_CURRENT} THEN components END, model_version, scored_at FROM score "
                  "WHERE connection_id = :cid AND object = :object")
_SQLITE_INSERT = (f"INSERT INTO score ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})")
_SQLITE_UPDATE = ("UPDATE score SET " + ", ".join(f"{c} = ?" for c in (*_VALUES[1:], "model_version", "scored_at"))
                  + " WHERE id = ?")
_SQLITE_HISTORY_AFTER = f"INSERT INTO score_history ({','.join(_HISTORY)}) SELECT {','.join(_HISTORY)} FROM score WHERE id > ?"
STORED_ROWS = 20_000  # stored rows compared per fetch


def _sqlite_bulk(raw: sqlite3.Connection, consts: tuple[Any, ...], values: list[list[Any]]) -> int:
    """Many rows: read the stored rows once and compare them in numpy (cheaper than an upsert that
    looks up and compares each row), then update the moved rows by id and insert the new ones."""
    cid, kind, version, now, day = consts
    n = len(values[0])
    new: list[np.ndarray] = []  # the values as arrays, once a stored row needs comparing
    position: dict[str, int] = {}
    stored_id = np.full(n, -1, dtype=np.int64)
    write = np.ones(n, dtype=bool)  # rows not stored yet are written
    cur = raw.cursor()
    try:
        # take the write lock first: the stored rows read next stay current, and new rows get ids after max(id)
        cur.execute("UPDATE score SET id = id WHERE 0")
        last = cur.execute("SELECT coalesce(max(id), 0) FROM score").fetchone()[0]
        cur.execute(_SQLITE_STORED, {"cid": cid, "object": kind, "day": day, "version": version})
        while chunk := cur.fetchmany(STORED_ROWS):
            if not new:
                new = [np.array(v, dtype=object) for v in values]
                position = {ext: i for i, ext in enumerate(values[0])}
            cols = list(zip(*chunk, strict=True))
            at = np.fromiter(map(position.get, cols[0], itertools.repeat(-1)), dtype=np.int64, count=len(chunk))
            ok = at >= 0
            at, ids = at[ok], np.array(cols[1], dtype=np.int64)[ok]
            moved = (np.array(cols[10], dtype=object)[ok] < day) | (np.array(cols[9], dtype=object)[ok] != version)
            for j, col in enumerate(cols[2:9], start=1):  # the stored values, in `_VALUES` order after the id
                moved |= np.array(col, dtype=object)[ok] != new[j][at]
            stored_id[at], write[at] = ids, moved
        rows = np.flatnonzero(write)
        if new:
            inserted, updated = rows[stored_id[rows] < 0], rows[stored_id[rows] >= 0]
            u = len(updated)
            cur.executemany(_SQLITE_UPDATE, zip(*(v[updated].tolist() for v in new[1:]), [version] * u, [now] * u,
                                                stored_id[updated].tolist(), strict=True))
            cur.execute(_SQLITE_HISTORY, ("[" + ",".join(map(str, stored_id[updated].tolist())) + "]",))
            fresh = [v[inserted].tolist() for v in new]
        else:  # nothing stored yet: every row is new
            fresh = values
        i = len(fresh[0])
        cur.executemany(_SQLITE_INSERT, zip([cid] * i, [kind] * i, *fresh, [version] * i, [now] * i, strict=True))
        # the snapshots of the rows inserted, copied inside the database: ids after the last one before
        # (this transaction holds the write lock), as those of the rows updated were above
        cur.execute(_SQLITE_HISTORY_AFTER, (last,))
    finally:
        cur.close()
    return len(rows)


# --- PostgreSQL: few rows updated or inserted in one statement, many deleted if moved and COPYed --

_PG_TYPES = ("text", "float8", "float8", "text", "boolean", "float8", "text", "text")
_JSON = ("drivers", "components")  # json columns: sent and compared as text, checked as JSON when written
_STAGE = "score_stage"


def _stored(c: str) -> str:
    return f"s.{c}::text" if c in _JSON else f"s.{c}"


def _given(c: str) -> str:
    return "%(version)s" if c == "model_version" else f"src.{c}"


def _written(c: str) -> str:
    return f"src.{c}::json" if c in _JSON else f"src.{c}"


# Parameters of the statements below: cid, object, version, now, day. `src` holds the rows (`_VALUES`).
_SAME = "s.connection_id = %(cid)s AND s.object = %(object)s AND s.external_id = src.external_id"
_MOVED = "(" + " OR ".join(f"{_stored(c)} IS DISTINCT FROM {_given(c)}" for c in _COMPARED) + " OR s.scored_at < %(day)s)"
_OUT = "external_id, relationship, experience, tier, at_risk"


def _pg_statement(source: str) -> str:
    """One statement for a few rows from the query `source`: update the changed rows in place, insert
    the new ones (no ON CONFLICT: it would draw a sequence value per row on every run), and what both
    return becomes the history snapshots."""
    sets = ", ".join([f"{c} = {_written(c)}" for c in _VALUES[1:]] + ["model_version = %(version)s", "scored_at = %(now)s"])
    return (
        f"WITH src AS ({source}), "
        f"up AS (UPDATE score s SET {sets} FROM src WHERE {_SAME} AND {_MOVED} "
        f"RETURNING {', '.join('s.' + c for c in _OUT.split(', '))}), "
        f"ins AS (INSERT INTO score ({','.join(_COLUMNS)}) SELECT %(cid)s, %(object)s, "
        f"{', '.join(map(_written, _VALUES))}, %(version)s, %(now)s FROM src "
        f"WHERE NOT EXISTS (SELECT 1 FROM score s WHERE {_SAME}) RETURNING {_OUT}) "
        f"INSERT INTO score_history ({','.join(_HISTORY)}) SELECT %(cid)s, %(object)s, {_OUT}, %(version)s, %(now)s "
        f"FROM (SELECT {_OUT} FROM up UNION ALL SELECT {_OUT} FROM ins) AS written"
    )


# Arrays go in binary: the text format would quote and escape every element of the JSON columns
# (a regular-expression substitution per quote), which cost more than the rest of a small write.
_PG_ARRAYS = _pg_statement(
    "SELECT * FROM unnest(" + ", ".join(f"%({c})b::{t}[]" for c, t in zip(_VALUES, _PG_TYPES, strict=True))
    + ") AS u(" + ", ".join(_VALUES) + ")")
_PG_ANY_STORED = "SELECT 1 FROM score WHERE connection_id = %(cid)s AND object = %(object)s LIMIT 1"
_PG_DROP_MOVED = f"DELETE FROM score s USING {_STAGE} AS src WHERE {_SAME} AND {_MOVED}"
_PG_KEPT = "SELECT external_id FROM score WHERE connection_id = %(cid)s AND object = %(object)s"


def _pg_write(conn: SAConnection, consts: tuple[Any, ...], values: list[list[Any]]) -> int:
    """A few rows through `_PG_ARRAYS`. Many rows are COPYed into a staging table, the stored rows
    that moved are deleted, and the rows no longer stored (moved or new) are COPYed into the table,
    with their snapshots: they get new ids. (An UPDATE from the staging table took 48 s to rewrite
    the large world's contacts: see `_merge_joined` for why.)"""
    cid, object, version, now, day = consts
    params: dict[str, Any] = {"cid": cid, "object": object, "version": version, "now": now, "day": day}
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        if len(values[0]) < BULK_MIN:
            cur.execute(_PG_ARRAYS, params | dict(zip(_VALUES, values, strict=True)))
            return int(cur.rowcount)
        cur.execute(_PG_ANY_STORED, params)
        fields = _copy_fields(values)
        if cur.fetchone() is not None:  # else a first run: nothing to compare with, every row goes in
            types = ", ".join(f"{c} {t}" for c, t in zip(_VALUES, _PG_TYPES, strict=True))
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ({types}) ON COMMIT DROP")
            cur.execute(f"TRUNCATE {_STAGE}")
            _copy(cur, f"{_STAGE} ({', '.join(_VALUES)})", fields)
            cur.execute(f"CREATE INDEX IF NOT EXISTS {_STAGE}_external_id ON {_STAGE} (external_id)")
            cur.execute(f"ANALYZE {_STAGE}")  # a temp table has no statistics: the planner would guess 1k rows
            _merge_joined(cur, _PG_DROP_MOVED, params)
            kept = {ext for (ext,) in cur.execute(_PG_KEPT, params)}
            if kept:
                wanted = [ext not in kept for ext in values[0]]
                fields = [list(itertools.compress(column, wanted)) for column in fields]
        if not fields[0]:
            return 0
        head = f"{cid}\t{copy_escaped([object])[0]}\t"
        tail = f"\t{version}\t{now.isoformat()}"
        _copy(cur, f"score ({', '.join(_COLUMNS)})", fields, head=head, tail=tail)
        _copy(cur, f"score_history ({', '.join(_HISTORY)})", fields[:5], head=head, tail=tail)
        return len(fields[0])


def _merge_joined(cur: Any, statement: str, params: dict[str, Any]) -> None:
    """Run `statement` with the planner's hash joins off, so that it joins the staging table to the
    stored rows by merging both in key order and deletes the stored rows in their order on disk. A
    hash join of a million wide rows runs in batches and deletes them at random: each deletion then
    dirties a page of its own, and past the buffer cache each costs a write (14 s against 2.5 s for
    the large world's contacts)."""
    cur.execute("SELECT current_setting('enable_hashjoin')")
    before = cur.fetchone()[0]
    cur.execute("SET LOCAL enable_hashjoin = off")
    try:
        cur.execute(statement, params)
    finally:
        cur.execute("SELECT set_config('enable_hashjoin', %s, true)", (before,))


def _copy_fields(values: list[list[Any]]) -> list[list[str]]:
    """The `_VALUES` columns as COPY text-format fields."""
    ext, rel, exp, tier, risk, trend, drivers, components = values
    return [copy_escaped(ext), list(map(repr, rel)), list(map(repr, exp)), copy_escaped(tier),
            ["t" if r else "f" for r in risk], ["\\N" if t is None else repr(t) for t in trend],
            copy_escaped(drivers, json=True), copy_escaped(components, json=True)]


def _copy(cur: Any, target: str, fields: list[list[str]], *, head: str = "", tail: str = "") -> None:
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for chunk in copy_lines(fields, head=head, tail=tail):
            copy.write(chunk)


def copy_lines(fields: list[list[str]], *, head: str = "", tail: str = "") -> Iterator[bytes]:
    """Columns of COPY text-format fields as lines, in chunks (one string join per chunk, not a driver
    call per value); `head` and `tail` are fields (escaped, with their tabs) every line starts and ends with."""
    for start in range(0, len(fields[0]), COPY_ROWS):
        part = slice(start, start + COPY_ROWS)
        lines = map("\t".join, zip(*(column[part] for column in fields), strict=True))
        yield (head + f"{tail}\n{head}".join(lines) + tail + "\n").encode()
