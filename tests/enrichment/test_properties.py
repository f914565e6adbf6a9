"""Property-based: any feature values (nulls, negatives, huge outliers, future dates) give valid, additive scores."""

from __future__ import annotations

import math

import numpy as np
import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from enrichment.features import ACCOUNT_COLUMNS, CONTACT_COLUMNS, AccountFeatures, ContactFeatures
from enrichment.params import default_params
from enrichment.scores import COMPONENT_NAMES, component_names, fit_portfolio, score_accounts, score_contacts

value = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(min_value=-1e6, max_value=-1e-3),  # negative counts, future dates (negative days)
    st.floats(min_value=0, max_value=1e4),
    st.floats(min_value=1e12, max_value=1e300),  # absurd outliers
    st.just(math.inf),
)
account = st.fixed_dictionaries(
    {c: value for c in ACCOUNT_COLUMNS},
    optional={"resolution": st.dictionaries(st.sampled_from(["low", "high", "urgent", "none"]),
                                            st.tuples(st.integers(0, 50), value), max_size=3)},
)
contact = st.fixed_dictionaries({c: value for c in CONTACT_COLUMNS})


def _check(scored, accounts=None, account_of: np.ndarray | None = None) -> None:
    contacts = accounts is not None
    comps = [orjson.loads(c) for c in scored.components_json()]
    # stored rows do not list their components: the object's names must be the order scored here
    assert scored.component_names == list(COMPONENT_NAMES["contact" if contacts else "account"])
    for i in range(len(scored.ids)):
        for b in (scored.relationship, scored.experience):
            assert 0.0 <= b.score[i] <= 100.0 and math.isfinite(b.score[i])
        stored = comps[i]
        n_rel = len(scored.relationship.names)
        rel_sum = stored["baseline"] + sum(stored["points"][:n_rel])
        exp_sum = stored["baseline"] + sum(stored["points"][n_rel:])
        assert abs(rel_sum - round(float(scored.relationship.score[i]), 1)) <= 0.5
        assert abs(exp_sum - round(float(scored.experience.score[i]), 1)) <= 0.5
        drivers = scored.drivers_of(i)
        assert len(drivers) <= 3
        points = dict(zip((f"{n.split('.')[0]}:{n.split('.')[1]}" for n in scored.component_names), stored["points"], strict=True))
        if not contacts:
            biggest = sorted((abs(p) for p in stored["points"]), reverse=True)
            for d, top in zip(drivers, biggest, strict=False):
                assert abs(abs(d["points"]) - top) <= 0.5
        for d in drivers:
            if d["component"].startswith("account."):  # the account's own reason, scaled by its share
                a = int(account_of[i])
                acc_b = accounts.relationship if d["score"] == "relationship" else accounts.experience
                own = acc_b.points_of(d["component"].split(".", 1)[1])[a]
                share = scored.relationship.weights[i, 0] if d["score"] == "relationship" else scored.experience.weights[i, 0]
                assert abs(d["points"] - own * share) <= 0.051  # points are shown to 0.1
            else:
                assert abs(d["points"] - points[f"{d['score']}:{d['component']}"]) <= 0.5
        assert scored.tier[i] in ("A", "B", "C")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
@given(accounts=st.lists(account, min_size=0, max_size=12), contacts=st.lists(st.tuples(contact, st.integers(-1, 11)), max_size=12))
def test_any_input_scores_within_bounds_and_adds_up(accounts, contacts) -> None:
    params = default_params()
    records = [dict(a, id=f"A{i}") for i, a in enumerate(accounts)]
    acc = AccountFeatures.from_records(records)
    con = ContactFeatures(
        ids=np.array([f"C{i}" for i in range(len(contacts))], dtype=str),
        account=np.array([k if k < len(records) else -1 for _, k in contacts], dtype=np.int64),
        cols={c: np.array([row[c] if row[c] is not None else np.nan for row, _ in contacts], dtype=float) for c in CONTACT_COLUMNS},
    )
    pf = fit_portfolio(acc, con, params)
    scored = score_accounts(acc, pf, params, previous=np.full(len(acc), 50.0))
    _check(scored)
    _check(score_contacts(con, scored, pf, params), scored, con.account)
    # the cached portfolio gives the same scores after a round trip through JSON
    again = score_accounts(acc, type(pf).from_json(orjson.loads(orjson.dumps(pf.to_json()))), params)
    assert np.allclose(again.relationship.score, scored.relationship.score)


def test_a_stored_row_reads_its_own_component_names_or_its_objects() -> None:
    assert component_names({"levels": [0.5], "points": [0.0]}, "contact") == list(COMPONENT_NAMES["contact"])
    assert component_names({"names": ["relationship.value"], "levels": [0.5]}, "account") == ["relationship.value"]
    assert component_names({"levels": []}, "portfolio") == []
