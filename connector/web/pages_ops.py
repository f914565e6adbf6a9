"""Pages: schedules (cron editor, enable, disable, run now) and run history with live progress."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector.queues import RUN_KINDS
from connector.web.core import engine, principal, settings
from connector.web.services import runs as run_svc
from connector.web.services import schedules as svc
from connector.web.services.common import Invalid, connection_ids

bp = Blueprint("ops", __name__)


def _schedules_page(status: int = 200, errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                    message: str | None = None) -> tuple[str, int]:
    ws = principal().workspace_id
    form = form or {"cron": "0 * * * *", "kind": "run"}
    preview = None
    try:
        preview = svc.describe_cron(str(form.get("cron") or ""))
    except Invalid:
        pass
    return render_template("schedules.html", schedules=svc.list_schedules(engine(), ws),
                           connections=connection_ids(engine(), ws), kinds=RUN_KINDS, kind_words=svc.KIND_WORDS,
                           errors=errors or {}, form=form, message=message, preview=preview), status


@bp.get("/schedules")
def schedules() -> tuple[str, int]:
    """The workspace's schedules and the form to add one."""
    return _schedules_page()


@bp.post("/schedules")
def add() -> tuple[str, int] | Response:
    """Add a schedule; a bad cron expression is explained next to the field."""
    form = request.form.to_dict()
    try:
        sid = svc.add_schedule(engine(), principal().workspace_id, form)
    except Invalid as exc:
        return _schedules_page(400, exc.fields, form, exc.message)
    flash(f"Schedule {sid} added.")
    return redirect(url_for("ops.schedules"))


@bp.get("/schedules/describe")
def describe() -> tuple[str, int]:
    """The plain-words description and next runs of a cron expression (a fragment for the editor)."""
    try:
        return render_template("_cron.html", preview=svc.describe_cron(request.args.get("cron", "")), error=None), 200
    except Invalid as exc:
        return render_template("_cron.html", preview=None, error=exc.fields.get("cron", exc.message)), 200


@bp.post("/schedules/<schedule_id>/<action>")
def act(schedule_id: str, action: str) -> tuple[str, int] | Response:
    """Enable, disable, run now, or delete a schedule."""
    ws = principal().workspace_id
    if action in ("enable", "disable"):
        svc.set_enabled(engine(), ws, schedule_id, action == "enable")
        flash(f"Schedule {schedule_id} {action}d.")
    elif action == "run":
        ids = svc.run_now(settings(), engine(), ws, schedule_id)
        flash(f"Schedule {schedule_id} queued to run now." if ids else "That run is already waiting to start.")
        return redirect(url_for("ops.runs"))
    elif action == "delete":
        svc.remove_schedule(engine(), ws, schedule_id)
        flash(f"Schedule {schedule_id} deleted.")
    else:
        return _schedules_page(404, message=f"unknown action {action!r}")
    return redirect(url_for("ops.schedules"))


@bp.get("/runs")
def runs() -> tuple[str, int]:
    """Run history, newest first, with filters."""
    ws = principal().workspace_id
    args = request.args
    try:
        data = run_svc.list_runs(engine(), ws, connection_id=args.get("connection_id"), kind=args.get("kind"),
                                 status=args.get("status"), before=args.get("before"))
        errors: dict[str, str] = {}
    except Invalid as exc:
        data, errors = {"runs": [], "next_before": None}, exc.fields
    return render_template("runs.html", data=data, errors=errors, args=args, kinds=RUN_KINDS,
                           statuses=run_svc.STATUSES, connections=connection_ids(engine(), ws),
                           live=any(r["status"] == "running" for r in data["runs"])), 400 if errors else 200


@bp.get("/runs/table")
def runs_table() -> str:
    """The run table alone, refreshed while runs are going."""
    ws = principal().workspace_id
    args = request.args
    data = run_svc.list_runs(engine(), ws, connection_id=args.get("connection_id"), kind=args.get("kind") or None,
                             status=args.get("status") or None)
    return render_template("_runs_table.html", data=data, args=args,
                           live=any(r["status"] == "running" for r in data["runs"]))


@bp.get("/runs/<run_id>")
def run(run_id: str) -> str:
    """One run: counts, API calls, duration, failing records with the CRM's error, live progress."""
    return render_template("run.html", r=run_svc.get_run(engine(), principal().workspace_id, run_id))


@bp.get("/runs/<run_id>/progress")
def progress(run_id: str) -> str:
    """The live part of a run page (polled every second while the run is going)."""
    return render_template("_run_progress.html", r=run_svc.get_run(engine(), principal().workspace_id, run_id))
