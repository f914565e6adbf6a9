"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from connector.config import Settings, get_settings
from connector.db import engine_for


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web app: webhooks, admin UI and JSON API."""
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["RAPPORT_SETTINGS"] = settings
    app.config["SECRET_KEY"] = (
        settings.secret_key.get_secret_value() if settings.secret_key else "rapport-development-only"
    )
    app.extensions["rapport_engine"] = engine_for(settings.sqlalchemy_url)

    from connector.web import register

    register(app)
    return app
