"""Test hooks under /__sandbox__/ (JSON, no auth): faults, call statistics, random mutations,
outbound rules, validation-rule failures, sessions, limits, merges, bulk record creation, reset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from sandbox.salesforce import ids
from sandbox.salesforce.http import json_response, route
from sandbox.salesforce.mutate import Mutator

if TYPE_CHECKING:
    from sandbox.salesforce.instance import Instance

P = "/__sandbox__"


class HookError(Exception):
    """Bad hook input: 400 with {"error": reason}."""


def _body(request: Request) -> dict[str, Any]:
    if not request.get_data():
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise HookError("send a JSON object")
    return data


def hook_error(message: str) -> Response:
    """The hooks' error shape."""
    return json_response({"error": message}, 400)


@route(P, ("GET",), kind="hook")
def summary(sb: Instance, request: Request) -> Response:
    """Counts per object and the settings in force."""
    counts = {name: {"live": sb.org.count(name), "all": sb.org.count(name, deleted=True)} for name in sb.org.tables}
    return json_response({"instance_url": sb.instance_url, "organization_id": sb.org.org_id, "records": counts,
                          "api_usage": {"used": sb.usage.used, "max": sb.usage.max}, "faults": sb.faults.config})


@route(P + "/faults", ("GET", "POST", "DELETE"), kind="hook")
def faults(sb: Instance, request: Request) -> Response:
    """POST {error_rate, statuses, fail_next, fail_status, slow_rate, slow_ms, truncate_rate, path_contains, methods, seed}."""
    if request.method == "DELETE":
        sb.faults.reset()
    elif request.method == "POST":
        try:
            sb.faults.configure(_body(request))
        except (ValueError, HookError) as exc:
            return hook_error(str(exc))
    return json_response({**sb.faults.config, "injected": dict(sb.faults.injected)})


@route(P + "/stats", ("GET", "DELETE"), kind="hook")
def stats(sb: Instance, request: Request) -> Response:
    """Calls per 'METHOD /pattern' and the total; DELETE starts again."""
    if request.method == "DELETE":
        sb.stats.reset()
    return json_response({**sb.stats.snapshot(), "api_usage": {"used": sb.usage.used, "max": sb.usage.max}})


@route(P + "/mutate", ("POST",), kind="hook")
def mutate(sb: Instance, request: Request) -> Response:
    """POST {count, seed, kinds?}: that many realistic random changes."""
    try:
        body = _body(request)
        count = int(body.get("count", 10))
        if not 0 <= count <= 100_000:
            raise HookError("count must be between 0 and 100000")
        changes = Mutator(sb.org, int(body.get("seed", 0))).run(count, body.get("kinds"))
    except (ValueError, HookError) as exc:
        return hook_error(str(exc))
    return json_response({"count": len(changes), "changes": changes})


@route(P + "/outbound", ("GET", "POST", "DELETE"), kind="hook")
def outbound(sb: Instance, request: Request) -> Response:
    """POST {url?, rules?: {Object: [fields]}, backoff_base?, backoff_max?, horizon?, timeout?, verify?, batch_window?}."""
    if request.method == "DELETE":
        sb.outbound.clear()
    elif request.method == "POST":
        try:
            body = _body(request)
            rules = body.pop("rules", None)
            sb.outbound.configure(**body)
            if rules is not None:
                sb.outbound.set_rules(rules)
        except (ValueError, TypeError, HookError) as exc:
            return hook_error(str(exc))
    return json_response(sb.outbound.status())


@route(P + "/validation", ("GET", "POST", "DELETE"), kind="hook")
def validation(sb: Instance, request: Request) -> Response:
    """POST {ids, message?, fields?}: updates of those records fail FIELD_CUSTOM_VALIDATION_EXCEPTION."""
    if request.method == "DELETE":
        sb.org.validation_failures.clear()
    elif request.method == "POST":
        try:
            body = _body(request)
            for rid in body.get("ids") or []:
                norm = ids.normalize(str(rid))
                if norm is None:
                    raise HookError(f"not a record id: {rid!r}")
                sb.org.validation_failures[norm] = (
                    str(body.get("message") or "Record failed a validation rule"), list(body.get("fields") or []))
        except HookError as exc:
            return hook_error(str(exc))
    return json_response({"ids": sorted(sb.org.validation_failures)})


@route(P + "/sessions", ("POST",), kind="hook")
def sessions(sb: Instance, request: Request) -> Response:
    """POST {expire: true} ends every session now; {ttl: seconds} changes the lifetime of new ones."""
    body = _body(request)
    out: dict[str, Any] = {}
    if "ttl" in body:
        sb.auth.token_ttl = float(body["ttl"])
        out["ttl"] = sb.auth.token_ttl
    if body.get("expire", "ttl" not in body):
        out["expired"] = sb.auth.expire_all()
    return json_response(out)


@route(P + "/limits", ("POST",), kind="hook")
def limits(sb: Instance, request: Request) -> Response:
    """POST {used?, max?, exhaust?}: set the daily API counter (exhaust = spend it all)."""
    body = _body(request)
    sb.usage.set(used=body.get("used"), max_calls=body.get("max"))
    if body.get("exhaust"):
        sb.usage.set(used=sb.usage.max)
    return json_response({"used": sb.usage.used, "max": sb.usage.max})


@route(P + "/merge", ("POST",), kind="hook")
def merge(sb: Instance, request: Request) -> Response:
    """POST {object, winner, losers}: the SOAP-only merge; losers end deleted with MasterRecordId."""
    body = _body(request)
    obj = sb.org.schema.get(str(body.get("object", "")))
    if obj is None or not obj.mergeable:
        return hook_error("object must be Account, Contact or Case")
    try:
        winner = ids.to18(str(body.get("winner")))
        losers = [ids.to18(str(x)) for x in body.get("losers") or []]
    except ValueError as exc:
        return hook_error(str(exc))
    for rid in [winner, *losers]:
        rec = sb.org.get(rid)
        if rec is None or sb.org.object_of(rid) != obj.name or rec.get("IsDeleted"):
            return hook_error(f"{rid} is not a live {obj.name}")
    if not losers or winner in losers or len(losers) > 2:
        return hook_error("give 1 or 2 losers, different from the winner")
    moved = sb.org.merge(obj.name, winner, losers)
    return json_response({"winner": winner, "losers": losers, "children_moved": [r["Id"] for r in moved]})


@route(P + "/records", ("POST",), kind="hook")
def records(sb: Instance, request: Request) -> Response:
    """POST {object, count, fields?}: insert many records quickly (no outbound messages)."""
    body = _body(request)
    obj = sb.org.schema.get(str(body.get("object", "")))
    count = int(body.get("count", 0))
    if obj is None or not obj.createable or not 0 < count <= 1_000_000:
        return hook_error("need a createable object and 0 < count <= 1000000")
    base = dict(body.get("fields") or {})
    made = []
    for i in range(count):
        values = dict(base)
        if obj.name == "Contact":
            values.setdefault("LastName", f"Bulk{i:07d}")
        elif "Name" in obj.fields and obj.fields["Name"].createable:
            values.setdefault("Name", f"{obj.name} {i:07d}")
        if obj.name == "Opportunity":
            values.setdefault("StageName", "Prospecting")
            values.setdefault("CloseDate", sb.org.clock.now().date().isoformat())
        made.append(sb.org.insert(obj.name, values, notify=False)["Id"])
    return json_response({"count": len(made), "first": made[0], "last": made[-1]})


@route(P + "/oauth", ("POST",), kind="hook")
def oauth_settings(sb: Instance, request: Request) -> Response:
    """POST {certificate_pem?, callback_urls?}: register a JWT certificate, restrict redirect URIs."""
    body = _body(request)
    if body.get("certificate_pem"):
        try:
            sb.auth.register_certificate(str(body["certificate_pem"]).encode())
        except ValueError as exc:
            return hook_error(f"not a PEM certificate: {exc}")
    if "callback_urls" in body:
        sb.auth.callback_urls = list(body["callback_urls"] or [])
    return json_response({"certificates": len(sb.auth.certificates), "callback_urls": sb.auth.callback_urls})


@route(P + "/reset", ("POST",), kind="hook")
def reset(sb: Instance, request: Request) -> Response:
    """Reload the world and clear faults, stats, usage, jobs, validation failures and the outbound queue."""
    sb.reset()
    return json_response({"reset": True, "organization_id": sb.org.org_id})
