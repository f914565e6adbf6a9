"""Small builders of feature arrays for the scoring tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from enrichment.features import AccountFeatures, ContactFeatures
from enrichment.params import default_params
from enrichment.scores import Scored, fit_portfolio, score_accounts, score_contacts

# A typical paying customer; tests override single facts.
TYPICAL: dict[str, Any] = {
    "age_days": 900, "contacts": 6, "won_amount": 50_000, "won_deals": 2, "days_since_won": 120,
    "days_since_activity": 10, "days_since_first_won": 800, "engaged_contacts": 3, "activities": 30,
    "open_pipeline": 20_000, "open_deals": 1, "renewals_won": 1, "renewals_lost": 0, "recent_losses": 0,
    "cases": 4, "quality_cases": 8, "closed_cases": 7, "escalated": 1, "reopens": 1, "csat_sum": 28, "csat_n": 7,
    "open_high": 0, "open_high_stale": 0, "resolution": {"high": (3, 20.0), "low": (4, 60.0)},
}


def portfolio(n: int = 40, seed: int = 1) -> list[dict[str, Any]]:
    """A varied portfolio of n accounts around TYPICAL."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        r = dict(TYPICAL, id=f"P{i:03d}")
        scale = rng.lognormal(0, 1)
        r["won_amount"] = float(TYPICAL["won_amount"] * scale)
        r["won_deals"] = int(rng.integers(0, 6))
        r["activities"] = int(rng.integers(0, 80))
        r["engaged_contacts"] = int(rng.integers(0, 8))
        r["days_since_activity"] = float(rng.integers(0, 300))
        r["quality_cases"] = int(rng.integers(0, 20))
        r["escalated"] = int(rng.integers(0, 1 + r["quality_cases"] // 3))
        r["csat_n"] = int(rng.integers(0, 5))
        r["csat_sum"] = r["csat_n"] * float(rng.uniform(1, 5))
        r["resolution"] = {"high": (int(rng.integers(1, 5)), float(rng.uniform(2, 80))),
                           "low": (int(rng.integers(1, 5)), float(rng.uniform(10, 200)))}
        out.append(r)
    return out


def score_records(records: list[dict[str, Any]], params: dict[str, Any] | None = None) -> tuple[Scored, AccountFeatures]:
    """Score a list of account records against themselves as the portfolio."""
    params = params or default_params()
    acc = AccountFeatures.from_records(records)
    return score_accounts(acc, fit_portfolio(acc, None, params), params), acc


def score_with_contacts(records: list[dict[str, Any]], contacts: list[dict[str, Any]]) -> tuple[Scored, Scored]:
    """Score accounts and contacts (`account` of each contact is an index into records)."""
    params = default_params()
    acc = AccountFeatures.from_records(records)
    con = ContactFeatures(ids=np.array([c["id"] for c in contacts], dtype=str),
                          account=np.array([c.get("account", -1) for c in contacts]),
                          cols={k: np.array([c.get(k, np.nan) for c in contacts], dtype=float)
                                for k in ("age_days", "days_since_activity", "activities", "cases", "open_high")})
    pf = fit_portfolio(acc, con, params)
    accounts = score_accounts(acc, pf, params)
    return accounts, score_contacts(con, accounts, pf, params)


def index(scored: Scored, ext: str) -> int:
    """Position of a record id in the scored arrays."""
    return int(np.flatnonzero(scored.ids == ext)[0])
