"""What every admin page and API route shares: who is calling, CSRF, roles, and error answers.

A page request is signed in through the session cookie; an API request through the session too
(the pages' own scripts) or an `Authorization: Bearer` token. A request that changes anything
needs a writer role, and, when it rides on the session cookie, the session's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.engine import Engine
from werkzeug.wrappers import Response

from connector import auth
from connector.config import Settings
from connector.web.services.common import Invalid, NotFound

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_ENDPOINTS = frozenset({"signin.login", "api.openapi", "static"})
ANY_ROLE = frozenset({"signin.logout"})  # writes every signed-in user may make (their own session)


def engine() -> Engine:
    """The app's database engine."""
    return current_app.extensions["rapport_engine"]  # type: ignore[no-any-return]


def settings() -> Settings:
    """The app's settings."""
    return current_app.config["RAPPORT_SETTINGS"]  # type: ignore[no-any-return]


def principal() -> auth.Principal:
    """The signed-in user of this request (only called behind the sign-in check)."""
    return g.principal  # type: ignore[no-any-return]


def csrf_token() -> str:
    """The session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def is_api() -> bool:
    """True for a request to the JSON API."""
    return request.path.startswith("/api/")


def api_error(status: int, message: str, *, fields: dict[str, str] | None = None, hint: str | None = None) -> Response:
    """The one JSON error shape: {error, fields?, hint?} with the status."""
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    if hint:
        body["hint"] = hint
    response = jsonify(body)
    response.status_code = status
    return response


def _refuse(status: int, message: str) -> Response:
    if is_api():
        return api_error(status, message)
    response = Response(render_template("error.html", status=status, message=message), status=status)
    return response


def _load_principal() -> auth.Principal | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        g.via_token = True
        return auth.principal_for_token(engine(), header[7:].strip())
    g.via_token = False
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    return auth.get_principal(engine(), user_id)


def _csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


def guard() -> Response | None:
    """Before each admin request: sign-in, CSRF on session writes, and no writes for viewers."""
    endpoint = request.endpoint or ""
    if endpoint in PUBLIC_ENDPOINTS:
        if request.method in UNSAFE and not _csrf_ok():
            return _refuse(400, "the form expired; reload the page and try again")
        return None
    who = _load_principal()
    if who is None:
        if is_api():
            return api_error(401, "sign in first, or send an API token as 'Authorization: Bearer <token>'")
        if request.method in UNSAFE:
            return _refuse(401, "your session has ended; sign in again")
        return redirect(url_for("signin.login", next=request.full_path.rstrip("?")))
    g.principal = who
    if request.method in UNSAFE:
        if not g.via_token and not _csrf_ok():
            return _refuse(400, "the form expired (missing or wrong CSRF token); reload the page and try again")
        if not who.can_write and endpoint not in ANY_ROLE:
            return _refuse(403, f"your role ({who.role}) can look but not change anything; ask an admin")
    return None


def require_role(*roles: str) -> Response | None:
    """A 403 answer unless the caller has one of these roles."""
    if principal().role not in roles:
        return _refuse(403, f"this needs the {' or '.join(roles)} role; yours is {principal().role}")
    return None


def safe_next(target: str | None, default: str) -> str:
    """A same-site path to go to after sign-in; anything else falls back to the default."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def install(app: Flask, blueprints: list[Any]) -> None:
    """Guard the admin blueprints, expose template helpers, and answer service errors uniformly."""
    guarded = {bp.name for bp in blueprints}
    for bp in blueprints:
        app.register_blueprint(bp)

    @app.before_request
    def _guard() -> Response | None:
        # registered on the app (blueprints are module-level and may serve several apps)
        return guard() if request.blueprint in guarded else None

    app.jinja_env.globals["csrf_token"] = csrf_token  # macros imported without context use it too

    @app.context_processor
    def _helpers() -> dict[str, Any]:
        return {"me": g.get("principal")}

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> Response:
        return _refuse(404, str(exc))

    @app.errorhandler(Invalid)
    def _invalid(exc: Invalid) -> Response:
        if is_api():
            return api_error(400, exc.message, fields=exc.fields)
        return _refuse(400, exc.message + "".join(f" {k}: {v}." for k, v in exc.fields.items()))

    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    settings_ = app.config["RAPPORT_SETTINGS"]
    if settings_.public_url.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True


def json_body() -> dict[str, Any]:
    """The request's JSON object; Invalid if it is not one."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Invalid("send a JSON object in the body, with Content-Type: application/json")
    return data
