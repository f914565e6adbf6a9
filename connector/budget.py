"""The per-connection API budget, shared through Redis by every process on every machine.

Each bucket is a pyrate-limiter sliding log in Redis (exact over any rolling window); a daily
counter stops us at our configured share of the CRM's daily allowance.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import time
import zlib
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


class RedisBudget:
    """A Budget whose buckets and daily counter live in Redis under `key`."""

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
    ) -> None:
        self.conn = conn
        self.key = key
        self.rates = {name: [Rate(limit, window) for limit, window in specs] for name, specs in rates.items()}
        self.share = share
        self.daily_limit = daily_limit
        self.max_wait = max_wait
        self.crm = crm
        self._buckets: dict[tuple[int, str], RedisBucket] = {}
        self._acquired = 0

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

    def _day_key(self, now: datetime) -> str:
        return f"{self.key}:daily:{now.strftime('%Y%m%d')}"

    def _check_daily(self, weight: int) -> None:
        now = datetime.now(UTC)
        day = self._day_key(now)
        pipe = self.conn.pipeline()
        pipe.hincrby(day, "ours", weight)
        pipe.hmget(day, "used", "limit")
        pipe.expire(day, 2 * 86400)
        ours, (used, reported), _ = pipe.execute()
        limit = int(reported) if reported is not None else self.daily_limit
        if not limit:
            return
        over_share = ours > self.share * limit
        spent = used is not None and int(used) >= limit
        if over_share or spent:
            self.conn.hincrby(day, "ours", -weight)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            what = f"our share ({self.share:.0%}) of" if over_share else "all of"
            raise BudgetExhausted(
                f"{what} today's API allowance of {limit} calls is spent",
                crm=self.crm,
                resume_after=(midnight - now).total_seconds(),
                hint="work resumes after the daily reset; raise RAPPORT_API_BUDGET_SHARE to allow more",
            )

    def acquire(self, bucket: str = "default", weight: int = 1) -> None:
        """Block until `weight` calls may be made in `bucket`; raise past the daily share."""
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
        day = self._day_key(datetime.now(UTC))
        pipe = self.conn.pipeline()
        pipe.hset(day, mapping={"used": max(0, used), "limit": limit})
        pipe.expire(day, 2 * 86400)
        pipe.execute()

    def today(self) -> dict[str, int]:
        """Our calls today, and the CRM's last reported usage and limit (for the admin pages)."""
        raw: dict[Any, Any] = self.conn.hgetall(self._day_key(datetime.now(UTC)))  # type: ignore[assignment]
        return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}


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
        f"rapport:budget:{connection.id}",
        rates,
        share=settings.api_budget_share,
        daily_limit=int(daily) if daily else None,
        crm=kind,
    )
