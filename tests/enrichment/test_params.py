"""The score model's parameters: defaults are complete, bad edits say what to fix."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from enrichment.params import DEFAULT_PARAMS, default_params, validate_params


def test_defaults_validate_to_themselves() -> None:
    assert validate_params(None) == validate_params(default_params())
    assert validate_params({})["relationship"]["weights"] == DEFAULT_PARAMS["relationship"]["weights"]


def test_partial_edit_keeps_the_other_defaults() -> None:
    p = validate_params({"windows": {"value_days": 180}})
    assert p["windows"]["value_days"] == 180
    assert p["windows"]["case_days"] == DEFAULT_PARAMS["windows"]["case_days"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"relationship": {"weights": {"value": -1}}}, "relationship.weights"),
        ({"relationship": {"weights": dict.fromkeys(DEFAULT_PARAMS["relationship"]["weights"], 0)}}, "all zero"),
        ({"relationship": {"weights": {**DEFAULT_PARAMS["relationship"]["weights"], "charm": 1}}}, "unknown components"),
        ({"experience": {"weights": {**DEFAULT_PARAMS["experience"]["weights"], "load": "high"}}}, "must be a number"),
        ({"windows": {"value_days": 0}}, "windows.value_days"),
        ({"experience": {"customer_term_days": 0}}, "experience.customer_term_days"),
        ({"tiers": {"a_min_value": 0.5, "b_min_value": 0.8}}, "must not exceed"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
        ({"at_risk": {"valuable_tiers": ["Z"]}}, "valuable_tiers"),
        ({"baseline": True}, "baseline must be a number"),
    ],
)
def test_bad_edits_are_refused_with_a_clear_message(edit: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_params(edit)


def test_missing_weight_is_named() -> None:
    weights = dict(DEFAULT_PARAMS["experience"]["weights"])
    del weights["satisfaction"]
    with pytest.raises(ConfigError, match="missing weights for \\['satisfaction'\\]"):
        validate_params({"experience": {"weights": weights}})
