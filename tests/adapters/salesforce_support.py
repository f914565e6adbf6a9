"""Shared pieces of the Salesforce adapter tests: one sandbox per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapters.base import ConnectionInfo
from adapters.salesforce import SalesforceAdapter
from adapters.salesforce.catalog import clear_cache
from sandbox.salesforce import SalesforceSandbox


class Org:
    """A running sandbox plus helpers to drive its test hooks."""

    def __init__(self, sandbox: SalesforceSandbox) -> None:
        self.sandbox = sandbox
        self.info = sandbox.info
        self.url = sandbox.info["instance_url"]

    def hook(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        """Call a /__sandbox__ hook and return its JSON."""
        r = requests.request(method, f"{self.url}/__sandbox__/{path}", json=body, verify=self.info["ca_bundle"], timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def stats(self) -> dict[str, int]:
        """API calls by endpoint since the last reset (the test hooks themselves left out)."""
        counts = self.hook("stats", method="GET")["by_endpoint"]
        return {k: v for k, v in counts.items() if "/__sandbox__" not in k}

    def options(self, **extra: Any) -> dict[str, Any]:
        """Connection options for this sandbox (its private CA and login host)."""
        return {"ca_bundle": self.info["ca_bundle"], "login_url": self.url, "retry_backoff_seconds": 0.01, **extra}

    def adapter(self, secrets: dict[str, Any] | None = None, *, org_id: str | None = None, **options: Any) -> SalesforceAdapter:
        """An adapter on this org (an access token unless other secrets are given)."""
        info = ConnectionInfo(1, "sandbox", "salesforce", self.url, org_id or self.info["organization_id"], self.options(**options))
        return SalesforceAdapter(info, secrets if secrets is not None else {"access_token": self.info["access_token"]})

    def password_secrets(self, **extra: Any) -> dict[str, Any]:
        """Credentials for the OAuth password grant."""
        i = self.info
        return {"client_id": i["client_id"], "client_secret": i["client_secret"], "username": i["username"],
                "password": i["password"], **extra}

    def count(self, sobject: str, *, deleted: bool = True) -> int:
        """Records of an object in the org (deleted ones included by default)."""
        return int(self.sandbox.org.count(sobject, deleted=deleted))


def later() -> datetime:
    """An upper bound just past the org's clock."""
    return datetime.now(UTC) + timedelta(seconds=5)


@pytest.fixture(scope="module", name="sf_sandbox")
def sf_sandbox_fixture() -> Iterator[SalesforceSandbox]:
    """One small-world sandbox per test module."""
    sandbox = SalesforceSandbox(size="small", seed=0).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(name="org")
def org_fixture(sf_sandbox: SalesforceSandbox) -> Org:
    """The module's sandbox, reloaded from the world, with no faults and fresh statistics."""
    clear_cache()
    o = Org(sf_sandbox)
    o.hook("reset")
    o.hook("stats", method="DELETE")
    o.info["access_token"] = sf_sandbox.sb.auth.new_session()
    return o
