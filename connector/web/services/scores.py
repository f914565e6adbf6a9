"""Scores in the admin app: distributions, tiers, risers and fallers, the at-risk list, and one account's story."""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import RECORD_MODELS, Score, ScoreHistory, SyncRun
from connector.scoring import PORTFOLIO
from connector.web.services.common import NotFound, connection_row, iso
from enrichment.scores import component_names

_S = Score.__table__  # type: ignore[attr-defined]
_H = ScoreHistory.__table__  # type: ignore[attr-defined]
_A = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
BINS = 10
TOP = 10
AT_RISK_SHOWN = 50
HISTORY_POINTS = 365
CACHED_SUMMARIES = 32
_summaries: dict[tuple[Any, ...], dict[str, Any]] = {}
_R = SyncRun.__table__  # type: ignore[attr-defined]


def _names(conn: sa.Connection, cid: int, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(_A.c.external_id, _A.c.name).where(_A.c.connection_id == cid,
                                                                   _A.c.external_id.in_(ids)))
    return {r.external_id: r.name for r in rows if r.name}


def _pick(data: dict[str, np.ndarray], order: np.ndarray, names: dict[str, str]) -> list[dict[str, Any]]:
    def num(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    return [{"external_id": str(data["ids"][i]), "name": names.get(str(data["ids"][i])) or str(data["ids"][i]),
             "relationship": num(data["rel"][i]), "experience": num(data["exp"][i]), "tier": data["tier"][i],
             "trend": num(data["trend"][i]), "at_risk": bool(data["risk"][i])} for i in order]


def _raw(conn: sa.Connection, stmt: sa.Select) -> list[tuple[Any, ...]]:
    """Plain DB-API rows of a select of plain columns: a whole portfolio without per-row result objects."""
    compiled = stmt.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _load(conn: sa.Connection, cid: int) -> tuple[dict[str, np.ndarray], Any, Any]:
    """The accounts' scores of a connection as columns, in one narrow read (the rows also carry wide JSON)."""
    rows = _raw(conn, sa.select(_S.c.external_id, _S.c.relationship, _S.c.experience, _S.c.tier, _S.c.trend,
                                _S.c.at_risk).where(_S.c.connection_id == cid, _S.c.object == "account"))
    stamp = conn.execute(sa.select(sa.func.max(_S.c.scored_at), sa.func.max(_S.c.model_version))
                         .where(_S.c.connection_id == cid, _S.c.object == PORTFOLIO)).one()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    data = {"ids": np.array(cols[0], dtype=object), "tier": np.array(cols[3], dtype=object),
            "risk": np.array(cols[5], dtype=bool)}
    for key, i in (("rel", 1), ("exp", 2), ("trend", 4)):
        data[key] = np.array(cols[i], dtype=float)  # NULL becomes NaN
    return data, stamp[0], stamp[1]


def _top(keys: tuple[np.ndarray, ...], mask: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first n rows of `mask` ordered by `keys` (np.lexsort: the last key sorts first)."""
    idx = np.flatnonzero(mask)
    return idx[np.lexsort(tuple(k[idx] for k in keys))][:n]


def _marker(conn: sa.Connection, cid: int) -> Any:
    """Moves whenever a run (a rescore, a sync merging records) may have changed the connection's scores."""
    return conn.execute(sa.select(sa.func.max(_R.c.id)).where(_R.c.connection_id == cid)).scalar()


def summary(engine: Engine, ws: int, connection_id: Any) -> dict[str, Any]:
    """One connection's score distributions, tiers, movers and at-risk accounts (kept until the next run)."""
    row = connection_row(engine, ws, connection_id)
    cid = int(row.id)
    with engine.connect() as conn:
        key = (str(engine.url), cid, _marker(conn, cid))
    if key in _summaries:
        return {**_summaries[key], "connection": {"id": cid, "name": row.name, "kind": row.kind}}
    answer = _summary(engine, row)
    if len(_summaries) >= CACHED_SUMMARIES:
        _summaries.pop(next(iter(_summaries)))
    _summaries[key] = answer
    return answer


def _summary(engine: Engine, row: Any) -> dict[str, Any]:
    cid = int(row.id)
    with engine.connect() as conn:
        d, scored_at, version = _load(conn, cid)
        contacts = conn.execute(sa.select(sa.func.count()).where(_S.c.connection_id == cid,
                                                                 _S.c.object == "contact")).scalar_one()
        n = len(d["ids"])
        order = np.arange(n)
        trend = np.nan_to_num(d["trend"], nan=0.0)
        tier_rank = np.select([d["tier"] == "A", d["tier"] == "B"], [0, 1], 2)
        rel = np.nan_to_num(d["rel"], nan=-1.0)
        lists = {
            "top": _top((order, -rel), ~np.isnan(d["rel"]), TOP),
            "risers": _top((order, -trend), trend > 0, TOP),
            "fallers": _top((order, trend), trend < 0, TOP),
            "at_risk": _top((order, -rel, tier_rank), d["risk"], AT_RISK_SHOWN),
        }
        wanted = sorted({str(d["ids"][i]) for idx in lists.values() for i in idx})
        names = _names(conn, cid, wanted)
    histograms = {}
    for name, key in (("relationship", "rel"), ("experience", "exp")):
        values = d[key][~np.isnan(d[key])]
        histograms[name] = np.histogram(np.clip(values, 0, 100), bins=BINS, range=(0, 100))[0].astype(int).tolist()
    average = {name: (round(float(np.nanmean(d[key])), 1) if n and not np.isnan(d[key]).all() else None)
               for name, key in (("relationship", "rel"), ("experience", "exp"))}
    return {
        "connection": {"id": cid, "name": row.name, "kind": row.kind},
        "accounts": n, "contacts": int(contacts or 0), "average": average,
        "scored_at": iso(scored_at), "model_version": version,
        "bins": [f"{i * 100 // BINS}-{(i + 1) * 100 // BINS}" for i in range(BINS)],
        "histograms": histograms,
        "tiers": {t: int((d["tier"] == t).sum()) for t in ("A", "B", "C")},
        "at_risk_count": int(d["risk"].sum()),
        **{key: _pick(d, idx, names) for key, idx in lists.items()},
    }


def _components(components: dict[str, Any]) -> list[dict[str, Any]]:
    names = component_names(components, "account")
    levels = components.get("levels") or []
    points = components.get("points") or []
    out = []
    for i, name in enumerate(names):
        score, _, part = name.partition(".")
        out.append({"score": score, "component": part, "level": levels[i] if i < len(levels) else None,
                    "points": points[i] if i < len(points) else None})
    return out


def account(engine: Engine, ws: int, connection_id: Any, external_id: str) -> dict[str, Any]:
    """One account's scores, components, drivers and score history."""
    row = connection_row(engine, ws, connection_id)
    cid = int(row.id)
    with engine.connect() as conn:
        score = conn.execute(sa.select(_S).where(_S.c.connection_id == cid, _S.c.object == "account",
                                                 _S.c.external_id == external_id)).first()
        if score is None:
            raise NotFound(f"account {external_id!r} has no score in connection {row.name}")
        acc = conn.execute(sa.select(_A.c.name, _A.c.domain, _A.c.industry, _A.c.employees, _A.c.annual_revenue,
                                     _A.c.owner_id).where(_A.c.connection_id == cid,
                                                          _A.c.external_id == external_id)).first()
        history = conn.execute(sa.select(_H.c.scored_at, _H.c.relationship, _H.c.experience, _H.c.tier,
                                         _H.c.model_version)
                               .where(_H.c.connection_id == cid, _H.c.object == "account",
                                      _H.c.external_id == external_id)
                               .order_by(_H.c.scored_at.desc()).limit(HISTORY_POINTS)).all()
    components = dict(score.components or {})
    return {
        "connection": {"id": cid, "name": row.name, "kind": row.kind},
        "external_id": external_id,
        "account": dict(acc._mapping) if acc is not None else {},
        "name": (acc.name if acc is not None else None) or external_id,
        "relationship": score.relationship, "experience": score.experience, "tier": score.tier,
        "trend": score.trend, "at_risk": bool(score.at_risk), "model_version": score.model_version,
        "scored_at": iso(score.scored_at), "baseline": components.get("baseline"),
        "components": _components(components),
        "drivers": list(score.drivers or []),
        "history": [{"scored_at": iso(h.scored_at), "relationship": h.relationship, "experience": h.experience,
                     "tier": h.tier, "model_version": h.model_version} for h in reversed(history)],
    }
