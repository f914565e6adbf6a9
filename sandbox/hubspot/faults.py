"""Fault injection (server errors, 429s, slow and truncated responses) and call statistics."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.hubspot.errors import ApiError, correlation_id

SERVER_STATUSES = (500, 502, 503, 504)
MIGRATION = 477  # the account's data moving between data centres: HubSpot sends Retry-After (seconds)


@dataclass
class FaultConfig:
    """Shares are per call, 0..1; only paths under `path_prefix` are touched."""

    error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: list(SERVER_STATUSES))
    rate_limit_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    truncate_rate: float = 0.0
    retry_after_s: int = 30  # what a 477 answer asks to wait
    path_prefix: str = "/crm/"
    seed: int | None = None

    @classmethod
    def parse(cls, body: Any) -> FaultConfig:
        """Build from a JSON body, refusing unknown keys and out-of-range shares."""
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "The fault body must be a JSON object.")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApiError(400, "VALIDATION_ERROR", f"Unknown fault settings: {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(cls.__dataclass_fields__)}.")
        cfg = cls(**body)
        for name in ("error_rate", "rate_limit_rate", "slow_rate", "truncate_rate"):
            if not 0.0 <= float(getattr(cfg, name)) <= 1.0:
                raise ApiError(400, "VALIDATION_ERROR", f"{name} must be between 0 and 1.")
        if any(s not in (*SERVER_STATUSES, MIGRATION) for s in cfg.statuses) or not cfg.statuses:
            raise ApiError(400, "VALIDATION_ERROR",
                           f"statuses must be a non-empty subset of {[*SERVER_STATUSES, MIGRATION]}.")
        return cfg


@dataclass
class Decision:
    """What to do to one call."""

    error: ApiError | None = None
    delay: float = 0.0
    truncate: bool = False


class Faults:
    """Draws a fault per call from the configured shares."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.config = FaultConfig()
        self._rng = random.Random()
        self.injected: Counter[str] = Counter()

    def configure(self, cfg: FaultConfig) -> None:
        """Replace the configuration (and reseed when a seed is given)."""
        with self._lock:
            self.config = cfg
            self._rng = random.Random(cfg.seed)

    def draw(self, path: str) -> Decision:
        """The fault (if any) for a call to `path`."""
        cfg = self.config
        if not path.startswith(cfg.path_prefix):
            return Decision()
        with self._lock:
            r = self._rng.random()
            out = Decision()
            if r < cfg.error_rate:
                status = self._rng.choice(cfg.statuses)
                self.injected[str(status)] += 1
                if status == MIGRATION:
                    out.error = ApiError(MIGRATION, "MIGRATION_IN_PROGRESS", "This account is being migrated "
                                         "between data hosting locations.", headers={"Retry-After": str(cfg.retry_after_s)})
                    return out
                message = {500: "internal error", 502: "Bad Gateway", 503: "Service Unavailable",
                           504: "Gateway Timeout"}[status]
                out.error = ApiError(status, "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
                                     message)
                return out
            r -= cfg.error_rate
            if r < cfg.rate_limit_rate:
                self.injected["429"] += 1
                body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                        "errorType": "RATE_LIMIT", "correlationId": correlation_id(), "policyName": "TEN_SECONDLY_ROLLING"}
                out.error = ApiError(429, "RATE_LIMITS", body["message"], body=body)
                return out
            if self._rng.random() < cfg.slow_rate:
                self.injected["slow"] += 1
                out.delay = cfg.slow_seconds
            if self._rng.random() < cfg.truncate_rate:
                self.injected["truncated"] += 1
                out.truncate = True
            return out

    def describe(self) -> dict[str, Any]:
        """Current configuration and what has been injected."""
        return {"config": asdict(self.config), "injected": dict(self.injected)}


class Stats:
    """Calls by endpoint (method + route template) and by status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.by_endpoint_status: Counter[str] = Counter()

    def record(self, endpoint: str, status: int) -> None:
        """Count one answered call."""
        with self._lock:
            self.calls[endpoint] += 1
            self.statuses[str(status)] += 1
            self.by_endpoint_status[f"{endpoint} {status}"] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything counted so far."""
        with self._lock:
            return {"total": sum(self.calls.values()), "calls": dict(self.calls), "statuses": dict(self.statuses),
                    "by_endpoint_status": dict(self.by_endpoint_status)}

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.calls.clear()
            self.statuses.clear()
            self.by_endpoint_status.clear()
