"""Scoring a portfolio: fit the portfolio's reference distributions, then score accounts and contacts.

`fit_portfolio` runs on a full set of accounts; its result (JSON-able) can be cached and reused to
rescore a few records the same way without reloading everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from enrichment import experience, relationship, tiers
from enrichment.combine import Breakdown, combine
from enrichment.drivers import account_texts, contact_texts, signed, top
from enrichment.features import AccountFeatures, ContactFeatures, Reference, fit_reference, percentile


@dataclass
class Portfolio:
    """What scores are normalised against: one percentile reference per signal, plus experience priors."""

    refs: dict[str, Reference | None]
    priors: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain data for caching."""
        return {"refs": {k: (v.to_json() if v else None) for k, v in self.refs.items()}, "priors": self.priors}

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
    """Scores of N records: both breakdowns, tier, at-risk, trend and the drivers of each record."""

    ids: np.ndarray
    relationship: Breakdown
    experience: Breakdown
    tier: np.ndarray
    at_risk: np.ndarray
    trend: np.ndarray
    drivers: list[list[dict[str, Any]]]


def score_accounts(acc: AccountFeatures, portfolio: Portfolio, params: dict[str, Any],
                   previous: np.ndarray | None = None) -> Scored:
    """Score accounts; `previous` holds each account's relationship score ~30 days earlier (NaN: none)."""
    refs = portfolio.refs
    rel = relationship.score(acc, refs, params)
    exp_sig = experience.signals(acc, portfolio.priors, params)
    exp = combine({n: percentile(refs.get(n), exp_sig[n]) for n in experience.SIGNALS},
                  params["experience"]["weights"], params["baseline"])
    tier = tiers.tiers(rel.column("value"), acc.col("won_amount"), params)
    trend = tiers.trend(rel.score, previous if previous is not None else np.full(len(acc), np.nan))
    risk = tiers.at_risk(tier, trend, rel.column("momentum"), exp.score, params)
    texts = account_texts(acc, exp_sig, relationship.momentum_parts(acc, refs), params)
    drivers = [top("relationship", rel, i, texts) + top("experience", exp, i, texts) for i in range(len(acc))]
    return Scored(acc.ids, rel, exp, tier, risk, trend, drivers)


def score_contacts(con: ContactFeatures, accounts: Scored, portfolio: Portfolio, params: dict[str, Any],
                   previous: np.ndarray | None = None) -> Scored:
    """Score contacts from their account's scores plus their own engagement and cases."""
    refs, cw = portfolio.refs, params["contact"]
    has_acc = con.account >= 0
    idx = np.where(has_acc, con.account, 0)
    sig = _contact_signals(con)

    def account_part(b: Breakdown) -> np.ndarray:
        return np.where(has_acc, b.score[idx] / 100.0, np.nan) if len(accounts.ids) else np.full(len(con), np.nan)

    rel = combine({"account": account_part(accounts.relationship),
                   "engagement_recency": percentile(refs.get("engagement_recency"), sig["engagement_recency"]),
                   "engagement_volume": percentile(refs.get("engagement_volume"), sig["engagement_volume"])},
                  cw["relationship_weights"], params["baseline"])
    exp = combine({"account": account_part(accounts.experience),
                   "own_load": percentile(refs.get("own_load"), sig["own_load"]),
                   "own_backlog": percentile(refs.get("own_backlog"), sig["own_backlog"])},
                  cw["experience_weights"], params["baseline"])
    tier = np.where(has_acc, accounts.tier[idx] if len(accounts.ids) else "C", "C").astype(object)
    trend = tiers.trend(rel.score, previous if previous is not None else np.full(len(con), np.nan))
    momentum = np.where(has_acc, accounts.relationship.column("momentum")[idx] if len(accounts.ids) else np.nan, np.nan)
    risk = tiers.at_risk(tier, trend, momentum, exp.score, params)
    texts = contact_texts(con, params)
    drivers = [_contact_top("relationship", rel, i, texts, accounts, con.account[i])
               + _contact_top("experience", exp, i, texts, accounts, con.account[i]) for i in range(len(con))]
    return Scored(con.ids, rel, exp, tier, risk, trend, drivers)


def _contact_top(score: str, b: Breakdown, i: int, texts: dict[str, Any], accounts: Scored, a: int) -> list[dict[str, Any]]:
    """Top reasons of a contact: its own components, and its account's reasons scaled by the account's weight."""
    share = b.weights[i, 0]
    cands: list[tuple[float, str, str]] = []
    if a >= 0 and share > 0:
        for d in accounts.drivers[a]:
            if d["score"] == score:
                acc_b = accounts.relationship if score == "relationship" else accounts.experience
                p = float(acc_b.points_of(d["component"])[a]) * share
                cands.append((p, d["component"], "account: " + d["text"].split(" ", 1)[1]))
    for j, name in enumerate(b.names[1:], start=1):
        cands.append((float(b.points[i, j]), name, ""))
    cands.sort(key=lambda t: -abs(t[0]))
    out = []
    for p, name, text in cands[:3]:
        if abs(p) < 0.5:
            break
        out.append({"score": score, "component": name if text == "" else f"account.{name}", "points": round(p, 1),
                    "text": f"{signed(p)} {text or texts[name](i)}"})
    return out
