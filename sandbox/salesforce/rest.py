"""REST endpoints: versions and resources, describe, single-record CRUD, query / queryAll with
cursor paging, getDeleted / getUpdated, and limits.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from werkzeug.wrappers import Request, Response

from sandbox.salesforce import dml
from sandbox.salesforce.describe import describe, global_describe, object_summary
from sandbox.salesforce.http import (
    LABELS,
    NOT_FOUND,
    VERSIONS,
    ApiError,
    json_response,
    raw_json_response,
    read_json,
    route,
)
from sandbox.salesforce.query import _NO_COLUMN, Plan, attributes, render_json, run
from sandbox.salesforce.schema import ObjectDef
from sandbox.salesforce.soql import SoqlError
from sandbox.salesforce.values import ValueTypeError, fmt_dt, parse_dt

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.I)
_LOCATOR_RE = re.compile(r"^(01g[A-Za-z0-9]{15})-(\d+)$")


def sobject(sb: Instance, name: str) -> ObjectDef:
    """The object for a path segment, or 404 NOT_FOUND."""
    obj = sb.org.schema.get(name)
    if obj is None:
        raise ApiError(404, "NOT_FOUND", NOT_FOUND)
    return obj


def record_error(exc: dml.RecordError, status: int = 400) -> ApiError:
    """A per-record error raised by a single-record call."""
    return ApiError(status, exc.code, exc.message, exc.fields)


def request_error(exc: Exception) -> ApiError:
    """Body-level errors: unknown fields and values of the wrong type."""
    if isinstance(exc, dml.UnknownField):
        return ApiError(400, "INVALID_FIELD", exc.message)
    return ApiError(400, "JSON_PARSER_ERROR", str(exc))


@route("/services/data", kind="open")
def versions(sb: Instance, request: Request) -> Response:
    """GET /services/data: the API versions this org serves."""
    return json_response([{"label": LABELS.get(v, f"API {v}"), "url": f"/services/data/v{v}", "version": v} for v in VERSIONS])


@route("/")
def resources(sb: Instance, request: Request, version: str) -> Response:
    """GET /services/data/vXX.X: the resources of this version."""
    base = f"/services/data/v{version}"
    names = ("tooling", "metadata", "eclair", "folders", "prechatForms", "jobs", "query", "queryAll", "sobjects",
             "limits", "composite", "connect", "search")
    return json_response({n: f"{base}/{n}" for n in names})


@route("/sobjects")
def sobjects(sb: Instance, request: Request, version: str) -> Response:
    """Global describe."""
    return json_response(global_describe(sb.org.schema, version))


@route("/sobjects/<name>", ("GET", "POST"))
def sobject_root(sb: Instance, request: Request, version: str, name: str) -> Response:
    """GET: basic object info; POST: create a record."""
    obj = sobject(sb, name)
    if request.method == "GET":
        return json_response({"objectDescribe": object_summary(obj, version), "recentItems": []})
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with the record's fields")
    try:
        rec = dml.create(sb.org, obj, body)
    except (dml.UnknownField, ValueTypeError) as exc:
        raise request_error(exc) from exc
    except dml.RecordError as exc:
        raise record_error(exc) from exc
    return json_response({"id": rec["Id"], "success": True, "errors": []}, 201)


@route("/sobjects/<name>/describe")
def sobject_describe(sb: Instance, request: Request, version: str, name: str) -> Response:
    """Full describe of one object (custom fields included)."""
    obj = sobject(sb, name)
    return json_response(describe(sb.org.schema, obj, version))


@route("/sobjects/<name>/<record_id>", ("GET", "PATCH", "DELETE"))
def sobject_record(sb: Instance, request: Request, version: str, name: str, record_id: str) -> Response:
    """Read, update (204) or delete (204) one record."""
    obj = sobject(sb, name)
    try:
        if request.method == "GET":
            _, rec = dml.existing(sb.org, obj, record_id)
            return json_response(_full_record(obj, rec, version, request.args.get("fields")))
        if request.method == "DELETE":
            dml.delete(sb.org, obj, record_id)
            return Response(status=204)
        body = read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object with the fields to update")
        dml.update(sb.org, obj, record_id, body)
        return Response(status=204)
    except dml.Missing as exc:
        if exc.deleted:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", []) from exc
        raise ApiError(404, "NOT_FOUND", NOT_FOUND) from exc
    except dml.RecordError as exc:
        if exc.code == "MALFORMED_ID" and request.method == "GET":
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}") from exc
        raise record_error(exc) from exc
    except (dml.UnknownField, ValueTypeError) as exc:
        raise request_error(exc) from exc


def _full_record(obj: ObjectDef, rec: dict[str, Any], version: str, fields: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": attributes(obj.name, rec["Id"], version)}
    if fields:
        for name in (n.strip() for n in fields.split(",") if n.strip()):
            fdef = obj.field(name)
            if fdef is None:
                raise ApiError(400, "INVALID_FIELD", _NO_COLUMN.format(name=name, entity=obj.name))
            out[fdef.name] = rec.get(fdef.name)
        return out
    out.update((n, rec.get(n)) for n in obj.fields)
    return out


# -- query -----------------------------------------------------------------------------------------
def batch_size(request: Request) -> int:
    """Sforce-Query-Options: batchSize=N, clamped to 200..2000 (default 2000)."""
    m = _BATCH_RE.search(request.headers.get("Sforce-Query-Options", ""))
    return max(200, min(2000, int(m.group(1)))) if m else 2000


def query_page(sb: Instance, plan: Plan, ids: list[str], start: int, batch: int, version: str,
               endpoint: str, locator: str | None) -> bytes:
    """One page of a result as JSON: totalSize, done, nextRecordsUrl (while not done), records."""
    chunk = ids[start: start + batch]
    end = start + len(chunk)
    done = end >= len(ids)
    if not done and locator is None:
        locator = sb.cursors.open(plan, ids, batch, endpoint)
    org = sb.org
    records = [render_json(org, plan, rec, version) for i in chunk if (rec := org.get(i)) is not None]
    head: dict[str, Any] = {"totalSize": len(ids), "done": done}
    if not done:
        head["nextRecordsUrl"] = f"/services/data/v{version}/{endpoint}/{locator}-{end}"
    return orjson.dumps(head)[:-1] + b',"records":[' + b",".join(records) + b"]}"


def _run_query(sb: Instance, request: Request, version: str, endpoint: str) -> Response:
    text = request.args.get("q")
    if text is None:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        plan = sb.compiler.plan(text)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from exc
    ids = run(sb.org, plan, include_deleted=endpoint == "queryAll")
    if plan.query.count:
        return json_response({"totalSize": len(ids), "done": True, "records": []})
    return raw_json_response(query_page(sb, plan, ids, 0, batch_size(request), version, endpoint, None))


def _more(sb: Instance, version: str, endpoint: str, locator: str) -> Response:
    m = _LOCATOR_RE.match(locator)
    cursor = sb.cursors.get(m.group(1)) if m else None
    if m is None or cursor is None or int(m.group(2)) > len(cursor.ids):
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return raw_json_response(query_page(sb, cursor.plan, cursor.ids, int(m.group(2)), cursor.batch, version,
                                        cursor.endpoint, m.group(1)))


@route("/query")
def query(sb: Instance, request: Request, version: str) -> Response:
    """GET query?q=SOQL (deleted records excluded)."""
    return _run_query(sb, request, version, "query")


@route("/queryAll")
def query_all(sb: Instance, request: Request, version: str) -> Response:
    """GET queryAll?q=SOQL (deleted and merged records included)."""
    return _run_query(sb, request, version, "queryAll")


@route("/query/<locator>")
def query_more(sb: Instance, request: Request, version: str, locator: str) -> Response:
    """The next page of a query (nextRecordsUrl)."""
    return _more(sb, version, "query", locator)


@route("/queryAll/<locator>")
def query_all_more(sb: Instance, request: Request, version: str, locator: str) -> Response:
    """The next page of a queryAll."""
    return _more(sb, version, "queryAll", locator)


# -- replication -----------------------------------------------------------------------------------
def _window(sb: Instance, request: Request, days: int) -> tuple[datetime, datetime]:
    try:
        start = parse_dt(request.args["start"]).replace(second=0, microsecond=0)
        end = parse_dt(request.args["end"]).replace(second=0, microsecond=0)
    except KeyError as exc:
        raise ApiError(400, "MISSING_ARGUMENT", f"Missing required parameter: {exc.args[0]}") from exc
    except ValueTypeError as exc:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"Invalid date: {exc}") from exc
    now = sb.org.clock.now()
    if end <= start:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "EndDate must chronologically follow the StartDate")
    if start < now - timedelta(days=days):
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
    return start, end


@route("/sobjects/<name>/deleted")
def deleted(sb: Instance, request: Request, version: str, name: str) -> Response:
    """getDeleted: ids deleted in [start, end] (minutes; the last 15 days)."""
    obj = sobject(sb, name)
    start, end = _window(sb, request, 15)
    lo, hi = fmt_dt(start), fmt_dt(end)
    with sb.org.lock:
        log = list(sb.org.deleted_log[obj.name])
    items = [{"id": i, "deletedDate": d} for i, d in log if lo <= d < hi]
    earliest = log[0][1] if log else fmt_dt(sb.org.clock.now() - timedelta(days=15))
    return json_response({"deletedRecords": items, "earliestDateAvailable": earliest, "latestDateCovered": hi})


@route("/sobjects/<name>/updated")
def updated(sb: Instance, request: Request, version: str, name: str) -> Response:
    """getUpdated: ids whose SystemModstamp falls in [start, end] (minutes; the last 30 days)."""
    obj = sobject(sb, name)
    start, end = _window(sb, request, 30)
    lo, hi = fmt_dt(start), fmt_dt(end)
    table = sb.org.table(obj.name)
    with sb.org.lock:
        found = [i for _, i in table.order.irange((lo, ""), (hi, ""), inclusive=(True, False))
                 if not table.rows[i].get("IsDeleted")]
    if len(found) > 600_000:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "too many ids: choose a shorter window")
    return json_response({"ids": found, "latestDateCovered": hi})


@route("/limits")
def limits(sb: Instance, request: Request, version: str) -> Response:
    """Org limits: DailyApiRequests and friends."""
    return json_response(sb.usage.limits())
