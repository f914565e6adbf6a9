"""What `rapport demo` runs in its own process: the Rapport web app on a free port of 127.0.0.1 and
the two CRM sandboxes, plus the admin settings a real org would make (where webhooks go, and for what).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from adapters.hubspot import settings as hs
from adapters.salesforce import mapping as sf_mapping
from adapters.salesforce import settings as S

if TYPE_CHECKING:
    from connector.config import Settings


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log line per webhook delivery."""


class WebApp:
    """A threaded werkzeug server on 127.0.0.1 (port 0: a free one) serving the app given to `serve`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app: Callable[..., Iterable[bytes]] | None = None
        self.server: BaseWSGIServer = make_server(host, port, self._dispatch, threaded=True,
                                                  request_handler=_QuietHandler)
        # The URL is known before the app is built, so the app's settings can name it (signed webhooks).
        self.url = f"http://{host}:{self.server.server_port}"
        self._thread: threading.Thread | None = None

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
            return [b"starting"]
        return self.app(environ, start_response)

    def serve(self, app: Callable[..., Iterable[bytes]]) -> None:
        """Serve `app` from a background thread."""
        self.app = app
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="rapport-web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server.server_close()


@dataclass
class Sandboxes:
    """The two sandboxes, started."""

    salesforce: Any
    hubspot: Any

    def stop(self) -> None:
        """Stop both (each stop is safe to call twice)."""
        for sb in (self.salesforce, self.hubspot):
            if sb is not None:
                sb.stop()


def start_sandboxes(size: str, seed: int, accounts: int | None = None) -> Sandboxes:
    """Start a Salesforce org and a HubSpot portal, seeded from the same synthetic world."""
    from sandbox.hubspot import HubSpotSandbox
    from sandbox.salesforce import SalesforceSandbox

    sf = SalesforceSandbox(size=size, seed=seed, accounts=accounts).start()
    try:
        portal = HubSpotSandbox(size=size, seed=seed, accounts=accounts).start()
    except BaseException:
        sf.stop()
        raise
    return Sandboxes(sf, portal)


def outbound_rules(read: dict[str, dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Salesforce Outbound Message rules: per object Rapport reads, the plain fields its mapping reads."""
    rules = {}
    for object, specs in read.items():
        if object in S.OBJECTS:
            fields = [f for f in sf_mapping.selected_fields(specs) if "." not in f]
            rules[S.OBJECTS[object]] = list(dict.fromkeys([*fields, S.STAMP_FIELD]))
    return rules


def hubspot_subscriptions(read: dict[str, dict[str, dict[str, Any]]], own: Iterable[str]) -> list[dict[str, str]]:
    """HubSpot webhook subscriptions: record events and changes of the properties Rapport reads.

    Never our own score properties, nor the last-modified stamps our writes bump, so a write-back
    does not come back as a webhook.
    """
    skip = {*own, *hs.MODIFIED_PROPERTY.values(), hs.MERGED_IDS_PROPERTY}
    subs: list[dict[str, str]] = []
    for event_object, object in hs.WEBHOOK_OBJECTS.items():
        if object not in read or object not in hs.OBJECTS:
            continue
        subs += [{"subscriptionType": f"{event_object}.{kind}"}
                 for kind in ("creation", "deletion", "merge", "restore", "associationChange")]
        subs += [{"subscriptionType": f"{event_object}.propertyChange", "propertyName": p}
                 for p in hs.PROPERTIES[hs.OBJECTS[object]] if p not in skip]
    return subs


def _session() -> requests.Session:
    sess = requests.Session()
    sess.trust_env = False  # the sandbox is on 127.0.0.1: no proxy, no system CA bundle override
    return sess


def hubspot_hook(portal: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call one of the HubSpot sandbox's /__sandbox__/ hooks (the app settings of a real portal)."""
    with _session() as sess:
        resp = sess.request(method, f"{portal.api_base}/__sandbox__/{path}", json=body, timeout=60)
    resp.raise_for_status()
    return resp.json()


def settle(sandboxes: Sandboxes, timeout: float = 30.0) -> bool:
    """Wait until both sandboxes have delivered every queued webhook; False if they have not in time."""
    deadline = time.monotonic() + timeout
    while sandboxes.salesforce.hook("GET", "outbound")["pending"]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    left = max(0.1, deadline - time.monotonic())
    return bool(hubspot_hook(sandboxes.hubspot, "POST", "webhooks/flush", {"timeout": left})["idle"])


def api_usage(sandboxes: Sandboxes) -> dict[str, int]:
    """API calls each CRM has counted against its daily allocation so far (token grants excluded)."""
    return {"salesforce": int(sandboxes.salesforce.hook("GET", "stats")["api_usage"]["used"]),
            "hubspot": int(hubspot_hook(sandboxes.hubspot, "GET", "stats")["limits"]["daily_used"])}


def pump(settings: Settings) -> int:
    """Work whatever the embedded queue holds (webhook jobs the web app enqueued); how many ran."""
    from connector.queues import drain, queues_for

    return drain(settings) if any(q.count for q in queues_for(settings)) else 0


def drain_events(engine: Any, settings: Settings, connection_ids: list[int], timeout: float = 30.0) -> None:
    """Work the queue until no webhook event of these connections is waiting."""
    import sqlalchemy as sa

    from connector.model import WebhookEvent

    e = WebhookEvent.__table__  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        pump(settings)
        with engine.connect() as conn:
            waiting = conn.execute(sa.select(sa.func.count()).select_from(e).where(
                e.c.connection_id.in_(connection_ids), e.c.status.in_(("pending", "processing")))).scalar_one()
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{waiting} webhook event(s) still waiting after {timeout:.0f}s")
        time.sleep(0.2)
