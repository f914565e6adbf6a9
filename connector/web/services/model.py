"""The score model in the admin app: edit weights as a draft, compare its distribution and backtest with the
published version on a connection's data, then publish.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connector import score_models
from connector.backtest import run_backtest
from connector.errors import ConfigError
from connector.features import load_account_features
from connector.model import RECORD_MODELS, utcnow
from connector.web.services.common import Invalid, NotFound, connection_row
from enrichment.params import EXPERIENCE_COMPONENTS, RELATIONSHIP_COMPONENTS
from enrichment.scores import fit_portfolio, score_accounts

EDITABLE = (
    *(f"relationship.weights.{c}" for c in RELATIONSHIP_COMPONENTS),
    *(f"experience.weights.{c}" for c in EXPERIENCE_COMPONENTS),
    "tiers.a_min_value", "tiers.b_min_value", "at_risk.falling_trend", "at_risk.poor_experience",
)
BINS = 10
_ACT = RECORD_MODELS["activity"].__table__  # type: ignore[attr-defined]


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
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise NotFound(f"there is no score model version {version!r}") from None
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


def _distribution(engine: Engine, cid: int, params: dict[str, Any], now: datetime) -> dict[str, Any]:
    with engine.connect() as conn:
        acc = load_account_features(conn, cid, params, as_of=now)
    scored = score_accounts(acc, fit_portfolio(acc, None, params), params)
    out: dict[str, Any] = {"accounts": len(acc), "histograms": {}, "average": {}}
    for name, b in (("relationship", scored.relationship), ("experience", scored.experience)):
        values = b.score[np.isfinite(b.score)]
        out["histograms"][name] = np.histogram(values, bins=BINS, range=(0, 100))[0].astype(int).tolist()
        out["average"][name] = round(float(values.mean()), 1) if len(values) else None
    tiers = scored.tier.astype(str)
    out["tiers"] = {t: int((tiers == t).sum()) for t in ("A", "B", "C")}
    out["at_risk"] = int(np.asarray(scored.at_risk, dtype=bool).sum())
    out["_tier"] = tiers
    return out


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: result["scores"][name][k] for k in ("churn_auc", "bottom_decile_churn_lift", "expansion_auc")}
            for name in ("relationship", "experience")}


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
    base, draft = _distribution(engine, cid, current, now), _distribution(engine, cid, params, now)
    moved = int((base.pop("_tier") != draft.pop("_tier")).sum()) if base["accounts"] == draft["accounts"] else None
    try:
        bt_base = run_backtest(engine, cid, as_of=when, horizon_days=horizon, params=current)
        bt_draft = run_backtest(engine, cid, as_of=when, horizon_days=horizon, params=params)
        backtest: dict[str, Any] | None = {"as_of": bt_base["as_of"], "horizon_days": horizon,
                                           "accounts": bt_base["accounts"], "churn_rate": bt_base["churn_rate"],
                                           "expansion_rate": bt_base["expansion_rate"],
                                           "published": _metrics(bt_base), "draft": _metrics(bt_draft)}
    except ConfigError as exc:
        raise Invalid("the backtest could not run", {"as_of": exc.message}) from None
    return {"connection": {"id": cid, "name": row.name}, "version": v, "status": status, "published": current_v,
            "distribution": {"published": base, "draft": draft, "tier_changes": moved},
            "backtest": backtest, "bins": [f"{i * 10}-{(i + 1) * 10}" for i in range(BINS)]}


def publish(engine: Engine, ws: int, version: Any) -> dict[str, Any]:
    """Make a version the one that scores from the next run on."""
    v, _, _ = _version_params(engine, ws, version)
    score_models.publish(engine, ws, v)
    return {"published": v}
