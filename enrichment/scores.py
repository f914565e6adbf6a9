"""Scoring a portfolio: fit the portfolio's reference distributions, then score accounts and contacts.

`fit_portfolio` runs on a full set of accounts; its result (JSON-able) can be cached and reused to
rescore a few records the same way without reloading everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from enrichment import drivers, experience, relationship, tiers
from enrichment.combine import Breakdown, combine
from enrichment.drivers import account_texts
from enrichment.features import AccountFeatures, ContactFeatures, Reference, fit_reference, percentile


@dataclass
class Portfolio:
    """What scores are normalised against: one percentile reference per signal, plus experience priors."""

    refs: dict[str, Reference | None]
    priors: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain data for caching."""
        priors = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.priors.items()}
        return {"refs": {k: (v.to_json() if v else None) for k, v in self.refs.items()}, "priors": priors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Portfolio:
        """Inverse of `to_json`."""
        refs = {k: (Reference.from_json(v) if v else None) for k, v in data["refs"].items()}
        return cls(refs=refs, priors=data["priors"])


def _contact_signals(con: ContactFeatures) -> dict[str, np.ndarray]:
    c = con.cols
    since = np.where(np.isnan(c["days_since_activity"]), c["age_days"], c["days_since_activity"])
    return {
        "engagement_recency": -np.clip(since, 0, None),
        "engagement_volume": np.nan_to_num(np.clip(c["activities"], 0, None)),
        "own_load": -np.nan_to_num(np.clip(c["cases"], 0, None)),
        "own_backlog": -np.nan_to_num(np.clip(c["open_high"], 0, None)),
    }


def fit_portfolio(acc: AccountFeatures, con: ContactFeatures | None, params: dict[str, Any]) -> Portfolio:
    """Fit the references on the whole portfolio of one connection."""
    priors = experience.fit_priors(acc)
    sig = relationship.signals(acc) | experience.signals(acc, priors, params)
    if con is not None:
        sig |= _contact_signals(con)
    return Portfolio(refs={k: fit_reference(v) for k, v in sig.items()}, priors=priors)


@dataclass
class Scored:
    """Scores of N records: both breakdowns, tier, at-risk, trend, and the drivers of each record as JSON."""

    ids: np.ndarray
    relationship: Breakdown
    experience: Breakdown
    tier: np.ndarray
    at_risk: np.ndarray
    trend: np.ndarray
    drivers: list[str]
    # per score, each record's top reasons (points, component index, words): contacts reuse their account's
    slots: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]

    def drivers_of(self, i: int) -> list[dict[str, Any]]:
        """The drivers of record i as dicts."""
        return list(orjson.loads(self.drivers[i]))

    def components_json(self) -> list[str]:
        """Per record, every component as JSON: names, 0..1 levels (null: missing) and points."""
        names = [f"relationship.{n}" for n in self.relationship.names] + [f"experience.{n}" for n in self.experience.names]
        levels = np.round(np.hstack([self.relationship.components, self.experience.components]), 4)
        points = np.round(np.hstack([self.relationship.points, self.experience.points]), 2)
        head = ('{"baseline":' + orjson.dumps(self.relationship.baseline).decode() + ',"names":'
                + orjson.dumps(names).decode() + ',"levels":')
        return [head + lv + ',"points":' + pt + "}" for lv, pt in zip(_rows_json(levels), _rows_json(points), strict=True)]


def _rows_json(mat: np.ndarray) -> list[str]:
    """Each row of a float matrix as a JSON array (NaN as null), from one serialisation of the matrix."""
    if mat.shape[0] == 0:
        return []
    text = orjson.dumps(np.ascontiguousarray(mat, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return ["[" + row + "]" for row in text[2:-2].split("],[")]


def score_accounts(acc: AccountFeatures, portfolio: Portfolio, params: dict[str, Any],
                   previous: np.ndarray | None = None) -> Scored:
    """Score accounts; `previous` holds each account's relationship score ~30 days earlier (NaN: none)."""
    refs = portfolio.refs
    rel = relationship.score(acc, refs, params)
    exp_sig = experience.signals(acc, portfolio.priors, params)
    exp = experience.score(acc, refs, portfolio.priors, params, exp_sig)
    tier = tiers.tiers(rel.column("value"), acc.col("won_amount"), params)
    trend = tiers.trend(rel.score, previous if previous is not None else np.full(len(acc), np.nan))
    risk = tiers.at_risk(tier, trend, rel.column("momentum"), exp.score, params)
    texts = account_texts(acc, exp_sig, relationship.momentum_parts(acc, refs), params)
    slots = {"relationship": drivers.slots(rel, texts), "experience": drivers.slots(exp, texts)}
    columns = [(score, slots[score], b) for score, b in (("relationship", rel), ("experience", exp))]
    points = np.hstack([sl[0] for _, sl, _ in columns])
    component = np.hstack([np.array(b.names, dtype=object)[sl[1]] for _, sl, b in columns])
    words = np.hstack([sl[2] for _, sl, _ in columns])
    score_of = [score for score, sl, _ in columns for _ in range(sl[0].shape[1])]
    return Scored(acc.ids, rel, exp, tier, risk, trend, drivers.assemble(points, score_of, component, words), slots)


def score_contacts(con: ContactFeatures, accounts: Scored, portfolio: Portfolio, params: dict[str, Any],
                   previous: np.ndarray | None = None) -> Scored:
    """Score contacts from their account's scores plus their own engagement and cases."""
    refs, cw = portfolio.refs, params["contact"]
    n = len(con)
    has_acc = (con.account >= 0) & (len(accounts.ids) > 0)
    idx = np.where(has_acc, con.account, 0)
    sig = _contact_signals(con)

    def from_account(values: np.ndarray, fill: Any = np.nan) -> np.ndarray:
        return np.where(has_acc, values[idx], fill) if len(accounts.ids) else np.full(n, fill)

    rel = combine({"account": from_account(accounts.relationship.score) / 100.0,
                   "engagement_recency": percentile(refs.get("engagement_recency"), sig["engagement_recency"]),
                   "engagement_volume": percentile(refs.get("engagement_volume"), sig["engagement_volume"])},
                  cw["relationship_weights"], params["baseline"])
    exp = combine({"account": from_account(accounts.experience.score) / 100.0,
                   "own_load": percentile(refs.get("own_load"), sig["own_load"]),
                   "own_backlog": percentile(refs.get("own_backlog"), sig["own_backlog"])},
                  cw["experience_weights"], params["baseline"])
    tier = from_account(accounts.tier.astype(object), "C").astype(object)
    trend = tiers.trend(rel.score, previous if previous is not None else np.full(n, np.nan))
    risk = tiers.at_risk(tier, trend, from_account(accounts.relationship.column("momentum")), exp.score, params)
    own_keys = {
        "engagement_recency": np.floor(np.nan_to_num(con.cols["days_since_activity"], nan=-1.0)),
        "engagement_volume": np.nan_to_num(con.cols["activities"]),
        "own_load": np.nan_to_num(con.cols["cases"]),
        "own_backlog": np.nan_to_num(con.cols["open_high"]),
    }
    pts, comp, words, score_of = [], [], [], []
    for score, b, acc_b in (("relationship", rel, accounts.relationship), ("experience", exp, accounts.experience)):
        if len(accounts.ids):
            a_pts, a_idx, a_words = accounts.slots[score]
            share = np.where(has_acc, b.weights[:, 0], 0.0)[:, None]
            pts.append(a_pts[idx] * share)
            comp.append(np.array(["account." + x for x in acc_b.names], dtype=object)[a_idx[idx]])
            words.append(np.array(["account: " + x for x in a_words.ravel()], dtype=object).reshape(a_words.shape)[idx])
            score_of += [score] * a_pts.shape[1]
        for j, name in enumerate(b.names[1:], start=1):
            pts.append(b.points[:, j : j + 1])
            comp.append(np.full((n, 1), name, dtype=object))
            key = np.empty((n, 1), dtype=object)
            key[:, 0] = own_keys[name]
            words.append(key)
            score_of.append(score)
    texts = drivers.assemble(np.hstack(pts), score_of, np.hstack(comp), np.hstack(words), drivers.contact_resolver(params))
    return Scored(con.ids, rel, exp, tier, risk, trend, texts, {})
