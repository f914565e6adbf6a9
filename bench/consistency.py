"""Bench section `consistency`: after a full and an incremental sync the unified tables equal the CRM's records.

Per CRM (in-process sandbox of the bench size): full sync, compare; realistic changes, incremental
sync, compare; then the same on a fresh database with 5% of API calls failing (5xx), re-running a
sync that gives up as the job layer's retry would. Figures prefixed `salesforce_` / `hubspot_`.

HubSpot shows plain deletions only in its archived list and as deletion webhooks, and incremental
runs of a connection that receives webhooks leave them to those: the sandbox delivers its deletion
events to the web app's real receiver here, and the webhook job's code applies them before the
incremental sync runs (everything else the incremental sync reads on its own).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from bench.context import BenchContext
from bench.stack import release_redis_db, reserve_redis_db
from connector.config import Settings, load_settings
from connector.connections import open_adapter
from connector.db import make_engine
from connector.errors import RetriableError
from connector.mappings import Mapping, apply, load_mapping
from connector.model import RECORD_MODELS, Connection
from connector.sync import sync_connection

MUTATIONS = {"small": 300, "medium": 2_000, "large": 2_000}
FAULT_RATE = 0.05
MAX_RERUNS = 25
SHOWN = 5  # mismatching ids reported per object
SEARCH_LAG_S = 1.0
# calls, emails and meetings are half of a medium HubSpot world; as in the `hubspot` section they
# are left out above small so the section stays within minutes on a shared machine
HUBSPOT_ENGAGEMENTS = {"small": True}
_CONN = Connection.__table__  # type: ignore[attr-defined]


# --- the comparison -----------------------------------------------------------------------------


def _canon(value: Any) -> Any:
    """A JSON-stable form of a mapped value, the same whether it came from Python or the database."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return round(float(value), 6)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return value


def digest(row: dict[str, Any], columns: Iterable[str]) -> str:
    """sha256 of a row's mapped fields as JSON with sorted keys."""
    body = json.dumps({c: _canon(row.get(c)) for c in columns}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Side:
    """One object's records on one side: live id -> digest, deleted id -> merged_into."""

    live: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str | None] = field(default_factory=dict)

    def hash(self) -> str:
        """sha256 over the sorted (external id, digest) pairs of the live records."""
        h = hashlib.sha256()
        for ident in sorted(self.live):
            h.update(f"{ident}\t{self.live[ident]}\n".encode())
        return h.hexdigest()


def columns_of(mapping: Mapping, object: str) -> list[str]:
    """The columns a sync writes from the mapping (every mappable column plus `custom`)."""
    return sorted(apply(mapping, object, {}).keys())


def expected_sides(adapter: Any, mapping: Mapping, objects: Iterable[str]) -> dict[str, Side]:
    """The CRM's records as a fresh full read by the adapter gives them, mapped like a sync maps them.

    Read through the adapter, not the sandbox's store: the store keeps records in its own shape
    (HubSpot associations and pipeline stages are resolved by the adapter into `_rapport`), so
    mapping the store directly would re-implement the adapter. No sync engine code is involved.
    """
    until = datetime.now(UTC) + timedelta(hours=1)
    out: dict[str, Side] = {}
    for object in objects:
        side = out[object] = Side()
        cols = columns_of(mapping, object)
        for page in adapter.pull(object, None, until, full=True):
            for change in page.changes:  # ascending: the last state of an id wins
                ident = change.external_id
                if change.deleted:
                    side.live.pop(ident, None)
                    merged = change.merged_into if change.merged_into != ident else None
                    side.deleted[ident] = merged or side.deleted.get(ident)
                    continue
                side.deleted.pop(ident, None)
                raw = json.loads(json.dumps(change.raw, default=lambda v: v.isoformat()
                                            if hasattr(v, "isoformat") else str(v)))
                side.live[ident] = digest(apply(mapping, object, raw), cols)
    return out


def unified_sides(engine: sa.Engine, connection_id: int, mapping: Mapping, objects: Iterable[str]) -> dict[str, Side]:
    """The unified tables' records of a connection, digested like `expected_sides`."""
    out: dict[str, Side] = {}
    with engine.connect() as conn:
        for object in objects:
            side = out[object] = Side()
            t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
            cols = columns_of(mapping, object)
            query = sa.select(t.c.external_id, t.c.is_deleted, t.c.merged_into, *(t.c[c] for c in cols)).where(
                t.c.connection_id == connection_id)
            for row in conn.execution_options(yield_per=5000).execute(query).mappings():
                if row["is_deleted"]:
                    side.deleted[row["external_id"]] = row["merged_into"]
                else:
                    side.live[row["external_id"]] = digest(dict(row), cols)
    return out


def compare(expected: dict[str, Side], actual: dict[str, Side]) -> dict[str, dict[str, Any]]:
    """Per object: counts both sides, live hashes, equal or not, and the first mismatching ids.

    Live records must match exactly (same ids, same mapped fields). A deleted row must be deleted
    in the CRM too, with the same survivor when merged; records deleted in the CRM that a sync
    never saw alive have no row, so the deleted counts may differ without a mismatch.
    """
    out: dict[str, dict[str, Any]] = {}
    for object in sorted(set(expected) | set(actual)):
        e, a = expected.get(object, Side()), actual.get(object, Side())
        missing = sorted(set(e.live) - set(a.live))
        extra = sorted(set(a.live) - set(e.live))
        differ = sorted(i for i in set(e.live) & set(a.live) if e.live[i] != a.live[i])
        wrongly_deleted = sorted(i for i in a.deleted if i in e.live)
        bad_merge = sorted(i for i in a.deleted if i in e.deleted and a.deleted[i] != e.deleted[i])
        unknown_deleted = sorted(i for i in a.deleted if i not in e.live and i not in e.deleted)
        problems = {"missing": missing, "extra": extra, "differ": differ, "wrongly_deleted": wrongly_deleted,
                    "merged_into_differs": bad_merge, "unknown_deleted": unknown_deleted}
        e_hash, a_hash = e.hash(), a.hash()
        out[object] = {
            "equal": e_hash == a_hash and not any(problems.values()),
            "expected_live": len(e.live), "unified_live": len(a.live),
            "expected_deleted": len(e.deleted), "unified_deleted": len(a.deleted),
            "expected_hash": e_hash[:16], "unified_hash": a_hash[:16],
            **{k: v[:SHOWN] for k, v in problems.items() if v},
            **{f"{k}_count": len(v) for k, v in problems.items() if v},
        }
    return out


def check(engine: sa.Engine, settings: Settings, connection_id: int) -> dict[str, dict[str, Any]]:
    """Compare a connection's unified tables with a fresh full read of its CRM."""
    with engine.connect() as conn:
        kind = conn.execute(sa.select(_CONN.c.kind).where(_CONN.c.id == connection_id)).scalar_one()
    mapping = load_mapping(engine, connection_id, kind)
    objects = mapping.objects()
    adapter = open_adapter(engine, settings, connection_id)
    expected = expected_sides(adapter, mapping, objects)
    result = compare(expected, unified_sides(engine, connection_id, mapping, objects))
    for object, r in result.items():
        if r.get("differ"):
            r["differ_fields"] = _differing_fields(engine, adapter, mapping, connection_id, object, r["differ"])
    return result


def _differing_fields(engine: sa.Engine, adapter: Any, mapping: Mapping, connection_id: int, object: str,
                      ids: list[str]) -> dict[str, dict[str, list[Any]]]:
    """For a few differing ids: field -> [CRM value, unified value]."""
    t = RECORD_MODELS[object].__table__  # type: ignore[attr-defined]
    cols = columns_of(mapping, object)
    with engine.connect() as conn:
        stored = {r["external_id"]: dict(r) for r in conn.execute(sa.select(t).where(
            t.c.connection_id == connection_id, t.c.external_id.in_(ids))).mappings()}
    out: dict[str, dict[str, list[Any]]] = {}
    for change in adapter.fetch(object, ids):
        want = apply(mapping, object, change.raw) if not change.deleted else {}
        have = stored.get(change.external_id, {})
        out[change.external_id] = {c: [_canon(want.get(c)), _canon(have.get(c))] for c in cols
                                   if _canon(want.get(c)) != _canon(have.get(c))}
    return out


def all_equal(result: dict[str, dict[str, Any]]) -> bool:
    """Whether every object matched."""
    return all(r["equal"] for r in result.values())


# --- the CRMs ---------------------------------------------------------------------------------


@dataclass
class Crm:
    """A started sandbox, how to reach its hooks, and how to connect to it."""

    kind: str
    base: str
    verify: Any
    fault_method: str
    fault_statuses: list[int]
    connect: Callable[[Settings, str], Any]
    stop: Callable[[], None]

    def hook(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a sandbox test hook (no auth, no faults)."""
        session = requests.Session()
        session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE; the sandbox has its own CA
        resp = session.request(method, f"{self.base.rstrip('/')}/__sandbox__/{path}", json=body,
                               verify=self.verify, timeout=600)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    injected: int = 0  # faults injected so far (the sandboxes' own counters reset or not on clearing)
    _seen: int = 0
    receiver: Receiver | None = None  # where the CRM's deletion webhooks go
    flush: Callable[[], bool] = lambda: True  # waits until the CRM has delivered its webhooks

    def deliver(self, engine: sa.Engine, settings: Settings, cid: int) -> int:
        """Have the CRM's webhooks delivered and processed as the webhook job does; how many events."""
        if self.receiver is None:
            return 0
        if not self.flush():
            raise RuntimeError("the sandbox did not deliver its webhooks in time")
        from connector.freshness import process_pending

        for _ in range(MAX_RERUNS + 1):
            try:
                return int(process_pending(engine, settings, cid).get("events", 0))
            except RetriableError:
                continue  # the job's retry: its claimed events were handed back
        raise RuntimeError(f"webhook processing still failing after {MAX_RERUNS} re-runs")

    def faults(self, rate: float) -> None:
        """Fail this share of the data API's calls with 5xx statuses (0 clears)."""
        if rate:
            self.hook(self.fault_method, "faults", {"error_rate": rate, "statuses": self.fault_statuses, "seed": 11})
            return
        if self.kind == "hubspot":
            now = sum(self.hook("GET", "stats")["faults"]["injected"].values())
            self.injected, self._seen = self.injected + now - self._seen, now
        else:
            self.injected += sum(self.hook("GET", "faults")["injected"].values())
        self.hook("DELETE", "faults")


class Receiver:
    """The web app on 127.0.0.1 (the real webhook receiver), serving the current round's database."""

    def __init__(self) -> None:
        self.app: Any = None
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/hubspot"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.app is None:  # between rounds: the CRM retries later
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"no round running"]
        return self.app(environ, start_response)

    def serve(self, settings: Settings | None) -> None:
        """Serve the web app built on these settings (None: refuse until the next round)."""
        from connector.app import create_app

        self.app = create_app(settings) if settings is not None else None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_salesforce(size: str, seed: int) -> Crm:
    """A Salesforce sandbox, connected by username and password as `rapport connect salesforce` does."""
    from connector.commands.salesforce import connect
    from sandbox.salesforce import SalesforceSandbox

    sb = SalesforceSandbox(size, seed, daily_limit=10_000_000).start()
    info = sb.info

    def _connect(settings: Settings, name: str) -> Any:
        return connect(settings, name, username=info["username"], password=info["password"],
                       client_id=info["client_id"], client_secret=info["client_secret"],
                       login_url=info["instance_url"], ca_bundle=info["ca_bundle"])["id"]

    return Crm("salesforce", info["instance_url"], info["ca_bundle"], "POST", [500, 503], _connect, sb.stop)


def start_hubspot(size: str, seed: int) -> Crm:
    """A HubSpot sandbox without rate limits, connected by private-app token as `rapport connect hubspot` does."""
    from adapters.hubspot import mapping as hs_mapping
    from connector.commands.hubspot import connect
    from sandbox.hubspot import HubSpotSandbox

    receiver = Receiver()
    deletions = [{"subscriptionType": f"{o}.deletion"} for o in ("contact", "company", "deal", "ticket")]
    sb = HubSpotSandbox(size, seed, rate_limits=False, search_lag_s=SEARCH_LAG_S,
                        engagements=HUBSPOT_ENGAGEMENTS.get(size, False), webhook_url=receiver.url,
                        webhook_subscriptions=deletions, webhook_batch_window_s=0.02).start()
    info = sb.info

    def _connect(settings: Settings, name: str) -> Any:
        cid = connect(settings, name, token=info["access_token"], api_base=info["api_base"],
                      portal_id=str(info["portal_id"]), app_secret=info["app_secret"])["id"]
        # the sandbox has no limits, so our own budget would only slow the check down
        engine = make_engine(settings.sqlalchemy_url)
        with engine.begin() as conn:
            options = conn.execute(sa.select(_CONN.c.options).where(_CONN.c.id == cid)).scalar_one()
            conn.execute(sa.update(_CONN).where(_CONN.c.id == cid).values(options={**options, "budget": "off"}))
        engine.dispose()
        adapter = open_adapter(make_engine(settings.sqlalchemy_url), settings, cid)
        for obj in ("account", "contact"):  # as `rapport provision` does: the webhook job writes scores back
            adapter.ensure_fields(obj, hs_mapping.score_fields(obj))
        return cid

    def _stop() -> None:
        sb.stop()
        receiver.stop()

    return Crm("hubspot", info["api_base"], True, "PUT", [500, 502, 503, 504], _connect, _stop, receiver=receiver,
               flush=lambda: sb.webhooks.flush(120))


STARTERS = {"salesforce": start_salesforce, "hubspot": start_hubspot}


# --- the run ----------------------------------------------------------------------------------


def sync_until_done(engine: sa.Engine, settings: Settings, cid: int, *, full: bool) -> int:
    """Run a sync, again after each RetriableError (as the job's retry would); how many re-runs it took."""
    for reruns in range(MAX_RERUNS + 1):
        try:
            sync_connection(engine, settings, cid, full=full, trigger="bench")
            return reruns
        except RetriableError:
            continue
    raise RuntimeError(f"sync still failing after {MAX_RERUNS} re-runs")


def _mismatches(label: str, result: dict[str, dict[str, Any]]) -> dict[str, str]:
    bad = {o: {k: v for k, v in r.items() if k not in ("equal", "expected_hash", "unified_hash")}
           for o, r in result.items() if not r["equal"]}
    return {f"{label}_mismatch": json.dumps(bad, default=str)} if bad else {}


def _round(ctx: BenchContext, crm: Crm, tag: str, fault_rate: float, mutation_seed: int) -> dict[str, Any]:
    """Full sync, compare, mutate, incremental sync, compare; on a fresh database of its own."""
    redis_url, token = reserve_redis_db(ctx.redis_url)
    env = {"DATABASE_URL": ctx.scratch_pg(f"consistency_{crm.kind}_{tag}"), "REDIS_URL": redis_url,
           "RAPPORT_ENV": "development", "RAPPORT_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "RAPPORT_LOG_LEVEL": "WARNING", "RAPPORT_DATA_DIR": str(ctx.workdir / f"consistency-{crm.kind}-{tag}")}
    settings = load_settings(env)
    engine = make_engine(settings.sqlalchemy_url)
    out: dict[str, Any] = {}
    prefix = f"{tag}_" if tag != "clean" else ""
    if crm.receiver is not None:
        crm.receiver.serve(settings)
    try:
        cid = crm.connect(settings, f"consistency-{crm.kind}-{tag}")
        crm.faults(0)
        injected_before = crm.injected
        crm.faults(fault_rate)
        reruns = sync_until_done(engine, settings, cid, full=True)
        crm.faults(0)
        full = check(engine, settings, cid)
        crm.hook("POST", "mutate", {"count": MUTATIONS.get(ctx.size, 2_000), "seed": mutation_seed})
        crm.faults(fault_rate)
        events = crm.deliver(engine, settings, cid)  # its rescoring writes scores back: changes too
        time.sleep(SEARCH_LAG_S + 0.5)  # HubSpot search sees changes after its index lag
        reruns += sync_until_done(engine, settings, cid, full=False)
        crm.faults(0)
        incr = check(engine, settings, cid)
        out |= {f"{prefix}full_equal": int(all_equal(full)), f"{prefix}incremental_equal": int(all_equal(incr)),
                f"{prefix}records_compared": sum(r["expected_live"] + r["expected_deleted"] for r in incr.values())}
        if crm.receiver is not None:
            out[f"{prefix}deletion_webhook_events"] = events
        if fault_rate:
            out[f"{prefix}sync_reruns"] = reruns
            out["faults_injected"] = crm.injected - injected_before
        out |= _mismatches(f"{prefix}full", full) | _mismatches(f"{prefix}incremental", incr)
    finally:
        crm.faults(0)
        if crm.receiver is not None:
            crm.receiver.serve(None)
        engine.dispose()
        release_redis_db(redis_url, token)
    return out


def _bench_crm(ctx: BenchContext, kind: str) -> dict[str, Any]:
    began = time.perf_counter()
    crm = STARTERS[kind](ctx.size, ctx.seed)
    try:
        out = _round(ctx, crm, "clean", 0.0, 7)
        out |= _round(ctx, crm, "faults", FAULT_RATE, 8)
    finally:
        crm.stop()
    out["seconds"] = round(time.perf_counter() - began, 1)
    return out


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Both CRMs, one after the other."""
    figures: dict[str, float | int | str] = {}
    for kind in STARTERS:
        figures |= {f"{kind}_{k}": v for k, v in _bench_crm(ctx, kind).items()}
    return figures
