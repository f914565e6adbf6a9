"""Writing to HubSpot (the client room's write half): batch updates, properties, tasks.

Batch updates go 100 records a call; per-record failures come from a 207's `errors`. A 400 refuses
the whole batch: a property that does not exist or is read-only fails every record carrying it at
once (and is not sent again in that write); a bad value is isolated by splitting the batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hubspot.crm.objects import (
    AssociationSpec,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from adapters.base import FieldInfo, FieldSpec, TaskSpec, WriteItem, WriteResult
from adapters.hubspot import mapping
from adapters.hubspot import settings as hs
from adapters.hubspot.client import HubSpotClient
from adapters.hubspot.reads import object_types
from connector.errors import ConfigError, FatalError, RapportError, SkippableError

_PERMANENT = {"OBJECT_NOT_FOUND", "VALIDATION_ERROR", "INVALID_ID"}
# Problems of a property, whatever the value: every record that carries the property is refused.
PROPERTY_CODES = frozenset({"PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"})


def _scored_type(unified: str) -> str:
    if unified not in hs.OBJECTS:
        raise ConfigError(f"HubSpot cannot write to {unified!r}", crm=hs.CRM,
                          hint=f"write to one of {', '.join(hs.OBJECTS)}")
    return hs.OBJECTS[unified]


def _same(current: Any, value: Any) -> bool:
    """Whether a property as HubSpot returns it holds `value` (numbers and datetimes as HubSpot renders them)."""
    sent, have = mapping.to_property_value(value), "" if current is None else str(current)
    if have == sent:
        return True
    if isinstance(value, datetime):
        try:
            return mapping.parse_stamp(have) == mapping.parse_stamp(sent)
        except ValueError:
            return False
    try:
        return float(have) == float(sent)
    except ValueError:
        return False


def refused_properties(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(property, HubSpot error code, message) of each problem a refused batch names.

    HubSpot lists them in `errors[]` (`code`, `context.propertyName`) or, for property values,
    as JSON after the message's "Property values were not valid: " (`error`, `name`, `message`).
    """
    found: list[tuple[str, str, str]] = []
    for err in body.get("errors") or []:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code") or err.get("error") or "")
        names = (err.get("context") or {}).get("propertyName") or ([err["name"]] if err.get("name") else [])
        found += [(str(n), code, str(err.get("message") or code)) for n in names if code]
    message = str(body.get("message") or "")
    start = message.find("[")
    if start >= 0:
        try:
            listed = json.loads(message[start:])
        except ValueError:
            listed = []
        for p in listed if isinstance(listed, list) else []:
            if isinstance(p, dict) and p.get("name") and p.get("error"):
                found.append((str(p["name"]), str(p["error"]), str(p.get("message") or p["error"])))
    return list(dict.fromkeys(found))


class Writer:
    """Batch updates, score properties and follow-up tasks through one HubSpotClient."""

    def __init__(self, client: HubSpotClient) -> None:
        self.c = client

    # --- batch update -------------------------------------------------------------------------

    def write(self, unified: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Update records 100 at a time; one result per item, in order."""
        t = _scored_type(unified)
        results: dict[str, WriteResult] = {}
        refused: dict[str, str] = {}  # property -> HubSpot code: once a batch is refused for it, never sent again
        for start in range(0, len(items), hs.BATCH_LIMIT):
            for res in self._batch(t, items[start : start + hs.BATCH_LIMIT], refused):
                results[res.external_id] = res
        return [results.get(i.external_id) or WriteResult(i.external_id, ok=False, error_code="NOT_SENT",
                                                           message="no result for this record", retriable=True)
                for i in items]

    def _batch(self, t: str, items: Sequence[WriteItem], refused: dict[str, str]) -> list[WriteResult]:
        blocked = [self._unwritable(t, i, refused) for i in items if refused.keys() & i.values.keys()]
        if blocked:
            items = [i for i in items if not refused.keys() & i.values.keys()]
            if not items:
                return blocked
        # the body goes as the plain JSON the client would send: building its models costs about a
        # millisecond per record (each one copies the client's configuration), more than the call
        body = {"inputs": [{"id": i.external_id,
                            "properties": {k: mapping.to_property_value(v) for k, v in i.values.items()}}
                           for i in items]}
        try:
            response = self.c.call_json("crm.objects.batch_api", "update", model=False, object=t, object_type=t,
                                        batch_input_simple_public_object_batch_input=body)[1] or {}
        except (FatalError, SkippableError) as exc:
            if exc.status not in (400, 404, 409):
                raise
            return blocked + self._refused(t, items, exc, refused)
        done = {str(r.get("id")) for r in response.get("results") or []}
        failed: dict[str, WriteResult] = {}
        # An id merged away resolves to the surviving record, which takes the write: HubSpot answers
        # with the survivor, whose `hs_merged_object_ids` names the id we sent.
        asked = {i.external_id for i in items}
        for r in response.get("results") or []:
            survivor = str(r.get("id"))
            merged = str((r.get("properties") or {}).get("hs_merged_object_ids") or "")
            for ident in ({m for m in merged.split(";") if m} & asked) - done:
                failed[ident] = WriteResult(ident, ok=False, error_code="MERGED", landed_on=survivor,
                                            message=f"merged into {survivor}, which took these values")
        for err in response.get("errors") or []:
            code = str(err.get("category") or "ERROR")
            for ident in (err.get("context") or {}).get("ids", []):
                failed[str(ident)] = WriteResult(str(ident), ok=False, error_code=code, message=err.get("message"),
                                                 retriable=code not in _PERMANENT)
        answered = [failed.get(i.external_id) or (WriteResult(i.external_id, ok=True) if i.external_id in done else
                    WriteResult(i.external_id, ok=False, error_code="NOT_CONFIRMED",
                                message="HubSpot did not return this record", retriable=True))
                    for i in items]
        return blocked + answered

    def already_written(self, unified: str, items: Sequence[WriteItem]) -> set[str]:
        """Ids of the items whose properties already hold the item's values (batch reads, 100 a call)."""
        t = _scored_type(unified)
        props = sorted({name for i in items for name in i.values})
        held: set[str] = set()
        for start in range(0, len(items), hs.BATCH_LIMIT):
            chunk = items[start : start + hs.BATCH_LIMIT]
            body = BatchReadInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=i.external_id) for i in chunk],
                                                      properties=props, properties_with_history=[])
            found = self.c.call_json("crm.objects.batch_api", "read", object=t, object_type=t,
                                     batch_read_input_simple_public_object_id=body, archived=False)[1]
            current = {str(r.get("id")): r.get("properties") or {} for r in (found or {}).get("results") or []}
            held.update(i.external_id for i in chunk if i.external_id in current and all(
                _same(current[i.external_id].get(name), value) for name, value in i.values.items()))
        return held

    def _refused(self, t: str, items: Sequence[WriteItem], exc: RapportError,
                 refused: dict[str, str]) -> list[WriteResult]:
        """A whole batch refused: fail the records of a bad property or the ids it names, else split."""
        body = getattr(exc, "body", None) or {}
        problems = refused_properties(body)
        broken = {name: code for name, code, _ in problems if code in PROPERTY_CODES and name not in refused}
        if any(broken.keys() & i.values.keys() for i in items):
            refused.update(broken)
            return self._batch(t, items, refused)  # fails those records here and sends the others
        named = {str(i) for i in (body.get("context") or {}).get("ids", [])}
        code = exc.code or "VALIDATION_ERROR"
        bad = list(items) if len(items) == 1 else [i for i in items if i.external_id in named]
        if bad:
            rest = [i for i in items if i.external_id not in {b.external_id for b in bad}]
            message, retriable = exc.message, code not in _PERMANENT
            if len(bad) == 1 and problems:  # this record's values: say which property refused what
                code, retriable = problems[0][1], False
                message = "; ".join(f'HubSpot refused the value of property "{name}" on {t}: {text}'
                                    for name, _, text in problems)
                message += ": give the property the type and options this score needs, or fix the write mapping"
            out = [WriteResult(i.external_id, ok=False, error_code=code, message=message, retriable=retriable)
                   for i in bad]
            return out + (self._batch(t, rest, refused) if rest else [])
        half = len(items) // 2
        return self._batch(t, items[:half], refused) + self._batch(t, items[half:], refused)

    def _unwritable(self, t: str, item: WriteItem, refused: dict[str, str]) -> WriteResult:
        """The failure of a record carrying a property HubSpot refuses whatever the value."""
        names = sorted(refused.keys() & item.values.keys())
        fix = f"run `rapport provision {self.c.info.name}` or fix the write mapping"
        reasons = [f'property "{n}" does not exist on {t}: {fix}' if refused[n] == "PROPERTY_DOESNT_EXIST" else
                   f'property "{n}" is read-only on {t}: map the score to a property that can be written '
                   "(fix the write mapping)" for n in names]
        return WriteResult(item.external_id, ok=False, error_code=refused[names[0]], message="; ".join(reasons),
                           retriable=False)

    # --- properties ---------------------------------------------------------------------------

    def describe(self, unified: str) -> list[FieldInfo]:
        """Fields of the object from the properties API."""
        out: dict[str, FieldInfo] = {}
        for t in object_types(unified):
            response = self.c.call("crm.properties.core_api", "get_all", object=t, object_type=t)
            for p in response.results or []:
                meta = p.modification_metadata
                out.setdefault(p.name, FieldInfo(
                    name=p.name, label=p.label or p.name, type=p.type or "string",
                    custom=not bool(p.hubspot_defined), updateable=not bool(meta and meta.read_only_value),
                    options=tuple(o.value for o in p.options or [])))
        return list(out.values())

    def ensure_fields(self, unified: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Create the `rapport` group and the missing properties; return the names created."""
        t = _scored_type(unified)
        groups = self.c.call("crm.properties.groups_api", "get_all", object=t, object_type=t)
        if hs.SCORE_GROUP not in {g.name for g in groups.results or []}:
            self._create("crm.properties.groups_api", t, property_group_create=PropertyGroupCreate(
                name=hs.SCORE_GROUP, label=hs.SCORE_GROUP_LABEL, display_order=-1))
        existing = {p.name: p for p in self.c.call("crm.properties.core_api", "get_all", object=t,
                                                   object_type=t).results or []}
        created = []
        for spec in specs:
            body = mapping.property_create(spec)
            if spec.name in existing:
                have = existing[spec.name].type
                if have != body["type"] and not (body["type"] == "string" and have == "enumeration"):
                    raise ConfigError(
                        f"{t} property {spec.name!r} exists with type {have!r}, Rapport needs {body['type']!r}",
                        crm=hs.CRM, object=unified,
                        hint="delete or rename that property in HubSpot, or map the score to another property")
                continue
            if self._create("crm.properties.core_api", t, property_create=PropertyCreate(**body)):
                created.append(spec.name)
        return created

    def _create(self, api: str, t: str, **body: Any) -> bool:
        """Create a group or property; a 409 (it exists already) counts as present."""
        try:
            self.c.call(api, "create", object=t, object_type=t, **body)
        except SkippableError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # --- tasks --------------------------------------------------------------------------------

    def create_task(self, spec: TaskSpec) -> str:
        """A HubSpot task for the record's owner, associated with the company or contact."""
        t = _scored_type(spec.object)
        type_id = hs.TASK_TO_COMPANY_TYPE_ID if t == hs.COMPANIES else hs.TASK_TO_CONTACT_TYPE_ID
        names = hs.TASK_PROPERTIES
        props = {**hs.TASK_DEFAULTS, names["subject"]: spec.subject, names["body"]: spec.body,
                 names["due"]: mapping.epoch_ms(spec.due or datetime.now(UTC))}
        if spec.owner_id:
            props[names["owner"]] = str(spec.owner_id)
        body = SimplePublicObjectInputForCreate(properties=props, associations=[PublicAssociationsForObject(
            to=PublicObjectId(id=spec.external_id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)])])
        created = self.c.call("crm.objects.basic_api", "create", object=hs.TASKS, object_type=hs.TASKS,
                              simple_public_object_input_for_create=body)
        return str(created.id)
