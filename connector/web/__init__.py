"""The web layer: blueprints for health, webhooks, admin pages and the JSON API."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every blueprint, explicitly."""
    from connector.web import health, hubspot_hooks, salesforce_hooks

    app.register_blueprint(health.bp)
    app.register_blueprint(salesforce_hooks.bp)
    app.register_blueprint(hubspot_hooks.bp)

    from connector.web import admin

    admin.register(app)
