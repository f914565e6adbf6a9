"""Page: the signed-in user's API tokens (create one, shown once; revoke)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector import auth
from connector.errors import ConfigError
from connector.web.core import engine, principal

bp = Blueprint("tokens", __name__)


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    tokens = auth.list_tokens(engine(), principal().user_id)
    return render_template("tokens.html", tokens=tokens, errors=context.pop("errors", {}), **context), status


@bp.get("/tokens")
def tokens() -> tuple[str, int]:
    """Your API tokens, for `Authorization: Bearer` calls to /api/v1."""
    return _page()


@bp.post("/tokens")
def create() -> tuple[str, int]:
    """Create a token and show it once."""
    name = request.form.get("name", "")
    try:
        _, token = auth.create_token(engine(), principal().user_id, name)
    except ConfigError as exc:
        return _page(400, errors={"name": exc.message}, name=name)
    return _page(201, new_token=token, new_name=name.strip())


@bp.post("/tokens/<token_id>/revoke")
def revoke(token_id: str) -> Response | tuple[str, int]:
    """Revoke one of your tokens."""
    if not token_id.isdigit() or not auth.revoke_token(engine(), principal().user_id, int(token_id)):
        return _page(404, errors={"revoke": f"you have no token {token_id}"})
    flash("Token revoked.")
    return redirect(url_for("tokens.tokens"))
