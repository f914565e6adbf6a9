"""Writes to the org: score updates (Collections or Bulk 2.0 ingest), custom fields, follow-up tasks."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import FieldSpec, TaskSpec, WriteItem, WriteResult
from adapters.salesforce import mapping
from adapters.salesforce import settings as S
from adapters.salesforce.catalog import Catalog
from adapters.salesforce.client import SalesforceClient
from connector.errors import FatalError, RapportError

BULK_NULL = "#N/A"  # how a Bulk API CSV says "set this field to null"; an empty cell leaves it alone


@dataclass(frozen=True)
class WriteOptions:
    """Tunables of writes (defaults from settings, overridable per connection)."""

    bulk_threshold: int = S.BULK_WRITE_THRESHOLD
    bulk_poll: float = S.BULK_POLL_SECONDS


def _result(item: WriteItem, answer: dict[str, Any]) -> WriteResult:
    if answer.get("success"):
        return WriteResult(item.external_id, True)
    errors = answer.get("errors") or [{}]
    code = errors[0].get("statusCode") or errors[0].get("errorCode") or "UNKNOWN_EXCEPTION"
    message = "; ".join(str(e.get("message", "")) for e in errors if e.get("message")) or code
    return WriteResult(
        item.external_id, False, error_code=code, message=message, retriable=code in S.RETRIABLE_WRITE_CODES
    )


class Writer:
    """Sends writes through a client."""

    def __init__(self, client: SalesforceClient, catalog: Catalog, options: WriteOptions) -> None:
        self.client = client
        self.catalog = catalog
        self.options = options

    def write(self, object: str, sobject: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """One result per item, in order; a refused record never blocks the others."""
        if len(items) > self.options.bulk_threshold:
            return self._bulk(sobject, items)
        results: list[WriteResult] = []
        for start in range(0, len(items), S.COMPOSITE_BATCH):
            chunk = items[start : start + S.COMPOSITE_BATCH]
            answers = self.client.composite_update(
                [mapping.write_record(sobject, i) for i in chunk], object=object
            )
            if len(answers) != len(chunk):
                raise FatalError(
                    f"Salesforce answered {len(answers)} results for {len(chunk)} records",
                    crm=S.CRM,
                    object=object,
                    hint="the composite/sobjects response must have one result per record",
                )
            results.extend(_result(i, a) for i, a in zip(chunk, answers, strict=True))
        return results

    def _bulk(self, sobject: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        columns: dict[str, None] = {S.ID_FIELD: None}
        for item in items:
            columns.update(dict.fromkeys(item.values))
        rows = []
        for item in items:
            row = {c: "" for c in columns}
            row[S.ID_FIELD] = item.external_id
            for k, v in item.values.items():
                row[k] = BULK_NULL if v is None else mapping.to_write_value(v, k)
            rows.append(row)
        outcome: dict[str, WriteResult] = {}
        for ok, failed, unprocessed in self.client.bulk_update(sobject, rows, poll=self.options.bulk_poll):
            for r in csv.DictReader(io.StringIO(ok)):
                rid = r.get(S.ID_FIELD) or r.get("sf__Id") or ""
                outcome[rid] = WriteResult(rid, True)
            for r in csv.DictReader(io.StringIO(failed)):
                rid = r.get(S.ID_FIELD) or r.get("sf__Id") or ""
                code, _, message = (r.get("sf__Error") or "UNKNOWN_EXCEPTION").partition(":")
                outcome[rid] = WriteResult(
                    rid,
                    False,
                    error_code=code,
                    message=message.rstrip(":-") or code,
                    retriable=code in S.RETRIABLE_WRITE_CODES,
                )
            for r in csv.DictReader(io.StringIO(unprocessed)):
                rid = r.get(S.ID_FIELD) or ""
                outcome[rid] = WriteResult(
                    rid,
                    False,
                    error_code="UNPROCESSED",
                    message="the Bulk job stopped before this record",
                    retriable=True,
                )
        return [
            outcome.get(i.external_id)
            or WriteResult(
                i.external_id,
                False,
                error_code="NO_RESULT",
                message="the Bulk job reported nothing for this record",
                retriable=True,
            )
            for i in items
        ]

    def ensure_fields(self, object: str, sobject: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Create the fields the org does not have yet (Tooling API); return the names created."""
        self.catalog.forget(sobject)  # decide on what the org has now, not on a cached describe
        existing = self.catalog.fields(sobject)
        created: list[str] = []
        for spec in specs:
            if spec.name.lower() in existing:
                continue
            try:
                self.client.create_custom_field(f"{sobject}.{spec.name}", mapping.custom_field_metadata(spec))
            except RapportError as exc:
                if exc.code == S.DUPLICATE_NAME:  # made meanwhile (or by our retried first attempt)
                    continue
                raise
            created.append(spec.name)
        if created:
            self.catalog.forget(sobject)
        return created

    def create_task(self, spec: TaskSpec) -> str:
        """A Task on the record (WhatId, or WhoId for a contact) for its owner; returns its id."""
        f = S.TASK_FIELDS
        target = f["who"] if spec.object == "contact" else f["what"]
        values: dict[str, Any] = {
            target: spec.external_id,
            f["subject"]: spec.subject[: S.TASK_SUBJECT_MAX],
            f["body"]: spec.body,
            f["status"]: S.TASK_STATUS,
        }
        if spec.owner_id:
            values[f["owner"]] = spec.owner_id
        if spec.due is not None:
            values[f["due"]] = spec.due.date().isoformat()
        return self.client.create(S.TASK_OBJECT, values)
