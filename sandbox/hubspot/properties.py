"""Property and property-group definitions per object type, as the properties API serves them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.hubspot import errors
from sandbox.hubspot.schema import GROUPS, PropDef, default_properties
from sandbox.hubspot.values import iso, now_ms

TYPES = ("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = ("textarea", "text", "date", "file", "number", "select", "radio", "checkbox", "booleancheckbox",
               "calculation_equation", "html", "phonenumber")
PAIRS = {
    "string": {"text", "textarea", "file", "html", "phonenumber", "calculation_equation"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
PORTAL_CREATED = 1565059312671  # when the portal's default properties were defined
MAX_UNIQUE = 10


@dataclass
class PropRecord:
    """A property definition plus the metadata the API reports."""

    defn: PropDef
    created: int = PORTAL_CREATED
    updated: int = PORTAL_CREATED
    display_order: int = -1
    hidden: bool = False
    form_field: bool = False
    archived: bool = False
    option_meta: list[dict[str, Any]] = field(default_factory=list)


def property_json(rec: PropRecord) -> dict[str, Any]:
    """A property as HubSpot's Property model."""
    d = rec.defn
    options = rec.option_meta or [{"label": label, "value": value, "displayOrder": i, "hidden": False}
                                  for i, (value, label) in enumerate(d.options)]
    out: dict[str, Any] = {
        "updatedAt": iso(rec.updated), "createdAt": iso(rec.created), "name": d.name, "label": d.label,
        "type": d.type, "fieldType": d.field_type, "description": d.description, "groupName": d.group,
        "options": options, "displayOrder": rec.display_order, "calculated": d.calculated,
        "externalOptions": d.external_options, "hasUniqueValue": d.unique, "hidden": rec.hidden,
        "hubspotDefined": d.hubspot_defined, "formField": rec.form_field, "archived": rec.archived,
        "modificationMetadata": {"archivable": not d.hubspot_defined, "readOnlyDefinition": d.hubspot_defined,
                                 "readOnlyValue": d.read_only, "readOnlyOptions": d.hubspot_defined},
    }
    if d.name == "hubspot_owner_id":
        out["referencedObjectType"] = "OWNER"
    return out


class PropertyCatalog:
    """Properties and groups of every object type."""

    def __init__(self) -> None:
        self._props: dict[str, dict[str, PropRecord]] = {}
        self._defined: dict[str, dict[str, PropDef]] = {}
        for object_type, defs in default_properties().items():
            self._props[object_type] = {d.name: PropRecord(d, display_order=i, form_field=not d.read_only)
                                        for i, d in enumerate(defs)}
            self._refresh(object_type)
        self._groups = {t: {name: {"name": name, "label": label, "displayOrder": i, "archived": False}
                            for i, (name, label) in enumerate(groups)} for t, groups in GROUPS.items()}

    def _refresh(self, object_type: str) -> None:
        self._defined[object_type] = {n: r.defn for n, r in self._props[object_type].items() if not r.archived}

    def defined(self, object_type: str) -> dict[str, PropDef]:
        """Live property definitions by name."""
        return self._defined[object_type]

    def is_read_only(self, object_type: str, name: str) -> bool:
        """Whether API writes to the property are refused."""
        d = self._defined[object_type].get(name)
        return d is None or d.read_only

    def list_json(self, object_type: str, archived: bool = False) -> list[dict[str, Any]]:
        """All live (or all archived) properties."""
        return [property_json(r) for r in self._props[object_type].values() if r.archived == archived]

    def get_json(self, object_type: str, name: str) -> dict[str, Any]:
        """One property or 404."""
        rec = self._props[object_type].get(name)
        if rec is None or rec.archived:
            raise errors.not_found(f"Unable to find property {name} on object type {object_type}")
        return property_json(rec)

    def create(self, object_type: str, body: Any) -> PropDef:
        """Validate and add a custom property (raises 400 / 409)."""
        if not isinstance(body, dict):
            raise errors.validation("The request body must be a JSON object describing the property.")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise errors.validation(f"Missing required fields: {', '.join(missing)}.")
        name, ptype, ftype = str(body["name"]), str(body["type"]), str(body["fieldType"])
        if not NAME.match(name) or name.startswith("hs_"):
            raise errors.validation(f"Invalid property name {name!r}: use lowercase letters, digits and "
                                    "underscores, starting with a letter (the hs_ prefix is reserved).")
        _check_types(ptype, ftype)
        if body["groupName"] not in self._groups[object_type]:
            raise errors.validation(f"Property group {body['groupName']!r} does not exist for {object_type}.")
        if name in self._props[object_type] and not self._props[object_type][name].archived:
            raise errors.ApiError(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
        unique = bool(body.get("hasUniqueValue"))
        if unique and sum(d.unique for d in self._defined[object_type].values()) >= MAX_UNIQUE:
            raise errors.validation(f"{object_type} already has {MAX_UNIQUE} unique-value properties.")
        options, meta = self._options(ptype, body.get("options") or [])
        defn = PropDef(name, str(body["label"]), ptype, ftype, str(body["groupName"]), options=options,
                       unique=unique, hubspot_defined=False, external_options=bool(body.get("externalOptions")),
                       description=str(body.get("description") or ""))
        stamp = now_ms()
        self._props[object_type][name] = PropRecord(
            defn, created=stamp, updated=stamp, display_order=int(body.get("displayOrder", -1)),
            hidden=bool(body.get("hidden", False)), form_field=bool(body.get("formField", False)), option_meta=meta)
        self._refresh(object_type)
        return defn

    def update(self, object_type: str, name: str, body: Any) -> PropDef:
        """Apply a PATCH to a property's definition (raises 400 / 404).

        A custom property takes any change that keeps type and fieldType paired. A HubSpot-defined one
        keeps its type, fieldType and options (`readOnlyDefinition`, `readOnlyOptions`) but takes a new
        label, description, group, display order or visibility, unless HubSpot sets its value itself
        (`readOnlyValue`: calculated and rollup properties), which takes no change at all.
        """
        if not isinstance(body, dict):
            raise errors.validation("The request body must be a JSON object of the fields to change.")
        rec = self._props[object_type].get(name)
        if rec is None or rec.archived:
            raise errors.not_found(f"Unable to find property {name} on object type {object_type}")
        d = rec.defn
        if d.hubspot_defined:
            if d.read_only:
                raise errors.validation(f"{name} is a read-only HubSpot-defined property of {object_type}; "
                                        "its definition cannot be changed.")
            for key, current in (("type", d.type), ("fieldType", d.field_type)):
                if key in body and body[key] != current:
                    raise errors.validation(f"Cannot change the {key} of HubSpot-defined property {name} "
                                            f"(it is {current!r}); create a custom property instead.")
            if "options" in body and self._options(d.type, body["options"])[0] != d.options:
                raise errors.validation(f"The options of HubSpot-defined property {name} cannot be changed.")
        ptype, ftype = str(body.get("type", d.type)), str(body.get("fieldType", d.field_type))
        _check_types(ptype, ftype)
        group = str(body.get("groupName", d.group))
        if group not in self._groups[object_type]:
            raise errors.validation(f"Property group {group!r} does not exist for {object_type}.")
        if "label" in body and not body["label"]:
            raise errors.validation("A property's label cannot be empty.")
        options, meta = d.options, rec.option_meta
        if "options" in body and not d.hubspot_defined:
            options, meta = self._options(ptype, body["options"])
        elif ptype == "enumeration" and not options:
            raise errors.validation("An enumeration property needs at least one option.")
        elif ptype not in ("enumeration", "bool"):
            options, meta = (), []
        rec.defn = replace(d, label=str(body.get("label", d.label)), type=ptype, field_type=ftype, group=group,
                           options=options, description=str(body.get("description", d.description) or ""))
        rec.option_meta = meta
        rec.display_order = int(body.get("displayOrder", rec.display_order))
        rec.hidden = bool(body.get("hidden", rec.hidden))
        rec.form_field = bool(body.get("formField", rec.form_field))
        rec.updated = now_ms()
        self._refresh(object_type)
        return rec.defn

    @staticmethod
    def _options(ptype: str, raw: Any) -> tuple[tuple[tuple[str, str], ...], list[dict[str, Any]]]:
        if not isinstance(raw, list):
            raise errors.validation("`options` must be a list of {label, value} objects.")
        pairs, meta = [], []
        for i, opt in enumerate(raw):
            if not isinstance(opt, dict) or not opt.get("label") or "value" not in opt:
                raise errors.validation(f"Option {i} needs a label and a value.")
            pairs.append((str(opt["value"]), str(opt["label"])))
            meta.append({"label": str(opt["label"]), "value": str(opt["value"]),
                         "displayOrder": int(opt.get("displayOrder", i)), "hidden": bool(opt.get("hidden", False))})
        if ptype == "enumeration" and not pairs:
            raise errors.validation("An enumeration property needs at least one option.")
        return tuple(pairs), meta

    def groups_json(self, object_type: str) -> list[dict[str, Any]]:
        """All live groups."""
        return [dict(g) for g in self._groups[object_type].values() if not g["archived"]]

    def group_json(self, object_type: str, name: str) -> dict[str, Any]:
        """One live group or 404."""
        group = self._groups[object_type].get(name)
        if group is None or group["archived"]:
            raise errors.not_found(f"Unable to find property group {name} on object type {object_type}")
        return dict(group)

    def create_group(self, object_type: str, body: Any) -> dict[str, Any]:
        """Add a property group (400 / 409 on bad input)."""
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise errors.validation("A property group needs a name and a label.")
        name = str(body["name"])
        if not NAME.match(name):
            raise errors.validation(f"Invalid group name {name!r}: use lowercase letters, digits and underscores.")
        if name in self._groups[object_type]:
            raise errors.ApiError(409, "OBJECT_ALREADY_EXISTS", f"A property group named '{name}' already exists.")
        group = {"name": name, "label": str(body["label"]), "displayOrder": int(body.get("displayOrder", -1)),
                 "archived": False}
        self._groups[object_type][name] = group
        return dict(group)


def _check_types(ptype: str, ftype: str) -> None:
    """A property's type and fieldType, each known and the two a valid pair (400 otherwise)."""
    if ptype not in TYPES:
        raise errors.validation(f"Invalid type {ptype!r}; must be one of {', '.join(TYPES)}.")
    if ftype not in FIELD_TYPES:
        raise errors.validation(f"Invalid fieldType {ftype!r}; must be one of {', '.join(FIELD_TYPES)}.")
    if ftype not in PAIRS[ptype]:
        raise errors.validation(f"fieldType {ftype!r} is not valid for type {ptype!r}; use one of "
                                f"{', '.join(sorted(PAIRS[ptype]))}.")
