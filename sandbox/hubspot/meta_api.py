"""Properties, pipelines, owners and associations v4 endpoints."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict

from sandbox.hubspot import errors
from sandbox.hubspot.assoc_batch import AssociationBatches
from sandbox.hubspot.associations import PAIR_TYPES, TYPES
from sandbox.hubspot.oauth import Caller
from sandbox.hubspot.objects_api import _inputs, flag
from sandbox.hubspot.properties import PORTAL_CREATED
from sandbox.hubspot.schema import DEAL_STAGES, OBJECT_TYPE_IDS, SINGULAR, TICKET_STAGES
from sandbox.hubspot.store import Portal
from sandbox.hubspot.values import iso

MAX_ASSOC_PAGE = 500
MAX_ASSOC_READ = 1000  # ids per associations batch read (changelog, February 2025)


def _pipelines() -> dict[str, list[dict[str, Any]]]:
    stamp = iso(PORTAL_CREATED)

    def stage(sid: str, label: str, order: int, metadata: dict[str, str]) -> dict[str, Any]:
        return {"id": sid, "label": label, "displayOrder": order, "metadata": metadata, "archived": False,
                "createdAt": stamp, "updatedAt": stamp, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}

    deals = [stage(sid, label, i, {"isClosed": "true" if closed else "false", "probability": prob})
             for i, (sid, label, prob, closed) in enumerate(DEAL_STAGES)]
    tickets = [stage(sid, label, i, {"ticketState": state}) for i, (sid, label, state) in enumerate(TICKET_STAGES)]
    return {
        "deals": [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
                   "createdAt": stamp, "updatedAt": stamp, "stages": deals}],
        "tickets": [{"id": "0", "label": "Support Pipeline", "displayOrder": 0, "archived": False,
                     "createdAt": stamp, "updatedAt": stamp, "stages": tickets}],
    }


PIPELINES = _pipelines()


class MetaApi:
    """Handlers for properties, pipelines, owners and associations; each returns (status, body)."""

    def __init__(self, portal: Portal, base_url: str, owners: list[dict[str, Any]]) -> None:
        self.portal = portal
        self.base_url = base_url
        self.owners = owners
        self.batches = AssociationBatches(portal)

    # -- properties ------------------------------------------------------------------------------

    def properties(self, ot: str, args: MultiDict) -> tuple[int, dict]:
        """GET all properties of an object type."""
        with self.portal.lock:
            return 200, {"results": self.portal.catalog.list_json(ot, flag(args, "archived"))}

    def property(self, ot: str, name: str) -> tuple[int, dict]:
        """GET one property."""
        with self.portal.lock:
            return 200, self.portal.catalog.get_json(ot, name)

    def create_property(self, ot: str, body: Any) -> tuple[int, dict]:
        """POST a custom property -> 201 (409 if the name is taken)."""
        with self.portal.lock:
            defn = self.portal.catalog.create(ot, body)
            if defn.unique:
                table = self.portal.table(ot)
                table.unique[defn.name] = {}
            return 201, self.portal.catalog.get_json(ot, defn.name)

    def update_property(self, ot: str, name: str, body: Any) -> tuple[int, dict]:
        """PATCH one property's definition -> the property as it now is."""
        with self.portal.lock:
            self.portal.catalog.update(ot, name, body)
            return 200, self.portal.catalog.get_json(ot, name)

    def groups(self, ot: str) -> tuple[int, dict]:
        """GET property groups."""
        with self.portal.lock:
            return 200, {"results": self.portal.catalog.groups_json(ot)}

    def group(self, ot: str, name: str) -> tuple[int, dict]:
        """GET one property group (404 if there is none of that name)."""
        with self.portal.lock:
            return 200, self.portal.catalog.group_json(ot, name)

    def create_group(self, ot: str, body: Any) -> tuple[int, dict]:
        """POST a property group -> 201."""
        with self.portal.lock:
            return 201, self.portal.catalog.create_group(ot, body)

    # -- pipelines and owners ------------------------------------------------------------------

    def pipelines(self, ot: str, pipeline_id: str | None = None, stages: bool = False) -> tuple[int, dict]:
        """GET pipelines, one pipeline, or its stages."""
        if ot not in PIPELINES:
            raise errors.validation(f"Object type {ot} has no pipelines; use deals or tickets.")
        if pipeline_id is None:
            return 200, {"results": PIPELINES[ot]}
        for p in PIPELINES[ot]:
            if p["id"] == pipeline_id:
                return 200, ({"results": p["stages"]} if stages else p)
        raise errors.not_found(f"Unable to find pipeline {pipeline_id} for {ot}")

    def owners_page(self, args: MultiDict) -> tuple[int, dict]:
        """GET /crm/v3/owners."""
        try:
            limit = min(500, int(args.get("limit", "100")))
            after = int(args.get("after") or 0)
        except ValueError as exc:
            raise errors.validation("limit and after must be numbers.") from exc
        email = args.get("email")
        owners = [o for o in self.owners if not email or o["email"] == email]
        body: dict[str, Any] = {"results": owners[after:after + limit]}
        if after + limit < len(owners):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return 200, body

    # -- associations v4 -------------------------------------------------------------------------

    def _record(self, ot: str, object_id: str):
        try:
            rec = self.portal.table(ot).records.get(int(object_id))
        except ValueError:
            rec = None
        if rec is None or rec.archived:
            raise errors.not_found(f"No {SINGULAR[ot]} with ID {object_id} exists.")
        return rec

    def _pair(self, ot: str, to: str) -> None:
        if (ot, to) not in PAIR_TYPES:
            raise errors.validation(f"{ot} cannot be associated with {to}.")

    def _targets(self, ot: str, rid: int, to: str) -> list[dict[str, Any]]:
        return [{"toObjectId": to_id,
                 "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": TYPES[(ot, to, t)].label}
                                      for t in sorted(ids, reverse=True)]}
                for to_id, ids in sorted(self.portal.assoc.targets(ot, rid, to).items())]

    def list_associations(self, ot: str, object_id: str, to: str, args: MultiDict) -> tuple[int, dict]:
        """GET /crm/v4/objects/{from}/{id}/associations/{to}."""
        self._pair(ot, to)
        try:
            limit = min(MAX_ASSOC_PAGE, int(args.get("limit", str(MAX_ASSOC_PAGE))))
            after = int(args.get("after") or 0)
        except ValueError as exc:
            raise errors.validation("limit and after must be numbers.") from exc
        with self.portal.lock:
            rec = self._record(ot, object_id)
            targets = self._targets(ot, rec.id, to)
        body: dict[str, Any] = {"results": targets[after:after + limit]}
        if after + limit < len(targets):
            body["paging"] = {"next": {"after": str(after + limit), "link": None}}
        return 200, body

    def batch_read(self, ot: str, to: str, body: Any) -> tuple[int, dict]:
        """POST /crm/v4/associations/{from}/{to}/batch/read (207 for ids without associations)."""
        self._pair(ot, to)
        inputs = _inputs(body, MAX_ASSOC_READ)
        results, errs = [], []
        with self.portal.lock:
            started = self.portal.clock()
            table = self.portal.table(ot)
            for item in inputs:
                key = str(item.get("id", ""))
                rec = table.records.get(int(key)) if key.isdigit() else None
                targets = self._targets(ot, rec.id, to) if rec is not None and not rec.archived else []
                if targets:
                    results.append({"from": {"id": key}, "to": targets})
                else:
                    errs.append(errors.standard_error(
                        "OBJECT_NOT_FOUND", f"No {SINGULAR[to]} is associated with {SINGULAR[ot]} {key}.",
                        {"fromObjectId": [key], "fromObjectType": [SINGULAR[ot]], "toObjectType": [SINGULAR[to]]},
                        sub_category="crm.associations.NO_ASSOCIATIONS_FOUND"))
            out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                                   "completedAt": iso(self.portal.clock())}
        if errs:
            out.update(numErrors=len(errs), errors=errs)
            return 207, out
        return 200, out

    def create_default(self, ot: str, object_id: str, to: str, to_id: str, caller: Caller) -> tuple[int, dict]:
        """PUT .../associations/default/{to}/{toId}: the default (and Primary if none yet) association."""
        self._pair(ot, to)
        with self.portal.lock:
            rec, target = self._record(ot, object_id), self._record(to, to_id)
            started = self.portal.clock()
            self.portal.associate_default(ot, rec.id, to, target.id, caller.source)
            ids = self.portal.assoc.targets(ot, rec.id, to).get(target.id, set())
            results = [{"from": {"id": str(rec.id)}, "to": {"id": str(target.id)},
                        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t}}
                       for t in sorted(ids)]
            return 200, {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                         "completedAt": iso(self.portal.clock())}

    def create_labelled(self, ot: str, object_id: str, to: str, to_id: str, body: Any,
                        caller: Caller) -> tuple[int, dict]:
        """PUT .../associations/{to}/{toId} with `[{associationCategory, associationTypeId}]`."""
        self._pair(ot, to)
        if not isinstance(body, list) or not body:
            raise errors.validation("The body must be a list of {associationCategory, associationTypeId}.")
        with self.portal.lock:
            rec, target = self._record(ot, object_id), self._record(to, to_id)
            for spec in body:
                tid = spec.get("associationTypeId") if isinstance(spec, dict) else None
                if (ot, to, tid) not in TYPES:
                    raise errors.validation(f"associationTypeId {tid!r} is not a type from {ot} to {to}.")
            for spec in body:
                self.portal.associate(ot, rec.id, to, target.id, int(spec["associationTypeId"]), caller.source)
            ids = self.portal.assoc.targets(ot, rec.id, to).get(target.id, set())
            return 201, {"fromObjectTypeId": OBJECT_TYPE_IDS[ot], "fromObjectId": rec.id,
                         "toObjectTypeId": OBJECT_TYPE_IDS[to], "toObjectId": target.id, "labels": [TYPES[(ot, to, t)].label for t in sorted(ids)
                                                             if TYPES[(ot, to, t)].label]}

    def delete(self, ot: str, object_id: str, to: str, to_id: str, caller: Caller) -> tuple[int, None]:
        """DELETE every association between two records -> 204."""
        self._pair(ot, to)
        with self.portal.lock:
            rec, target = self._record(ot, object_id), self._record(to, to_id)
            self.portal.disassociate(ot, rec.id, to, target.id, caller.source)
        return 204, None

    def labels(self, ot: str, to: str) -> tuple[int, dict]:
        """GET /crm/v4/associations/{from}/{to}/labels."""
        self._pair(ot, to)
        return 200, {"results": [{"category": "HUBSPOT_DEFINED", "typeId": at.type_id, "label": at.label}
                                 for at in PAIR_TYPES[(ot, to)]]}
