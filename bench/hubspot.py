"""Bench section `hubspot`: sync speed, API calls against the minimum, and webhook acknowledgement, on the world.

The in-process HubSpotSandbox serves the world of the bench size from this process while the sync
runs in a child process (its peak memory is Rapport's own) into the bench's PostgreSQL, with a
reserved Redis db. Full sync and write-back run with the sandbox's rate limits and our budget off
(the figures are about our own speed and call counts); incremental syncs run against the limits of
a Pro private app (190 calls per rolling 10 s, search 5 per second) with the shared budget on.
Their calls are every HTTP call the run made (retries included), also as the sandbox counted them,
against ⌈N/200⌉ for the N live records the changes touched (the search's own total); the plain
deletions among the changes are left to deletion webhooks and reconcile runs, whose archived-list
calls are shown by a reconcile run. The webhook receiver runs under gunicorn (as the Procfile
serves it) on real PostgreSQL and Redis.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from hubspot.utils.signature import Signature

from bench.context import BenchContext
from bench.memory import in_child
from bench.stack import Stack, free_port, release_redis_db, reserve_redis_db
from sandbox.hubspot import HubSpotSandbox

PRO_BURST, PRO_DAILY, SEARCH_PER_S = 190, 625_000, 5  # a Pro account's private app (usage guidelines)
MUTATIONS = {"small": 1_500, "medium": 10_000, "large": 20_000}  # UI changes before the incremental sync
# calls, emails and meetings: half of a medium world's records; without them a medium run stays
# within minutes on a shared machine (companies, contacts, deals and tickets are all there)
ENGAGEMENTS = {"small": True, "medium": False, "large": False}
SEARCH_LAG_S = 2.0
LOOKBACK_S = 10  # sync look-back: well over the sandbox's index lag of 2 s
WEBHOOK_BATCH = 100
WEBHOOK_WARMUP, WEBHOOK_BATCHES, WEBHOOK_CONCURRENT = 20, 300, 10
NAME = "bench-hubspot"


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Full and incremental sync, write-back twice, then webhook acknowledgements; figures prefixed `hubspot_`."""
    redis_url, token = reserve_redis_db(ctx.redis_url)
    db_url = ctx.scratch_pg("hubspot")
    port = free_port()
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "RAPPORT_ENV": "development",
           "RAPPORT_ENCRYPTION_KEY": Fernet.generate_key().decode(), "RAPPORT_LOG_LEVEL": "WARNING",
           "RAPPORT_PUBLIC_URL": f"http://127.0.0.1:{port}", "RAPPORT_DATA_DIR": str(ctx.workdir / "hubspot"),
           "RAPPORT_SYNC_LOOKBACK_SECONDS": str(LOOKBACK_S)}
    began = time.perf_counter()
    engagements = ENGAGEMENTS.get(ctx.size, False)
    sb = HubSpotSandbox(ctx.size, ctx.seed, burst=PRO_BURST, daily=PRO_DAILY, search_per_second=SEARCH_PER_S,
                        search_lag_s=SEARCH_LAG_S, engagements=engagements)
    seeded_s = time.perf_counter() - began
    sb.limiter.limits.enabled = False
    figures: dict[str, Any] = {"sandbox_records": sum(len(t.live) for t in sb.store.tables.values()),
                               "sandbox_engagements": "yes" if engagements else "no (calls, emails, meetings left out)",
                               "sandbox_seed_seconds": round(seeded_s, 1)}
    try:
        sb.start()
        synced = in_child(_sync, env, sb.info, MUTATIONS.get(ctx.size, 10_000), ctx.size == "small")
        figures |= synced
        figures |= _webhooks(ctx, env, port, sb)
    finally:
        sb.stop()
        release_redis_db(redis_url, token)
    figures["rate_limits"] = (f"full sync and write-back: off; incremental: Pro private app "
                              f"({PRO_BURST}/10 s, search {SEARCH_PER_S}/s)")
    figures["write_back_of"] = "companies and contacts" if ctx.size == "small" else "companies"
    return {f"hubspot_{k}": v for k, v in figures.items()}


# --- sync, in a child process ---------------------------------------------------------------------


def _hook(info: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = requests.request(method, f"{info['api_base']}/__sandbox__/{path}", json=body, timeout=600)
    resp.raise_for_status()
    return resp.json()


def _calls(info: dict[str, Any]) -> dict[str, int]:
    """The sandbox's call counts since the last reset, by kind of read."""
    calls = _hook(info, "GET", "stats")["calls"]
    out = {"search": 0, "association": 0, "archived_list": 0, "list": 0, "other": 0}
    for endpoint, n in calls.items():
        if endpoint.endswith("/search"):
            out["search"] += n
        elif "/crm/v4/associations/" in endpoint:
            out["association"] += n
        elif endpoint.startswith("GET /crm/v3/objects/"):
            out["list"] += n  # by incremental runs, only the archived pass lists
        else:
            out["other"] += n
    return out


def _total(info: dict[str, Any], t: str, filters: list[tuple[str, str, int | None]]) -> int:
    """How many live records of type `t` match these filters: the search's `total` (limits off)."""
    body = {"filterGroups": [{"filters": [{"propertyName": p, "operator": o, **({} if v is None else {"value": str(v)})}
                                          for p, o, v in filters]}], "limit": 1}
    resp = requests.post(f"{info['api_base']}/crm/v3/objects/{t}/search", json=body, timeout=60,
                         headers={"Authorization": f"Bearer {info['access_token']}"})
    resp.raise_for_status()
    return int(resp.json()["total"])


def _changed(info: dict[str, Any], types: list[str], since_ms: int, until_ms: int) -> dict[str, int]:
    """Live records per type whose last-modified stamp is in [since, until)."""
    from adapters.hubspot import settings as hs

    return {t: _total(info, t, [(hs.MODIFIED_PROPERTY[t], "GTE", since_ms), (hs.MODIFIED_PROPERTY[t], "LT", until_ms)])
            for t in types}


def _link_reads(info: dict[str, Any], since_ms: int, until_ms: int) -> int:
    """The association reads no incremental sync can avoid: search returns no associations, and a v4
    batch read takes 1,000 records of one type towards one type. Records created in the window need
    their contact, and their company unless a primary-company property names it; changed records
    whose primary-company property is empty need their company (their Primary one may be gone)."""
    from adapters.hubspot import settings as hs

    reads = 0
    for t in hs.ASSOCIATED:
        window = [(hs.MODIFIED_PROPERTY[t], "GTE", since_ms), (hs.MODIFIED_PROPERTY[t], "LT", until_ms)]
        new = _total(info, t, [*window, (hs.CREATED_PROPERTY[t], "GTE", since_ms)])
        prop = hs.PRIMARY_COMPANY_PROPERTY.get(t)
        unnamed = new if prop is None else _total(info, t, [*window, (prop, "NOT_HAS_PROPERTY", None)])
        reads += math.ceil(new / hs.ASSOCIATION_BATCH_LIMIT) + math.ceil(unnamed / hs.ASSOCIATION_BATCH_LIMIT)
    return reads


def _sync(env: dict[str, str], info: dict[str, Any], mutations: int, write_contacts: bool) -> dict[str, Any]:
    """Connect, provision, full sync, mutate, incremental sync twice, reconcile, score, write back twice."""
    from adapters.hubspot import mapping as hs_mapping
    from adapters.hubspot import settings as hs_settings
    from connector.config import load_settings
    from connector.connections import create_connection, open_adapter
    from connector.db import make_engine
    from connector.model import RECORD_MODELS, Connection, SyncRun
    from connector.scoring import score_connection
    from connector.store import analyze
    from connector.sync import sync_connection
    from connector.webhooks import mark_arriving
    from connector.writeback import writeback_connection

    settings = load_settings(env)
    engine = make_engine(settings.sqlalchemy_url)
    conn_t, run_t = Connection.__table__, SyncRun.__table__  # type: ignore[attr-defined]
    options = {"auth": "private_app", "budget": "off"}
    cid = create_connection(engine, settings, kind="hubspot", name=NAME, instance_url=info["api_base"],
                            external_org_id=str(info["portal_id"]), options=options,
                            secrets={"access_token": info["access_token"], "app_secret": info["app_secret"]})
    adapter = open_adapter(engine, settings, cid)
    for obj in ("account", "contact"):
        adapter.ensure_fields(obj, hs_mapping.score_fields(obj))

    def run_row(run_id: int) -> Any:
        with engine.connect() as conn:
            return conn.execute(sa.select(run_t).where(run_t.c.id == run_id)).one()

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    full = run_row(sync_connection(engine, settings, cid, full=True, trigger="bench"))
    full_s = time.perf_counter() - t0
    records = sum(c.get("created", 0) + c.get("updated", 0) for c in full.counts.values())
    out |= {"sync_full_records": records, "sync_full_seconds": round(full_s, 1),
            "sync_full_records_per_s": round(records / full_s), "sync_full_read_calls": full.api_calls,
            "sync_full_read_calls_min": math.ceil(records / 100)}
    with engine.begin() as conn:  # what autovacuum does a minute after a bulk load (it lags on a busy machine)
        analyze(conn, *(RECORD_MODELS[o].__table__.name for o in RECORD_MODELS))  # type: ignore[attr-defined]

    # incremental syncs against a Pro private app's limits, with our shared budget in front of them
    _hook(info, "PUT", "limits", {"enabled": True})
    with engine.begin() as conn:
        conn.execute(sa.update(conn_t).where(conn_t.c.id == cid).values(options={"auth": "private_app"}))
    mark_arriving(settings, cid)  # its webhooks arrive: the plain deletions come by them, as said above
    mutated_from = int(time.time() * 1000)
    applied = _hook(info, "POST", "mutate", {"count": mutations, "seed": 7})["applied"]
    time.sleep(SEARCH_LAG_S + 0.5)  # until the changes are searchable
    _hook(info, "DELETE", "stats")
    t0 = time.perf_counter()
    incr = run_row(sync_connection(engine, settings, cid, trigger="bench"))
    incr_s = time.perf_counter() - t0
    calls = _calls(info)
    applied_n = sum(sum(c.get(k, 0) for k in ("created", "updated", "deleted", "merged", "unchanged"))
                    for c in incr.counts.values())
    out |= {"mutations": len(applied), "sync_incremental_records": applied_n,
            "sync_incremental_seconds": round(incr_s, 1),
            "sync_incremental_records_per_s": round(applied_n / incr_s),
            # every HTTP call of the run (retries included), as the run counted them and as the CRM saw them
            "read_calls": incr.api_calls, "read_calls_seen_by_crm": sum(calls.values()),
            "read_search_calls": calls["search"], "read_association_calls": calls["association"],
            "read_archived_list_calls": calls["list"], "read_other_calls": calls["other"],
            "plain_deletions": sum(1 for a in applied if a["kind"] == "archive"),
            "plain_deletions_by": "deletion webhooks and reconcile runs (archived list)"}
    types = [*hs_settings.OBJECTS.values(), *hs_settings.ACTIVITY_OBJECTS]  # calls are logged without engagements too
    window_end = int(incr.started_at.timestamp() * 1000)
    # nothing changed since: what a run costs when idle. Without look-back here, as a run would be
    # once the look-back before its cursor is quiet (the mutations above all fall inside it)
    _hook(info, "DELETE", "stats")
    quiet = load_settings({**env, "RAPPORT_SYNC_LOOKBACK_SECONDS": "0"})
    idle = run_row(sync_connection(engine, quiet, cid, trigger="bench"))
    calls = _calls(info)
    out |= {"idle_read_calls": idle.api_calls, "idle_read_search_calls": calls["search"],
            "idle_read_association_calls": calls["association"], "idle_read_archived_list_calls": calls["list"]}
    out["status_429"] = _hook(info, "GET", "stats")["statuses"].get("429", 0)

    # the floor: N live records changed in the CRM (the search's own total), ⌈N/200⌉ search calls;
    # per type, as one search reads one type
    _hook(info, "PUT", "limits", {"enabled": False})
    changed = _changed(info, types, mutated_from, window_end)
    minimum = math.ceil(sum(changed.values()) / 200)
    per_type = sum(max(1, math.ceil(n / 200)) for n in changed.values())
    links = _link_reads(info, mutated_from, window_end)
    out |= {"changed_records": sum(changed.values()),
            "changed_by_type": ", ".join(f"{t} {n}" for t, n in changed.items()),
            "read_calls_min": minimum, "read_calls_min_per_type": per_type,
            "read_calls_ratio": round(incr.api_calls / minimum, 3),
            "read_calls_ratio_per_type": round(incr.api_calls / per_type, 3),
            "read_calls_min_association_reads": links,
            "read_calls_ratio_per_type_with_association_reads": round(incr.api_calls / (per_type + links), 3)}

    # a reconcile run (scheduled, say nightly): the same window, plus the archived lists
    _hook(info, "PUT", "limits", {"enabled": True})
    _hook(info, "DELETE", "stats")
    swept = run_row(sync_connection(engine, quiet, cid, trigger="bench", reconcile=True))
    calls = _calls(info)
    out |= {"reconcile_read_calls": swept.api_calls, "reconcile_archived_list_calls": calls["list"],
            "reconcile_deleted": sum(c.get("deleted", 0) for c in swept.counts.values())}
    out["status_429"] += _hook(info, "GET", "stats")["statuses"].get("429", 0)

    # score and write back with the limits off again (the figures are call counts and our speed)
    _hook(info, "PUT", "limits", {"enabled": False})
    with engine.begin() as conn:
        conn.execute(sa.update(conn_t).where(conn_t.c.id == cid).values(options=options))
    t0 = time.perf_counter()
    score_connection(engine, cid, trigger="bench")
    out["score_seconds"] = round(time.perf_counter() - t0, 1)
    # N changed scores: every record's on the small world; on bigger ones the companies' only, as the
    # first write-back of 100,000 contacts spends many minutes in the write-back's own bookkeeping
    only = None
    if not write_contacts:
        acc = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            ids = conn.execute(sa.select(acc.c.external_id).where(acc.c.connection_id == cid)).scalars().all()
        only = {"account": list(ids), "contact": []}
    t0 = time.perf_counter()
    first = writeback_connection(engine, settings, cid, trigger="bench", external_ids=only)
    out |= {"written": first["written"], "write_seconds": round(time.perf_counter() - t0, 1),
            "write_calls": first["api_calls"], "write_calls_min": math.ceil(first["written"] / 100)}
    out["noop_write_calls"] = writeback_connection(engine, settings, cid, trigger="bench",
                                                   external_ids=only)["api_calls"]
    engine.dispose()
    return out


# --- webhook acknowledgement, against gunicorn ------------------------------------------------------


def _batches(sb: HubSpotSandbox, n: int) -> list[bytes]:
    """n bodies of 100 distinct deal.propertyChange events, as HubSpot sends them."""
    deals = list(sb.store.tables["deals"].live)
    now = int(time.time() * 1000)
    bodies = []
    for b in range(n):
        events = [{"eventId": 10_000_000 + b * WEBHOOK_BATCH + i, "subscriptionId": 100_021,
                   "portalId": sb.portal_id, "appId": sb.info["app_id"], "occurredAt": now + b, "attemptNumber": 0,
                   "subscriptionType": "deal.propertyChange", "objectId": deals[(b * WEBHOOK_BATCH + i) % len(deals)],
                   "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI",
                   "sourceId": "userId:9100001"} for i in range(WEBHOOK_BATCH)]
        bodies.append(json.dumps(events, separators=(",", ":")).encode())
    return bodies


def _signed(url: str, secret: str, bodies: list[bytes]) -> list[tuple[bytes, dict[str, str]]]:
    """Bodies with HubSpot's v3 headers, signed ahead (a signature holds for 5 minutes): the time
    measured is the receiver's, not this process working out signatures on the receiver's cores."""
    ts = str(int(time.time() * 1000))
    return [(body, {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": ts,
                    "X-HubSpot-Signature-v3": Signature.get_signature(secret, body.decode(), "v3", url, "POST", ts)})
            for body in bodies]


class _Sender:
    """One keep-alive HTTP connection, as a HubSpot delivery worker holds one (plain http.client:
    a lighter client than requests, which would spend the machine's two cores alongside the receiver)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> float:
        began = time.perf_counter()
        self.conn.request("POST", self.path, body=body, headers=headers)
        resp = self.conn.getresponse()
        text = resp.read()
        took = time.perf_counter() - began
        if resp.status != 200:
            raise RuntimeError(f"the receiver answered {resp.status}: {text[:300]!r}")
        return took * 1000

    def close(self) -> None:
        self.conn.close()


def _webhooks(ctx: BenchContext, env: dict[str, str], port: int, sb: HubSpotSandbox) -> dict[str, Any]:
    """p50/p99 acknowledgement of 100-event batches: one at a time, then 10 in flight as HubSpot allows."""
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    secret = sb.info["app_secret"]
    bodies = _batches(sb, WEBHOOK_WARMUP + 2 * WEBHOOK_BATCHES)
    stack = Stack(env, ctx.workdir)
    try:
        stack.web(port)
        sender = _Sender(url)
        for body, headers in _signed(url, secret, bodies[:WEBHOOK_WARMUP]):
            sender.post(body, headers)
        one = [sender.post(body, headers)
               for body, headers in _signed(url, secret, bodies[WEBHOOK_WARMUP:WEBHOOK_WARMUP + WEBHOOK_BATCHES])]
        sender.close()
        senders: list[_Sender] = []
        mine = threading.local()  # a connection per delivery thread

        def deliver(signed: tuple[bytes, dict[str, str]]) -> float:
            if not hasattr(mine, "sender"):
                mine.sender = _Sender(url)
                senders.append(mine.sender)
            return float(mine.sender.post(*signed))

        rest = _signed(url, secret, bodies[WEBHOOK_WARMUP + WEBHOOK_BATCHES:])
        with ThreadPoolExecutor(WEBHOOK_CONCURRENT) as pool:
            many = list(pool.map(deliver, rest))
        for each in senders:
            each.close()
        rss = stack.rss_mb()
    finally:
        stack.close()
    return {"webhook_batch_events": WEBHOOK_BATCH, "webhook_batches": len(one),
            "webhook_ack_p50_ms": round(float(np.percentile(one, 50)), 1),
            "webhook_ack_p99_ms": round(float(np.percentile(one, 99)), 1),
            "webhook_ack_10_in_flight_p50_ms": round(float(np.percentile(many, 50)), 1),
            "webhook_ack_10_in_flight_p99_ms": round(float(np.percentile(many, 99)), 1),
            "web_rss_mb": round(rss, 1)}
