"""Webhook delivery: subscriptions, batching (≤100 events, ≤10 requests in flight), v1 + v3 signatures, retries.

Failed deliveries (non-2xx, timeout, refused connection) are retried up to 10 times with growing,
jittered gaps spread over `retry_horizon_s`, each time with `attemptNumber` one higher.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import urllib3
from hubspot.utils.signature import Signature

from sandbox.hubspot.associations import TYPES
from sandbox.hubspot.errors import ApiError
from sandbox.hubspot.schema import SINGULAR, WEBHOOK_TYPES
from sandbox.hubspot.values import now_ms

log = logging.getLogger(__name__)
KINDS = ("creation", "deletion", "propertyChange", "merge", "associationChange", "restore")
USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon"
# v3 signs the URI with these escapes decoded (HubSpot's validating-requests guide); receivers do the same.
# Every other escape (%20, %3D, %25, ...) stays as it is; hex digits match in either case (RFC 3986).
URI_DECODES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
               "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_ESCAPE = re.compile("|".join(URI_DECODES), re.IGNORECASE)
# which app's secret signs: a private app's own secret, or a public (OAuth) app's client secret
APPS = ("private", "public")


def signed_uri(url: str) -> str:
    """The target URL as the v3 signature covers it: the 12 escapes decoded in one pass, nothing else."""
    return _ESCAPE.sub(lambda m: URI_DECODES[m.group(0).upper()], url)


@dataclass
class Subscription:
    """One subscription: `contact.propertyChange` needs a propertyName."""

    id: int
    subscription_type: str
    property_name: str | None = None
    active: bool = True

    def json(self) -> dict[str, Any]:
        """As the test hook reports it."""
        return {"id": self.id, "subscriptionType": self.subscription_type, "propertyName": self.property_name,
                "active": self.active}


@dataclass
class WebhookSettings:
    """Where and how to deliver."""

    target_url: str | None = None
    app: str = "private"  # whose subscriptions these are: "private" app or "public" (OAuth) app
    max_concurrent: int = 10
    batch_window_s: float = 0.05
    max_batch: int = 100
    retry_horizon_s: float = 86_400.0
    max_retries: int = 10
    timeout_s: float = 5.0
    subscriptions: list[Subscription] = field(default_factory=list)


def parse_subscriptions(raw: Any, start_id: int) -> list[Subscription]:
    """Subscriptions from `[{subscriptionType, propertyName?, active?}]`, checked."""
    if not isinstance(raw, list):
        raise ApiError(400, "VALIDATION_ERROR", "`subscriptions` must be a list.")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(400, "VALIDATION_ERROR", f"Subscription {i} must be an object.")
        stype = str(item.get("subscriptionType") or item.get("eventType") or "")
        obj, _, kind = stype.partition(".")
        if obj not in {SINGULAR[t] for t in WEBHOOK_TYPES} or kind not in KINDS:
            raise ApiError(400, "VALIDATION_ERROR", f"Unknown subscriptionType {stype!r}; use "
                           f"<contact|company|deal|ticket>.<{'|'.join(KINDS)}>.")
        prop = item.get("propertyName")
        if kind == "propertyChange" and not prop:
            raise ApiError(400, "VALIDATION_ERROR", f"{stype} needs a propertyName.")
        out.append(Subscription(start_id + i, stype, prop if kind == "propertyChange" else None,
                                bool(item.get("active", True))))
    return out


@dataclass(order=True)
class _Batch:
    due: float
    seq: int
    events: list[dict] = field(compare=False)
    attempt: int = field(compare=False, default=0)


class WebhookSender:
    """Turns store events into signed, batched, retried POSTs to the target URL."""

    def __init__(self, portal_id: int, apps: dict[str, tuple[int, str]], settings: WebhookSettings) -> None:
        self.portal_id = portal_id
        self.apps = apps  # "private" | "public" -> (app id, secret that signs its requests)
        self.settings = settings
        self._cond = threading.Condition()
        self._pending: list[dict] = []
        self._retries: list[_Batch] = []
        self._in_flight = 0
        self._seq = itertools.count()
        self._event_ids = itertools.count(random.Random(portal_id).randrange(1_000_000, 9_000_000))
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http = urllib3.PoolManager(maxsize=16, retries=False)
        self.deliveries: list[dict[str, Any]] = []

    # -- events in -------------------------------------------------------------------------------

    def on_store_events(self, events: list[dict[str, Any]]) -> None:
        """Store listener: keep the events some active subscription asks for."""
        s = self.settings
        if not s.target_url or not s.subscriptions:
            return
        out = []
        for ev in events:
            if ev["objectType"] not in WEBHOOK_TYPES:
                continue
            stype = f"{SINGULAR[ev['objectType']]}.{ev['kind']}"
            for sub in s.subscriptions:
                if not sub.active or sub.subscription_type != stype:
                    continue
                if sub.property_name and sub.property_name != ev.get("propertyName"):
                    continue
                out.append(self._payload(ev, sub))
        if out:
            with self._cond:
                self._pending.extend(out)
                self._cond.notify_all()

    def _payload(self, ev: dict[str, Any], sub: Subscription) -> dict[str, Any]:
        p: dict[str, Any] = {"eventId": next(self._event_ids), "subscriptionId": sub.id, "portalId": self.portal_id,
                             "appId": self.apps[self.settings.app][0], "occurredAt": ev["occurredAt"],
                             "subscriptionType": sub.subscription_type, "attemptNumber": 0,
                             "objectId": ev["objectId"], "changeSource": ev["changeSource"]}
        if ev.get("sourceId"):
            p["sourceId"] = ev["sourceId"]
        kind = ev["kind"]
        if kind in ("creation", "deletion"):
            p["changeFlag"] = ev["changeFlag"]
        elif kind == "propertyChange":
            p.update(propertyName=ev["propertyName"], propertyValue=ev["propertyValue"], isSensitive=False)
        elif kind == "merge":
            p.update(primaryObjectId=ev["primaryObjectId"], mergedObjectIds=ev["mergedObjectIds"],
                     newObjectId=ev["newObjectId"], numberOfPropertiesMoved=ev["numberOfPropertiesMoved"])
        elif kind == "associationChange":
            at = TYPES[(ev["objectType"], ev["toObjectType"], ev["associationTypeId"])]
            p.update(associationType=f"{SINGULAR[at.from_type]}_TO_{SINGULAR[at.to_type]}".upper(),
                     fromObjectId=ev["fromObjectId"], toObjectId=ev["toObjectId"],
                     associationRemoved=ev["associationRemoved"], isPrimaryAssociation=at.label == "Primary",
                     associationTypeId=at.type_id, associationCategory="HUBSPOT_DEFINED")
            p.pop("objectId", None)
        return p

    # -- delivery ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher thread and the sending pool."""
        self._stop = False
        # the dispatcher keeps at most `max_concurrent` in flight; the pool only needs to be big enough
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hubspot-webhook")
        self._thread = threading.Thread(target=self._run, name="hubspot-webhook-dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching; requests in flight finish (bounded by the timeout), queued ones are dropped."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending, in flight or due for retry within `timeout`; True if idle."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight or self._retries:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def _run(self) -> None:
        s = self.settings
        while True:
            with self._cond:
                while not self._stop:
                    now = time.monotonic()
                    ready_retry = self._retries and self._retries[0].due <= now
                    if (self._pending or ready_retry) and self._in_flight < max(1, s.max_concurrent):
                        break
                    wait = 0.5
                    if self._retries:
                        wait = min(wait, max(0.0, self._retries[0].due - now))
                    self._cond.wait(wait if wait > 0 else 0.01)
                if self._stop:
                    return
                if self._retries and self._retries[0].due <= time.monotonic():
                    batch = heapq.heappop(self._retries)
                else:
                    deadline = time.monotonic() + s.batch_window_s  # let a burst gather into one request
                    while len(self._pending) < s.max_batch and not self._stop:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if self._stop:
                        return
                    events, self._pending = self._pending[:s.max_batch], self._pending[s.max_batch:]
                    if not events:
                        continue
                    batch = _Batch(0.0, next(self._seq), events)
                self._in_flight += 1
            assert self._pool is not None
            try:
                self._pool.submit(self._deliver, batch)
            except RuntimeError:  # pool shut down while stopping
                return

    def _deliver(self, batch: _Batch) -> None:
        s = self.settings
        events = [dict(e, attemptNumber=batch.attempt) for e in batch.events]
        body = json.dumps(events, separators=(",", ":"))
        url = s.target_url or ""
        ts = str(now_ms())
        secret = self.apps[s.app][1]  # HubSpot signs with the secret of the app that owns the subscriptions
        headers = {
            "Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-HubSpot-Signature": Signature.get_signature(secret, body, "v1"),
            "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": Signature.get_signature(secret, body, "v3", http_uri=signed_uri(url),
                                                              http_method="POST", timestamp=ts),
            "X-HubSpot-Request-Timestamp": ts,
        }
        status, error = None, None
        try:
            resp = self._http.request("POST", url, body=body.encode(), headers=headers,
                                      timeout=urllib3.Timeout(total=s.timeout_s))
            status = resp.status
        except Exception as exc:  # connection refused, timeout: HubSpot retries these too
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        with self._cond:
            self.deliveries.append({"batch": batch.seq, "attemptNumber": batch.attempt, "events": len(events),
                                    "status": status, "error": error, "at": now_ms()})
            if len(self.deliveries) > 10_000:
                del self.deliveries[:1000]
            if not ok and batch.attempt < s.max_retries and not self._stop:
                gap = s.retry_horizon_s * (2 ** (batch.attempt + 1)) / (2 ** (s.max_retries + 1) - 2)
                batch.due = time.monotonic() + gap * random.uniform(0.8, 1.2)
                batch.attempt += 1
                heapq.heappush(self._retries, batch)
            elif not ok:
                log.warning("webhook batch %s dropped after %s attempts", batch.seq, batch.attempt + 1)
            self._in_flight -= 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Drop queued events, scheduled retries and the delivery log."""
        with self._cond:
            self._pending.clear()
            self._retries.clear()
            self.deliveries.clear()
