"""Scores in the admin app: distributions, tiers, risers and fallers, the at-risk list, and one account's story."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector.model import RECORD_MODELS, Score, ScoreHistory
from connector.web.services.common import NotFound, connection_row, iso

_S = Score.__table__  # type: ignore[attr-defined]
_H = ScoreHistory.__table__  # type: ignore[attr-defined]
_A = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
BINS = 10
TOP = 10
AT_RISK_SHOWN = 50
HISTORY_POINTS = 365


def _histogram(conn: sa.Connection, cid: int, column: sa.Column) -> list[int]:
    bucket = sa.cast(column / (100 / BINS), sa.Integer)
    rows = conn.execute(sa.select(bucket, sa.func.count()).where(_S.c.connection_id == cid, _S.c.object == "account",
                                                                 column.is_not(None)).group_by(bucket)).all()
    counts = [0] * BINS
    for b, n in rows:
        counts[min(max(int(b), 0), BINS - 1)] += int(n)
    return counts


def _accounts(conn: sa.Connection, cid: int, where: Any, order: Any, limit: int) -> list[dict[str, Any]]:
    q = (sa.select(_S.c.external_id, _S.c.relationship, _S.c.experience, _S.c.tier, _S.c.trend, _S.c.at_risk,
                   _A.c.name)
         .select_from(_S.outerjoin(_A, sa.and_(_A.c.connection_id == _S.c.connection_id,
                                               _A.c.external_id == _S.c.external_id)))
         .where(_S.c.connection_id == cid, _S.c.object == "account", where).order_by(*order).limit(limit))
    return [{"external_id": r.external_id, "name": r.name or r.external_id, "relationship": r.relationship,
             "experience": r.experience, "tier": r.tier, "trend": r.trend, "at_risk": bool(r.at_risk)}
            for r in conn.execute(q)]


def summary(engine: Engine, ws: int, connection_id: Any) -> dict[str, Any]:
    """One connection's score distributions, tiers, movers and at-risk accounts."""
    row = connection_row(engine, ws, connection_id)
    cid = int(row.id)
    with engine.connect() as conn:
        stats = conn.execute(sa.select(sa.func.count(), sa.func.avg(_S.c.relationship), sa.func.avg(_S.c.experience),
                                       sa.func.max(_S.c.scored_at), sa.func.max(_S.c.model_version),
                                       sa.func.sum(sa.case((_S.c.at_risk, 1), else_=0)))
                             .where(_S.c.connection_id == cid, _S.c.object == "account")).one()
        tiers: dict[str, int] = dict(conn.execute(sa.select(_S.c.tier, sa.func.count()).where(
            _S.c.connection_id == cid, _S.c.object == "account").group_by(_S.c.tier)).all())
        contacts = conn.execute(sa.select(sa.func.count()).where(_S.c.connection_id == cid,
                                                                 _S.c.object == "contact")).scalar_one()
        histograms = {"relationship": _histogram(conn, cid, _S.c.relationship),
                      "experience": _histogram(conn, cid, _S.c.experience)}
        has_trend = _S.c.trend.is_not(None)
        risers = _accounts(conn, cid, sa.and_(has_trend, _S.c.trend > 0), (_S.c.trend.desc(), _S.c.id), TOP)
        fallers = _accounts(conn, cid, sa.and_(has_trend, _S.c.trend < 0), (_S.c.trend.asc(), _S.c.id), TOP)
        top = _accounts(conn, cid, _S.c.relationship.is_not(None), (_S.c.relationship.desc(), _S.c.id), TOP)
        at_risk = _accounts(conn, cid, _S.c.at_risk.is_(True), (_S.c.tier.asc(), _S.c.relationship.desc(), _S.c.id),
                            AT_RISK_SHOWN)
    count, rel, exp, scored_at, version, risky = stats
    return {
        "connection": {"id": cid, "name": row.name, "kind": row.kind},
        "accounts": int(count or 0), "contacts": int(contacts or 0),
        "average": {"relationship": round(float(rel), 1) if rel is not None else None,
                    "experience": round(float(exp), 1) if exp is not None else None},
        "scored_at": iso(scored_at), "model_version": version,
        "bins": [f"{i * 100 // BINS}-{(i + 1) * 100 // BINS}" for i in range(BINS)],
        "histograms": histograms,
        "tiers": {t: int(tiers.get(t, 0)) for t in ("A", "B", "C")},
        "at_risk_count": int(risky or 0),
        "top": top, "risers": risers, "fallers": fallers, "at_risk": at_risk,
    }


def _components(components: dict[str, Any]) -> list[dict[str, Any]]:
    names = components.get("names") or []
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
