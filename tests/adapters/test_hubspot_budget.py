"""Four worker processes share one Redis budget and never get a 429 from the sandbox."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from adapters.base import ConnectionInfo, WriteItem
from adapters.hubspot import HubSpotAdapter, mapping
from connector.budget import budget_for
from sandbox.hubspot import HubSpotSandbox

BURST, WINDOW_S = 20, 2.0  # a short window keeps the test quick; the budget runs at 90% of it
OPTIONS = {"auth": "private_app", "rate_limit": BURST, "rate_window_ms": int(WINDOW_S * 1000),
           "client_side_validation": True}


def _work(settings, info, secrets, company_ids, n, out) -> None:
    try:
        budget = budget_for(settings, SimpleNamespace(id=info.id, kind="hubspot", options=info.options))
        adapter = HubSpotAdapter(info, secrets, budget=budget)
        until = datetime.now(UTC) + timedelta(seconds=1)
        deals = sum(len(p.changes) for p in adapter.pull("deal", None, until, full=True))
        since = until - timedelta(days=61)  # a short window: one search page each
        contacts = sum(len(p.changes) for p in adapter.pull("contact", since, until))
        items = [WriteItem("account", i, {"rapport_tier": "ABC"[n % 3]}) for i in company_ids]
        written = sum(r.ok for r in adapter.write("account", items))
        out.put((n, deals, contacts, written, adapter.api_calls))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put((n, repr(exc)))


@pytest.mark.redis
def test_four_processes_share_the_budget_without_a_429(make_settings, redis_url):
    sb = HubSpotSandbox(size="small", seed=2, burst=BURST, search_lag_s=0).start()
    try:
        sb.limiter.limits.window_s = WINDOW_S
        info = ConnectionInfo(9, "hs", "hubspot", instance_url=sb.info["api_base"], options=OPTIONS)
        secrets = {"access_token": sb.info["access_token"]}
        HubSpotAdapter(info, secrets).ensure_fields("account", mapping.score_fields("account"))
        sb.limiter.reset()  # the set-up calls (made without the budget) do not count
        sb.stats.reset()
        settings = make_settings(REDIS_URL=redis_url)
        companies = [str(i) for i in sb.store.tables["companies"].live]
        ctx = mp.get_context("fork")
        out: mp.Queue = ctx.Queue()
        started = time.monotonic()
        procs = [ctx.Process(target=_work, args=(settings, info, secrets, companies, n, out)) for n in range(4)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        elapsed = time.monotonic() - started
        for p in procs:
            p.join(10)
    finally:
        sb.stop()
    assert all(len(r) == 5 for r in results), results
    deals = len(sb.store.tables["deals"].live)
    assert {r[1] for r in results} == {deals} and all(r[3] == len(companies) for r in results)
    stats = sb.stats.snapshot()
    assert "429" not in stats["statuses"] and sb.limiter.usage()["refused"] == 0, stats["by_endpoint_status"]
    calls = sum(r[4] for r in results)
    searches = sum(v for k, v in stats["calls"].items() if k.endswith("/search"))
    # the budget really had to hold the workers back: unthrottled, this many calls fit in one window
    assert calls - searches > BURST and elapsed >= WINDOW_S
