"""Worker processes share one Redis budget: four never get a 429 from the sandbox, and one DAILY 429
pauses them all."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from adapters.base import ConnectionInfo, WriteItem
from adapters.hubspot import HubSpotAdapter, mapping
from adapters.hubspot import settings as hs
from adapters.hubspot.client import HubSpotClient
from connector.budget import PROBE_EVERY_S, budget_for
from connector.errors import BudgetExhausted
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


def _oauth_secrets(sb: HubSpotSandbox, info: ConnectionInfo) -> dict[str, object]:
    """Install the sandbox's public app as an admin would and trade the code for tokens."""
    back = "https://rapport.example.com/oauth/hubspot"
    answer = requests.post(f"{sb.api_base}/oauth/authorize", allow_redirects=False, timeout=10,
                           data={"client_id": sb.info["client_id"], "redirect_uri": back, "decision": "grant",
                                 "scope": " ".join(hs.OAUTH_SCOPES)})
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    client = HubSpotClient(info, {"client_id": sb.info["client_id"], "client_secret": sb.info["client_secret"]})
    client.authorize(code, back)
    return client.secrets


@pytest.mark.redis
@pytest.mark.parametrize("auth", ["private_app", "oauth"])  # an OAuth app's 429 carries no daily headers
def test_one_daily_429_pauses_every_worker_on_the_budget(make_settings, redis_url, auth):
    sb = HubSpotSandbox(size="small", seed=2, accounts=2, engagements=False, search_lag_s=0).start()
    try:
        options = {"auth": auth}
        info = ConnectionInfo(11, "hs", "hubspot", instance_url=sb.info["api_base"], options=options)
        secrets = {"access_token": sb.info["access_token"]} if auth == "private_app" else _oauth_secrets(sb, info)
        settings = make_settings(REDIS_URL=redis_url)
        row = SimpleNamespace(id=info.id, kind="hubspot", options=options)
        one, two = (HubSpotAdapter(info, dict(secrets), budget=budget_for(settings, row)) for _ in range(2))
        sb.limiter.limits.daily = sb.limiter.usage()["daily_used"]  # other apps spent the account's day
        sb.stats.reset()
        with pytest.raises(BudgetExhausted) as first:
            one.client.call("crm.contacts.basic_api", "get_page", limit=1)
        assert first.value.code == "DAILY" and first.value.status == 429  # the run pauses, as before
        with pytest.raises(BudgetExhausted) as second:
            two.client.call("crm.companies.basic_api", "get_page", limit=1)
    finally:
        sb.stop()
    # the other worker was held back by the shared budget, not by a 429 of its own
    assert second.value.code == "DAILY" and second.value.status is None
    assert 0 < second.value.resume_after <= PROBE_EVERY_S
    assert sb.limiter.usage()["refused"] == 1 and sb.stats.snapshot()["total"] == 1
    assert (one.api_calls, two.api_calls) == (1, 0)
