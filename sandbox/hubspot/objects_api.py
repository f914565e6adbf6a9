"""`/crm/v3/objects/{objectType}`: list, read, create, update, archive, batch, search and merge."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from sandbox.hubspot import errors
from sandbox.hubspot.associations import TYPES, default_type
from sandbox.hubspot.oauth import Caller
from sandbox.hubspot.records import Record, Table
from sandbox.hubspot.schema import OBJECT_TYPE_IDS, SINGULAR
from sandbox.hubspot.search import SearchLimits, search
from sandbox.hubspot.store import Portal
from sandbox.hubspot.values import iso

MAX_LIST = 100
# what creating a record needs: all of REQUIRED, one of ONE_OF; pipelines default like HubSpot's
REQUIRED = {"tickets": ("hs_pipeline_stage", "subject"), "deals": ("dealname", "dealstage"),
            **{t: ("hs_timestamp",) for t in ("tasks", "notes", "calls", "emails", "meetings")}}
ONE_OF = {"contacts": ("email", "firstname", "lastname"), "companies": ("name", "domain")}
DEFAULTS = {"tickets": {"hs_pipeline": "0"}, "deals": {"pipeline": "default"}}
MAX_BATCH = 100
# "Usage of [propertiesWithHistory] will reduce the maximum number of objects that can be read by a
# single request" (the objects API spec, which names no figure): 50 a list page or batch read
MAX_WITH_HISTORY = 50
BY_ID = {v: k for k, v in OBJECT_TYPE_IDS.items()}


def object_type(name: str) -> str:
    """An object type from a path segment (`contacts`, `contact`, `0-1`), or 400 as HubSpot answers."""
    key = name.lower()
    if key in OBJECT_TYPE_IDS:
        return key
    if key in BY_ID:
        return BY_ID[key]
    for plural, single in SINGULAR.items():
        if key == single:
            return plural
    raise errors.validation(f"Unable to infer object type from: {name}")


def multi(args: MultiDict, name: str) -> list[str]:
    """A query parameter sent repeated (`a=1&a=2`) or comma separated (`a=1,2`), or both."""
    out: list[str] = []
    for value in args.getlist(name):
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def flag(args: MultiDict, name: str) -> bool:
    """A boolean query parameter in any case (`archived=False` from the Python client)."""
    raw = args.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise errors.validation(f"Invalid value {raw!r} for {name}; use true or false.")


def _limit(args: MultiDict) -> int:
    try:
        limit = int(args.get("limit", "10"))
    except ValueError as exc:
        raise errors.validation(f"limit must be a number; got {args.get('limit')!r}.") from exc
    if not 1 <= limit <= MAX_LIST:
        raise errors.validation(f"limit must be between 1 and {MAX_LIST}; got {limit}.")
    return limit


def _inputs(body: Any, most: int = MAX_BATCH) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise errors.validation("The body needs an `inputs` list.")
    inputs = body["inputs"]
    if len(inputs) > most:
        raise errors.validation(f"The maximum number of inputs supported in a batch request is {most}. "
                                f"Got {len(inputs)}; please reduce the number of items and try again.")
    if any(not isinstance(i, dict) for i in inputs):
        raise errors.validation("Each input must be an object.")
    return inputs


def _assoc_json(portal: Portal, ot: str, rec: Record, to_types: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for to in to_types:
        results = [{"id": str(to_id), "type": TYPES[(ot, to, t)].name}
                   for to_id, ids in sorted(portal.assoc.targets(ot, rec.id, to).items())
                   for t in sorted(ids, reverse=True)]
        if results:
            out[to] = {"results": results}
    return out


def _full(table: Table, rec: Record) -> dict[str, Any]:
    """A record with every property it has (what create and update answer with)."""
    return table.projector(table.all_names(rec))(rec)


def _batch_result(results: list[dict], missing: list[str], ot: str, started: int, portal: Portal,
                  verb: str = "get") -> tuple[int, dict]:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                            "completedAt": iso(portal.clock())}
    if not missing:
        return 200, body
    body["numErrors"] = 1
    body["errors"] = [errors.standard_error(
        "OBJECT_NOT_FOUND", f"Could not {verb} some {SINGULAR[ot].upper()} objects, they may be deleted or "
        "not exist. Check that ids are valid.", {"ids": missing})]
    return 207, body


class ObjectsApi:
    """Handlers for the objects endpoints; each returns (status, body)."""

    def __init__(self, portal: Portal, base_url: str, limits: SearchLimits) -> None:
        self.portal = portal
        self.base_url = base_url
        self.limits = limits

    def _table(self, ot: str) -> Table:
        return self.portal.table(ot)

    def list_page(self, ot: str, args: MultiDict) -> tuple[int, dict]:
        """GET list, ascending by id, `after` is the next id."""
        limit = _limit(args)
        archived = flag(args, "archived")
        try:
            after = int(args.get("after") or 0)
        except ValueError as exc:
            raise errors.validation(f"Invalid after token {args.get('after')!r}.") from exc
        to_types = [object_type(t) for t in multi(args, "associations")]
        with self.portal.lock:
            table = self._table(ot)
            defined = self.portal.catalog.defined(ot)
            history = table.history_names(multi(args, "propertiesWithHistory"), defined)
            if history:  # a page with history holds at most 50 records; the next link carries on from there
                limit = min(limit, MAX_WITH_HISTORY)
            recs, nxt = table.page(after, limit, archived)
            project = table.projector(table.names(multi(args, "properties"), defined), history)
            results = []
            for rec in recs:
                item = project(rec)
                if to_types:
                    assoc = _assoc_json(self.portal, ot, rec, to_types)
                    if assoc:
                        item["associations"] = assoc
                results.append(item)
        body: dict[str, Any] = {"results": results}
        if nxt is not None:  # the link asks for the same page size, properties and archived state
            query = urlencode([(k, v) for k, v in args.items(multi=True) if k != "after"] + [("after", str(nxt))])
            body["paging"] = {"next": {"after": str(nxt), "link": f"{self.base_url}/crm/v3/objects/{ot}?{query}"}}
        return 200, body

    def _get(self, table: Table, key: str, id_property: str | None, archived: bool) -> Record:
        rec = table.find(id_property, key)
        if rec is None or rec.archived != archived:
            raise errors.not_found()
        return rec

    def get(self, ot: str, object_id: str, args: MultiDict) -> tuple[int, dict]:
        """GET one record (by id or a unique `idProperty`)."""
        to_types = [object_type(t) for t in multi(args, "associations")]
        with self.portal.lock:
            table = self._table(ot)
            rec = self._get(table, object_id, args.get("idProperty"), flag(args, "archived"))
            defined = self.portal.catalog.defined(ot)
            item = table.projector(table.names(multi(args, "properties"), defined),
                                   table.history_names(multi(args, "propertiesWithHistory"), defined))(rec)
            if to_types:
                item["associations"] = _assoc_json(self.portal, ot, rec, to_types)
        return 200, item

    def _create_one(self, ot: str, item: Any, caller: Caller) -> Record:
        if not isinstance(item, dict):
            raise errors.validation("The body must be an object with `properties`.")
        values = self.portal.check_properties(ot, item.get("properties") or {}, creating=True)
        assocs = []
        for a in item.get("associations") or []:
            try:
                to_id = int(a["to"]["id"])
                type_ids = [int(t["associationTypeId"]) for t in a["types"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise errors.validation("Each association needs to.id and types[].associationTypeId.") from exc
            for tid in type_ids:
                match = [k for k in TYPES if k[0] == ot and k[2] == tid]
                if not match:
                    raise errors.validation(f"associationTypeId {tid} is not valid from {ot}.")
                assocs.append((match[0][1], to_id, tid))
        missing = [n for n in REQUIRED.get(ot, ()) if not values.get(n)]
        one_of = ONE_OF.get(ot, ())
        if one_of and not any(values.get(n) for n in one_of):
            missing.append(" or ".join(one_of))
        if missing:
            raise errors.validation(f"Cannot create object with type: {SINGULAR[ot].upper()}. The following "
                                    f"required properties were missing: [{', '.join(missing)}]")
        for name, value in DEFAULTS.get(ot, {}).items():
            values.setdefault(name, value)
        return self.portal.create(ot, values, caller.source, associations=assocs)

    def create(self, ot: str, body: Any, caller: Caller) -> tuple[int, dict]:
        """POST one record (with optional associations) -> 201."""
        with self.portal.lock:
            rec = self._create_one(ot, body, caller)
            return 201, _full(self._table(ot), rec)

    def update(self, ot: str, object_id: str, body: Any, args: MultiDict, caller: Caller) -> tuple[int, dict]:
        """PATCH `{properties}` -> the updated record."""
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise errors.validation("The body must be an object with `properties`.")
        with self.portal.lock:
            rec = self._get(self._table(ot), object_id, args.get("idProperty"), False)
            values = self.portal.check_properties(ot, body["properties"], creating=False)
            self.portal.update(ot, rec, values, caller.source)
            return 200, _full(self._table(ot), rec)

    def archive(self, ot: str, object_id: str, caller: Caller) -> tuple[int, None]:
        """DELETE -> 204 (the record moves to the archived list)."""
        with self.portal.lock:
            rec = self._table(ot).find(None, object_id)
            if rec is None:
                raise errors.not_found()
            self.portal.archive(ot, rec, caller.source)
        return 204, None

    def batch(self, ot: str, op: str, body: Any, args: MultiDict, caller: Caller) -> tuple[int, dict | None]:
        """POST batch/{read,create,update,upsert,archive}."""
        handler = {"read": self._batch_read, "create": self._batch_create, "update": self._batch_update,
                   "upsert": self._batch_upsert, "archive": self._batch_archive}.get(op)
        if handler is None:
            raise errors.not_found(f"Unknown batch operation {op!r}.")
        inputs = _inputs(body)
        with self.portal.lock:
            return handler(ot, body, inputs, args, caller)

    def _batch_read(self, ot: str, body: dict, inputs: list[dict], args: MultiDict, caller: Caller):
        table, started = self._table(ot), self.portal.clock()
        archived = flag(args, "archived")
        defined = self.portal.catalog.defined(ot)
        history = table.history_names(body.get("propertiesWithHistory") or None, defined)
        if history and len(inputs) > MAX_WITH_HISTORY:
            raise errors.validation(f"The maximum number of inputs supported in a batch read request with "
                                    f"propertiesWithHistory is {MAX_WITH_HISTORY}. Got {len(inputs)}; please "
                                    "reduce the number of items and try again.")
        project = table.projector(table.names(body.get("properties") or None, defined), history)
        results, missing, seen = [], [], set()
        for item in inputs:
            key = str(item.get("id", ""))
            rec = table.find(body.get("idProperty"), key)
            if rec is None or rec.archived != archived:
                missing.append(key)
            elif rec.id not in seen:
                seen.add(rec.id)
                results.append(project(rec))
        return _batch_result(results, missing, ot, started, self.portal)

    def _batch_create(self, ot: str, body: dict, inputs: list[dict], args: MultiDict, caller: Caller):
        """Create each input; one carrying an `objectWriteTraceId` fails alone (207 naming that id),
        any other bad input fails the whole batch with 400 before anything is created."""
        started, table = self.portal.clock(), self._table(ot)
        for item in inputs:
            if not item.get("objectWriteTraceId"):
                self.portal.check_properties(ot, (item.get("properties") or {}), creating=True)
        results, errs = [], []
        for item in inputs:
            trace = item.get("objectWriteTraceId")
            if not trace:
                results.append(_full(table, self._create_one(ot, item, caller)))
                continue
            try:
                rec = self._create_one(ot, item, caller)
            except errors.ApiError as exc:
                errs.append(errors.standard_error(exc.body.get("category", "VALIDATION_ERROR"), str(exc),
                                                  {"objectWriteTraceId": [str(trace)]}))
                continue
            results.append(dict(_full(table, rec), objectWriteTraceId=str(trace)))
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                               "completedAt": iso(self.portal.clock())}
        if not errs:
            return 201, out
        out.update(numErrors=len(errs), errors=errs)
        return 207, out

    def _batch_update(self, ot: str, body: dict, inputs: list[dict], args: MultiDict, caller: Caller):
        table, started = self._table(ot), self.portal.clock()
        ids = [str(i.get("id", "")) for i in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise errors.validation(f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")
        checked = [self.portal.check_properties(ot, i.get("properties") or {}, creating=False) for i in inputs]
        results, missing = [], []
        for item, values in zip(inputs, checked, strict=True):
            rec = table.find(item.get("idProperty"), str(item.get("id", "")))
            if rec is None or rec.archived:
                missing.append(str(item.get("id", "")))
                continue
            self.portal.update(ot, rec, values, caller.source)
            results.append(_full(table, rec))
        return _batch_result(results, missing, ot, started, self.portal, verb="update")

    def _batch_upsert(self, ot: str, body: dict, inputs: list[dict], args: MultiDict, caller: Caller):
        table, started = self._table(ot), self.portal.clock()
        results = []
        for item in inputs:
            id_prop = item.get("idProperty")
            if not id_prop or id_prop not in table.unique:
                raise errors.validation(f"Upsert needs an idProperty with unique values on {ot} "
                                        f"(one of: {', '.join(sorted(table.unique)) or 'none'}).")
            values = self.portal.check_properties(ot, item.get("properties") or {}, creating=True)
            rec = table.find(id_prop, str(item.get("id", "")))
            if rec is None:
                values[id_prop] = str(item.get("id", "")).lower() if id_prop == "email" else str(item.get("id"))
                rec, new = self.portal.create(ot, values, caller.source), True
            else:
                self.portal.update(ot, rec, values, caller.source)
                new = False
            results.append(dict(_full(table, rec), new=new))
        return 200, {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                     "completedAt": iso(self.portal.clock())}

    def _batch_archive(self, ot: str, body: dict, inputs: list[dict], args: MultiDict, caller: Caller):
        table = self._table(ot)
        for item in inputs:
            rec = table.find(None, str(item.get("id", "")))
            if rec is not None:
                self.portal.archive(ot, rec, caller.source)
        return 204, None

    def search(self, ot: str, body: Any, now: int) -> tuple[int, dict]:
        """POST search."""
        with self.portal.lock:
            return 200, search(self._table(ot), self.portal.catalog.defined(ot), body, self.limits, now)

    def merge(self, ot: str, body: Any, caller: Caller) -> tuple[int, dict]:
        """POST merge `{primaryObjectId, objectIdToMerge}` -> the surviving record."""
        if not isinstance(body, dict) or not body.get("primaryObjectId") or not body.get("objectIdToMerge"):
            raise errors.validation("Merging needs primaryObjectId and objectIdToMerge.")
        with self.portal.lock:
            table = self._table(ot)
            primary = self._get(table, str(body["primaryObjectId"]), None, False)
            loser = self._get(table, str(body["objectIdToMerge"]), None, False)
            rec = self.portal.merge(ot, primary, loser, caller.source)
            return 200, _full(table, rec)


def default_association(ot: str, to: str) -> int:
    """The default association type id of a pair, or 400."""
    at = default_type(ot, to)
    if at is None:
        raise errors.validation(f"{ot} cannot be associated with {to}.")
    return at.type_id
