"""sObject Collections: create (POST), update (PATCH), delete (DELETE) and retrieve (GET/POST) up to
200 records in one call, with `allOrNone` and one save result per record in request order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.salesforce import dml, ids
from sandbox.salesforce.http import ApiError, json_response, read_json, route
from sandbox.salesforce.query import _NO_COLUMN, attributes
from sandbox.salesforce.rest import request_error, sobject
from sandbox.salesforce.values import ValueTypeError

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

MAX_RECORDS = 200
LIMIT_MESSAGE = "record limit reached. cannot submit more than 200 records into this call"
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


def _failure(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, dml.RecordError):
        return {"success": False, "errors": [exc.as_error()]}
    if isinstance(exc, dml.Missing):
        code = "ENTITY_IS_DELETED" if exc.deleted else "INVALID_CROSS_REFERENCE_KEY"
        message = "entity is deleted" if exc.deleted else "invalid cross reference id"
        return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}
    raise exc


def _body(request: Request) -> tuple[list[dict[str, Any]], bool]:
    body = read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected {\"allOrNone\": bool, \"records\": [...]}")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", LIMIT_MESSAGE)
    if not all(isinstance(r, dict) for r in records):
        raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object with attributes.type")
    return records, bool(body.get("allOrNone", False))


def _type_of(sb: Instance, record: dict[str, Any]) -> Any:
    name = (record.get("attributes") or {}).get("type")
    obj = sb.org.schema.get(name) if isinstance(name, str) else None
    if obj is None:
        raise dml.RecordError("INVALID_TYPE", "Must send a concrete entity type.")
    return obj


@route("/composite/sobjects", ("POST", "PATCH", "DELETE"))
def collections(sb: Instance, request: Request, version: str) -> Response:
    """Create, update or delete a collection of records."""
    if request.method == "DELETE":
        return _delete(sb, request)
    records, all_or_none = _body(request)
    creating = request.method == "POST"
    org = sb.org
    with org.lock:  # allOrNone needs the check and the writes to be one step
        planned: list[tuple[Any, str | None, dict[str, Any]] | dict[str, Any]] = []
        for record in records:
            try:
                obj = _type_of(sb, record)
                if creating:
                    if record.get("id") or record.get("Id"):
                        raise dml.RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                    dml.prepare(org, obj, record, creating=True)
                    planned.append((obj, None, record))
                else:
                    rid = record.get("id") or record.get("Id")
                    if not rid:
                        raise dml.RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                    dml.update(org, obj, str(rid), record, commit=False)
                    planned.append((obj, str(rid), record))
            except (dml.UnknownField, ValueTypeError) as exc:
                raise request_error(exc) from exc
            except (dml.RecordError, dml.Missing) as exc:
                planned.append(_failure(exc))
        failed = any(isinstance(p, dict) for p in planned)
        results: list[dict[str, Any]] = []
        for item in planned:
            if isinstance(item, dict):
                results.append(item)
            elif all_or_none and failed:
                results.append({"success": False, "errors": [ROLLED_BACK]})
            else:
                obj, rid, record = item
                try:
                    rec = dml.create(org, obj, record) if rid is None else dml.update(org, obj, rid, record)
                    assert rec is not None
                    results.append({"id": rec["Id"], "success": True, "errors": []})
                except (dml.RecordError, dml.Missing) as exc:
                    results.append(_failure(exc))
    return json_response(results)


def _delete(sb: Instance, request: Request) -> Response:
    raw = [i for i in request.args.get("ids", "").split(",") if i]
    if not raw:
        raise ApiError(400, "MISSING_ARGUMENT", "ids is required: pass ?ids=001...,003...")
    if len(raw) > MAX_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", LIMIT_MESSAGE)
    all_or_none = request.args.get("allOrNone", "false").lower() == "true"
    org = sb.org
    with org.lock:
        checks: list[dict[str, Any] | None] = []
        for rid in raw:
            norm = ids.normalize(rid)
            name = org.object_of(norm) if norm else None
            obj = org.schema.get(name) if name else None
            if obj is None:
                checks.append({"id": rid, "success": False, "errors": [
                    {"statusCode": "MALFORMED_ID", "message": f"malformed id {rid}", "fields": []}]})
                continue
            try:
                dml.existing(org, obj, rid)
                checks.append(None)
            except (dml.RecordError, dml.Missing) as exc:
                checks.append({"id": rid, **_failure(exc)})
        failed = any(c is not None for c in checks)
        results = []
        for rid, check in zip(raw, checks, strict=True):
            if check is not None:
                results.append(check)
            elif all_or_none and failed:
                results.append({"id": rid, "success": False, "errors": [ROLLED_BACK]})
            else:
                norm = ids.to18(rid)
                obj = org.schema.get(org.object_of(norm) or "")
                assert obj is not None
                dml.delete(org, obj, norm)
                results.append({"id": norm, "success": True, "errors": []})
    return json_response(results)


@route("/composite/sobjects/<name>", ("GET", "POST"))
def retrieve(sb: Instance, request: Request, version: str, name: str) -> Response:
    """Retrieve up to 2000 records of one type by id: ?ids=&fields= or a {ids, fields} body."""
    obj = sobject(sb, name)
    if request.method == "POST":
        body = read_json(request)
        wanted_ids, fields = list(body.get("ids") or []), list(body.get("fields") or [])
    else:
        wanted_ids = [i for i in request.args.get("ids", "").split(",") if i]
        fields = [f for f in request.args.get("fields", "").split(",") if f]
    if not wanted_ids or not fields:
        raise ApiError(400, "MISSING_ARGUMENT", "ids and fields are both required")
    if len(wanted_ids) > 2000:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 2000 records into this call")
    fdefs = []
    for f in fields:
        fdef = obj.field(f.strip())
        if fdef is None:
            raise ApiError(400, "INVALID_FIELD", _NO_COLUMN.format(name=f.strip(), entity=obj.name))
        fdefs.append(fdef)
    out: list[dict[str, Any] | None] = []
    for rid in wanted_ids:
        norm = ids.normalize(rid)
        rec = sb.org.get(norm) if norm else None
        if rec is None or rec.get("IsDeleted") or sb.org.object_of(rec["Id"]) != obj.name:
            out.append(None)
            continue
        item: dict[str, Any] = {"attributes": attributes(obj.name, rec["Id"], version)}
        item.update((f.name, rec.get(f.name)) for f in fdefs)
        out.append(item)
    return json_response(out)
