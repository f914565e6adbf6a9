"""The score model in the admin app: edit weights as a draft, compare its distribution and backtest with the
published version on a connection's data, then publish.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector import score_models
from connector.backtest import outcomes
from connector.errors import ConfigError
from connector.features import load_account_features
from connector.model import RECORD_MODELS, SyncRun, utcnow
from connector.web.services.common import Invalid, NotFound, connection_row, record_id
from enrichment.backtest import evaluate
from enrichment.params import EXPERIENCE_COMPONENTS, RELATIONSHIP_COMPONENTS
from enrichment.scores import fit_portfolio, score_accounts

EDITABLE = (
    *(f"relationship.weights.{c}" for c in RELATIONSHIP_COMPONENTS),
    *(f"experience.weights.{c}" for c in EXPERIENCE_COMPONENTS),
    "tiers.a_min_value", "tiers.b_min_value", "at_risk.falling_trend", "at_risk.poor_experience",
)
BINS = 10
_ACT = RECORD_MODELS["activity"].__table__  # type: ignore[attr-defined]
_RUN = SyncRun.__table__  # type: ignore[attr-defined]
CACHED_COMPARISONS = 16  # a comparison is recomputed only when the versions, dates or data change
_compared: dict[tuple[Any, ...], dict[str, Any]] = {}


def _get(params: dict[str, Any], path: str) -> Any:
    node: Any = params
    for key in path.split("."):
        node = node[key]
    return node


def model_view(engine: Engine, ws: int) -> dict[str, Any]:
    """The published version, its editable values, and every version."""
    with engine.begin() as conn:
        version, params = score_models.published(conn, ws)
        versions = score_models.versions(conn, ws)
    for v in versions:
        for key in ("created_at", "published_at"):
            v[key] = v[key].isoformat() if v.get(key) else None
    return {"published": version, "values": {p: _get(params, p) for p in EDITABLE}, "versions": versions,
            "params": params}


def _field_of(message: str) -> str:
    named = [p for p in EDITABLE if p in message]
    if named:  # the first setting the message names is the one it is about
        return min(named, key=message.index)
    group = re.search(r"(relationship|experience)\.weights", message)
    return f"{group.group(0)}.{RELATIONSHIP_COMPONENTS[0] if group.group(1) == 'relationship' else EXPERIENCE_COMPONENTS[0]}" \
        if group else "note"


def create_draft(engine: Engine, ws: int, form: dict[str, Any], created_by: str) -> int:
    """A new draft version from the published one with the form's values; Invalid names the bad field."""
    errors: dict[str, str] = {}
    edits: dict[str, Any] = {}
    for path in EDITABLE:
        raw = form.get(path)
        if raw is None or str(raw).strip() == "":
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            errors[path] = f"{raw!r} is not a number"
            continue
        if not np.isfinite(value):
            errors[path] = "give a finite number"
            continue
        node = edits
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    note = str(form.get("note") or "").strip()
    if len(note) > 500:
        errors["note"] = "keep the note under 500 characters"
    if not edits and not errors:
        errors["note"] = "change at least one value"
    if errors:
        raise Invalid("the draft was not created: fix the fields marked", errors)
    try:
        return score_models.create_draft(engine, ws, edits, note=note or None, created_by=created_by)
    except ConfigError as exc:
        raise Invalid("the draft was not created", {_field_of(exc.message): exc.message}) from None


def _version_params(engine: Engine, ws: int, version: Any) -> tuple[int, dict[str, Any], str]:
    v = record_id(version, "score model version")
    with engine.begin() as conn:
        try:
            row = score_models.get(conn, ws, v)
        except ConfigError:
            raise NotFound(f"there is no score model version {v} in this workspace") from None
    return v, row["params"], row["status"]


def data_now(engine: Engine, connection_id: int) -> datetime:
    """The latest activity of the connection's data (its 'now' for backtests), at most the real now."""
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(_ACT.c.occurred_at)).where(_ACT.c.connection_id == connection_id)
                              ).scalar()
    now = utcnow()
    if latest is None:
        return now
    latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
    return min(latest, now)


def _feature_key(params: dict[str, Any]) -> str:
    """What the feature load depends on: the windows and which priorities count as high."""
    return json.dumps([params["windows"], params["experience"]["high_priorities"]], sort_keys=True)


def _scored(engine: Engine, cid: int, models: list[dict[str, Any]], as_of: datetime, *, point_in_time: bool,
            horizon: int | None = None) -> list[tuple[Any, Any]]:
    """Each model's account scores as of a date, loading the features once per distinct feature settings;
    with a horizon, also the (churned, expanded) outcomes of those accounts."""
    loaded: dict[str, tuple[Any, Any]] = {}
    out = []
    with engine.connect() as conn:
        for params in models:
            key = _feature_key(params)
            if key not in loaded:
                acc = load_account_features(conn, cid, params, as_of=as_of, point_in_time=point_in_time)
                events = outcomes(conn, cid, acc.ids, as_of, horizon) if horizon else None
                loaded[key] = (acc, events)
            acc, events = loaded[key]
            out.append((score_accounts(acc, fit_portfolio(acc, None, params), params), events))
    return out


def _distribution(scored: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"accounts": len(scored.ids), "histograms": {}, "average": {}}
    for name, b in (("relationship", scored.relationship), ("experience", scored.experience)):
        values = b.score[np.isfinite(b.score)]
        out["histograms"][name] = np.histogram(values, bins=BINS, range=(0, 100))[0].astype(int).tolist()
        out["average"][name] = round(float(values.mean()), 1) if len(values) else None
    tiers = scored.tier.astype(str)
    out["tiers"] = {t: int((tiers == t).sum()) for t in ("A", "B", "C")}
    out["at_risk"] = int(np.asarray(scored.at_risk, dtype=bool).sum())
    return out


def _metrics(scored: Any, events: tuple[np.ndarray, np.ndarray]) -> tuple[dict[str, Any], dict[str, Any]]:
    result = evaluate({"relationship": scored.relationship.score, "experience": scored.experience.score}, *events)
    metrics = {name: {k: result["scores"][name][k] for k in ("churn_auc", "bottom_decile_churn_lift", "expansion_auc")}
               for name in ("relationship", "experience")}
    return metrics, result


def _data_version(engine: Engine, cid: int) -> Any:
    """Changes whenever a run (sync, webhook, score) touched the connection's data."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(_RUN.c.id)).where(_RUN.c.connection_id == cid)).scalar()


def compare(engine: Engine, ws: int, version: Any, connection_id: Any, *, as_of: str | None = None,
            horizon_days: Any = 180) -> dict[str, Any]:
    """The draft (or any version) against the published one on one connection: distribution and backtest."""
    row = connection_row(engine, ws, connection_id)
    cid = int(row.id)
    v, params, status = _version_params(engine, ws, version)
    with engine.begin() as conn:
        current_v, current = score_models.published(conn, ws)
    errors: dict[str, str] = {}
    try:
        horizon = int(horizon_days)
        if not 1 <= horizon <= 1095:
            raise ValueError
    except (TypeError, ValueError):
        errors["horizon_days"] = "a whole number of days from 1 to 1095"
        horizon = 180
    now = data_now(engine, cid)
    when = now - timedelta(days=horizon)
    if as_of:
        try:
            parsed = datetime.fromisoformat(as_of)
            when = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except ValueError:
            errors["as_of"] = "a date as YYYY-MM-DD"
    if errors:
        raise Invalid("the comparison was not run: fix the fields marked", errors)
    key = (cid, v, current_v, when.isoformat(), horizon, _data_version(engine, cid))
    if key in _compared:
        return _compared[key]
    (base, _), (draft, _) = _scored(engine, cid, [current, params], now, point_in_time=False)
    (bt_base, events), (bt_draft, draft_events) = _scored(engine, cid, [current, params], when, point_in_time=True,
                                                          horizon=horizon)
    published_metrics, result = _metrics(bt_base, events)
    draft_metrics, _ = _metrics(bt_draft, draft_events)
    moved = int((base.tier.astype(str) != draft.tier.astype(str)).sum()) if len(base.ids) == len(draft.ids) else None
    answer = {"connection": {"id": cid, "name": row.name}, "version": v, "status": status, "published": current_v,
              "distribution": {"published": _distribution(base), "draft": _distribution(draft), "tier_changes": moved},
              "backtest": {"as_of": when.isoformat(), "horizon_days": horizon, "accounts": result["accounts"],
                           "churn_rate": result["churn_rate"], "expansion_rate": result["expansion_rate"],
                           "published": published_metrics, "draft": draft_metrics},
              "bins": [f"{i * 10}-{(i + 1) * 10}" for i in range(BINS)]}
    if len(_compared) >= CACHED_COMPARISONS:
        _compared.pop(next(iter(_compared)))
    _compared[key] = answer
    return answer


def publish(engine: Engine, ws: int, version: Any) -> dict[str, Any]:
    """Make a version the one that scores from the next run on."""
    v, _, _ = _version_params(engine, ws, version)
    score_models.publish(engine, ws, v)
    return {"published": v}
