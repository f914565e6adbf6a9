"""Pages: scores of a connection, one account's story, and the score model (draft, compare, publish)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector.web import charts
from connector.web.core import engine, principal, require_role
from connector.web.services import model as model_svc
from connector.web.services import scores as svc
from connector.web.services.common import Invalid, connection_ids, pick_connection

bp = Blueprint("scores", __name__)


@bp.get("/scores")
def scores() -> str:
    """Histograms of both scores, tiers, risers and fallers, and the at-risk accounts of one connection."""
    ws = principal().workspace_id
    cid = pick_connection(engine(), ws, request.args.get("connection_id"))
    data = svc.summary(engine(), ws, cid) if cid is not None else None
    figures = {}
    if data is not None:
        figures = {name: charts.histogram({name: data["histograms"][name]}, data["bins"],
                                          f"{name.title()} score distribution")
                   for name in ("relationship", "experience")}
        figures["tiers"] = charts.tier_bars(data["tiers"], "Accounts per tier")
    return render_template("scores.html", data=data, figures=figures, connections=connection_ids(engine(), ws))


@bp.get("/scores/<connection_id>/accounts/<path:external_id>")
def account(connection_id: str, external_id: str) -> str:
    """One account: scores, components, drivers and the trend from its score history."""
    data = svc.account(engine(), principal().workspace_id, connection_id, external_id)
    points = [(datetime.fromisoformat(h["scored_at"]), h["relationship"], h["experience"]) for h in data["history"]]
    chart = charts.trend(points, f"Scores of {data['name']} over time")
    return render_template("account.html", a=data, chart=chart)


def _model_page(status: int = 200, errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                message: str | None = None) -> tuple[str, int]:
    ws = principal().workspace_id
    view = model_svc.model_view(engine(), ws)
    values = {**view["values"], **(form or {})}
    return render_template("model.html", v=view, values=values, errors=errors or {}, message=message,
                           connections=connection_ids(engine(), ws)), status


@bp.get("/model")
def model() -> tuple[str, int]:
    """The published weights, the versions, and the form for a new draft."""
    return _model_page()


@bp.post("/model/drafts")
def draft() -> tuple[str, int] | Response:
    """Create a draft version with the edited weights, then go and compare it."""
    denied = require_role("admin", "revops")
    if denied:
        return denied
    form = request.form.to_dict()
    try:
        version = model_svc.create_draft(engine(), principal().workspace_id, form, principal().email)
    except Invalid as exc:
        return _model_page(400, exc.fields, form, exc.message)
    flash(f"Draft version {version} created; compare it with the published version before publishing.")
    return redirect(url_for("scores.compare", version=version))


@bp.get("/model/<version>/compare")
def compare(version: str) -> tuple[str, int]:
    """A version against the published one: distributions and backtest on one connection's data."""
    ws = principal().workspace_id
    args = request.args
    cid = pick_connection(engine(), ws, args.get("connection_id"))
    if cid is None:
        return render_template("compare.html", c=None, figures={}, errors={}, args=args, connections=[],
                               version=version, message="add a connection first: there is no data to compare on"), 200
    try:
        data = model_svc.compare(engine(), ws, version, cid, as_of=args.get("as_of") or None,
                                 horizon_days=args.get("horizon_days") or 180)
    except Invalid as exc:
        return render_template("compare.html", c=None, figures={}, errors=exc.fields, args=args, version=version,
                               connections=connection_ids(engine(), ws), message=exc.message), 400
    dist = data["distribution"]
    figures = {name: charts.histogram({"published": dist["published"]["histograms"][name],
                                       "draft": dist["draft"]["histograms"][name]}, data["bins"],
                                      f"{name.title()}: published vs version {data['version']}")
               for name in ("relationship", "experience")}
    return render_template("compare.html", c=data, figures=figures, errors={}, args=args, version=version,
                           connections=connection_ids(engine(), ws), message=None), 200


@bp.post("/model/<version>/publish")
def publish(version: str) -> Response:
    """Make the version the one that scores."""
    denied = require_role("admin", "revops")
    if denied:
        return denied
    model_svc.publish(engine(), principal().workspace_id, version)
    flash(f"Version {version} is published; the next scoring run uses it.")
    return redirect(url_for("scores.model"))
