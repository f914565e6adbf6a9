"""Pages: the field mapping editor of one object, its five-record preview, YAML import/export, provisioning."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from connector.model import UNIFIED_OBJECTS
from connector.transforms import CASTS
from connector.web.core import engine, principal, require_role, settings
from connector.web.services import mappings as svc
from connector.web.services.common import Invalid, connection_row
from connector.web.services.mapping_form import map_text, parse_form

bp = Blueprint("mappings", __name__)


def _page(connection_id: str, object: str, status: int = 200, *, errors: dict[str, str] | None = None,
          draft: dict[str, Any] | None = None, write: dict[str, Any] | None = None, message: str | None = None,
          yaml_text: str | None = None) -> tuple[str, int]:
    view = svc.mapping_view(engine(), settings(), principal().workspace_id, connection_id, object,
                            fresh=request.args.get("refresh") == "1")
    if draft is not None:  # show what was submitted, not what is stored
        view["read"] = draft
        for u in view["unified"]:
            u["spec"] = draft.get(u["name"])
        known = {u["name"] for u in view["unified"]}
        view["unified"] += [{"name": t, "kind": "custom", "spec": s} for t, s in draft.items() if t not in known]
    if write is not None:
        view["write"] = write
    return render_template("mapping.html", m=view, objects=UNIFIED_OBJECTS, casts=CASTS, errors=errors or {},
                           message=message, map_text=map_text, yaml_text=yaml_text), status


@bp.get("/connections/<connection_id>/mappings")
def first(connection_id: str) -> Response:
    """The mapping editor opens on accounts."""
    connection_row(engine(), principal().workspace_id, connection_id)  # 404 for another workspace's id
    return redirect(url_for("mappings.edit", connection_id=connection_id, object="account"))


@bp.get("/connections/<connection_id>/mappings/<object>")
def edit(connection_id: str, object: str) -> tuple[str, int]:
    """CRM fields beside unified fields, with the current specs and write-back targets."""
    return _page(connection_id, object)


def _draft(connection_id: str, object: str) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]:
    view = svc.mapping_view(engine(), settings(), principal().workspace_id, connection_id, object)
    existing = [u["name"] for u in view["unified"]]
    return parse_form(object, request.form, existing)


@bp.post("/connections/<connection_id>/mappings/<object>")
def save(connection_id: str, object: str) -> tuple[str, int] | Response:
    """Save the object's mapping (after checks) and re-derive its rows from the stored raw records."""
    denied = require_role("admin")
    if denied:
        return denied
    read, write, form_errors = _draft(connection_id, object)
    try:
        result = svc.save(engine(), settings(), principal().workspace_id, connection_id, object, read, write,
                          form_errors)
    except Invalid as exc:
        return _page(connection_id, object, 400, errors=exc.fields, draft=read, write=write, message=exc.message)
    flash(f"Saved the {object} mapping; {result['rederived']} stored record(s) re-derived.")
    if result["new_sources"]:
        flash(f"Newly read CRM fields ({', '.join(result['new_sources'])}) are not in the stored records yet: "
              "they fill in with the next full sync (Schedules → a full sync → Run now).")
    return redirect(url_for("mappings.edit", connection_id=connection_id, object=object))


@bp.post("/connections/<connection_id>/mappings/<object>/preview")
def preview(connection_id: str, object: str) -> tuple[str, int]:
    """Five real records mapped with the form's draft (a fragment for the editor)."""
    read, _, form_errors = _draft(connection_id, object)
    try:
        if form_errors:
            raise Invalid("the draft has errors; fix the fields marked before previewing", form_errors)
        result = svc.preview(engine(), settings(), principal().workspace_id, connection_id, object, read)
    except Invalid as exc:
        return render_template("_preview.html", error=exc.message, fields=exc.fields, result=None), 400
    return render_template("_preview.html", error=None, fields={}, result=result), 200


@bp.get("/connections/<connection_id>/mappings.yaml")
def export(connection_id: str) -> Response:
    """The whole mapping as a YAML download."""
    text = svc.export_yaml(engine(), principal().workspace_id, connection_id)
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="mapping-{connection_id}.yaml"'})


@bp.post("/connections/<connection_id>/mappings/import")
def import_(connection_id: str) -> tuple[str, int] | Response:
    """Import a YAML mapping (pasted or uploaded); nothing changes unless all of it is valid."""
    denied = require_role("admin")
    if denied:
        return denied
    upload = request.files.get("file")
    text = upload.read().decode("utf-8", "replace") if upload and upload.filename else request.form.get("yaml", "")
    object = request.form.get("object") or "account"
    object = object if object in UNIFIED_OBJECTS else "account"
    try:
        result = svc.import_yaml(engine(), settings(), principal().workspace_id, connection_id, text)
    except Invalid as exc:
        return _page(connection_id, object, 400, errors=exc.fields, message=exc.message, yaml_text=text)
    flash(f"Imported the mapping of {', '.join(result['imported'])}.")
    fresh = sorted({s for sources in result["new_sources"].values() for s in sources})
    if fresh:
        flash(f"Newly read CRM fields ({', '.join(fresh)}) fill in with the next full sync.")
    return redirect(url_for("mappings.edit", connection_id=connection_id, object=object))


@bp.post("/connections/<connection_id>/provision")
def provision(connection_id: str) -> tuple[str, int] | Response:
    """Create the missing score fields in the CRM."""
    denied = require_role("admin")
    if denied:
        return denied
    object = request.form.get("object") or "account"
    object = object if object in UNIFIED_OBJECTS else "account"
    try:
        result = svc.provision(engine(), settings(), principal().workspace_id, connection_id)
    except Invalid as exc:
        return _page(connection_id, object, 400, message=exc.message)
    made = [f"{o}: {', '.join(r['created']) or 'nothing new'}" for o, r in result.items()]
    flash("Score fields created — " + "; ".join(made))
    return redirect(url_for("mappings.edit", connection_id=connection_id, object=object))
