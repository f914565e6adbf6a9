"""What the test hooks can turn on and read: the daily API allocation (Sforce-Limit-Info, 403 once
spent), injected faults (a share of 500/503, bursts, slow and truncated responses), and call
statistics per endpoint pattern.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any


class Usage:
    """The org's rolling daily API allocation, counted per authenticated REST call."""

    def __init__(self, max_calls: int = 100_000) -> None:
        self.max = max_calls
        self.used = 0
        self.bulk_batches = 0
        self.query_jobs = 0
        self._lock = threading.Lock()

    def consume(self) -> bool:
        """Count one call; False (and nothing counted) once the allocation is spent."""
        with self._lock:
            if self.used >= self.max:
                return False
            self.used += 1
            return True

    def set(self, *, used: int | None = None, max_calls: int | None = None) -> None:
        """Set the counter and/or the allocation (a test hook)."""
        with self._lock:
            if max_calls is not None:
                self.max = max_calls
            if used is not None:
                self.used = used

    def header(self) -> str:
        """The Sforce-Limit-Info value."""
        return f"api-usage={self.used}/{self.max}"

    def limits(self) -> dict[str, Any]:
        """The /limits resource."""

        def lim(mx: int, used: int = 0) -> dict[str, int]:
            return {"Max": mx, "Remaining": max(0, mx - used)}

        return {
            "ConcurrentAsyncGetReportInstances": lim(200), "ConcurrentSyncReportRuns": lim(20),
            "DailyApiRequests": lim(self.max, self.used), "DailyAsyncApexExecutions": lim(250000),
            "DailyBulkApiBatches": lim(15000, self.bulk_batches), "DailyBulkV2QueryFileStorageMB": lim(976562),
            "DailyBulkV2QueryJobs": lim(10000, self.query_jobs), "DailyDurableStreamingApiEvents": lim(10000),
            "DailyGenericStreamingApiEvents": lim(10000), "DailyStreamingApiEvents": lim(10000),
            "DataStorageMB": lim(1024, 12), "FileStorageMB": lim(20480, 3), "HourlyDashboardRefreshes": lim(200),
            "HourlyPublishedPlatformEvents": lim(50000), "MassEmail": lim(5000), "SingleEmail": lim(5000),
        }


@dataclass
class Decision:
    """What to do to one request."""

    status: int | None = None
    delay: float = 0.0
    truncate: bool = False


ERROR_BODIES = {
    500: {"errorCode": "UNKNOWN_EXCEPTION",
          "message": "An unexpected error occurred. Please include this ErrorId if you contact support: 1427373813-38924 (-1127388263)"},
    502: {"errorCode": "SERVER_UNAVAILABLE", "message": "Bad gateway"},
    503: {"errorCode": "SERVER_UNAVAILABLE", "message": "Server temporarily unavailable, please retry your request"},
}


class Faults:
    """Seeded fault injection for the data API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """No faults."""
        with self._lock:
            self.config: dict[str, Any] = {"error_rate": 0.0, "statuses": [500, 503], "slow_rate": 0.0,
                                           "slow_ms": 0, "truncate_rate": 0.0, "path_contains": "", "methods": [],
                                           "fail_next": 0, "fail_status": 503, "seed": 0}
            self._rng = random.Random(0)
            self.injected: Counter[str] = Counter()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge settings; unknown keys are refused with the list of known ones."""
        unknown = set(changes) - set(self.config)
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(self.config)}")
        for key in ("error_rate", "slow_rate", "truncate_rate"):
            if key in changes and not 0 <= float(changes[key]) <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
        with self._lock:
            self.config.update(changes)
            if "seed" in changes:
                self._rng = random.Random(int(changes["seed"]))
            return dict(self.config)

    def decide(self, method: str, path: str) -> Decision:
        """Roll the dice for one data request."""
        c = self.config
        if c["path_contains"] and c["path_contains"] not in path:
            return Decision()
        if c["methods"] and method not in c["methods"]:
            return Decision()
        with self._lock:
            d = Decision()
            if c["fail_next"] > 0:
                c["fail_next"] -= 1
                d.status = int(c["fail_status"])
            elif c["error_rate"] and self._rng.random() < c["error_rate"]:
                d.status = int(self._rng.choice(c["statuses"]))
            if c["slow_rate"] and self._rng.random() < c["slow_rate"]:
                d.delay = c["slow_ms"] / 1000
            if d.status is None and c["truncate_rate"] and self._rng.random() < c["truncate_rate"]:
                d.truncate = True
            if d.status:
                self.injected[str(d.status)] += 1
            if d.truncate:
                self.injected["truncated"] += 1
            if d.delay:
                self.injected["slow"] += 1
            return d


class Stats:
    """Calls by 'METHOD /route/pattern'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def count(self, method: str, pattern: str) -> None:
        """Record one call."""
        with self._lock:
            self.counts[f"{method} {pattern}"] += 1

    def snapshot(self) -> dict[str, Any]:
        """Totals for the hook."""
        with self._lock:
            return {"total": sum(self.counts.values()), "by_endpoint": dict(sorted(self.counts.items()))}

    def reset(self) -> None:
        """Start counting again."""
        with self._lock:
            self.counts.clear()
