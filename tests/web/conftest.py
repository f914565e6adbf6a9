"""Fixtures of the web tests: the app on SQLite with the machine's Redis, and two filled workspaces.

The two workspaces are built once per session into a template database; each test gets its own
copy of that file, so tests may change anything without paying for the world and its scoring again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy.engine import Engine

from connector.app import create_app
from connector.config import load_settings
from connector.db import make_engine
from connector.migrate import upgrade
from tests.web.support import Tenant, make_tenant

KEY = Fernet.generate_key().decode()  # one key for the session, so copied databases decrypt


@pytest.fixture
def web_settings(make_settings, sqlite_url: str, redis_url: str):
    """Test settings on a fresh SQLite database and an empty Redis database."""
    return make_settings(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, RAPPORT_ENCRYPTION_KEY=KEY)


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


@pytest.fixture(scope="session")
def _tenants_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Tenant, Tenant]]:
    folder = tmp_path_factory.mktemp("tenants")
    url = f"sqlite:///{folder / 'tenants.db'}"
    settings = load_settings({"RAPPORT_ENV": "test", "RAPPORT_DATA_DIR": str(folder / "data"), "DATABASE_URL": url,
                              "RAPPORT_ENCRYPTION_KEY": KEY})
    engine = make_engine(url)
    upgrade(engine)
    built = make_tenant(engine, settings, "alpha", seed=1), make_tenant(engine, settings, "beta", seed=2)
    engine.dispose()
    return folder / "tenants.db", built


@pytest.fixture
def tenants(_tenants_template, web_settings) -> tuple[Tenant, Tenant]:
    """Two workspaces, alpha and beta, each with users, a scored connection, a run and a schedule."""
    template, built = _tenants_template
    target = Path(web_settings.sqlalchemy_url.split("///", 1)[1])
    target.write_bytes(template.read_bytes())
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    return built
