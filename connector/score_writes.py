"""Storing scores: upsert the current `score` rows and append `score_history` snapshots.

Small batches go through `connector.store.upsert`; a whole portfolio (up to millions of rows) is
written with the driver's bulk path — one executemany on SQLite, COPY into a staging table on
PostgreSQL — with the JSON already serialised, since per-row ORM processing would dominate the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from connector.model import Score, ScoreHistory
from connector.store import lock_connection_rows, upsert
from enrichment.scores import Scored

BULK_MIN = 2000  # below this, the plain upsert is as fast and simpler
SCORE_KEYS = ("connection_id", "object", "external_id")
_S = Score.__table__  # type: ignore[attr-defined]
_H = ScoreHistory.__table__  # type: ignore[attr-defined]
_COLUMNS = ("connection_id", "object", "external_id", "relationship", "experience", "tier", "at_risk", "trend",
            "drivers", "components", "model_version", "scored_at")
_HISTORY = ("connection_id", "object", "external_id", "relationship", "experience", "tier", "at_risk",
            "model_version", "scored_at")


def _columns(connection_id: int, object: str, scored: Scored, version: int, stamp: Any) -> dict[str, list[Any]]:
    n = len(scored.ids)
    trend = np.round(scored.trend, 1)
    return {
        "connection_id": [connection_id] * n,
        "object": [object] * n,
        "external_id": scored.ids.tolist(),
        "relationship": np.round(scored.relationship.score, 1).tolist(),
        "experience": np.round(scored.experience.score, 1).tolist(),
        "tier": [str(t) for t in scored.tier.tolist()],
        "at_risk": np.asarray(scored.at_risk, dtype=bool).tolist(),
        "trend": [None if t != t else t for t in trend.tolist()],  # NaN -> NULL
        "drivers": scored.drivers,
        "components": scored.components_json(),
        "model_version": [version] * n,
        "scored_at": [stamp] * n,
    }


def write_scores(conn: SAConnection, connection_id: int, object: str, scored: Scored, version: int,
                 now: datetime) -> int:
    """Upsert the current scores of `object` records and append their history snapshots; returns the count."""
    n = len(scored.ids)
    if n == 0:
        return 0
    lock_connection_rows(conn, connection_id)  # rescoring on other workers writes the same rows
    dialect = conn.dialect.name
    if n < BULK_MIN or dialect not in ("sqlite", "postgresql"):
        cols = _columns(connection_id, object, scored, version, now)
        cols["drivers"] = [orjson.loads(d) for d in cols["drivers"]]
        cols["components"] = [orjson.loads(c) for c in cols["components"]]
        rows = [dict(zip(_COLUMNS, values, strict=True)) for values in zip(*(cols[c] for c in _COLUMNS), strict=True)]
        upsert(conn, Score, rows, keys=SCORE_KEYS)
        conn.execute(sa.insert(_H), [{k: r[k] for k in _HISTORY} for r in rows])
        return n
    # SQLite keeps UTC as "YYYY-MM-DD HH:MM:SS.ffffff" text, as SQLAlchemy's DATETIME writes it
    stamp = now.astimezone(UTC).isoformat(" ", "microseconds")[:26] if dialect == "sqlite" else now
    cols = _columns(connection_id, object, scored, version, stamp)
    if dialect == "sqlite":
        _sqlite_bulk(conn, cols)
    else:
        _pg_bulk(conn, cols)
    return n


_COPY_HISTORY = (
    f"INSERT INTO score_history ({','.join(_HISTORY)}) SELECT {','.join(_HISTORY)} FROM score "
    "WHERE connection_id = {cid} AND object = {object} AND scored_at = {stamp}"
)


def _sqlite_bulk(conn: SAConnection, cols: dict[str, list[Any]]) -> None:
    marks = ",".join("?" * len(_COLUMNS))
    updates = ",".join(f"{c}=excluded.{c}" for c in _COLUMNS if c not in SCORE_KEYS)
    conn.exec_driver_sql(
        f"INSERT INTO score ({','.join(_COLUMNS)}) VALUES ({marks}) "
        f"ON CONFLICT (connection_id, object, external_id) DO UPDATE SET {updates}",
        list(zip(*(cols[c] for c in _COLUMNS), strict=True)),
    )
    # the snapshots are the rows just written: copied inside the database rather than sent again
    conn.exec_driver_sql(_COPY_HISTORY.format(cid="?", object="?", stamp="?"),
                         (cols["connection_id"][0], cols["object"][0], cols["scored_at"][0]))


def _pg_bulk(conn: SAConnection, cols: dict[str, list[Any]]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS score_stage (LIKE score INCLUDING DEFAULTS) ON COMMIT DROP")
        cur.execute("TRUNCATE score_stage")
        with cur.copy(f"COPY score_stage ({','.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in zip(*(cols[c] for c in _COLUMNS), strict=True):
                copy.write_row(row)
        updates = ",".join(f"{c}=excluded.{c}" for c in _COLUMNS if c not in SCORE_KEYS)
        cur.execute(
            f"INSERT INTO score ({','.join(_COLUMNS)}) SELECT {','.join(_COLUMNS)} FROM score_stage "
            f"ON CONFLICT (connection_id, object, external_id) DO UPDATE SET {updates}"
        )
        cur.execute(_COPY_HISTORY.format(cid="%s", object="%s", stamp="%s"),
                    (cols["connection_id"][0], cols["object"][0], cols["scored_at"][0]))
