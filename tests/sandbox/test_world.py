"""The synthetic world: deterministic, streamed, plausible, and consistent with its own outcomes."""

from __future__ import annotations

import statistics
import tracemalloc
from collections import defaultdict
from datetime import timedelta
from itertools import islice

import pytest
import sqlalchemy as sa

from bench.storage import create_bench_connection
from connector.model import RECORD_MODELS
from connector.store import link_accounts, upsert_records
from sandbox.world import (
    DEFAULT_NOW,
    SIZES,
    Bundle,
    generate,
    outcome_of,
    outcomes,
    owners,
    unified_rows,
)

HORIZON = 180
AS_OF = DEFAULT_NOW - timedelta(days=HORIZON)


@pytest.fixture(scope="module")
def world() -> list[Bundle]:
    """A world big enough for averages to mean something, small enough to stay quick."""
    return list(generate("small", 0, accounts=400))


def test_the_same_seed_gives_the_same_world_and_another_seed_another() -> None:
    first = list(generate("small", 7, accounts=30))
    assert first == list(generate("small", 7, accounts=30))
    assert first != list(generate("small", 8, accounts=30))
    assert [b.account.name for b in first] != [b.account.name for b in generate("small", 8, accounts=30)]


def test_accounts_are_generated_independently_so_a_bigger_world_extends_a_smaller_one() -> None:
    assert list(generate("small", 3, accounts=5)) == list(islice(generate("large", 3), 5))


def test_the_generator_is_lazy_and_its_memory_does_not_grow_with_the_world() -> None:
    stream = generate("large", 0)  # 100k accounts: only what is pulled gets built
    assert next(stream).account.key == "A0000001"

    def peak(accounts: int) -> int:
        tracemalloc.start()
        for _ in generate("small", 0, accounts=accounts):
            pass
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    assert peak(400) < 2 * peak(40)


def test_sizes_and_bad_arguments() -> None:
    assert SIZES == {"small": 100, "medium": 10_000, "large": 100_000}
    assert sum(1 for _ in generate("small")) == 100
    with pytest.raises(ValueError, match="unknown world size 'huge'"):
        next(generate("huge"))
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate("small", now=DEFAULT_NOW.replace(tzinfo=None)))
    with pytest.raises(ValueError, match="horizon_days must be positive"):
        next(outcomes("small", horizon_days=0))
    reps = owners(0)
    assert len(reps) == 20 and len({o.key for o in reps}) == 20 and owners(0) == reps


def test_records_are_well_formed(world: list[Bundle]) -> None:
    keys: set[str] = set()
    for b in world:
        a = b.account
        assert 0 <= a.health <= 1 and 0 <= a.experience <= 1
        assert a.created_at.tzinfo is not None and a.created_at <= DEFAULT_NOW
        assert b.contacts, "every account has at least one contact"
        emails = [c.email for c in b.contacts]
        assert len(set(emails)) == len(emails) and all(e.endswith("@" + a.domain) for e in emails)
        touched: dict[str, object] = {}
        for t in b.activities:
            assert a.created_at <= t.occurred_at <= DEFAULT_NOW
            if t.contact_key:
                touched[t.contact_key] = max(touched.get(t.contact_key, t.occurred_at), t.occurred_at)  # type: ignore[call-overload]
        for c in b.contacts:
            assert c.last_activity_at == touched.get(c.key)
        for d in b.deals:
            assert d.amount > 0 and d.created_at <= DEFAULT_NOW
            assert d.is_closed == (d.stage != "open") and d.is_won == (d.stage == "won")
            if d.is_closed:
                assert d.closed_at is not None and d.created_at <= d.closed_at <= DEFAULT_NOW
            else:
                assert d.closed_at is None and d.close_date >= DEFAULT_NOW.date()
        for k in b.cases:
            assert k.opened_at <= DEFAULT_NOW and k.is_closed == (k.status == "closed")
            assert (k.closed_at is not None) == k.is_closed
            assert k.satisfaction is None or (k.is_closed and 1 <= k.satisfaction <= 5)
        for r in (a, *b.contacts, *b.deals, *b.cases, *b.activities):
            assert r.key not in keys
            keys.add(r.key)


def test_the_world_has_the_awkward_accounts_a_real_crm_has(world: list[Bundle]) -> None:
    brand_new = [b for b in world if b.account.created_at > DEFAULT_NOW - timedelta(days=75)]
    no_cases = [b for b in world if not b.cases]
    all_lost = [b for b in world if b.deals and all(d.stage == "lost" for d in b.deals)]
    churned_long_ago = [b for b in world if any(d.deal_type == "renewal" and d.stage == "lost" for d in b.deals)]
    assert brand_new and no_cases and all_lost and churned_long_ago
    amounts = sorted(d.amount for b in world for d in b.deals)
    assert amounts[-1] > 20 * statistics.median(amounts), "deal amounts are heavy-tailed"
    contacts = [len(b.contacts) for b in world]
    assert 7 <= statistics.mean(contacts) <= 14 and max(contacts) > 4 * statistics.median(contacts)


def _split(world: list[Bundle], latent: str) -> tuple[list[Bundle], list[Bundle]]:
    ordered = sorted(world, key=lambda b: getattr(b.account, latent))
    return ordered[: len(ordered) // 2], ordered[len(ordered) // 2 :]


def test_healthier_accounts_buy_more_and_engage_more(world: list[Bundle]) -> None:
    low, high = _split(world, "health")

    def won_value(group: list[Bundle]) -> float:
        return statistics.mean(sum(d.amount for d in b.deals if d.is_won) for b in group)

    def recent_touches(group: list[Bundle]) -> float:
        since = DEFAULT_NOW - timedelta(days=365)
        return statistics.mean(sum(t.occurred_at > since for t in b.activities) for b in group)

    assert won_value(high) > 1.5 * won_value(low)
    assert recent_touches(high) > 2 * recent_touches(low)


def test_poor_experience_shows_in_support_cases(world: list[Bundle]) -> None:
    poor, good = _split([b for b in world if b.cases], "experience")

    def rate(group: list[Bundle], pick) -> float:  # type: ignore[no-untyped-def]
        cases = [k for b in group for k in b.cases]
        return sum(pick(k) for k in cases) / len(cases)

    assert rate(poor, lambda k: k.is_escalated) > 1.5 * rate(good, lambda k: k.is_escalated)
    assert rate(poor, lambda k: k.reopen_count) > 1.5 * rate(good, lambda k: k.reopen_count)
    per_contact = [statistics.mean(len(b.cases) / len(b.contacts) for b in g) for g in (poor, good)]
    assert per_contact[0] > 1.5 * per_contact[1]
    csat = [statistics.mean(k.satisfaction for b in g for k in b.cases if k.satisfaction) for g in (poor, good)]
    assert csat[0] < csat[1] - 0.5


def test_outcomes_agree_with_the_records_in_the_horizon(world: list[Bundle]) -> None:
    truth = list(outcomes("small", 0, accounts=400, horizon_days=HORIZON))
    assert [o.account_key for o in truth] == [b.account.key for b in world]
    for b, o in zip(world, truth, strict=True):
        assert o == outcome_of(b, horizon_days=HORIZON)
        in_horizon = [d for d in b.deals if d.closed_at and AS_OF < d.closed_at <= DEFAULT_NOW]
        won = {d.deal_type for d in in_horizon if d.is_won}
        assert o.renewed == ("renewal" in won) and o.expanded == ("expansion" in won)
        lost_renewal = any(d.deal_type == "renewal" and not d.is_won for d in in_horizon)
        if o.churned and not lost_renewal:
            assert not won and not any(d.stage == "open" for d in b.deals)
        if not o.churned:
            assert won or any(d.stage == "open" for d in b.deals)


def test_churn_in_the_horizon_follows_health_as_of_the_start_of_the_horizon(world: list[Bundle]) -> None:
    truth = {o.account_key: o for o in outcomes("small", 0, accounts=400)}
    customers = []
    for b in world:
        decided = [d for d in b.deals if d.closed_at and d.closed_at <= AS_OF]
        if any(d.is_won for d in decided) and not any(d.deal_type == "renewal" and not d.is_won for d in decided):
            customers.append(b)
            # an active customer always has its renewal decided in the horizon or open at the end
            renewals = [d for d in b.deals if d.deal_type == "renewal" and d.created_at <= DEFAULT_NOW]
            assert any(d.stage == "open" or (d.closed_at and d.closed_at > AS_OF) for d in renewals) or any(
                d.is_won and d.closed_at and d.closed_at > AS_OF for d in b.deals
            )
    churned = [b.account.health for b in customers if truth[b.account.key].churned]
    stayed = [b.account.health for b in customers if not truth[b.account.key].churned]
    assert churned and stayed
    assert statistics.mean(churned) < statistics.mean(stayed) - 0.15


def test_unified_rows_round_trip_through_the_store(engine: sa.Engine) -> None:
    bundles = list(generate("small", 0, accounts=15))
    cid = create_bench_connection(engine, "world")
    rows: dict[str, list[dict]] = defaultdict(list)
    for b in bundles:
        for name, object_rows in unified_rows(b, cid).items():
            rows[name].extend(object_rows)
    for _ in range(2):  # a second load changes nothing: upserts are keyed by the world's keys
        with engine.begin() as conn:
            for name, object_rows in rows.items():
                upsert_records(conn, name, object_rows)
            for name in ("contact", "deal", "case"):
                link_accounts(conn, cid, name)
    with engine.connect() as conn:
        for name, model in RECORD_MODELS.items():
            table = model.__table__  # type: ignore[attr-defined]
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == len(rows[name])
        deal = max((d for b in bundles for d in b.deals), key=lambda d: d.amount)
        t = RECORD_MODELS["deal"].__table__  # type: ignore[attr-defined]
        got = conn.execute(sa.select(t).where(t.c.external_id == deal.key)).mappings().one()
        assert (got["amount"], got["stage"], got["deal_type"], got["close_date"]) == (
            deal.amount, deal.stage, deal.deal_type, deal.close_date)
        assert got["created_at"] == deal.created_at and got["account_id"] is not None
        c = RECORD_MODELS["contact"].__table__  # type: ignore[attr-defined]
        assert conn.execute(sa.select(sa.func.count()).where(c.c.account_id.is_(None))).scalar_one() == 0
