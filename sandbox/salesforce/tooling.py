"""Tooling API: create custom fields (`POST tooling/sobjects/CustomField`), read one back, and
query CustomField rows (e.g. by TableEnumOrId) so callers can check what already exists.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.salesforce.http import NOT_FOUND, ApiError, json_response, read_json, route
from sandbox.salesforce.query import Compiler, render, run
from sandbox.salesforce.schema import FieldDef, Schema, tooling_objects
from sandbox.salesforce.soql import SoqlError
from sandbox.salesforce.store import Org

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

_NAME_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
_NUMBERS = {"Number": "double", "Currency": "currency", "Percent": "percent"}
_SIMPLE = {"Date": ("date", 0), "DateTime": ("datetime", 0), "Email": ("email", 80), "Phone": ("phone", 40),
           "Url": ("url", 255), "TextArea": ("textarea", 255)}


class ToolingError(Exception):
    """A refused metadata change: errorCode and message (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Tooling:
    """The metadata side of the org: CustomField rows kept in a small org of their own."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.meta = Org(Schema(tooling_objects()), org.clock)
        self.meta.user_id = org.user_id
        self.compiler = Compiler(self.meta)
        self.metadata: dict[str, dict[str, Any]] = {}

    def create_field(self, full_name: str, metadata: dict[str, Any]) -> str:
        """Add a custom field to an object; returns the new 00N id."""
        obj_name, _, field_name = full_name.partition(".")
        obj = self.org.schema.get(obj_name)
        if obj is None or not field_name:
            raise ToolingError("INVALID_CROSS_REFERENCE_KEY",
                               f"FullName must be Object.Field__c with an existing object, got {full_name!r}")
        if not _NAME_RE.match(field_name) or len(field_name) > 43:
            raise ToolingError("FIELD_INTEGRITY_EXCEPTION",
                               f"Field name {field_name!r} must start with a letter, use letters, digits and single "
                               "underscores, be at most 40 characters and end with __c")
        if obj.field(field_name) is not None:
            raise ToolingError("DUPLICATE_DEVELOPER_NAME", f"There is already a field named {field_name[:-3]} on {obj.name}.")
        if not metadata.get("label"):
            raise ToolingError("REQUIRED_FIELD_MISSING", "Required field is missing: label")
        fdef = field_from_metadata(field_name, metadata)
        field_id = self.meta.ids.for_object("CustomField")
        self.org.schema.add_custom_field(obj, replace(fdef, field_id=field_id))
        self.org.refresh_fields(obj.name)
        if fdef.default is not None:  # existing records read the new column's default (checkboxes: false)
            with self.org.lock:
                table = self.org.table(obj.name)
                for rid, rec in list(table.rows.items()):
                    table.rows[rid] = {**rec, field_name: fdef.default}
        self.meta.insert("CustomField", {
            "Id": field_id, "DeveloperName": field_name[:-3], "TableEnumOrId": obj.name, "NamespacePrefix": None,
            "FullName": f"{obj.name}.{field_name}", "Description": metadata.get("description"),
            "InlineHelpText": metadata.get("inlineHelpText"), "ManageableState": "unmanaged",
        }, notify=False)
        self.metadata[field_id] = dict(metadata)
        return field_id


def field_from_metadata(name: str, md: dict[str, Any]) -> FieldDef:
    """Translate Metadata API CustomField attributes into a describe-level field."""
    ftype = md.get("type")
    label = str(md["label"])
    required = bool(md.get("required"))
    common: dict[str, Any] = {"label": label, "custom": True, "nillable": not required, "required": required,
                              "external_id": bool(md.get("externalId")), "unique": bool(md.get("unique"))}
    if ftype in _NUMBERS:
        precision, scale = md.get("precision"), md.get("scale")
        if not isinstance(precision, int) or not isinstance(scale, int):
            raise ToolingError("FIELD_INTEGRITY_EXCEPTION", f"A {ftype} field needs integer 'precision' and 'scale'")
        if not 1 <= precision <= 18 or not 0 <= scale <= precision:
            raise ToolingError("FIELD_INTEGRITY_EXCEPTION", "precision must be 1..18 and scale 0..precision")
        return FieldDef(name, _NUMBERS[ftype], precision=precision, scale=scale, **common)
    if ftype == "Text":
        length = md.get("length")
        if not isinstance(length, int) or not 1 <= length <= 255:
            raise ToolingError("FIELD_INTEGRITY_EXCEPTION", "A Text field needs a 'length' between 1 and 255")
        return FieldDef(name, "string", length=length, **common)
    if ftype in ("LongTextArea", "Html"):
        length, lines = md.get("length"), md.get("visibleLines")
        if not isinstance(length, int) or not 256 <= length <= 131072 or not isinstance(lines, int):
            raise ToolingError("FIELD_INTEGRITY_EXCEPTION",
                               "A LongTextArea field needs 'length' (256..131072) and 'visibleLines'")
        return FieldDef(name, "textarea", length=length, **common)
    if ftype == "Checkbox":
        default = str(md.get("defaultValue", "false")).lower() == "true"
        return FieldDef(name, "boolean", default=default, **{**common, "nillable": False})
    if ftype == "Picklist":
        values = tuple(v.get("fullName") or v.get("label") for v in
                       ((md.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value", []))
        return FieldDef(name, "picklist", length=255, picklist=values, **common)
    if ftype in _SIMPLE:
        t, length = _SIMPLE[ftype]
        return FieldDef(name, t, length=length, **common)
    known = sorted([*_NUMBERS, "Text", "LongTextArea", "Checkbox", "Picklist", *_SIMPLE])
    raise ToolingError("FIELD_INTEGRITY_EXCEPTION", f"Unsupported field type {ftype!r}: use one of {', '.join(known)}")


@route("/tooling/sobjects/CustomField", ("POST",))
def create_custom_field(sb: Instance, request: Request, version: str) -> Response:
    """POST {FullName, Metadata} -> 201 {id, success, errors, warnings, infos}."""
    body = read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("Metadata"), dict) or not body.get("FullName"):
        raise ApiError(400, "JSON_PARSER_ERROR", "Send {\"FullName\": \"Object.Field__c\", \"Metadata\": {...}}")
    try:
        field_id = sb.tooling.create_field(str(body["FullName"]), body["Metadata"])
    except ToolingError as exc:
        raise ApiError(400, exc.code, exc.message, []) from exc
    return json_response({"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)


@route("/tooling/sobjects/CustomField/<field_id>")
def get_custom_field(sb: Instance, request: Request, version: str, field_id: str) -> Response:
    """One CustomField with its Metadata."""
    rec = sb.tooling.meta.get(field_id)
    if rec is None:
        raise ApiError(404, "NOT_FOUND", NOT_FOUND)
    out: dict[str, Any] = {"attributes": {"type": "CustomField", "url": f"/services/data/v{version}/tooling/sobjects/CustomField/{field_id}"}}
    out.update({k: rec.get(k) for k in ("Id", "DeveloperName", "TableEnumOrId", "NamespacePrefix", "FullName")})
    out["Metadata"] = sb.tooling.metadata.get(field_id, {})
    return json_response(out)


@route("/tooling/query")
def tooling_query(sb: Instance, request: Request, version: str) -> Response:
    """Tooling SOQL over CustomField (one page; the platform's tooling shape)."""
    text = request.args.get("q")
    if text is None:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        plan = sb.tooling.compiler.plan(text)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from exc
    ids = run(sb.tooling.meta, plan, include_deleted=False)
    records = []
    for rid in ids:
        rec = sb.tooling.meta.get(rid)
        if rec is not None:
            item = render(sb.tooling.meta, plan, rec, version)
            item["attributes"]["url"] = item["attributes"]["url"].replace("/sobjects/", "/tooling/sobjects/")
            records.append(item)
    return json_response({"size": len(records), "totalSize": len(records), "done": True, "queryLocator": None,
                          "entityTypeName": plan.obj.name, "records": records})
