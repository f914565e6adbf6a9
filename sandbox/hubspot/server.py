"""The WSGI app: routing, authentication and scopes, rate limits, faults, statistics, JSON in and out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.hubspot import errors, hooks
from sandbox.hubspot.errors import ApiError
from sandbox.hubspot.oauth import Caller, require, required_scopes
from sandbox.hubspot.objects_api import object_type
from sandbox.hubspot.values import now_ms

if TYPE_CHECKING:
    from sandbox.hubspot.sandbox import HubSpotSandbox

log = logging.getLogger(__name__)
JSON = "application/json;charset=utf-8"
ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]

URLS = Map([
    Rule("/oauth/authorize", endpoint="oauth_authorize", methods=["GET", "POST"]),
    Rule("/oauth/v1/token", endpoint="oauth_token", methods=["POST"]),
    Rule("/oauth/v1/access-tokens/<token>", endpoint="oauth_access", methods=["GET"]),
    Rule("/oauth/v1/refresh-tokens/<token>", endpoint="oauth_refresh", methods=["GET", "DELETE"]),
    Rule("/crm/v3/objects/<ot>", endpoint="objects", methods=["GET", "POST"]),
    Rule("/crm/v3/objects/<ot>/search", endpoint="search", methods=["POST"]),
    Rule("/crm/v3/objects/<ot>/merge", endpoint="merge", methods=["POST"]),
    Rule("/crm/v3/objects/<ot>/batch/<op>", endpoint="batch", methods=["POST"]),
    Rule("/crm/v3/objects/<ot>/<oid>", endpoint="object", methods=["GET", "PATCH", "DELETE"]),
    Rule("/crm/v3/properties/<ot>", endpoint="properties", methods=["GET", "POST"]),
    Rule("/crm/v3/properties/<ot>/groups", endpoint="groups", methods=["GET", "POST"]),
    Rule("/crm/v3/properties/<ot>/groups/<group>", endpoint="groups", methods=["GET"]),
    Rule("/crm/v3/properties/<ot>/<name>", endpoint="property", methods=["GET", "PATCH"]),
    Rule("/crm/v3/pipelines/<ot>", endpoint="pipelines", methods=["GET"]),
    Rule("/crm/v3/pipelines/<ot>/<pid>", endpoint="pipeline", methods=["GET"]),
    Rule("/crm/v3/pipelines/<ot>/<pid>/stages", endpoint="stages", methods=["GET"]),
    Rule("/crm/v3/owners", endpoint="owners", methods=["GET"]),
    Rule("/crm/v4/associations/<ot>/<to>/batch/read", endpoint="assoc_batch_read", methods=["POST"]),
    Rule("/crm/v4/associations/<ot>/<to>/batch/associate/default", endpoint="assoc_batch_default",
         methods=["POST"]),
    Rule("/crm/v4/associations/<ot>/<to>/batch/create", endpoint="assoc_batch_create", methods=["POST"]),
    Rule("/crm/v4/associations/<ot>/<to>/batch/archive", endpoint="assoc_batch_archive", methods=["POST"]),
    Rule("/crm/v4/associations/<ot>/<to>/batch/labels/archive", endpoint="assoc_batch_labels_archive",
         methods=["POST"]),
    Rule("/crm/v4/associations/<ot>/<to>/labels", endpoint="assoc_labels", methods=["GET"]),
    Rule("/crm/v4/objects/<ot>/<oid>/associations/<to>", endpoint="assoc_list", methods=["GET"]),
    Rule("/crm/v4/objects/<ot>/<oid>/associations/default/<to>/<tid>", endpoint="assoc_default",
         methods=["PUT"]),
    Rule("/crm/v4/objects/<ot>/<oid>/associations/<to>/<tid>", endpoint="assoc_labelled",
         methods=["PUT", "DELETE"]),
    Rule("/__sandbox__/<path:hook>", endpoint="hook", methods=ALL),
], strict_slashes=False, merge_slashes=True)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None,
                  truncate: bool = False) -> Response:
    """A JSON response (or an empty one for 204 / None)."""
    if body is None:
        return Response(b"", status=status, headers=headers)
    data = orjson.dumps(body)
    if truncate:
        data = data[: max(1, len(data) // 2)]
    return Response(data, status=status, headers=headers, content_type=JSON)


def read_json(request: Request) -> Any:
    """The request body as JSON (None when empty), or 400 naming the problem."""
    data = request.get_data(cache=False)
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise errors.validation(f"Invalid input JSON: {exc}") from exc


def _endpoint_name(method: str, rule: Rule, args: Mapping[str, Any]) -> str:
    path = rule.rule
    for key in ("ot", "to", "op"):
        if key in args:
            path = path.replace(f"<{key}>", args[key])
    return f"{method} {path}"


class App:
    """The sandbox's WSGI application."""

    def __init__(self, sandbox: HubSpotSandbox) -> None:
        self.sb = sandbox

    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route, authenticate, limit, inject faults, handle, count."""
        adapter = URLS.bind_to_environ(request.environ)
        try:
            rule, args = adapter.match(return_rule=True)
        except MethodNotAllowed:
            return json_response(405, ApiError(405, "VALIDATION_ERROR", "Method not allowed").body)
        except (NotFound, HTTPException):
            return json_response(404, errors.not_found(f"No endpoint {request.method} {request.path}").body)
        endpoint = rule.endpoint
        if endpoint == "hook":
            try:
                status, body = hooks.handle(self.sb, request.method, args["hook"], request)
                return json_response(status, body)
            except ApiError as exc:
                return json_response(exc.status, exc.body, exc.headers)
        name = _endpoint_name(request.method, rule, args)
        headers: dict[str, str] = {}
        decision = self.sb.faults.draw(request.path)
        if decision.delay:
            time.sleep(decision.delay)
        try:
            if decision.error is not None:
                raise decision.error
            if endpoint.startswith("oauth_"):
                response = self._oauth(endpoint, request, args)
                self.sb.stats.record(name, response.status_code)
                return response
            caller = self.sb.oauth.authenticate(request.headers.get("Authorization"))
            headers = self.sb.limiter.check(caller.app_id, caller.kind, search=endpoint == "search")
            status, body = self._crm(endpoint, request, args, caller)
        except ApiError as exc:
            headers.update(exc.headers)
            self.sb.stats.record(name, exc.status)
            return json_response(exc.status, exc.body, headers)
        except Exception:
            log.exception("sandbox error on %s %s", request.method, request.path)
            self.sb.stats.record(name, 500)
            return json_response(500, ApiError(500, "INTERNAL_ERROR", "internal error").body)
        self.sb.stats.record(name, status)
        return json_response(status, body, headers, truncate=decision.truncate)

    def _oauth(self, endpoint: str, request: Request, args: Mapping[str, Any]) -> Response:
        oauth = self.sb.oauth
        if endpoint == "oauth_authorize":
            if request.method == "GET":
                status, page = oauth.authorize_page(request.args.to_dict())
            else:
                status, page = oauth.authorize_decision(request.form.to_dict())
            if status == 302:
                return Response("", status=302, headers={"Location": page})
            return Response(page, status=status, content_type="text/html; charset=utf-8")
        body: Any
        if endpoint == "oauth_token":
            status, body = oauth.token(request.form.to_dict())
        elif endpoint == "oauth_access":
            status, body = oauth.access_token_info(args["token"])
        elif request.method == "DELETE":
            status, body = oauth.revoke_refresh(args["token"])
        else:
            status, body = oauth.refresh_token_info(args["token"])
        return json_response(status, body)

    def _crm(self, endpoint: str, request: Request, args: Mapping[str, Any], caller: Caller) -> tuple[int, Any]:
        objects, meta, q = self.sb.objects_api, self.sb.meta_api, request.args
        ot = object_type(args["ot"]) if "ot" in args else ""
        to = object_type(args["to"]) if "to" in args else ""
        method = request.method
        require(caller, required_scopes(endpoint, method, ot, to, args.get("op", "")))
        if endpoint == "owners":
            return meta.owners_page(q)
        if endpoint == "objects":
            return objects.list_page(ot, q) if method == "GET" else objects.create(ot, read_json(request), caller)
        if endpoint == "object":
            if method == "GET":
                return objects.get(ot, args["oid"], q)
            if method == "PATCH":
                return objects.update(ot, args["oid"], read_json(request), q, caller)
            return objects.archive(ot, args["oid"], caller)
        if endpoint == "search":
            return objects.search(ot, read_json(request), now_ms())
        if endpoint == "batch":
            return objects.batch(ot, args["op"], read_json(request), q, caller)
        if endpoint == "merge":
            return objects.merge(ot, read_json(request), caller)
        if endpoint == "properties":
            return meta.properties(ot, q) if method == "GET" else meta.create_property(ot, read_json(request))
        if endpoint == "groups":
            if "group" in args:
                return meta.group(ot, args["group"])
            return meta.groups(ot) if method == "GET" else meta.create_group(ot, read_json(request))
        if endpoint == "property":
            if method == "PATCH":
                return meta.update_property(ot, args["name"], read_json(request))
            return meta.property(ot, args["name"])
        if endpoint in ("pipelines", "pipeline", "stages"):
            return meta.pipelines(ot, args.get("pid"), stages=endpoint == "stages")
        if endpoint == "assoc_batch_read":
            return meta.batch_read(ot, to, read_json(request))
        if endpoint.startswith("assoc_batch_") and endpoint != "assoc_batch_read":
            handler = {"assoc_batch_default": meta.batches.create_default, "assoc_batch_create": meta.batches.create,
                       "assoc_batch_archive": meta.batches.archive,
                       "assoc_batch_labels_archive": meta.batches.archive_labels}[endpoint]
            return handler(ot, to, read_json(request), caller)
        if endpoint == "assoc_labels":
            return meta.labels(ot, to)
        if endpoint == "assoc_list":
            return meta.list_associations(ot, args["oid"], to, q)
        if endpoint == "assoc_default":
            return meta.create_default(ot, args["oid"], to, args["tid"], caller)
        if method == "PUT":
            return meta.create_labelled(ot, args["oid"], to, args["tid"], read_json(request), caller)
        return meta.delete(ot, args["oid"], to, args["tid"], caller)
