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
from enrichment.params import (
    CONTACT_EXPERIENCE,
    CONTACT_RELATIONSHIP,
    EXPERIENCE_COMPONENTS,
    RELATIONSHIP_COMPONENTS,
)

# The components of each scored object, in the order of a stored row's `levels` and `points`. Rows
# do not repeat them (a million contacts would store the same names a million times).
COMPONENT_NAMES: dict[str, tuple[str, ...]] = {
    "account": (*(f"relationship.{n}" for n in RELATIONSHIP_COMPONENTS), *(f"experience.{n}" for n in EXPERIENCE_COMPONENTS)),
    "contact": (*(f"relationship.{n}" for n in CONTACT_RELATIONSHIP), *(f"experience.{n}" for n in CONTACT_EXPERIENCE)),
}


def component_names(stored: dict[str, Any], object: str) -> list[str]:
    """The names of a stored row's components: those it lists itself, else the object's (`COMPONENT_NAMES`)."""
    return list(stored.get("names") or COMPONENT_NAMES.get(object, ()))


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
    priors = experience.fit_priors(acc, params)
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

    @property
    def component_names(self) -> list[str]:
        """The components in the order of `components_json`'s levels and points."""
        return [f"relationship.{n}" for n in self.relationship.names] + [f"experience.{n}" for n in self.experience.names]

    def components_json(self) -> list[str]:
        """Per record, every component as JSON: the baseline, 0..1 levels (null: missing) and points, in
        the order of `component_names` (for a stored row, `COMPONENT_NAMES` of its object)."""
        levels = np.round(np.hstack([self.relationship.components, self.experience.components]), 4)
        points = np.round(np.hstack([self.relationship.points, self.experience.points]), 2)
        head = '{"baseline":' + orjson.dumps(self.relationship.baseline).decode() + ',"levels":['
        return [f'{head}{lv}],"points":[{pt}]}}' for lv, pt in zip(_rows_json(levels), _rows_json(points), strict=True)]


def _rows_json(mat: np.ndarray) -> list[str]:
    """The items of each row of a float matrix as JSON (NaN as null, no brackets), from one serialisation."""
    if mat.shape[0] == 0:
        return []
    text = orjson.dumps(np.ascontiguousarray(mat, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text[2:-2].split("],[")


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
    names = [("relationship", n) for n in rel.names] + [("experience", n) for n in exp.names]
    points = np.hstack([slots["relationship"][0], slots["experience"][0]])
    component = np.hstack([slots["relationship"][1], slots["experience"][1] + len(rel.names)])
    words = np.hstack([slots["relationship"][2], slots["experience"][2]])
    # the same words (e.g. "no open deal") get one id, so they are rendered once
    ids: dict[str, int] = {}
    cell = np.array([ids.setdefault(w, len(ids)) for w in words.ravel().tolist()], dtype=np.int64).reshape(words.shape)
    distinct = list(ids)
    listed = drivers.assemble(points, names, component, cell, lambda _name, i: distinct[i])
    return Scored(acc.ids, rel, exp, tier, risk, trend, listed, slots)


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
    own_keys = {  # the contact's own fact behind each component, as an integer (+1: "never" is -1)
        "engagement_recency": np.floor(np.nan_to_num(con.cols["days_since_activity"], nan=-1.0)) + 1,
        "engagement_volume": np.nan_to_num(con.cols["activities"]) + 1,
        "own_load": np.nan_to_num(con.cols["cases"]) + 1,
        "own_backlog": np.nan_to_num(con.cols["open_high"]) + 1,
    }
    names: list[tuple[str, str]] = []
    pts: list[np.ndarray] = []
    comp: list[np.ndarray] = []
    tid: list[np.ndarray] = []
    words: list[np.ndarray] = []
    for score, b, acc_b in (("relationship", rel, accounts.relationship), ("experience", exp, accounts.experience)):
        if len(accounts.ids):
            a_pts, a_idx, a_words = accounts.slots[score]
            share = np.where(has_acc, b.weights[:, 0], 0.0)[:, None]
            pts.append(a_pts[idx] * share)
            comp.append(a_idx[idx] + len(names))
            # the account's reason words sit in one flat table; contacts point at their account's cells
            tid.append(idx[:, None] * a_words.shape[1] + np.arange(a_words.shape[1])[None, :] + sum(w.size for w in words))
            words.append(a_words)
            names += [(score, "account." + x) for x in acc_b.names]
        for j, name in enumerate(b.names[1:], start=1):
            pts.append(b.points[:, j : j + 1])
            comp.append(np.full((n, 1), len(names)))
            tid.append(np.clip(own_keys[name], 0, 1e9)[:, None])
            names.append((score, name))
    all_words = np.concatenate([w.ravel() for w in words]) if words else np.zeros(0, dtype=object)
    texts = drivers.assemble(np.hstack(pts), names, np.hstack(comp), np.hstack(tid),
                             drivers.contact_render(params, all_words))
    return Scored(con.ids, rel, exp, tier, risk, trend, texts, {})
