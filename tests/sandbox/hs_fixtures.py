"""Fixtures for the HubSpot sandbox tests: a running sandbox and the real hubspot-api-client.

The client runs with `client_side_validation=True`, so every response is checked against the
client's own models (required fields, enums) as it is deserialized.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from sandbox.hubspot import HubSpotSandbox

ACCOUNTS = 12  # a dozen accounts: ~130 contacts, ~50 deals, ~65 tickets, ~350 engagements


@pytest.fixture(scope="module")
def hubspot_sandbox() -> Iterator[HubSpotSandbox]:
    """A small portal (no index lag, limits off) shared by a module's read-mostly tests."""
    sb = HubSpotSandbox("small", seed=3, accounts=ACCOUNTS, search_lag_s=0, rate_limits=False).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def fresh_sandbox() -> Iterator[HubSpotSandbox]:
    """A portal of the test's own, for tests that change limits, time or webhooks."""
    sb = HubSpotSandbox("small", seed=5, accounts=4, search_lag_s=0).start()
    try:
        yield sb
    finally:
        sb.stop()


def client(sb: HubSpotSandbox, token: str | None = None, **kw: Any) -> HubSpot:
    """The official client pointed at the sandbox, validating every response model."""
    return HubSpot(access_token=token or sb.info["access_token"], host=sb.api_base,
                   client_side_validation=True, **kw)


@pytest.fixture
def hs(hubspot_sandbox: HubSpotSandbox) -> HubSpot:
    """A client on the module's sandbox."""
    return client(hubspot_sandbox)


def raw(sb: HubSpotSandbox, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
    """A plain HTTP call, for what the client cannot send (comma lists, bad bodies) or hides (headers)."""
    headers = {"Authorization": f"Bearer {token or sb.info['access_token']}"} if token != "" else {}
    return requests.request(method, sb.api_base + path, headers=headers, timeout=10, **kw)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every delivery and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/hubspot?tenant=acme%3Aeu&ts=a%2Cb"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _app(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            status = self.statuses.pop(0) if self.statuses else 204
        if self.delay:
            threading.Event().wait(self.delay)
        with self._lock:
            self.in_flight -= 1
            self.requests.append({"headers": dict(request.headers), "body": body, "events": json.loads(body),
                                  "status": status})
        return Response(status=status)(environ, start_response)

    def events(self) -> list[dict[str, Any]]:
        """Every event delivered with a 2xx answer."""
        with self._lock:
            return [e for r in self.requests if 200 <= r["status"] < 300 for e in r["events"]]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
