"""The OpenAPI 3.0 document of the JSON API, written by hand next to the routes it describes (connector.web.api)."""

from __future__ import annotations

from typing import Any

from connector.model import RUN_KINDS, UNIFIED_OBJECTS
from connector.queues import RUN_KINDS as SCHEDULE_KINDS
from connector.web.services.model import EDITABLE
from connector.web.services.runs import STATUSES

S = dict[str, Any]


def _ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def _n(schema: S) -> S:
    return {**schema, "nullable": True}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
OBJ: S = {"type": "object", "additionalProperties": True}


def _obj(props: S, required: list[str] | None = None) -> S:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props)}


def _arr(items: S) -> S:
    return {"type": "array", "items": items}


SCHEMAS: dict[str, S] = {
    "Error": {"type": "object", "properties": {"error": STR, "fields": {"type": "object", "additionalProperties": STR},
                                               "hint": STR}, "required": ["error"]},
    "Me": _obj({"email": STR, "role": {"type": "string", "enum": ["admin", "revops", "viewer"]}, "workspace": STR,
                "can_write": BOOL}),
    "LastSync": _n(_obj({"run_id": INT, "kind": STR, "status": STR, "started_at": _n(STR), "finished_at": _n(STR)})),
    "Connection": _obj({
        "id": INT, "name": STR, "kind": {"type": "string", "enum": ["salesforce", "hubspot"]}, "status": STR,
        "status_detail": _n(STR), "instance_url": _n(STR), "external_org_id": _n(STR), "auth": _n(STR),
        "created_at": _n(STR), "api_calls_today": INT,
        "budget_today": _obj({"ours": _n(INT), "crm_used": _n(INT), "crm_limit": _n(INT)}),
        "last_sync": _ref("LastSync")}),
    "ConnectionDetail": {"allOf": [_ref("Connection"), _obj({
        "webhook": _obj({"url": STR, "secret": _n(STR), "secret_set": BOOL, "verification": STR}, ["url", "verification"]),
        "recent_runs": _arr(_obj({"id": INT, "kind": STR, "status": STR, "started_at": _n(STR), "api_calls": INT}))})]},
    "NewConnection": {"type": "object", "required": ["kind", "name"], "properties": {
        "kind": {"type": "string", "enum": ["hubspot", "salesforce"]}, "name": STR, "token": STR, "app_secret": STR,
        "portal_id": STR, "api_base": STR, "client_id": STR, "username": STR, "private_key": STR, "login_url": STR,
        "ca_bundle": STR}},
    "OAuthStart": {"type": "object", "required": ["name", "client_id", "client_secret"], "properties": {
        "name": STR, "client_id": STR, "client_secret": STR, "api_base": STR, "login_url": STR, "ca_bundle": STR}},
    "Spec": {"type": "object", "properties": {"source": STR, "constant": {}, "cast": STR, "default": {}, "format": STR,
                                              "map": {"type": "object", "additionalProperties": True}}},
    "MappingView": _obj({
        "connection": _obj({"id": INT, "name": STR, "kind": STR}), "object": STR,
        "origin": _obj({"read": STR, "write": STR}),
        "unified": _arr(_obj({"name": STR, "kind": STR, "spec": _n(OBJ)})),
        "read": {"type": "object", "additionalProperties": _ref("Spec")},
        "write": _n({"type": "object", "additionalProperties": STR}),
        "crm_fields": _arr(_obj({"name": STR, "label": STR, "type": STR, "custom": BOOL, "updateable": BOOL,
                                 "nillable": BOOL, "options": _arr(STR)})),
        "crm_error": _n(STR), "warnings": {"type": "object", "additionalProperties": STR}}),
    "MappingDraft": {"type": "object", "required": ["read"], "properties": {
        "read": {"type": "object", "additionalProperties": _ref("Spec")},
        "write": {"type": "object", "additionalProperties": STR}}},
    "Saved": _obj({"saved": BOOL, "object": STR, "rederived": INT, "skipped": INT, "new_sources": _arr(STR)}),
    "Preview": _obj({"object": STR, "targets": _arr(STR), "records": _arr(_obj({
        "external_id": STR, "values": OBJ, "error": _n(STR)}))}),
    "Yaml": _obj({"yaml": STR}),
    "Imported": _obj({"imported": _arr(STR), "rederived": {"type": "object", "additionalProperties": INT},
                      "new_sources": {"type": "object", "additionalProperties": _arr(STR)}}),
    "Provisioned": {"type": "object", "additionalProperties": _obj({"created": _arr(STR), "existing": _arr(STR)})},
    "Cron": _obj({"cron": STR, "description": STR, "next_runs": _arr(STR)}),
    "Schedule": _obj({"id": INT, "connection_id": INT, "connection": STR, "kind": STR, "kind_words": STR, "cron": STR,
                      "enabled": BOOL, "description": STR, "next_runs": _arr(STR), "last_slot": _n(STR),
                      "created_at": _n(STR)}),
    "NewSchedule": {"type": "object", "required": ["connection_id", "kind", "cron"], "properties": {
        "connection_id": INT, "kind": {"type": "string", "enum": list(SCHEDULE_KINDS)}, "cron": STR}},
    "Enabled": {"type": "object", "required": ["enabled"], "properties": {"enabled": BOOL}},
    "Queued": _obj({"queued": BOOL, "job_ids": _arr(STR)}),
    "Run": _obj({"id": INT, "connection_id": INT, "connection": STR, "kind": STR, "status": STR, "trigger": _n(STR),
                 "started_at": _n(STR), "finished_at": _n(STR), "duration_s": _n(NUM), "api_calls": INT,
                 "counts": OBJ, "error": _n(STR), "failed_records": INT, "progress": OBJ}),
    "RunDetail": {"allOf": [_ref("Run"), _obj({
        "job_id": _n(STR), "heartbeat_at": _n(STR), "window_start": _n(STR), "window_end": _n(STR),
        "failures": _arr(_obj({"record": _n(STR), "object": _n(STR), "code": _n(STR), "message": STR}))})]},
    "Runs": _obj({"runs": _arr(_ref("Run")), "next_before": _n(INT)}),
    "AccountScore": _obj({"external_id": STR, "name": STR, "relationship": _n(NUM), "experience": _n(NUM),
                          "tier": _n(STR), "trend": _n(NUM), "at_risk": BOOL}),
    "ScoreSummary": _obj({
        "connection": _obj({"id": INT, "name": STR, "kind": STR}), "accounts": INT, "contacts": INT,
        "average": _obj({"relationship": _n(NUM), "experience": _n(NUM)}), "scored_at": _n(STR),
        "model_version": _n(INT), "bins": _arr(STR),
        "histograms": _obj({"relationship": _arr(INT), "experience": _arr(INT)}),
        "tiers": _obj({"A": INT, "B": INT, "C": INT}), "at_risk_count": INT,
        "top": _arr(_ref("AccountScore")), "risers": _arr(_ref("AccountScore")), "fallers": _arr(_ref("AccountScore")),
        "at_risk": _arr(_ref("AccountScore"))}),
    "AccountDetail": _obj({
        "connection": _obj({"id": INT, "name": STR, "kind": STR}), "external_id": STR, "account": OBJ, "name": STR,
        "relationship": _n(NUM), "experience": _n(NUM), "tier": _n(STR), "trend": _n(NUM), "at_risk": BOOL,
        "model_version": INT, "scored_at": _n(STR), "baseline": _n(NUM),
        "components": _arr(_obj({"score": STR, "component": STR, "level": _n(NUM), "points": _n(NUM)})),
        "drivers": _arr(OBJ),
        "history": _arr(_obj({"scored_at": _n(STR), "relationship": _n(NUM), "experience": _n(NUM), "tier": _n(STR),
                              "model_version": INT}))}),
    "ScoreModel": _obj({"published": INT, "values": {"type": "object", "additionalProperties": NUM},
                        "versions": _arr(_obj({"version": INT, "status": STR, "note": _n(STR), "created_at": _n(STR),
                                               "published_at": _n(STR)})), "params": OBJ}),
    "Draft": {"type": "object", "required": ["values"], "properties": {
        "values": {"type": "object", "properties": {p: NUM for p in EDITABLE}, "additionalProperties": False},
        "note": STR}},
    "Version": _obj({"version": INT}),
    "Published": _obj({"published": INT}),
    "Comparison": _obj({"connection": _obj({"id": INT, "name": STR}), "version": INT, "status": STR, "published": INT,
                        "distribution": OBJ, "backtest": _n(OBJ), "bins": _arr(STR)}),
    "Token": _obj({"id": INT, "name": STR, "created_at": STR, "last_used_at": _n(STR)}),
    "NewToken": _obj({"id": INT, "name": STR, "token": STR}),
    "TokenName": {"type": "object", "required": ["name"], "properties": {"name": STR}},
    "AuthorizeUrl": _obj({"authorize_url": STR, "redirect_uri": STR}),
}


def _json(schema: S, description: str) -> S:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> S:
    words = {400: "bad input (see fields)", 401: "not signed in", 403: "your role may not do this",
             404: "not found in your workspace"}
    return {str(c): _json(_ref("Error"), words[c]) for c in (401, *codes)}


def _path(*names: str) -> list[S]:
    return [{"name": n, "in": "path", "required": True, "schema": STR} for n in names]


def _query(**names: S) -> list[S]:
    return [{"name": n, "in": "query", "required": False, "schema": s} for n, s in names.items()]


def _op(summary: str, ok: S, *, status: int = 200, params: list[S] | None = None, body: str | None = None,
        errors: tuple[int, ...] = ()) -> S:
    op: S = {"summary": summary, "responses": {str(status): ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return op


OBJECT = {"name": "object", "in": "path", "required": True, "schema": {"type": "string", "enum": list(UNIFIED_OBJECTS)}}
CONN, SCHED, RUN, VERSION = _path("connection_id"), _path("schedule_id"), _path("run_id"), _path("version")
EMPTY: S = {"description": "done"}

PATHS: dict[str, S] = {
    "/me": {"get": _op("Who am I", _json(_ref("Me"), "the caller"))},
    "/connections": {
        "get": _op("List connections", _json(_obj({"connections": _arr(_ref("Connection"))}), "connections")),
        "post": _op("Add a HubSpot private-app or Salesforce JWT connection", _json(_ref("ConnectionDetail"), "added"),
                    status=201, body="NewConnection", errors=(400, 403))},
    "/oauth/{kind}/start": {"post": _op(
        "Start an OAuth install", _json(_ref("AuthorizeUrl"), "open authorize_url in the signed-in browser"),
        status=201, body="OAuthStart", errors=(400, 403, 404),
        params=[{"name": "kind", "in": "path", "required": True, "schema": STR}])},
    "/connections/{connection_id}": {"get": _op("One connection", _json(_ref("ConnectionDetail"), "the connection"),
                                                params=CONN, errors=(404,))},
    "/connections/{connection_id}/status": {"post": _op(
        "Enable or disable", _json(_ref("ConnectionDetail"), "updated"), params=CONN, body="Enabled",
        errors=(400, 403, 404))},
    "/connections/{connection_id}/mappings/{object}": {
        "get": _op("An object's mapping with the CRM's fields", _json(_ref("MappingView"), "the mapping"),
                   params=[*CONN, OBJECT, *_query(refresh=STR)], errors=(400, 404)),
        "put": _op("Save an object's mapping", _json(_ref("Saved"), "saved"), params=[*CONN, OBJECT],
                   body="MappingDraft", errors=(400, 403, 404))},
    "/connections/{connection_id}/mappings/{object}/preview": {"post": _op(
        "Preview five real records mapped with a draft", _json(_ref("Preview"), "mapped records"),
        params=[*CONN, OBJECT], body="MappingDraft", errors=(400, 403, 404))},
    "/connections/{connection_id}/mapping-document": {
        "get": _op("The mapping as YAML", _json(_ref("Yaml"), "YAML text"), params=CONN, errors=(404,)),
        "put": _op("Import a YAML mapping", _json(_ref("Imported"), "imported"), params=CONN, body="Yaml",
                   errors=(400, 403, 404))},
    "/connections/{connection_id}/provision": {"post": _op(
        "Create the score fields in the CRM", _json(_ref("Provisioned"), "per object"), params=CONN,
        errors=(400, 403, 404))},
    "/connections/{connection_id}/scores": {"get": _op(
        "Score summary", _json(_ref("ScoreSummary"), "distributions and lists"), params=CONN, errors=(404,))},
    "/connections/{connection_id}/scores/accounts/{external_id}": {"get": _op(
        "One account's scores", _json(_ref("AccountDetail"), "the account"), params=[*CONN, *_path("external_id")],
        errors=(404,))},
    "/cron": {"get": _op("Describe a cron expression", _json(_ref("Cron"), "plain words and next runs"),
                         params=_query(expr=STR), errors=(400,))},
    "/schedules": {
        "get": _op("List schedules", _json(_obj({"schedules": _arr(_ref("Schedule"))}), "schedules")),
        "post": _op("Add a schedule", _json(_ref("Schedule"), "added"), status=201, body="NewSchedule",
                    errors=(400, 403))},
    "/schedules/{schedule_id}": {
        "get": _op("One schedule", _json(_ref("Schedule"), "the schedule"), params=SCHED, errors=(404,)),
        "patch": _op("Enable or disable", _json(_ref("Schedule"), "updated"), params=SCHED, body="Enabled",
                     errors=(400, 403, 404)),
        "delete": _op("Delete", EMPTY, status=204, params=SCHED, errors=(403, 404))},
    "/schedules/{schedule_id}/run": {"post": _op("Run now", _json(_ref("Queued"), "queued"), status=202,
                                                 params=SCHED, errors=(403, 404))},
    "/runs": {"get": _op("Run history", _json(_ref("Runs"), "runs, newest first"), errors=(400, 404), params=_query(
        connection_id=STR, kind={"type": "string", "enum": list(RUN_KINDS)},
        status={"type": "string", "enum": list(STATUSES)}, before=INT,
        limit={"type": "integer", "minimum": 1, "maximum": 200}))},
    "/runs/{run_id}": {"get": _op("One run", _json(_ref("RunDetail"), "the run"), params=RUN, errors=(404,))},
    "/score-model": {"get": _op("The score model", _json(_ref("ScoreModel"), "versions and values"))},
    "/score-model/drafts": {"post": _op("Create a draft version", _json(_ref("Version"), "created"), status=201,
                                        body="Draft", errors=(400, 403))},
    "/score-model/versions/{version}/compare": {"get": _op(
        "Compare a version with the published one", _json(_ref("Comparison"), "distribution and backtest"),
        params=[*VERSION, {"name": "connection_id", "in": "query", "required": True, "schema": STR},
                *_query(as_of={"type": "string", "format": "date"},
                        horizon_days={"type": "integer", "minimum": 1, "maximum": 1095})],
        errors=(400, 404))},
    "/score-model/versions/{version}/publish": {"post": _op("Publish a version", _json(_ref("Published"), "published"),
                                                            params=VERSION, errors=(403, 404))},
    "/tokens": {
        "get": _op("Your API tokens", _json(_obj({"tokens": _arr(_ref("Token"))}), "tokens")),
        "post": _op("Create a token (shown once)", _json(_ref("NewToken"), "created"), status=201, body="TokenName",
                    errors=(400, 403))},
    "/tokens/{token_id}": {"delete": _op("Revoke a token", EMPTY, status=204, params=_path("token_id"),
                                         errors=(403, 404))},
}


def document(server: str) -> S:
    """The OpenAPI document, with this server's URL."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Rapport API", "version": "1",
                 "description": "Connections, mappings, schedules, runs, scores and the score model of your "
                                "workspace. Send `Authorization: Bearer <token>` (create tokens on the API tokens page)."},
        "servers": [{"url": f"{server}/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": PATHS,
    }
