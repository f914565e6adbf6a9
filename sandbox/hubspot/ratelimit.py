"""API limits: a rolling ten-second window per app, a daily allowance per account, search per second.

The daily allowance restarts at midnight in the portal's time zone, as HubSpot's does.

Responses carry HubSpot's `X-HubSpot-RateLimit-*` headers (daily ones only for private apps, none
on search); a refused call gets the documented 429 body with its `policyName`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sandbox.hubspot.errors import ApiError, correlation_id


@dataclass
class Limits:
    """Configurable per sandbox; `enabled=False` turns every check off (bulk tests, benches)."""

    enabled: bool = True
    burst: int = 190
    oauth_burst: int = 110
    window_s: float = 10.0
    daily: int = 1_000_000
    search_per_second: int = 5
    time_zone: str = "America/New_York"  # the portal's (IANA name): its midnight restarts the daily count

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # an unknown name fails here, not on the first call


class RateLimiter:
    """Counts calls and refuses the ones over a limit."""

    def __init__(self, limits: Limits, portal_id: int, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.portal_id = portal_id
        self.clock = clock  # epoch seconds, read only for the portal's day
        self._lock = threading.Lock()
        self._windows: dict[int, deque[float]] = {}
        self._search: deque[float] = deque()
        self._day = ""
        self._daily_used = 0
        self.refused = 0

    def _roll_day(self) -> None:
        today = datetime.fromtimestamp(self.clock(), ZoneInfo(self.limits.time_zone)).strftime("%Y-%m-%d")
        if today != self._day:
            self._day, self._daily_used = today, 0

    def check(self, app_id: int, kind: str, search: bool) -> dict[str, str]:
        """Count one call; returns headers for the response or raises a 429 ApiError."""
        lim = self.limits
        if not lim.enabled:
            return {}
        now = time.monotonic()
        with self._lock:
            self._roll_day()
            if self._daily_used >= lim.daily:
                self.refused += 1
                raise self._refusal("DAILY", "daily", app_id, kind, self._headers(app_id, kind, now))
            if search:
                while self._search and self._search[0] <= now - 1.0:
                    self._search.popleft()
                if len(self._search) >= lim.search_per_second:
                    self.refused += 1
                    raise ApiError(429, "RATE_LIMITS", "You have reached your secondly limit.", body={
                        "status": "error", "message": "You have reached your secondly limit.",
                        "correlationId": correlation_id(), "category": "RATE_LIMITS"})
                self._search.append(now)
                self._daily_used += 1
                return {}
            window = self._windows.setdefault(app_id, deque())
            while window and window[0] <= now - lim.window_s:
                window.popleft()
            if len(window) >= self._burst(kind):
                self.refused += 1
                raise self._refusal("TEN_SECONDLY_ROLLING", "ten_secondly_rolling", app_id, kind,
                                    self._headers(app_id, kind, now))
            window.append(now)
            self._daily_used += 1
            return self._headers(app_id, kind, now)

    def _burst(self, kind: str) -> int:
        return self.limits.burst if kind == "private" else self.limits.oauth_burst

    def _headers(self, app_id: int, kind: str, now: float) -> dict[str, str]:
        lim = self.limits
        used = len(self._windows.get(app_id, ()))
        burst = self._burst(kind)
        headers = {"X-HubSpot-RateLimit-Max": str(burst),
                   "X-HubSpot-RateLimit-Remaining": str(max(0, burst - used)),
                   "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(lim.window_s * 1000))}
        if kind == "private":  # OAuth apps get no daily headers
            headers["X-HubSpot-RateLimit-Daily"] = str(lim.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, lim.daily - self._daily_used))
        return headers

    def _refusal(self, policy: str, label: str, app_id: int, kind: str, headers: dict[str, str]) -> ApiError:
        group = f"publicapi:{'private_app' if kind == 'private' else 'oauth_app'}-api-calls-" \
                f"{'daily' if policy == 'DAILY' else 'ten-secondly'}:{app_id}:{self.portal_id}"
        body = {"status": "error", "message": f"You have reached your {label} limit.", "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(), "policyName": policy, "groupName": group}
        return ApiError(429, "RATE_LIMITS", body["message"], body=body, headers=headers)

    def usage(self) -> dict[str, int]:
        """Daily calls used and calls refused so far."""
        with self._lock:
            self._roll_day()
            return {"daily_used": self._daily_used, "refused": self.refused}

    def reset(self) -> None:
        """Forget all counted calls."""
        with self._lock:
            self._windows.clear()
            self._search.clear()
            self._daily_used = 0
            self.refused = 0
