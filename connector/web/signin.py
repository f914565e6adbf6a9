"""Sign-in and sign-out: password check, a fresh session, and failed attempts throttled per address and email."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from connector import auth
from connector.queues import redis_for
from connector.web.core import csrf_token, engine, safe_next, settings

bp = Blueprint("signin", __name__)


def _throttle() -> auth.LoginThrottle:
    return auth.LoginThrottle(redis_for(settings()))


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    csrf_token()
    return render_template("login.html", next=request.args.get("next", ""), **context), status


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    """The sign-in form; on success a new session and a redirect to where the user was going."""
    if request.method == "GET":
        return _page()
    email = (request.form.get("email") or "").strip()
    password = request.form.get("password") or ""
    errors: dict[str, str] = {}
    if not email:
        errors["email"] = "enter your email"
    if not password:
        errors["password"] = "enter your password"
    if errors:
        return _page(400, errors=errors, email=email)
    address = request.remote_addr or "unknown"
    throttle = _throttle()
    wait = throttle.blocked_for(address, email)
    if wait:
        minutes = max(1, round(wait / 60))
        return _page(429, email=email, errors={"password": f"too many failed attempts; try again in about {minutes} "
                                                           f"minute{'s' if minutes != 1 else ''}"})
    who = auth.authenticate(engine(), email, password)
    if who is None:
        throttle.failed(address, email)
        return _page(401, email=email, errors={"password": "wrong email or password"})
    throttle.succeeded(address, email)
    target = safe_next(request.form.get("next"), url_for("connections.index"))
    session.clear()  # a new session on sign-in, so a planted session id is worthless
    session["user_id"] = who.user_id
    csrf_token()
    return redirect(target)


@bp.post("/logout")
def logout() -> Response:
    """End the session."""
    session.clear()
    return redirect(url_for("signin.login"))
