"""Test hooks under `/__sandbox__/`: info, stats, faults, limits, config, mutations, webhooks, reset.

No authentication and no rate limits: these are for the test or demo that owns the sandbox.

    GET    info                  what a client needs (same as `HubSpotSandbox.info`)
    GET    stats                 calls by "METHOD /path" and status, limiter usage, injected faults
    DELETE stats                 start counting again
    PUT    faults                {error_rate, statuses: [500|502|503|504], rate_limit_rate, slow_rate,
                                  slow_seconds, truncate_rate, path_prefix="/crm/", seed}; DELETE clears
    PUT    limits                {enabled, burst, oauth_burst, window_s, daily, search_per_second}
    PUT    config                {search_lag_s, filters_per_group, filters_total, token_ttl_s}
    POST   mutate                {count, seed?, kinds?} -> {applied: [{kind, objectType, id}]}
    PUT    webhooks              {targetUrl, app: "private"|"public" (whose secret signs),
                                  subscriptions: [{subscriptionType, propertyName?}],
                                  maxConcurrentRequests, maxBatch, batchWindowSeconds, retryHorizonSeconds,
                                  maxRetries, timeoutSeconds}
    GET    webhooks/deliveries   every delivery attempt: batch, attemptNumber, events, status, error
    POST   webhooks/flush        {timeout} -> {idle}: wait for queued, in-flight and retried deliveries
    POST   oauth/expire          every issued OAuth access token expires now
    POST   reset                 back to the freshly seeded portal
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from werkzeug.wrappers import Request

from sandbox.hubspot.errors import ApiError, not_found, validation
from sandbox.hubspot.faults import FaultConfig
from sandbox.hubspot.webhooks import APPS, parse_subscriptions

if TYPE_CHECKING:
    from sandbox.hubspot.sandbox import HubSpotSandbox

LIMIT_KEYS = {"enabled": bool, "burst": int, "oauth_burst": int, "window_s": float, "daily": int,
              "search_per_second": int}
CONFIG_KEYS = {"search_lag_s": float, "filters_per_group": int, "filters_total": int, "token_ttl_s": float}
WEBHOOK_KEYS = {"targetUrl": "target_url", "app": "app", "maxConcurrentRequests": "max_concurrent",
                "batchWindowSeconds": "batch_window_s", "maxBatch": "max_batch",
                "retryHorizonSeconds": "retry_horizon_s", "maxRetries": "max_retries", "timeoutSeconds": "timeout_s"}


def _body(request: Request) -> Any:
    data = request.get_data(cache=False)
    if not data:
        return {}
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise validation(f"Invalid input JSON: {exc}") from exc


def _typed(body: Any, keys: dict[str, type]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation("The body must be a JSON object.")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise validation(f"Unknown settings: {', '.join(unknown)}; known: {', '.join(keys)}.")
    try:
        return {k: keys[k](v) for k, v in body.items()}
    except (TypeError, ValueError) as exc:
        raise validation(f"Bad setting value: {exc}") from exc


def handle(sb: HubSpotSandbox, method: str, hook: str, request: Request) -> tuple[int, Any]:
    """Dispatch one hook call; returns (status, JSON body)."""
    hook = hook.strip("/")
    if hook == "info" and method == "GET":
        return 200, sb.info
    if hook == "stats":
        if method == "DELETE":
            sb.stats.reset()
            return 200, sb.stats.snapshot()
        return 200, dict(sb.stats.snapshot(), limits=sb.limiter.usage(), faults=sb.faults.describe())
    if hook == "faults":
        if method in ("PUT", "POST"):
            sb.faults.configure(FaultConfig.parse(_body(request)))
        elif method == "DELETE":
            sb.faults.configure(FaultConfig())
        return 200, sb.faults.describe()
    if hook == "limits":
        if method in ("PUT", "POST", "PATCH"):
            for key, value in _typed(_body(request), LIMIT_KEYS).items():
                setattr(sb.limiter.limits, key, value)
        return 200, dataclasses.asdict(sb.limiter.limits)
    if hook == "config":
        if method in ("PUT", "POST", "PATCH"):
            sb.configure(**_typed(_body(request), CONFIG_KEYS))
        return 200, sb.config_json()
    if hook == "mutate" and method == "POST":
        body = _body(request)
        if not isinstance(body, dict):
            raise validation("The body must be a JSON object: {count, seed?, kinds?}.")
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError) as exc:
            raise validation("count must be a number.") from exc
        if not 0 < count <= 100_000:
            raise validation("count must be between 1 and 100000.")
        return 200, {"applied": sb.mutate(count, seed=body.get("seed"), kinds=body.get("kinds"))}
    if hook == "webhooks":
        if method in ("PUT", "POST"):
            configure_webhooks(sb, _body(request))
        return 200, webhooks_json(sb)
    if hook == "webhooks/deliveries" and method == "GET":
        return 200, {"results": list(sb.webhooks.deliveries)}
    if hook == "webhooks/flush" and method == "POST":
        body = _body(request)
        return 200, {"idle": sb.webhooks.flush(float(body.get("timeout", 10.0)))}
    if hook == "oauth/expire" and method == "POST":
        return 200, {"expired": sb.oauth.expire_access_tokens()}
    if hook == "reset" and method == "POST":
        sb.reset()
        return 200, {"reset": True}
    raise not_found(f"No test hook {method} /__sandbox__/{hook}")


def configure_webhooks(sb: HubSpotSandbox, body: Any) -> None:
    """Apply `{targetUrl?, subscriptions?, maxConcurrentRequests?, ...}` to the webhook sender."""
    if not isinstance(body, dict):
        raise validation("The body must be a JSON object.")
    unknown = sorted(set(body) - set(WEBHOOK_KEYS) - {"subscriptions"})
    if unknown:
        raise validation(f"Unknown webhook settings: {', '.join(unknown)}.")
    settings = sb.webhooks.settings
    if "subscriptions" in body:
        settings.subscriptions = parse_subscriptions(body["subscriptions"], start_id=100_001)
    for key, attr in WEBHOOK_KEYS.items():
        if key in body:
            value = body[key]
            if attr == "target_url":
                if value is not None and not str(value).startswith(("http://", "https://")):
                    raise validation("targetUrl must be an absolute http(s) URL.")
            elif attr == "app":
                if value not in APPS:
                    raise validation(f"app must be one of {', '.join(APPS)} (whose secret signs the requests).")
            elif attr in ("max_concurrent", "max_batch", "max_retries"):
                value = int(value)
                if value < 1 or (attr == "max_batch" and value > 100):
                    raise ApiError(400, "VALIDATION_ERROR", f"{key} is out of range.")
            else:
                value = float(value)
            setattr(settings, attr, value)


def webhooks_json(sb: HubSpotSandbox) -> dict[str, Any]:
    """The webhook settings as the hook reports them."""
    s = sb.webhooks.settings
    return {"targetUrl": s.target_url, "maxConcurrentRequests": s.max_concurrent,
            "batchWindowSeconds": s.batch_window_s, "maxBatch": s.max_batch,
            "retryHorizonSeconds": s.retry_horizon_s, "maxRetries": s.max_retries, "timeoutSeconds": s.timeout_s,
            "subscriptions": [sub.json() for sub in s.subscriptions], "app": s.app, "appId": sb.webhooks.apps[s.app][0]}
