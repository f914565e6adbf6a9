"""The API budget of a CRM account (portal, org), shared through Redis by every process on every machine.

Each bucket is a pyrate-limiter sliding log in Redis (exact over any rolling window); a daily
counter stops us at our configured share of the CRM's daily allowance, and the CRM's own reported
usage stops us when the whole allowance is spent, until a probe call finds it reset.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from pyrate_limiter import Rate, RateItem, RedisBucket

from adapters.base import Budget, NoBudget
from connector.config import Settings
from connector.errors import BudgetExhausted, RateLimited

log = logging.getLogger(__name__)
_LEAK_EVERY = 200  # acquisitions between trims of a bucket's log (the count itself never needs it)
# A spent allowance is looked at again this often: HubSpot resets it at midnight in the account's
# time zone and Salesforce's is a rolling 24 h, so neither reset is a UTC midnight we could wait for.
PROBE_EVERY_S = 3600.0
# How long the other workers wait for the probe call's usage headers. A probe that brings back
# none (HubSpot search answers carry no daily headers) lets everyone go after this.
PROBE_GRACE_S = 60.0

# Take the probe of a spent allowance: only when no probe was taken since the last usage seen.
_TAKE_PROBE = """
local seen = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0')
local probed = tonumber(redis.call('HGET', KEYS[1], 'probed') or '0')
if probed > seen then return 0 end
redis.call('HSET', KEYS[1], 'probed', ARGV[1])
return 1
"""


class RedisBudget:
    """A Budget whose buckets, daily counter and the CRM's reported usage live in Redis under `key`."""

    def __init__(
        self,
        conn: redis.Redis,
        key: str,
        rates: dict[str, list[tuple[int, int]]],
        *,
        share: float = 1.0,
        daily_limit: int | None = None,
        max_wait: float = 120.0,
        crm: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conn = conn
        self.key = key
        self.rates = {name: [Rate(limit, window) for limit, window in specs] for name, specs in rates.items()}
        self.share = share
        self.daily_limit = daily_limit
        self.max_wait = max_wait
        self.crm = crm
        self.clock = clock  # epoch seconds; the daily counter and the usage's age are read on it
        self._buckets: dict[tuple[int, str], RedisBucket] = {}
        self._acquired = 0
        self._take_probe = conn.register_script(_TAKE_PROBE)

    def __repr__(self) -> str:
        return f"RedisBudget(key={self.key!r}, rates={ {k: [(r.limit, r.interval) for r in v] for k, v in self.rates.items()} })"

    def _bucket(self, bucket: str) -> RedisBucket | None:
        name = bucket if bucket in self.rates else "default"
        if name not in self.rates:
            return None
        # one bucket object per process: a forked worker must not reuse the parent's script handle
        slot = (os.getpid(), name)
        if slot not in self._buckets:
            self._buckets[slot] = RedisBucket.init(self.rates[name], self.conn, f"{self.key}:{name}")
        return self._buckets[slot]

    def _day_key(self, now: float) -> str:
        return f"{self.key}:daily:{datetime.fromtimestamp(now, UTC).strftime('%Y%m%d')}"

    @property
    def _usage_key(self) -> str:
        # not per UTC day: the CRM's day is not ours, so its figures age by the time they were seen
        return f"{self.key}:usage"

    def _check_daily(self, weight: int) -> None:
        now = self.clock()
        day = self._day_key(now)
        pipe = self.conn.pipeline()
        pipe.hincrby(day, "ours", weight)
        pipe.hmget(self._usage_key, "used", "limit", "seen", "probed")
        pipe.expire(day, 2 * 86400)
        ours, (used, reported, seen, probed), _ = pipe.execute()
        limit = int(reported) if reported is not None else self.daily_limit
        if not limit:
            return
        try:
            if used is not None and int(used) >= limit:
                wait = self._spent_wait(now, float(seen or 0), float(probed or 0))
                if wait is not None:
                    raise BudgetExhausted(
                        f"the CRM's whole daily API allowance of {limit} calls is spent",
                        crm=self.crm,
                        code="DAILY",
                        resume_after=wait,
                        hint="work resumes when the CRM resets its allowance (looked at again within the hour); "
                        "other apps on the account share it, so raising RAPPORT_API_BUDGET_SHARE will not help",
                    )
            if ours > self.share * limit:
                midnight = (datetime.fromtimestamp(now, UTC) + timedelta(days=1)).replace(
                    hour=0, minute=0, second=0, microsecond=0)
                raise BudgetExhausted(
                    f"Rapport's share ({self.share:.0%}) of the CRM's daily API allowance of {limit} calls is used",
                    crm=self.crm,
                    code="BUDGET_SHARE",
                    resume_after=midnight.timestamp() - now,
                    hint="work resumes when Rapport's daily count restarts at 00:00 UTC; "
                    "raise RAPPORT_API_BUDGET_SHARE to allow more",
                )
        except BudgetExhausted:
            self.conn.hincrby(day, "ours", -weight)  # a refused call is not counted
            raise

    def _spent_wait(self, now: float, seen: float, probed: float) -> float | None:
        """Seconds to wait while the CRM's allowance is reported spent; None lets this call through
        (it is the probe, or the probe brought back no usage)."""
        age = now - seen
        if age < PROBE_EVERY_S:
            return PROBE_EVERY_S - age
        if probed <= seen:  # nobody has looked since: this call does, every other worker waits for its answer
            took = self._take_probe(keys=[self._usage_key], args=[repr(now)])
            return None if took else PROBE_GRACE_S
        since = now - probed
        return PROBE_GRACE_S - since if since < PROBE_GRACE_S else None

    def acquire(self, bucket: str = "default", weight: int = 1) -> None:
        """Block until `weight` calls may be made in `bucket`; raise past the daily share, or while the
        CRM's whole allowance is reported spent."""
        self._check_daily(weight)
        red = self._bucket(bucket)
        if red is None:
            return
        deadline = time.monotonic() + self.max_wait
        while True:
            # A fresh timestamp on every try: the log must hold the time the call really goes out.
            # Stamped and checked under a short lock: the log counts the calls up to the stamp, so a
            # call stamped before another process's but checked after it would not count that one.
            # (The lock expires after 5 s, should its holder die; one paused that long lets it go.)
            turn = self.conn.lock(f"{red.bucket_key}:turn", timeout=5.0, sleep=0.001)
            turn.acquire()
            try:
                item = RateItem(bucket, red.now(), weight)
                admitted = red.put(item)
            finally:
                with contextlib.suppress(redis.exceptions.LockNotOwnedError):
                    turn.release()
            if admitted:
                break
            wait_ms = int(red.waiting(item))  # type: ignore[arg-type]  # a sync Redis client answers at once
            left = deadline - time.monotonic()
            if wait_ms < 0 or left <= 0:
                raise RateLimited(
                    f"waited {self.max_wait:.0f} s for the {bucket!r} API budget without getting a slot",
                    crm=self.crm, retry_after=self.max_wait,
                    hint="other workers are using this connection's budget; the job will be retried",
                )
            time.sleep(min(left, wait_ms / 1000 + random.uniform(0.005, 0.025)))
        self._acquired += 1
        if self._acquired % _LEAK_EVERY == 0:
            red.leak(red.now())

    def observe(self, used: int, limit: int) -> None:
        """Record the CRM's count of calls used today (all apps of the account) and its daily limit."""
        if limit <= 0:
            return
        pipe = self.conn.pipeline()
        pipe.hset(self._usage_key, mapping={"used": max(0, used), "limit": limit, "seen": repr(self.clock())})
        pipe.expire(self._usage_key, 2 * 86400)
        pipe.execute()

    def today(self) -> dict[str, int]:
        """Our calls today, and the CRM's last reported usage and limit (for the admin pages)."""
        pipe = self.conn.pipeline()
        pipe.hget(self._day_key(self.clock()), "ours")
        pipe.hmget(self._usage_key, "used", "limit")
        ours, (used, limit) = pipe.execute()
        return {k: int(v) for k, v in (("ours", ours), ("used", used), ("limit", limit)) if v is not None}


class RedisMetadataCache:
    """A MetadataCache in Redis under `key`: JSON values with an expiry, seen by every worker process.

    A cache is only a saving: when Redis cannot answer, the adapter reads the CRM as if nothing
    were cached."""

    def __init__(self, conn: redis.Redis, key: str) -> None:
        self.conn = conn
        self.key = key

    def get(self, key: str) -> Any | None:
        try:
            raw = self.conn.get(f"{self.key}:{key}")
        except redis.RedisError as exc:
            log.warning("metadata cache unavailable (%s): reading from the CRM", exc)
            return None
        if raw is None:
            return None
        try:
            return orjson.loads(raw)  # type: ignore[arg-type]
        except orjson.JSONDecodeError:
            return None  # not ours, or cut short: read afresh

    def set(self, key: str, value: Any, ttl_s: float) -> None:
        try:
            self.conn.set(f"{self.key}:{key}", orjson.dumps(value), px=max(1, int(ttl_s * 1000)))
        except redis.RedisError as exc:
            log.warning("metadata cache unavailable (%s): not kept", exc)


def metadata_cache_for(settings: Settings, connection: Any, *, conn: redis.Redis | None = None) -> RedisMetadataCache:
    """The connection's metadata cache; keyed by the CRM it points at too, so a connection moved to
    another portal or org never reads the old one's metadata."""
    from connector.queues import redis_for

    crm = zlib.crc32(f"{connection.kind}|{connection.instance_url}|{connection.external_org_id}".encode())
    return RedisMetadataCache(conn or redis_for(settings), f"rapport:meta:{connection.id}:{crm:08x}")


def _rates(connection: Any) -> dict[str, list[tuple[int, int]]]:
    """The (limit, window ms) rates of each bucket of the connection's CRM, from `adapters.<kind>.settings`."""
    options: dict[str, Any] = dict(getattr(connection, "options", None) or {})
    try:
        crm_settings = importlib.import_module(f"adapters.{connection.kind}.settings")
    except ImportError:
        return {}
    rates_fn = getattr(crm_settings, "budget_rates", None)
    return rates_fn(options, options.get("auth", "oauth")) if rates_fn is not None else {}


def call_interval(connection: Any) -> float:
    """Seconds per call at the connection's sustained rate (its tightest default-bucket rate); 0 when unlimited."""
    if (dict(getattr(connection, "options", None) or {})).get("budget") == "off":
        return 0.0
    return max((window / 1000 / limit for limit, window in _rates(connection).get("default", ()) if limit > 0),
               default=0.0)


def budget_key(connection: Any) -> str:
    """Where a connection's budget lives: one per CRM account (HubSpot portal, Salesforce org), as the
    CRM counts its search and daily limits per account, so two connections to one account share them."""
    org = getattr(connection, "external_org_id", None)
    return f"rapport:budget:{connection.kind}:{org}" if org else f"rapport:budget:{connection.id}"


def budget_for(settings: Settings, connection: Any, *, conn: redis.Redis | None = None) -> Budget:
    """The shared budget of a connection row: its CRM's rate buckets plus the daily share."""
    from connector.queues import redis_for

    options: dict[str, Any] = dict(getattr(connection, "options", None) or {})
    if options.get("budget") == "off":
        return NoBudget()
    kind = connection.kind
    rates = _rates(connection)
    daily = options.get("daily_limit")
    return RedisBudget(
        conn or redis_for(settings),
        budget_key(connection),
        rates,
        share=settings.api_budget_share,
        daily_limit=int(daily) if daily else None,
        crm=kind,
    )
