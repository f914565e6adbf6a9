"""The mapping editor's form: fields per unified target in, read specs and write targets out; CRM type kinds.

Field names: `src.<target>`, `cast.<target>`, `default.<target>`, `const.<target>`, `fmt.<target>`,
`map.<target>` (lines `CRM value = unified value`), `new.target`/`new.source`/`new.cast` for a new custom
field, and `write.<score key>` for the write-back targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.mappings import COLUMNS, SCORE_KEYS
from connector.model import SCORED_OBJECTS

# CRM field types (Salesforce describe / HubSpot properties) by the kind of value they hold
_KINDS = {
    "str": {"string", "textarea", "picklist", "multipicklist", "email", "phone", "url", "id", "reference", "combobox",
            "encryptedstring", "enumeration", "phone_number"},
    "float": {"double", "currency", "percent", "number"},
    "int": {"int", "long"},
    "bool": {"boolean", "bool", "booleancheckbox"},
    "date": {"date"},
    "datetime": {"datetime"},
}
_FITS = {("int", "float"), ("float", "int"), ("date", "datetime"), ("datetime", "date"), ("bool", "int")}


def crm_kind(crm_type: str) -> str | None:
    """The kind of value a CRM field type holds (None when unknown)."""
    for kind, names in _KINDS.items():
        if crm_type.lower() in names:
            return kind
    return None


def compatible(crm: str, unified: str) -> bool:
    """True when a CRM value of this kind fills a unified column of that kind without a cast."""
    return crm == unified or unified == "str" or (crm, unified) in _FITS


def map_text(values: Mapping[str, Any] | None) -> str:
    """A value map as editable lines `CRM value = unified value`."""
    return "\n".join(f"{k} = {v}" for k, v in (values or {}).items())


def _parse_map(text: str) -> tuple[dict[str, str], str | None]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        left, sep, right = line.partition("=")
        if not sep or not left.strip():
            return {}, f"line {n} of the value map is not `CRM value = unified value`"
        out[left.strip()] = right.strip()
    return out, None


def spec_fields(form: Mapping[str, Any], target: str) -> tuple[dict[str, Any] | None, str | None]:
    """The read spec the form gives one target (None: not mapped) and an error in its value map, if any."""
    def get(name: str) -> str:
        return str(form.get(f"{name}.{target}") or "").strip()

    source, constant = get("src"), get("const")
    if not source and not constant:
        return None, None
    spec: dict[str, Any] = {}
    if source:
        spec["source"] = source
    if constant:
        spec["constant"] = constant
    for key, name in (("cast", "cast"), ("default", "default"), ("format", "fmt")):
        if get(name):
            spec[key] = get(name)
    values, error = _parse_map(str(form.get(f"map.{target}") or ""))
    if values:
        spec["map"] = values
    return spec, error


def parse_form(object: str, form: Mapping[str, Any], existing: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None,
                                                                                     dict[str, str]]:
    """(read specs, write targets or None, per-field errors) from a submitted mapping form."""
    errors: dict[str, str] = {}
    read: dict[str, Any] = {}
    targets = list(dict.fromkeys([*COLUMNS[object], *existing]))
    new_target = str(form.get("new.target") or "").strip()
    if new_target:
        name = new_target if new_target.startswith("custom.") or new_target in COLUMNS[object] else f"custom.{new_target}"
        if name in targets and form.get(f"src.{name}"):
            errors["new.target"] = f"{name} is already in the list above; edit it there"
        else:
            targets.append(name)
            form = {**form, f"src.{name}": form.get("new.source", ""), f"cast.{name}": form.get("new.cast", "")}
            if not str(form.get("new.source") or "").strip():
                errors["new.target"] = "give the CRM field to read into the new custom field"
    for target in targets:
        spec, error = spec_fields(form, target)
        if error:
            errors[target] = error
        if spec is not None:
            read[target] = spec
    write: dict[str, Any] | None = None
    if object in SCORED_OBJECTS:
        write = {}
        for key in SCORE_KEYS:
            value = str(form.get(f"write.{key}") or "").strip()
            if not value:
                errors[f"write.{key}"] = f"enter the CRM field that receives {key.replace('_', ' ')}"
            write[key] = value
    return read, write, errors
