"""Associations v4 batch writes: labelled create, default create, archive, and archive of some labels.

Every pair goes through the portal's association methods, so both ends' associationChange events and
the Primary-company rollups follow exactly as they do for the single-pair endpoints.
"""

from __future__ import annotations

from typing import Any

from sandbox.hubspot import errors
from sandbox.hubspot.associations import PAIR_TYPES, TYPES, default_type
from sandbox.hubspot.oauth import Caller
from sandbox.hubspot.objects_api import _inputs
from sandbox.hubspot.records import Record
from sandbox.hubspot.schema import OBJECT_TYPE_IDS, SINGULAR
from sandbox.hubspot.store import Portal
from sandbox.hubspot.values import iso

MAX_ASSOC_WRITE = 2000  # inputs per batch create, default create or archive call


def _id(ref: Any, where: str) -> str:
    """The `id` of a `{"id": ...}` object, or 400 naming where it was missing."""
    if not isinstance(ref, dict) or ref.get("id") in (None, ""):
        raise errors.validation(f"Each input needs {where}.id.")
    return str(ref["id"])


class AssociationBatches:
    """Handlers for `/crm/v4/associations/{from}/{to}/batch/...` writes; each returns (status, body)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def _pair(self, ot: str, to: str) -> None:
        if (ot, to) not in PAIR_TYPES:
            raise errors.validation(f"{ot} cannot be associated with {to}.")

    def _live(self, object_type: str, key: str) -> Record | None:
        rec = self.portal.table(object_type).records.get(int(key)) if key.isdigit() else None
        return rec if rec is not None and not rec.archived else None

    def _types(self, ot: str, to: str, specs: Any) -> set[int]:
        """Type ids of `[{associationCategory, associationTypeId}]`, or 400 naming the first bad one."""
        if not isinstance(specs, list) or not specs:
            raise errors.validation("Each input needs types: a list of {associationCategory, associationTypeId}.")
        out = set()
        for spec in specs:
            tid = spec.get("associationTypeId") if isinstance(spec, dict) else None
            category = spec.get("associationCategory", "HUBSPOT_DEFINED") if isinstance(spec, dict) else None
            if not isinstance(tid, int) or (ot, to, tid) not in TYPES or category != "HUBSPOT_DEFINED":
                raise errors.validation(f"associationTypeId {tid!r} ({category}) is not an association type from "
                                        f"{ot} to {to}; GET /crm/v4/associations/{ot}/{to}/labels lists them.")
            out.add(tid)
        return out

    def _missing(self, ot: str, to: str, from_key: str, to_key: str,
                 rec: Record | None, target: Record | None) -> dict[str, Any]:
        """The batch error for one input whose record(s) do not exist (or are archived)."""
        context, names = {}, []
        if rec is None:
            context["fromObjectId"] = [from_key]
            names.append(f"{SINGULAR[ot]} {from_key}")
        if target is None:
            context["toObjectId"] = [to_key]
            names.append(f"{SINGULAR[to]} {to_key}")
        return errors.standard_error("OBJECT_NOT_FOUND", f"No {' or '.join(names)} exists to associate; "
                                     "it may be deleted or the id is wrong.", context)

    def _respond(self, ok: int, results: list[dict], errs: list[dict], started: int,
                 partial: int = 207) -> tuple[int, dict]:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso(started),
                                "completedAt": iso(self.portal.clock())}
        if not errs:
            return ok, body
        body.update(numErrors=len(errs), errors=errs)
        return partial, body

    def create(self, ot: str, to: str, body: Any, caller: Caller) -> tuple[int, dict]:
        """POST batch/create: labelled associations -> 201, or 207 naming the inputs whose records are missing."""
        self._pair(ot, to)
        inputs = _inputs(body, MAX_ASSOC_WRITE)
        wanted = [(_id(i.get("from"), "from"), _id(i.get("to"), "to"), self._types(ot, to, i.get("types")))
                  for i in inputs]  # all checked before anything is written
        results, errs = [], []
        with self.portal.lock:
            started = self.portal.clock()
            for from_key, to_key, type_ids in wanted:
                rec, target = self._live(ot, from_key), self._live(to, to_key)
                if rec is None or target is None:
                    errs.append(self._missing(ot, to, from_key, to_key, rec, target))
                    continue
                for tid in sorted(type_ids):
                    self.portal.associate(ot, rec.id, to, target.id, tid, caller.source)
                ids = self.portal.assoc.targets(ot, rec.id, to).get(target.id, set())
                results.append({"fromObjectTypeId": OBJECT_TYPE_IDS[ot], "fromObjectId": rec.id,
                                "toObjectTypeId": OBJECT_TYPE_IDS[to], "toObjectId": target.id,
                                "labels": [label for t in sorted(ids) if (label := TYPES[(ot, to, t)].label)]})
            return self._respond(201, results, errs, started)

    def create_default(self, ot: str, to: str, body: Any, caller: Caller) -> tuple[int, dict]:
        """POST batch/associate/default: the unlabeled type (and Primary where the record has none).

        The client reads only a 200 here, whose model carries `errors`: inputs whose records are
        missing are reported there and the others associated.
        """
        self._pair(ot, to)
        inputs = _inputs(body, MAX_ASSOC_WRITE)
        pairs = [(_id(i.get("from"), "from"), _id(i.get("to"), "to")) for i in inputs]
        default = default_type(ot, to)
        assert default is not None  # _pair checked it
        results, errs = [], []
        with self.portal.lock:
            started = self.portal.clock()
            for from_key, to_key in pairs:
                rec, target = self._live(ot, from_key), self._live(to, to_key)
                if rec is None or target is None:
                    errs.append(self._missing(ot, to, from_key, to_key, rec, target))
                    continue
                self.portal.associate_default(ot, rec.id, to, target.id, caller.source)
                results.append({"from": {"id": str(rec.id)}, "to": {"id": str(target.id)},
                                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                                    "associationTypeId": default.type_id}})
            return self._respond(200, results, errs, started, partial=200)

    def archive(self, ot: str, to: str, body: Any, caller: Caller) -> tuple[int, None]:
        """POST batch/archive: every association between each `from` and its `to` list -> 204."""
        self._pair(ot, to)
        inputs = _inputs(body, MAX_ASSOC_WRITE)
        pairs = []
        for item in inputs:
            targets = item.get("to")
            if not isinstance(targets, list):
                raise errors.validation("Each input needs from.id and a `to` list of {id}.")
            from_key = _id(item.get("from"), "from")
            pairs += [(from_key, _id(t, "to[]")) for t in targets]
        with self.portal.lock:
            for from_key, to_key in pairs:  # pairs with no association (or no record) are no-ops
                rec, target = self._live(ot, from_key), self._live(to, to_key)
                if rec is not None and target is not None:
                    self.portal.disassociate(ot, rec.id, to, target.id, caller.source)
        return 204, None

    def archive_labels(self, ot: str, to: str, body: Any, caller: Caller) -> tuple[int, None]:
        """POST batch/labels/archive: only the given types; the unlabeled one takes every label with it -> 204."""
        self._pair(ot, to)
        inputs = _inputs(body, MAX_ASSOC_WRITE)
        wanted = [(_id(i.get("from"), "from"), _id(i.get("to"), "to"), self._types(ot, to, i.get("types")))
                  for i in inputs]
        with self.portal.lock:
            for from_key, to_key, type_ids in wanted:
                rec, target = self._live(ot, from_key), self._live(to, to_key)
                if rec is not None and target is not None:
                    self.portal.disassociate(ot, rec.id, to, target.id, caller.source, type_ids=type_ids)
        return 204, None
