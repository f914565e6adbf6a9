"""Bulk API 2.0: query jobs (CSV results paged with Sforce-Locator / maxRecords) and ingest jobs
(insert, update, upsert, delete) with successful / failed / unprocessed result CSVs.
Jobs move UploadComplete -> InProgress -> JobComplete as clients poll them.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.salesforce import dml
from sandbox.salesforce.http import NOT_FOUND, ApiError, json_response, read_json, route
from sandbox.salesforce.query import Plan, run
from sandbox.salesforce.soql import SoqlError
from sandbox.salesforce.values import from_csv, to_csv

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")


@dataclass
class Job:
    """One Bulk 2.0 job."""

    info: dict[str, Any]
    kind: str  # query | ingest
    polls: int = 0
    rows: list[str] = field(default_factory=list)
    header: str = ""
    upload: list[bytes] = field(default_factory=list)
    results: dict[str, list[str]] = field(default_factory=dict)
    plan: Plan | None = None


class Jobs:
    """The org's Bulk 2.0 jobs."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def get(self, job_id: str, kind: str) -> Job:
        """A job of the right kind or 404."""
        job = self.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise ApiError(404, "NOT_FOUND", NOT_FOUND)
        return job


def _base_info(sb: Instance, job_id: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    now = sb.org.clock.stamp()
    return {"id": job_id, "operation": body.get("operation"), "object": body.get("object"),
            "createdById": sb.org.user_id, "createdDate": now, "systemModstamp": now, "state": "",
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(version),
            "lineEnding": body.get("lineEnding", "LF"), "columnDelimiter": body.get("columnDelimiter", "COMMA")}


def _writer(info: dict[str, Any]) -> tuple[io.StringIO, Any]:
    buf = io.StringIO()
    lt = "\r\n" if info.get("lineEnding") == "CRLF" else "\n"
    return buf, csv.writer(buf, delimiter=DELIMITERS.get(info.get("columnDelimiter", "COMMA"), ","),
                           lineterminator=lt, quoting=csv.QUOTE_ALL)


def _advance(sb: Instance, job: Job) -> None:
    """Move a job one state forward on each poll (running a query job when it starts)."""
    state = job.info["state"]
    if state == "UploadComplete":
        job.info["state"] = "InProgress"
        if job.kind == "query":
            _execute_query(sb, job)
    elif state == "InProgress":
        job.info["state"] = "JobComplete"
    job.info["systemModstamp"] = sb.org.clock.stamp()


# -- query jobs ------------------------------------------------------------------------------------
@route("/jobs/query", ("POST", "GET"))
def query_jobs(sb: Instance, request: Request, version: str) -> Response:
    """Create a query job, or list jobs."""
    if request.method == "GET":
        with sb.jobs.lock:
            records = [j.info for j in sb.jobs.jobs.values() if j.kind == "query"]
        return json_response({"done": True, "records": records, "nextRecordsUrl": None})
    body = read_json(request)
    op = body.get("operation")
    if op not in ("query", "queryAll"):
        raise ApiError(400, "INVALIDJOB", f"Invalid operation '{op}': use query or queryAll")
    if body.get("columnDelimiter", "COMMA") not in DELIMITERS:
        raise ApiError(400, "INVALIDJOB", f"Invalid columnDelimiter: {body.get('columnDelimiter')}")
    try:
        plan = sb.compiler.plan(str(body.get("query") or ""), bulk=True)
    except SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from exc
    job_id = sb.org.ids.for_object("Job")
    info = _base_info(sb, job_id, version, {**body, "object": plan.obj.name})
    info.update(state="UploadComplete", jobType="V2Query", numberRecordsProcessed=0, retries=0, totalProcessingTime=0)
    with sb.jobs.lock:
        sb.jobs.jobs[job_id] = Job(info, "query", plan=plan)
    sb.usage.query_jobs += 1
    return json_response(info)


def _execute_query(sb: Instance, job: Job) -> None:
    plan = job.plan
    assert plan is not None
    ids = run(sb.org, plan, include_deleted=job.info["operation"] == "queryAll")
    buf, writer = _writer(job.info)
    writer.writerow([".".join(c.path) for c in plan.columns])
    job.header = buf.getvalue()
    rows = []
    for rid in ids:
        rec = sb.org.get(rid)
        if rec is None:
            continue
        buf.seek(0)
        buf.truncate()
        writer.writerow([to_csv(c.getter(rec), c.fdef.type) for c in plan.columns])
        rows.append(buf.getvalue())
    job.rows = rows
    job.info["numberRecordsProcessed"] = len(rows)


@route("/jobs/query/<job_id>", ("GET", "PATCH", "DELETE"))
def query_job(sb: Instance, request: Request, version: str, job_id: str) -> Response:
    """Job info (each poll advances the job), abort, or delete."""
    with sb.jobs.lock:
        job = sb.jobs.get(job_id, "query")
        if request.method == "DELETE":
            del sb.jobs.jobs[job_id]
            return Response(status=204)
        if request.method == "PATCH":
            state = read_json(request).get("state")
            if state != "Aborted":
                raise ApiError(400, "INVALIDJOB", f"A query job can only be set to Aborted, not {state!r}")
            job.info["state"] = "Aborted"
            return json_response(job.info)
        _advance(sb, job)
        return json_response(job.info)


@route("/jobs/query/<job_id>/results")
def query_results(sb: Instance, request: Request, version: str, job_id: str) -> Response:
    """A CSV page of results: maxRecords per page, Sforce-Locator for the next one ('null' at the end)."""
    with sb.jobs.lock:
        job = sb.jobs.get(job_id, "query")
        if job.info["state"] != "JobComplete":
            raise ApiError(400, "INVALIDJOB", f"Job {job_id} is {job.info['state']}: poll it until JobComplete")
    try:
        max_records = int(request.args.get("maxRecords", 50000))
        raw = request.args.get("locator", "")
        start = int(base64.b64decode(raw + "=" * (-len(raw) % 4)).decode()) if raw else 0
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid locator or maxRecords") from exc
    if max_records <= 0:
        raise ApiError(400, "INVALIDJOB", "maxRecords must be a positive number")
    chunk = job.rows[start: start + max_records]
    end = start + len(chunk)
    locator = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < len(job.rows) else "null"
    body = (job.header + "".join(chunk)).encode()
    return Response(body, content_type="text/csv", headers={"Sforce-Locator": locator,
                                                             "Sforce-NumberOfRecords": str(len(chunk))})


# -- ingest jobs -----------------------------------------------------------------------------------
@route("/jobs/ingest", ("POST", "GET"))
def ingest_jobs(sb: Instance, request: Request, version: str) -> Response:
    """Create an ingest job (state Open), or list jobs."""
    if request.method == "GET":
        with sb.jobs.lock:
            records = [j.info for j in sb.jobs.jobs.values() if j.kind == "ingest"]
        return json_response({"done": True, "records": records, "nextRecordsUrl": None})
    body = read_json(request)
    obj = sb.org.schema.get(str(body.get("object") or ""))
    if obj is None:
        raise ApiError(400, "INVALIDJOB", f"Unable to find object: {body.get('object')}")
    op = body.get("operation")
    if op not in INGEST_OPS:
        raise ApiError(400, "INVALIDJOB", f"Invalid operation '{op}': use one of {', '.join(INGEST_OPS)}")
    ext = body.get("externalIdFieldName")
    if op == "upsert" and (not ext or obj.field(ext) is None or not (obj.field(ext).external_id or obj.field(ext).name == "Id")):  # type: ignore[union-attr]
        raise ApiError(400, "INVALIDJOB", f"InvalidJob : Field name provided, {ext} is not an External ID or indexed field for {obj.name}")
    job_id = sb.org.ids.for_object("Job")
    info = _base_info(sb, job_id, version, {**body, "object": obj.name})
    if ext:
        info["externalIdFieldName"] = ext
    info.update(state="Open", jobType="V2Ingest", contentUrl=f"services/data/v{version}/jobs/ingest/{job_id}/batches")
    with sb.jobs.lock:
        sb.jobs.jobs[job_id] = Job(info, "ingest")
    return json_response(info)


@route("/jobs/ingest/<job_id>", ("GET", "PATCH", "DELETE"))
def ingest_job(sb: Instance, request: Request, version: str, job_id: str) -> Response:
    """Job info (polls advance it), close (UploadComplete) or abort, delete."""
    with sb.jobs.lock:
        job = sb.jobs.get(job_id, "ingest")
        if request.method == "DELETE":
            del sb.jobs.jobs[job_id]
            return Response(status=204)
        if request.method == "GET":
            _advance(sb, job)
            return json_response(_ingest_info(job))
        state = read_json(request).get("state")
        if state == "Aborted":
            job.info["state"] = "Aborted"
            return json_response(_ingest_info(job))
        if state != "UploadComplete" or job.info["state"] != "Open":
            raise ApiError(400, "INVALIDJOB", f"Can't change the state of a {job.info['state']} job to {state!r}")
        if not job.upload:
            job.info.update(state="Failed", errorMessage="No data was uploaded for this job")
            return json_response(_ingest_info(job))
        job.info["state"] = "UploadComplete"
        _process_ingest(sb, job)
        sb.usage.bulk_batches += 1
        return json_response(_ingest_info(job))


def _ingest_info(job: Job) -> dict[str, Any]:
    info = dict(job.info)
    info.update({k: job.info.get(k, 0) for k in ("numberRecordsProcessed", "numberRecordsFailed", "retries",
                                                 "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime")})
    return info


@route("/jobs/ingest/<job_id>/batches", ("PUT",))
def ingest_upload(sb: Instance, request: Request, version: str, job_id: str) -> Response:
    """Upload the job's CSV (201)."""
    with sb.jobs.lock:
        job = sb.jobs.get(job_id, "ingest")
        if job.info["state"] != "Open":
            raise ApiError(400, "INVALIDJOB", f"Upload is only possible while the job is Open, it is {job.info['state']}")
        job.upload.append(request.get_data())
    return Response(status=201)


def _process_ingest(sb: Instance, job: Job) -> None:
    info = job.info
    obj = sb.org.schema.get(info["object"])
    assert obj is not None
    delim = DELIMITERS.get(info.get("columnDelimiter", "COMMA"), ",")
    text = b"".join(job.upload).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    header, data = (rows[0], rows[1:]) if rows else ([], [])
    buf, writer = _writer(info)
    ok_rows, bad_rows = [], []
    op = info["operation"]
    ext = info.get("externalIdFieldName")
    for row in data:
        if not any(cell for cell in row):
            continue
        values = dict(zip(header, row, strict=False))
        created = False
        try:
            rid, created = _apply(sb, obj, op, values, ext)
            buf.seek(0)
            buf.truncate()
            writer.writerow([rid, "true" if created else "false", *row])
            ok_rows.append(buf.getvalue())
        except (dml.RecordError, dml.Missing, dml.UnknownField, ValueError) as exc:
            buf.seek(0)
            buf.truncate()
            writer.writerow([values.get("Id", ""), _bulk_error(exc), *row])
            bad_rows.append(buf.getvalue())
    for key, prefix, rows_out in (("successfulResults", ["sf__Id", "sf__Created"], ok_rows),
                                  ("failedResults", ["sf__Id", "sf__Error"], bad_rows)):
        buf.seek(0)
        buf.truncate()
        writer.writerow([*prefix, *header])
        job.results[key] = [buf.getvalue(), *rows_out]
    buf.seek(0)
    buf.truncate()
    writer.writerow(header)
    job.results["unprocessedrecords"] = [buf.getvalue()]
    info["numberRecordsProcessed"] = len(ok_rows) + len(bad_rows)
    info["numberRecordsFailed"] = len(bad_rows)


def _apply(sb: Instance, obj: Any, op: str, values: dict[str, str], ext: str | None) -> tuple[str, bool]:
    org = sb.org
    fields: dict[str, Any] = {}
    for name, cell in values.items():
        if name.lower() == "id" or cell == "":
            continue  # an empty cell leaves the field unchanged; '#N/A' sets null
        fdef = obj.field(name)
        if fdef is None:
            raise dml.UnknownField(obj.name, name)
        fields[fdef.name] = from_csv(fdef, cell)
    if op in ("delete", "hardDelete"):
        return dml.delete(org, obj, values.get("Id", "")), False
    if op == "insert":
        return dml.create(org, obj, fields)["Id"], True
    if op == "update" or (op == "upsert" and (ext or "Id") == "Id" and values.get("Id")):
        rec = dml.update(org, obj, values.get("Id", ""), fields)
        assert rec is not None
        return rec["Id"], False
    key_field = obj.field(ext or "Id")
    key = values.get(key_field.name, "") if key_field else ""
    matches = [r for r in org.live(obj.name) if key and r.get(key_field.name) == key] if key_field else []
    if len(matches) > 1:
        raise dml.RecordError("DUPLICATE_EXTERNAL_ID", f"{key_field.name}: more than one record found for external id field: {key}")
    if matches:
        rec = dml.update(org, obj, matches[0]["Id"], fields)
        assert rec is not None
        return rec["Id"], False
    return dml.create(org, obj, fields)["Id"], True


def _bulk_error(exc: Exception) -> str:
    if isinstance(exc, dml.RecordError):
        return f"{exc.code}:{exc.message}:{'/'.join(exc.fields)} --"
    if isinstance(exc, dml.Missing):
        return "ENTITY_IS_DELETED:entity is deleted:--" if exc.deleted else "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"
    if isinstance(exc, dml.UnknownField):
        return f"INVALID_FIELD:{exc.message}:--"
    return f"INVALID_FIELD_VALUE:{exc}:--"


@route("/jobs/ingest/<job_id>/<kind>")
def ingest_results(sb: Instance, request: Request, version: str, job_id: str, kind: str) -> Response:
    """successfulResults / failedResults / unprocessedrecords (any case)."""
    with sb.jobs.lock:
        job = sb.jobs.get(job_id, "ingest")
    key = {"successfulresults": "successfulResults", "failedresults": "failedResults",
           "unprocessedrecords": "unprocessedrecords"}.get(kind.lower())
    if key is None:
        raise ApiError(404, "NOT_FOUND", NOT_FOUND)
    if job.info["state"] not in ("JobComplete", "Failed", "Aborted") and key != "unprocessedrecords":
        raise ApiError(400, "INVALIDJOB", f"Job {job_id} is {job.info['state']}: results are ready at JobComplete")
    return Response("".join(job.results.get(key, [])).encode(), content_type="text/csv")
