"""The scoring model's editable parameters: every weight, window and threshold, with validation.

A `score_model` row stores these as JSON; `validate_params` turns admin edits into clear errors.
"""

from __future__ import annotations

import copy
from typing import Any

from connector.errors import ConfigError

RELATIONSHIP_COMPONENTS = ("value", "frequency", "recency", "tenure", "breadth", "momentum")
EXPERIENCE_COMPONENTS = ("load", "speed", "backlog", "escalations", "reopens", "satisfaction")
MOMENTUM_PARTS = ("pipeline", "renewals", "losses")
FREQUENCY_PARTS = ("deals", "interactions")
CONTACT_RELATIONSHIP = ("account", "engagement_recency", "engagement_volume")
CONTACT_EXPERIENCE = ("account", "own_load", "own_backlog")

DEFAULT_PARAMS: dict[str, Any] = {
    "schema": 1,
    "baseline": 50.0,
    "relationship": {
        "weights": {"value": 0.20, "frequency": 0.30, "recency": 0.10, "tenure": 0.10, "breadth": 0.15, "momentum": 0.15},
        # how often the customer buys (won deals) and how often you talk (logged activities)
        "frequency_parts": {"deals": 0.3, "interactions": 0.7},
        "momentum_parts": {"pipeline": 0.4, "renewals": 0.4, "losses": 0.2},
    },
    "experience": {
        "weights": {"load": 0.20, "speed": 0.20, "backlog": 0.15, "escalations": 0.15, "reopens": 0.10, "satisfaction": 0.20},
        # Rates over few cases (or, for the support load, little exposure) are noisy: they are pulled
        # toward the portfolio rate as if this many average cases had been added (empirical-Bayes smoothing).
        "smoothing_cases": 3.0,
        # Evidence: the whole experience score is pulled toward the baseline by k / (n + k), where n is the
        # cases the account raised in the quality window or, if more, those its exposure (contact-quarters
        # as a customer) would have brought at the portfolio's rate. A never-won account without cases sits
        # at the neutral baseline; a long-standing customer without cases earns a low support load.
        "confidence_cases": 1.0,
        # No case at all in the quality window is weak evidence of a good experience (a customer who
        # never calls may be well served or simply disengaged): such an account's confidence is capped
        # here, so a quiet record moves the score at most this share of the way a case-backed one would.
        "quiet_confidence": 0.25,
        "high_priorities": ["high", "urgent", "critical"],
        # A won deal makes the account a customer for this long (annual contracts): its exposure to
        # support runs from the first won deal until this many days after the last one.
        "customer_term_days": 365,
    },
    "contact": {
        "relationship_weights": {"account": 0.6, "engagement_recency": 0.2, "engagement_volume": 0.2},
        "experience_weights": {"account": 0.6, "own_load": 0.2, "own_backlog": 0.2},
    },
    "windows": {
        "value_days": 365,
        "frequency_days": 730,
        "activity_days": 365,
        "breadth_days": 180,
        "renewal_days": 730,
        "loss_days": 180,
        "case_days": 730,
        "quality_days": 1095,
        "backlog_age_days": 7,
    },
    "tiers": {"a_min_value": 0.9, "b_min_value": 0.6},
    "at_risk": {"falling_trend": -8.0, "falling_momentum": 0.25, "poor_experience": 35.0, "valuable_tiers": ["A", "B"]},
    "trend": {"days": 30, "tolerance_days": 10},
}


def default_params() -> dict[str, Any]:
    """A fresh copy of the default parameters."""
    return copy.deepcopy(DEFAULT_PARAMS)


def _number(where: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"score model: {where} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise ConfigError(f"score model: {where} = {value} is out of range; use a value from {lo} to {hi}")
    return float(value)


def _weights(where: str, given: Any, names: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(given, dict):
        raise ConfigError(f"score model: {where} must be an object of weights, one per component: {', '.join(names)}")
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(f"score model: {where} has unknown components {unknown}; known: {', '.join(names)}")
    missing = [n for n in names if n not in given]
    if missing:
        raise ConfigError(f"score model: {where} is missing weights for {missing}; give each a number (0 turns it off)")
    out = {n: _number(f"{where}.{n}", given[n], 0.0, 100.0) for n in names}
    if sum(out.values()) <= 0:
        raise ConfigError(f"score model: {where} are all zero; give at least one component a positive weight")
    return out


def _merge(base: dict[str, Any], edits: dict[str, Any], path: str = "") -> dict[str, Any]:
    for key, value in edits.items():
        where = f"{path}{key}"
        if key not in base:
            raise ConfigError(f"score model: unknown setting {where!r}; known here: {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and key not in ("weights", "momentum_parts", "frequency_parts") and not key.endswith("_weights"):
            if not isinstance(value, dict):
                raise ConfigError(f"score model: {where} must be an object")
            _merge(base[key], value, where + ".")
        else:
            base[key] = value
    return base


def validate_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Fill defaults for anything not given, check every value, and return the complete parameters."""
    if params is not None and not isinstance(params, dict):
        raise ConfigError("score model: parameters must be a JSON object")
    p = _merge(default_params(), {k: v for k, v in (params or {}).items() if k != "schema"})
    p["baseline"] = _number("baseline", p["baseline"], 0.0, 100.0)
    r, e, c = p["relationship"], p["experience"], p["contact"]
    r["weights"] = _weights("relationship.weights", r["weights"], RELATIONSHIP_COMPONENTS)
    r["momentum_parts"] = _weights("relationship.momentum_parts", r["momentum_parts"], MOMENTUM_PARTS)
    r["frequency_parts"] = _weights("relationship.frequency_parts", r["frequency_parts"], FREQUENCY_PARTS)
    e["weights"] = _weights("experience.weights", e["weights"], EXPERIENCE_COMPONENTS)
    e["smoothing_cases"] = _number("experience.smoothing_cases", e["smoothing_cases"], 0.0, 1000.0)
    e["confidence_cases"] = _number("experience.confidence_cases", e["confidence_cases"], 0.0, 1000.0)
    e["quiet_confidence"] = _number("experience.quiet_confidence", e["quiet_confidence"], 0.0, 1.0)
    e["customer_term_days"] = int(_number("experience.customer_term_days", e["customer_term_days"], 1, 3650))
    if not isinstance(e["high_priorities"], list) or not all(isinstance(x, str) for x in e["high_priorities"]):
        raise ConfigError("score model: experience.high_priorities must be a list of priority names, e.g. [\"high\", \"urgent\"]")
    e["high_priorities"] = [x.strip().lower() for x in e["high_priorities"]]
    c["relationship_weights"] = _weights("contact.relationship_weights", c["relationship_weights"], CONTACT_RELATIONSHIP)
    c["experience_weights"] = _weights("contact.experience_weights", c["experience_weights"], CONTACT_EXPERIENCE)
    for key, value in p["windows"].items():
        p["windows"][key] = int(_number(f"windows.{key}", value, 1, 3650))
    t = p["tiers"]
    t["a_min_value"] = _number("tiers.a_min_value", t["a_min_value"], 0.0, 1.0)
    t["b_min_value"] = _number("tiers.b_min_value", t["b_min_value"], 0.0, 1.0)
    if t["b_min_value"] > t["a_min_value"]:
        raise ConfigError("score model: tiers.b_min_value must not exceed tiers.a_min_value (tier A is the top)")
    a = p["at_risk"]
    a["falling_trend"] = _number("at_risk.falling_trend", a["falling_trend"], -100.0, 0.0)
    a["falling_momentum"] = _number("at_risk.falling_momentum", a["falling_momentum"], 0.0, 1.0)
    a["poor_experience"] = _number("at_risk.poor_experience", a["poor_experience"], 0.0, 100.0)
    if not isinstance(a["valuable_tiers"], list) or not set(a["valuable_tiers"]) <= {"A", "B", "C"}:
        raise ConfigError("score model: at_risk.valuable_tiers must be a list drawn from \"A\", \"B\", \"C\"")
    p["trend"]["days"] = int(_number("trend.days", p["trend"]["days"], 1, 365))
    p["trend"]["tolerance_days"] = int(_number("trend.tolerance_days", p["trend"]["tolerance_days"], 0, 365))
    p["schema"] = DEFAULT_PARAMS["schema"]
    return p
