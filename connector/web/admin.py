"""The admin app and its JSON API: their blueprints, guarded by sign-in, CSRF and roles."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from connector.web import (
    api,
    core,
    pages_connections,
    pages_mappings,
    pages_ops,
    pages_scores,
    pages_tokens,
    signin,
)


def register(app: Flask) -> None:
    """Attach the sign-in, page and API blueprints; API errors answer JSON."""
    core.install(app, [signin.bp, pages_connections.bp, pages_mappings.bp, pages_ops.bp, pages_scores.bp,
                       pages_tokens.bp, api.bp])

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if request.path.startswith("/api/"):
            return core.api_error(exc.code or 500, exc.description or exc.name)
        return exc
