"""`HubSpotSandbox`: a seeded portal served over HTTP on 127.0.0.1 from a background thread.

    with HubSpotSandbox(size="small", seed=0) as sb:
        client = HubSpot(access_token=sb.info["access_token"], host=sb.info["api_base"])
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.hubspot.faults import Faults, Stats
from sandbox.hubspot.meta_api import MetaApi
from sandbox.hubspot.mutate import Mutator
from sandbox.hubspot.oauth import OAuthServer
from sandbox.hubspot.objects_api import ObjectsApi
from sandbox.hubspot.ratelimit import Limits, RateLimiter
from sandbox.hubspot.search import SearchLimits
from sandbox.hubspot.seed import Seeded, seed
from sandbox.hubspot.server import App
from sandbox.hubspot.store import Portal
from sandbox.hubspot.values import now_ms
from sandbox.hubspot.webhooks import APPS, WebhookSender, WebhookSettings, parse_subscriptions

log = logging.getLogger(__name__)

# What `--webhook-url` subscribes to unless told otherwise: the scoring inputs, never the score fields.
DEFAULT_SUBSCRIPTIONS = [
    *({"subscriptionType": f"{o}.{k}"} for o in ("contact", "company", "deal", "ticket")
      for k in ("creation", "deletion", "merge", "restore", "associationChange")),
    *({"subscriptionType": "deal.propertyChange", "propertyName": p}
      for p in ("dealstage", "amount", "closedate", "dealtype")),
    *({"subscriptionType": "ticket.propertyChange", "propertyName": p}
      for p in ("hs_pipeline_stage", "hs_ticket_priority", "csat_score", "is_escalated", "reopen_count")),
    *({"subscriptionType": "contact.propertyChange", "propertyName": p}
      for p in ("email", "jobtitle", "notes_last_updated")),
    *({"subscriptionType": "company.propertyChange", "propertyName": p}
      for p in ("name", "domain", "numberofemployees", "annualrevenue")),
]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (the sandbox answers thousands per second)."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        if type == "error":
            log.debug(message, *args)


class HubSpotSandbox:
    """One fake HubSpot account with its API server, OAuth app, limits, faults and webhook sender."""

    def __init__(self, size: str = "small", seed: int = 0, *, accounts: int | None = None,
                 bundles: Iterable[Any] | None = None, world_owners: Iterable[Any] | None = None,
                 host: str = "127.0.0.1", port: int = 0, portal_id: int | None = None,
                 rate_limits: bool = True, burst: int = 190, oauth_burst: int = 110, daily: int = 1_000_000,
                 search_per_second: int = 5, time_zone: str = "America/New_York", search_lag_s: float = 2.0,
                 filters_per_group: int = 6, filters_total: int = 18, token_ttl_s: float = 1800.0,
                 webhook_url: str | None = None,
                 webhook_subscriptions: list[dict[str, Any]] | None = None,
                 webhook_retry_horizon_s: float = 86_400.0, webhook_batch_window_s: float = 0.05,
                 webhook_timeout_s: float = 5.0, webhook_max_concurrent: int = 10,
                 webhook_app: str = "private", engagements: bool = True) -> None:
        self.size, self.seed, self.accounts = size, seed, accounts
        self.engagements = engagements  # False: no calls/emails/meetings (about half the memory on big worlds)
        self._bundles = list(bundles) if bundles is not None else None  # kept for reset()
        self._world_owners = list(world_owners or [])
        self.host, self.port = host, port
        self.portal_id = portal_id or 40_000_000 + zlib.crc32(f"{size}:{seed}".encode()) % 9_000_000
        self.store = Portal(self.portal_id)
        self.oauth = OAuthServer(self.portal_id, seed=seed, token_ttl_s=token_ttl_s)
        # the daily allowance restarts at midnight in `time_zone`, the portal's (an IANA name)
        self.limiter = RateLimiter(
            Limits(rate_limits, burst, oauth_burst, 10.0, daily, search_per_second, time_zone), self.portal_id)
        self.search_limits = SearchLimits(filters_per_group, filters_total, int(search_lag_s * 1000))
        self.faults, self.stats = Faults(), Stats()
        subs = parse_subscriptions(webhook_subscriptions if webhook_subscriptions is not None
                                   else DEFAULT_SUBSCRIPTIONS if webhook_url else [], start_id=100_001)
        if webhook_app not in APPS:
            raise ValueError(f"webhook_app must be one of {', '.join(APPS)}, not {webhook_app!r}")
        # a private app signs with its own secret, a public (OAuth) app with its client secret
        apps = {"private": (self.oauth.private_app_id, self.oauth.app_secret),
                "public": (self.oauth.public_app_id, self.oauth.client_secret)}
        self.webhooks = WebhookSender(self.portal_id, apps, WebhookSettings(
            webhook_url, webhook_app, webhook_max_concurrent, webhook_batch_window_s, 100, webhook_retry_horizon_s,
            10, webhook_timeout_s, subs))
        self.store.listeners.append(self.webhooks.on_store_events)
        self.seeded = Seeded()
        self.objects_api = ObjectsApi(self.store, "", self.search_limits)
        self.meta_api = MetaApi(self.store, "", [])
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._mutations = 0
        self._seed_world()

    # -- world ---------------------------------------------------------------------------------

    def _seed_world(self) -> None:
        bundles: Iterable[Any]
        owners: Iterable[Any]
        if self._bundles is not None:
            bundles, owners = self._bundles, self._world_owners
        else:
            from sandbox import world

            bundles = world.generate(self.size, self.seed, now=world.today(), accounts=self.accounts)
            owners = world.owners(self.seed)
        self.seeded = seed(self.store, bundles, owners, now_ms(), engagements=self.engagements)
        self.meta_api.owners = self.seeded.owners

    def id_of(self, world_key: str) -> str:
        """The HubSpot id of a world record (account, contact, deal, case or activity key)."""
        return str(self.seeded.ids[world_key][1])

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> HubSpotSandbox:
        """Bind (port 0 = any free port) and serve from a background thread."""
        if self._server is not None:
            return self
        self._server = make_server(self.host, self.port, App(self), threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.objects_api.base_url = self.meta_api.base_url = self.api_base
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hubspot-sandbox-{self.port}", daemon=True)
        self._thread.start()
        self.webhooks.start()
        return self

    def stop(self) -> None:
        """Stop serving and delivering; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.webhooks.stop()
        self._server = None

    def __enter__(self) -> HubSpotSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        """`http://127.0.0.1:PORT` (only meaningful once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def info(self) -> dict[str, Any]:
        """What a client needs to connect."""
        return {"api_base": self.api_base, "access_token": self.oauth.private_token,
                "client_id": self.oauth.client_id, "client_secret": self.oauth.client_secret,
                "app_secret": self.oauth.app_secret, "portal_id": self.portal_id,
                "app_id": self.oauth.private_app_id, "authorize_url": f"{self.api_base}/oauth/authorize"}

    # -- knobs ---------------------------------------------------------------------------------

    def configure(self, *, search_lag_s: float | None = None, filters_per_group: int | None = None,
                  filters_total: int | None = None, token_ttl_s: float | None = None) -> None:
        """Change search limits, index lag or the OAuth token lifetime."""
        s = self.search_limits
        self.search_limits = SearchLimits(
            filters_per_group if filters_per_group is not None else s.filters_per_group,
            filters_total if filters_total is not None else s.filters_total,
            int(search_lag_s * 1000) if search_lag_s is not None else s.lag_ms)
        self.objects_api.limits = self.search_limits
        if token_ttl_s is not None:
            self.oauth.token_ttl_ms = int(token_ttl_s * 1000)

    def config_json(self) -> dict[str, Any]:
        """The current search and token settings."""
        s = self.search_limits
        return {"search_lag_s": s.lag_ms / 1000, "filters_per_group": s.filters_per_group,
                "filters_total": s.filters_total, "token_ttl_s": self.oauth.token_ttl_ms / 1000}

    def mutate(self, count: int, *, seed: int | None = None, kinds: list[str] | None = None) -> list[dict]:
        """Apply `count` realistic UI changes (seeded; successive calls continue the sequence)."""
        self._mutations += 1
        run_seed = seed if seed is not None else self.seed * 1_000_003 + self._mutations
        return Mutator(self.store, self.seeded.owners, run_seed).run(count, kinds)

    def reset(self) -> None:
        """Back to the freshly seeded portal: records, tokens, counters, faults and queued webhooks."""
        with self.store.lock:
            self.store.reset()
            self._seed_world()
        self.oauth.reset()
        self.limiter.reset()
        self.stats.reset()
        self.faults.configure(type(self.faults.config)())
        self.webhooks.clear()
