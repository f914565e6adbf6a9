"""The JSON API under /api/v1: the same services as the pages, for scripts with an API token.

Every route answers JSON; errors are `{"error", "fields"?, "hint"?}`. The OpenAPI document that
describes these routes is `connector.web.openapi` (served at /api/v1/openapi.json).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from connector import auth
from connector.errors import ConfigError
from connector.web import openapi
from connector.web.core import api_error, engine, json_body, principal, require_role, settings
from connector.web.services import connect
from connector.web.services import connections as conn_svc
from connector.web.services import mappings as map_svc
from connector.web.services import model as model_svc
from connector.web.services import runs as run_svc
from connector.web.services import schedules as sched_svc
from connector.web.services import scores as score_svc
from connector.web.services.common import Invalid, connection_row

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _ws() -> int:
    return principal().workspace_id


def _created(body: dict[str, Any]) -> tuple[Response, int]:
    return jsonify(body), 201


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{name} must be a JSON object", {name: "expected an object"})
    return value


def openapi_document() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(openapi.document(request.host_url.rstrip("/")))


bp.add_url_rule("/openapi.json", endpoint="openapi", view_func=openapi_document)


@bp.get("/me")
def me() -> Response:
    """Who the caller is."""
    p = principal()
    return jsonify(email=p.email, role=p.role, workspace=p.workspace, can_write=p.can_write)


# --- connections ------------------------------------------------------------------------------------


@bp.get("/connections")
def connections() -> Response:
    """The workspace's connections."""
    return jsonify(connections=conn_svc.list_connections(engine(), settings(), _ws()))


@bp.post("/connections")
def add_connection() -> Response | tuple[Response, int]:
    """Add a HubSpot private-app or Salesforce JWT connection (OAuth starts at /oauth/{kind}/start)."""
    denied = require_role("admin")
    if denied:
        return denied
    body = json_body()
    kind = body.get("kind")
    form = {k: str(v) for k, v in body.items() if isinstance(v, str | int) and not isinstance(v, bool)}
    if kind == "hubspot":
        cid = connect.add_hubspot_token(engine(), settings(), principal().workspace, form)
    elif kind == "salesforce":
        cid = connect.add_salesforce_jwt(engine(), settings(), principal().workspace, form)
    else:
        raise Invalid("the connection was not added", {"kind": "use hubspot (private-app token) or salesforce (JWT)"})
    return _created(conn_svc.connection_detail(engine(), settings(), _ws(), cid))


@bp.post("/oauth/<kind>/start")
def oauth_start(kind: str) -> Response | tuple[Response, int]:
    """Begin an OAuth install: the consent page URL to open in a browser signed in to the admin app."""
    denied = require_role("admin")
    if denied:
        return denied
    if kind not in ("hubspot", "salesforce"):
        return api_error(404, f"unknown CRM {kind!r}; use hubspot or salesforce")
    form = {k: str(v) for k, v in json_body().items() if isinstance(v, str)}
    who = principal()
    url = connect.start_oauth(engine(), settings(), who.workspace, who.user_id, kind, form)
    return _created({"authorize_url": url, "redirect_uri": connect.redirect_uri(settings(), kind)})


@bp.get("/connections/<connection_id>")
def connection(connection_id: str) -> Response:
    """One connection with webhook setup and recent runs."""
    return jsonify(conn_svc.connection_detail(engine(), settings(), _ws(), connection_id))


@bp.post("/connections/<connection_id>/status")
def connection_status(connection_id: str) -> Response:
    """Enable or disable a connection."""
    denied = require_role("admin")
    if denied:
        return denied
    connection_row(engine(), _ws(), connection_id)  # another workspace's id is 404 whatever the body
    enabled = json_body().get("enabled")
    if not isinstance(enabled, bool):
        raise Invalid("give enabled: true or false", {"enabled": "expected true or false"})
    conn_svc.set_enabled(engine(), _ws(), connection_id, enabled)
    return jsonify(conn_svc.connection_detail(engine(), settings(), _ws(), connection_id))


# --- mappings ---------------------------------------------------------------------------------------


@bp.get("/connections/<connection_id>/mappings/<object>")
def mapping(connection_id: str, object: str) -> Response:
    """An object's mapping with the CRM's fields (described live) and type warnings."""
    return jsonify(map_svc.mapping_view(engine(), settings(), _ws(), connection_id, object,
                                        fresh=request.args.get("refresh") in ("1", "true")))


@bp.put("/connections/<connection_id>/mappings/<object>")
def save_mapping(connection_id: str, object: str) -> Response:
    """Replace an object's read mapping (and write targets for accounts and contacts)."""
    denied = require_role("admin")
    if denied:
        return denied
    connection_row(engine(), _ws(), connection_id)
    body = json_body()
    read = _object(body.get("read"), "read")
    write = _object(body.get("write"), "write") if "write" in body else None
    map_svc.check_object(object)
    return jsonify(map_svc.save(engine(), settings(), _ws(), connection_id, object, read, write))


@bp.post("/connections/<connection_id>/mappings/<object>/preview")
def preview_mapping(connection_id: str, object: str) -> Response:
    """Five real records mapped with a draft read mapping (nothing stored)."""
    connection_row(engine(), _ws(), connection_id)
    read = _object(json_body().get("read"), "read")
    return jsonify(map_svc.preview(engine(), settings(), _ws(), connection_id, object, read))


@bp.get("/connections/<connection_id>/mapping-document")
def mapping_document(connection_id: str) -> Response:
    """The whole mapping as YAML text."""
    return jsonify(yaml=map_svc.export_yaml(engine(), _ws(), connection_id))


@bp.put("/connections/<connection_id>/mapping-document")
def import_mapping(connection_id: str) -> Response:
    """Import a YAML mapping; nothing changes unless all of it is valid."""
    denied = require_role("admin")
    if denied:
        return denied
    connection_row(engine(), _ws(), connection_id)
    text = json_body().get("yaml")
    if not isinstance(text, str):
        raise Invalid("give the mapping as a YAML string", {"yaml": "expected a string"})
    return jsonify(map_svc.import_yaml(engine(), settings(), _ws(), connection_id, text))


@bp.post("/connections/<connection_id>/provision")
def provision(connection_id: str) -> Response:
    """Create the missing score fields in the CRM."""
    denied = require_role("admin")
    if denied:
        return denied
    return jsonify(map_svc.provision(engine(), settings(), _ws(), connection_id))


# --- schedules and runs -----------------------------------------------------------------------------


@bp.get("/cron")
def cron() -> Response:
    """A cron expression in plain words with its next five runs."""
    return jsonify(sched_svc.describe_cron(request.args.get("expr", "")))


@bp.get("/schedules")
def schedules() -> Response:
    """The workspace's schedules."""
    return jsonify(schedules=sched_svc.list_schedules(engine(), _ws()))


@bp.post("/schedules")
def add_schedule() -> tuple[Response, int]:
    """Add a schedule: connection_id, kind, cron."""
    body = json_body()
    form = {k: str(body[k]) for k in ("connection_id", "kind", "cron")
            if isinstance(body.get(k), str | int) and not isinstance(body.get(k), bool)}
    sid = sched_svc.add_schedule(engine(), _ws(), form)
    return _created(sched_svc.get_schedule(engine(), _ws(), sid))


@bp.get("/schedules/<schedule_id>")
def schedule(schedule_id: str) -> Response:
    """One schedule."""
    return jsonify(sched_svc.get_schedule(engine(), _ws(), schedule_id))


@bp.patch("/schedules/<schedule_id>")
def update_schedule(schedule_id: str) -> Response:
    """Enable or disable a schedule."""
    sched_svc.get_schedule(engine(), _ws(), schedule_id)
    enabled = json_body().get("enabled")
    if not isinstance(enabled, bool):
        raise Invalid("give enabled: true or false", {"enabled": "expected true or false"})
    return jsonify(sched_svc.set_enabled(engine(), _ws(), schedule_id, enabled))


@bp.delete("/schedules/<schedule_id>")
def delete_schedule(schedule_id: str) -> tuple[str, int]:
    """Delete a schedule."""
    sched_svc.remove_schedule(engine(), _ws(), schedule_id)
    return "", 204


@bp.post("/schedules/<schedule_id>/run")
def run_schedule(schedule_id: str) -> tuple[Response, int]:
    """Run a schedule's job now; `queued` is false when the same run is already waiting."""
    ids = sched_svc.run_now(settings(), engine(), _ws(), schedule_id)
    return jsonify(queued=bool(ids), job_ids=ids), 202


@bp.get("/runs")
def runs() -> Response:
    """Runs, newest first; filter by connection_id, kind, status; page with before=<id>."""
    a = request.args
    return jsonify(run_svc.list_runs(engine(), _ws(), connection_id=a.get("connection_id"), kind=a.get("kind"),
                                     status=a.get("status"), before=a.get("before"),
                                     limit=a.get("limit", run_svc.PAGE)))


@bp.get("/runs/<run_id>")
def run(run_id: str) -> Response:
    """One run with its failing records and progress."""
    return jsonify(run_svc.get_run(engine(), _ws(), run_id))


# --- scores and the score model ---------------------------------------------------------------------


@bp.get("/connections/<connection_id>/scores")
def scores(connection_id: str) -> Response:
    """Score distributions, tiers, movers and at-risk accounts of a connection."""
    return jsonify(score_svc.summary(engine(), _ws(), connection_id))


@bp.get("/connections/<connection_id>/scores/accounts/<path:external_id>")
def account(connection_id: str, external_id: str) -> Response:
    """One account's scores, components, drivers and history."""
    return jsonify(score_svc.account(engine(), _ws(), connection_id, external_id))


@bp.get("/score-model")
def score_model() -> Response:
    """The published version, its editable values and parameters, and every version."""
    return jsonify(model_svc.model_view(engine(), _ws()))


@bp.post("/score-model/drafts")
def create_draft() -> tuple[Response, int] | Response:
    """Create a draft from the published version with `values` (path: number) and a `note`."""
    denied = require_role("admin", "revops")
    if denied:
        return denied
    body = json_body()
    values = _object(body.get("values"), "values")
    unknown = sorted(set(values) - set(model_svc.EDITABLE))
    if unknown:
        raise Invalid("the draft was not created", {unknown[0]: f"not editable here; use {', '.join(model_svc.EDITABLE)}"})
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise Invalid("the draft was not created", {"note": "expected a string"})
    form = {k: (v if isinstance(v, str) else str(v) if isinstance(v, int | float) and not isinstance(v, bool) else "?")
            for k, v in values.items()} | {"note": note or ""}
    version = model_svc.create_draft(engine(), _ws(), form, principal().email)
    return _created({"version": version})


@bp.get("/score-model/versions/<version>/compare")
def compare(version: str) -> Response:
    """A version against the published one on a connection: distributions and backtest."""
    a = request.args
    if not a.get("connection_id"):
        raise Invalid("name the connection whose data to compare on", {"connection_id": "required"})
    return jsonify(model_svc.compare(engine(), _ws(), version, a.get("connection_id"), as_of=a.get("as_of") or None,
                                     horizon_days=a.get("horizon_days", 180)))


@bp.post("/score-model/versions/<version>/publish")
def publish(version: str) -> Response:
    """Make a version the one that scores."""
    denied = require_role("admin", "revops")
    if denied:
        return denied
    return jsonify(model_svc.publish(engine(), _ws(), version))


# --- API tokens -------------------------------------------------------------------------------------


@bp.get("/tokens")
def tokens() -> Response:
    """Your tokens (never the token itself)."""
    rows = auth.list_tokens(engine(), principal().user_id)
    return jsonify(tokens=[{**r, "created_at": r["created_at"].isoformat(),
                            "last_used_at": r["last_used_at"].isoformat() if r["last_used_at"] else None}
                           for r in rows])


@bp.post("/tokens")
def create_token() -> tuple[Response, int]:
    """Create a token; the response is the only time it is shown."""
    name = json_body().get("name")
    try:
        token_id, token = auth.create_token(engine(), principal().user_id, name if isinstance(name, str) else "")
    except ConfigError as exc:
        raise Invalid("the token was not created", {"name": exc.message}) from None
    return _created({"id": token_id, "name": str(name).strip(), "token": token})


@bp.delete("/tokens/<token_id>")
def revoke_token(token_id: str) -> Response | tuple[str, int]:
    """Revoke one of your tokens."""
    if not token_id.isdigit() or not auth.revoke_token(engine(), principal().user_id, int(token_id)):
        return api_error(404, f"you have no token {token_id}")
    return "", 204
