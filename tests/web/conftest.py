"""Fixtures of the web tests: the app on SQLite with the machine's Redis, and two filled workspaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy.engine import Engine

from connector.app import create_app
from connector.db import make_engine
from tests.web.support import Tenant, make_tenant


@pytest.fixture
def web_settings(make_settings, sqlite_url: str, redis_url: str):
    """Test settings on a fresh SQLite database and an empty Redis database."""
    return make_settings(DATABASE_URL=sqlite_url, REDIS_URL=redis_url)


@pytest.fixture
def web_engine(web_settings) -> Iterator[Engine]:
    """An engine on the test database."""
    engine = make_engine(web_settings.sqlalchemy_url)
    yield engine
    engine.dispose()


@pytest.fixture
def app(web_settings) -> Flask:
    """The whole web app."""
    app = create_app(web_settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def tenants(web_engine, web_settings) -> tuple[Tenant, Tenant]:
    """Two workspaces, alpha and beta, each with users, a scored connection, a run and a schedule."""
    return make_tenant(web_engine, web_settings, "alpha", seed=1), make_tenant(web_engine, web_settings, "beta", seed=2)
