"""What the org has: describe results, cached for the process, and mapping checks against them.

A describe is kept for an hour per (instance, object), so runs do not pay for it each time; a
field missing from a cached describe is looked up again before a mapping is declared broken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from adapters.base import FieldInfo
from adapters.salesforce import settings as S
from adapters.salesforce.client import SalesforceClient
from connector.errors import MappingError

_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached describe of this process."""
    with _LOCK:
        _CACHE.clear()


class Catalog:
    """Describe results of one org, shared by the adapters of this process for DESCRIBE_TTL_SECONDS."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client
        self._fresh: set[str] = set()  # described by this adapter itself, so not stale

    def _key(self, sobject: str) -> tuple[str, str]:
        return (self.client.instance_url or "", sobject.lower())

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe of one sObject (cached)."""
        with _LOCK:
            hit = _CACHE.get(self._key(sobject))
        if hit is not None and time.monotonic() - hit[0] < S.DESCRIBE_TTL_SECONDS:
            return hit[1]
        described = self.client.describe(sobject)
        with _LOCK:
            _CACHE[self._key(sobject)] = (time.monotonic(), described)
        self._fresh.add(sobject)
        return described

    def forget(self, sobject: str) -> None:
        """Drop the cached describe (after creating fields, or when it may be stale)."""
        with _LOCK:
            _CACHE.pop(self._key(sobject), None)
        self._fresh.discard(sobject)

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Field name (lower case) -> describe entry."""
        return {str(f["name"]).lower(): f for f in self.describe(sobject).get("fields", [])}

    def field_infos(self, sobject: str) -> list[FieldInfo]:
        """The fields as the adapter contract shows them."""
        return [
            FieldInfo(
                name=f["name"],
                label=f.get("label") or f["name"],
                type=f.get("type", "string"),
                custom=bool(f.get("custom")),
                updateable=bool(f.get("updateable", False)),
                nillable=bool(f.get("nillable", True)),
                options=tuple(p["value"] for p in f.get("picklistValues") or () if p.get("active", True)),
            )
            for f in self.describe(sobject).get("fields", [])
        ]

    def system_fields(self, sobject: str) -> list[str]:
        """Id, SystemModstamp, and IsDeleted / MasterRecordId where the object has them."""
        names = self.fields(sobject)
        return [f for f in S.SYSTEM_FIELDS if f in (S.ID_FIELD, S.STAMP_FIELD) or f.lower() in names]

    def _resolve(self, sobject: str, path: str) -> tuple[str | None, str | None]:
        """(type, None) for a field path the org has, else (None, the missing part)."""
        head, _, rest = path.partition(".")
        fields = self.fields(sobject)
        if not rest:
            entry = fields.get(head.lower())
            return (str(entry.get("type", "string")), None) if entry else (None, head)
        refs = [f for f in fields.values() if str(f.get("relationshipName") or "").lower() == head.lower()]
        if not refs:
            return None, head
        targets = refs[0].get("referenceTo") or []
        if len(targets) != 1:  # polymorphic lookups (WhoId, WhatId): the parent field cannot be checked
            return "string", None
        return self._resolve(str(targets[0]), rest)

    def check(self, object: str, sobject: str, sources: Sequence[str]) -> dict[str, str]:
        """Field path -> type for every source; a MappingError names the fields the org lacks."""
        types: dict[str, str] = {}
        missing: list[str] = []
        for path in sources:
            kind, _gap = self._resolve(sobject, path)
            if kind is None:
                missing.append(path)
            else:
                types[path] = kind
        if missing and sobject not in self._fresh:
            self.forget(sobject)  # the cached describe may predate the field: look again once
            return self.check(object, sobject, sources)
        if missing:
            names = ", ".join(missing)
            err = MappingError(
                f"the org has no field {names} on {sobject}; create it or remove it from the mapping",
                crm=S.CRM,
                object=object,
                code=S.INVALID_FIELD,
                hint=f"edit the {object} field mapping of this connection (`rapport provision` only creates score fields)",
            )
            err.field = missing[0]  # type: ignore[attr-defined]
            err.fields = missing  # type: ignore[attr-defined]
            raise err
        for name in self.system_fields(sobject):
            types.setdefault(
                name,
                str(self.fields(sobject)[name.lower()].get("type", "string"))
                if name.lower() in self.fields(sobject)
                else "string",
            )
        return types
