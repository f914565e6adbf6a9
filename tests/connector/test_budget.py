"""The shared API budget: exact rolling windows across processes, a separate search bucket, the daily share,
and a spent CRM allowance probed again within the hour."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import redis

from adapters.base import NoBudget
from connector.budget import PROBE_EVERY_S, RedisBudget, RedisMetadataCache, budget_for, metadata_cache_for
from connector.errors import BudgetExhausted, RateLimited


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _worker(url: str, n: int, out: mp.Queue) -> None:
    budget = RedisBudget(redis.Redis.from_url(url), "rapport:budget:7", {"default": [(6, 500)]})
    stamps = []
    for _ in range(n):
        budget.acquire()
        stamps.append(time.time())
    out.put(stamps)


@pytest.mark.redis
def test_four_processes_never_exceed_the_rolling_window(redis_url):
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(redis_url, 6, out)) for _ in range(4)]
    for p in procs:
        p.start()
    stamps = [t for _ in procs for t in out.get(timeout=30)]
    for p in procs:
        p.join(10)
    assert len(stamps) == 24
    # the shared log admitted no more than 6 in any rolling 0.5 s, so 24 calls took three windows at least
    admitted = [score / 1000 for _, score in redis.Redis.from_url(redis_url).zrange(
        "rapport:budget:7:default", 0, -1, withscores=True)]
    assert len(admitted) == 24 and _max_in_window(admitted, 0.5) <= 6
    assert max(stamps) - min(stamps) >= 1.5


@pytest.mark.redis
def test_a_call_stamped_before_another_but_checked_after_it_still_counts_it(redis_conn):
    """One call a minute: a worker paused between stamping its call and the check (descheduled, say)
    while another worker takes the slot must then wait, not take a second one."""
    first = RedisBudget(redis_conn, "rapport:budget:8", {"default": [(1, 60_000)]}, max_wait=0.5)
    second = RedisBudget(redis_conn, "rapport:budget:8", {"default": [(1, 60_000)]}, max_wait=0.5)
    bucket = first._bucket("default")
    assert bucket is not None
    stamped, clock = threading.Event(), bucket.now

    def paused_now() -> int:
        stamp = clock()
        stamped.set()
        time.sleep(0.3)
        return stamp

    bucket.now = paused_now  # type: ignore[method-assign]
    outcomes: list[str] = []

    def call(budget: RedisBudget) -> None:
        try:
            budget.acquire()
            outcomes.append("made")
        except RateLimited:
            outcomes.append("waited")

    paused = threading.Thread(target=call, args=(first,))
    paused.start()
    stamped.wait(5)
    call(second)
    paused.join(5)
    assert sorted(outcomes) == ["made", "waited"]


@pytest.mark.redis
def test_search_has_its_own_bucket(redis_conn):
    budget = RedisBudget(redis_conn, "rapport:budget:1", {"default": [(3, 10_000)], "search": [(2, 10_000)]},
                         max_wait=0.2)
    for _ in range(3):
        budget.acquire()
    budget.acquire("search")
    budget.acquire("search")
    with pytest.raises(Exception, match="waited"):
        budget.acquire()  # the 10-s default window is full
    with pytest.raises(Exception, match="waited"):
        budget.acquire("search")


@pytest.mark.redis
def test_daily_share_stops_us_and_resumes_tomorrow(redis_conn):
    budget = RedisBudget(redis_conn, "rapport:budget:2", {}, share=0.5, daily_limit=10)
    for _ in range(5):
        budget.acquire()
    with pytest.raises(BudgetExhausted) as info:
        budget.acquire()
    assert 0 < info.value.resume_after <= 86_400
    assert budget.today()["ours"] == 5  # a refused call is not counted


@pytest.mark.redis
def test_crm_reported_usage_counts(redis_conn):
    budget = RedisBudget(redis_conn, "rapport:budget:3", {}, share=0.5)
    budget.acquire()  # no limit known yet: nothing to check
    budget.observe(used=1000, limit=1000)  # other apps spent the account's day
    with pytest.raises(BudgetExhausted, match="whole daily API allowance"):
        budget.acquire()
    budget.observe(used=10, limit=1000)
    budget.acquire()


class Clock:
    """A settable clock, read by every budget of a test as if by processes on one machine."""

    def __init__(self, at: datetime) -> None:
        self.t = at.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _spent(redis_conn, clock: Clock, key: str = "rapport:budget:5") -> tuple[RedisBudget, RedisBudget]:
    """Two workers' budgets of one HubSpot portal whose whole allowance was just reported spent."""
    one, two = (RedisBudget(redis_conn, key, {}, share=0.9, crm="hubspot", clock=clock) for _ in range(2))
    one.acquire()
    one.observe(used=250_000, limit=250_000)
    return one, two


@pytest.mark.redis
def test_a_spent_crm_allowance_is_probed_within_the_hour_not_at_utc_midnight(redis_conn):
    """06:00 UTC is 22:00 in California: HubSpot resets that portal's day in two hours, not eighteen."""
    clock = Clock(datetime(2025, 3, 4, 6, 0, tzinfo=UTC))
    one, two = _spent(redis_conn, clock)
    with pytest.raises(BudgetExhausted) as info:
        two.acquire()
    assert 0 < info.value.resume_after <= PROBE_EVERY_S
    clock.advance(info.value.resume_after - 1)
    with pytest.raises(BudgetExhausted):
        two.acquire()  # not yet: one probe an hour, no more
    clock.advance(1)
    one.acquire()  # the probe
    with pytest.raises(BudgetExhausted) as waiting:
        two.acquire()  # the other worker waits for the probe's answer, briefly
    assert 0 < waiting.value.resume_after <= 60
    one.observe(used=3, limit=250_000)  # the probe's headers: HubSpot has reset the day
    two.acquire()
    one.acquire()
    assert one.today() == {"ours": 4, "used": 3, "limit": 250_000}


@pytest.mark.redis
def test_a_probe_that_finds_the_allowance_still_spent_pauses_again(redis_conn):
    clock = Clock(datetime(2025, 3, 4, 6, 0, tzinfo=UTC))
    one, two = _spent(redis_conn, clock)
    clock.advance(PROBE_EVERY_S)
    two.acquire()  # the probe
    two.observe(used=250_000, limit=250_000)
    for budget in (one, two):
        with pytest.raises(BudgetExhausted) as info:
            budget.acquire()
        assert info.value.resume_after == pytest.approx(PROBE_EVERY_S)
    clock.advance(PROBE_EVERY_S)
    one.acquire()  # the next probe, an hour after the last answer


@pytest.mark.redis
def test_a_probe_without_usage_headers_lets_work_go_after_a_short_wait(redis_conn):
    """A HubSpot search answer carries no daily headers: the stale figure must not hold work for ever."""
    clock = Clock(datetime(2025, 3, 4, 6, 0, tzinfo=UTC))
    one, two = _spent(redis_conn, clock)
    clock.advance(PROBE_EVERY_S)
    one.acquire("search")  # the probe; nothing is observed
    with pytest.raises(BudgetExhausted) as info:
        two.acquire()
    clock.advance(info.value.resume_after)
    two.acquire()
    one.acquire()


@pytest.mark.redis
def test_the_hint_says_whether_our_share_or_the_crms_whole_allowance_is_spent(redis_conn):
    clock = Clock(datetime(2025, 3, 4, 6, 0, tzinfo=UTC))
    ours = RedisBudget(redis_conn, "rapport:budget:6", {}, share=0.5, daily_limit=2, crm="hubspot", clock=clock)
    ours.acquire()
    with pytest.raises(BudgetExhausted) as share:
        ours.acquire()
    assert "Rapport's share (50%)" in share.value.message
    assert "raise RAPPORT_API_BUDGET_SHARE" in (share.value.hint or "")
    assert share.value.resume_after == 18 * 3600  # Rapport's own count restarts at 00:00 UTC
    _, other = _spent(redis_conn, clock, "rapport:budget:7")
    with pytest.raises(BudgetExhausted) as whole:
        other.acquire()
    assert "whole daily API allowance" in whole.value.message
    hint = whole.value.hint or ""
    assert "when the CRM resets" in hint and "other apps on the account share it" in hint
    assert "will not help" in hint


def test_budget_for_hubspot_uses_ninety_percent(make_settings):
    settings = make_settings()  # embedded: fakeredis from connector.queues
    conn = SimpleNamespace(id=42, kind="hubspot", options={"auth": "private_app"})
    budget = budget_for(settings, conn)
    assert isinstance(budget, RedisBudget)
    assert [(r.limit, r.interval) for r in budget.rates["default"]] == [(171, 10_250)]
    assert [(r.limit, r.interval) for r in budget.rates["search"]] == [(4, 1_100)]
    oauth = budget_for(settings, SimpleNamespace(id=43, kind="hubspot", options={"auth": "oauth"}))
    assert [(r.limit, r.interval) for r in oauth.rates["default"]] == [(99, 10_250)]  # type: ignore[attr-defined]
    low = budget_for(settings, SimpleNamespace(id=44, kind="hubspot", options={"rate_limit": 40}))
    assert [(r.limit, r.interval) for r in low.rates["default"]] == [(36, 10_250)]  # type: ignore[attr-defined]
    for _ in range(3):
        low.acquire()  # works on the embedded fakeredis (Lua)
    assert isinstance(budget_for(settings, SimpleNamespace(id=45, kind="hubspot", options={"budget": "off"})),
                      NoBudget)


def test_connections_to_one_account_share_its_budget(make_settings):
    settings = make_settings()
    options = {"auth": "private_app", "rate_limit": 3, "rate_window_ms": 60_000}
    first, again, other = (SimpleNamespace(id=i, kind="hubspot", external_org_id=portal, options=options)
                           for i, portal in ((50, "777"), (51, "777"), (52, "888")))
    budgets = [budget_for(settings, c) for c in (first, again, other)]
    for _ in range(2):  # 90% of 3 a minute: 2 calls for the account
        budgets[0].acquire()
    budgets[1].max_wait = budgets[2].max_wait = 0.2  # type: ignore[attr-defined]
    with pytest.raises(RateLimited):
        budgets[1].acquire()  # the same portal through another connection: its calls are spent
    budgets[2].acquire()  # another portal has its own


@pytest.mark.redis
def test_metadata_cache_is_shared_per_crm_expires_and_never_fails_a_run(redis_url, make_settings):
    settings = make_settings(REDIS_URL=redis_url)
    conn = redis.Redis.from_url(redis_url)
    portal = SimpleNamespace(id=3, kind="hubspot", instance_url="https://api.hubapi.com", external_org_id="111")
    cache = metadata_cache_for(settings, portal, conn=conn)
    cache.set("pipelines:deals", [{"id": "default", "stages": []}], 0.3)
    # another process of the same connection sees it; the same id pointing at another portal does not
    assert metadata_cache_for(settings, portal, conn=conn).get("pipelines:deals") == [{"id": "default", "stages": []}]
    moved = SimpleNamespace(**{**vars(portal), "external_org_id": "222"})
    assert metadata_cache_for(settings, moved, conn=conn).get("pipelines:deals") is None
    time.sleep(0.4)
    assert cache.get("pipelines:deals") is None
    conn.set(f"{cache.key}:pipelines:deals", b"\x00not json")
    assert cache.get("pipelines:deals") is None  # read afresh rather than fail
    down = RedisMetadataCache(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), "k")
    down.set("pipelines:deals", [], 60)
    assert down.get("pipelines:deals") is None
