"""Pages: the connections list, adding one (token, JWT, or OAuth round trip), one connection's status."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector.web.core import engine, principal, require_role, settings
from connector.web.services import connect
from connector.web.services import connections as svc
from connector.web.services.common import Invalid

bp = Blueprint("connections", __name__)
KINDS = ("hubspot", "salesforce")
METHODS = {"hubspot": ("oauth", "token"), "salesforce": ("oauth", "jwt")}


@bp.get("/")
def index() -> Response:
    """Home: the connections."""
    return redirect(url_for("connections.list_page"))


@bp.get("/connections")
def list_page() -> str:
    """Every connection of the workspace with status, API use today and last sync."""
    rows = svc.list_connections(engine(), settings(), principal().workspace_id)
    return render_template("connections.html", connections=rows)


def _new_page(kind: str, method: str, status: int = 200, errors: dict[str, str] | None = None,
              form: dict[str, Any] | None = None, message: str | None = None) -> tuple[str, int]:
    return render_template("connection_new.html", kind=kind, method=method, kinds=KINDS, methods=METHODS,
                           errors=errors or {}, form=form or {}, message=message,
                           redirect_uri=connect.redirect_uri(settings(), kind)), status


@bp.get("/connections/new")
def new() -> tuple[str, int] | Response:
    """The add-a-connection form for one CRM and sign-in method."""
    denied = require_role("admin")
    if denied:
        return denied
    kind = request.args.get("kind", "hubspot")
    kind = kind if kind in KINDS else "hubspot"
    method = request.args.get("method", "oauth")
    method = method if method in METHODS[kind] else METHODS[kind][0]
    return _new_page(kind, method)


@bp.post("/connections/new/<kind>/<method>")
def create(kind: str, method: str) -> tuple[str, int] | Response:
    """Add a connection: straight away for a token or JWT, through the CRM's consent page for OAuth."""
    denied = require_role("admin")
    if denied:
        return denied
    if kind not in KINDS or method not in METHODS[kind]:
        return _new_page("hubspot", "oauth", 404, message=f"unknown CRM or method {kind}/{method}")
    form = request.form.to_dict()
    who = principal()
    try:
        if method == "oauth":
            return redirect(connect.start_oauth(engine(), settings(), who.workspace, who.user_id, kind, form))
        add = connect.add_hubspot_token if kind == "hubspot" else connect.add_salesforce_jwt
        cid = add(engine(), settings(), who.workspace, form)
    except Invalid as exc:
        safe = {k: v for k, v in form.items() if k not in ("token", "client_secret", "private_key", "app_secret")}
        return _new_page(kind, method, 400, exc.fields, safe, exc.message)
    flash(f"Connection {form.get('name')} added.")
    return redirect(url_for("connections.detail", connection_id=cid))


@bp.get("/oauth/callback/<kind>")
def oauth_callback(kind: str) -> tuple[str, int] | Response:
    """Where the CRM sends the browser back with the authorization code."""
    if kind not in KINDS:
        return _new_page("hubspot", "oauth", 404, message=f"unknown CRM {kind!r}")
    denied = require_role("admin")
    if denied:
        return denied
    who = principal()
    try:
        cid = connect.finish_oauth(engine(), settings(), who.user_id, kind, request.args.to_dict())
    except Invalid as exc:
        return _new_page(kind, "oauth", 400, message=exc.message)
    flash("Connected through OAuth.")
    return redirect(url_for("connections.detail", connection_id=cid))


@bp.get("/connections/<connection_id>")
def detail(connection_id: str) -> str:
    """One connection: status, API budget today, last sync, webhook URL and secret."""
    reveal = request.args.get("reveal") == "1" and principal().role == "admin"
    data = svc.connection_detail(engine(), settings(), principal().workspace_id, connection_id, reveal=reveal)
    return render_template("connection.html", c=data, reveal=reveal)


@bp.post("/connections/<connection_id>/status")
def set_status(connection_id: str) -> Response:
    """Disable or re-enable a connection."""
    denied = require_role("admin")
    if denied:
        return denied
    enabled = request.form.get("enabled") == "1"
    svc.set_enabled(engine(), principal().workspace_id, connection_id, enabled)
    flash("Connection enabled." if enabled else "Connection disabled: no syncs, webhooks refused.")
    return redirect(url_for("connections.detail", connection_id=connection_id))
