"""Fixtures for the Salesforce sandbox tests: a running sandbox and the real simple-salesforce client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

from sandbox.salesforce import SalesforceSandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SalesforceSandbox]:
    """The small world (seed 0) on a free port, stopped after the module."""
    sb = SalesforceSandbox("small", seed=0).start()
    try:
        yield sb
    finally:
        sb.stop()


def client(sb: SalesforceSandbox, token: str | None = None) -> Salesforce:
    """simple-salesforce pointed at the sandbox with a session that trusts its CA."""
    return Salesforce(instance_url=sb.info["instance_url"], session_id=token or sb.info["access_token"],
                      session=sb.session())


@pytest.fixture
def sf(sandbox: SalesforceSandbox) -> Salesforce:
    """A client on the module's sandbox."""
    return client(sandbox)


class LoginHostAdapter(HTTPAdapter):
    """Sends simple-salesforce's fixed https://login.salesforce.com calls to the sandbox instead."""

    def __init__(self, instance_url: str) -> None:
        super().__init__()
        self.instance_url = instance_url

    def send(self, request: requests.PreparedRequest, **kwargs):  # type: ignore[no-untyped-def, override]
        for host in ("https://login.salesforce.com", "https://test.salesforce.com"):
            if request.url and request.url.startswith(host):
                request.url = self.instance_url + request.url[len(host):]
        return super().send(request, **kwargs)


def login_session(sb: SalesforceSandbox) -> requests.Session:
    """A session for simple-salesforce's own logins (its login host is rewritten to the sandbox)."""
    sess = sb.session()
    sess.mount("https://", LoginHostAdapter(sb.info["instance_url"]))
    return sess
