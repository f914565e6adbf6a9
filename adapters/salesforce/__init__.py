"""The Salesforce adapter: the contract of `adapters.base.Adapter`, delegating to its rooms."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.base import (
    Budget,
    Change,
    ConnectionInfo,
    FieldInfo,
    FieldSpec,
    NoBudget,
    Page,
    SecretsSink,
    TaskSpec,
    WebhookEvent,
    WriteItem,
    WriteResult,
)
from adapters.salesforce import mapping, soql, webhooks
from adapters.salesforce import settings as S
from adapters.salesforce.catalog import Catalog
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.reader import Reader, ReadOptions, Window
from adapters.salesforce.writer import WriteOptions, Writer
from connector.errors import ConfigError


def _opt(options: Mapping[str, Any], name: str, default: Any, cast: type) -> Any:
    value = options.get(name)
    return default if value is None else cast(value)


class SalesforceAdapter:
    """One Salesforce org, reached through simple-salesforce."""

    kind = "salesforce"

    def __init__(
        self,
        info: ConnectionInfo,
        secrets: dict[str, Any],
        *,
        budget: Budget | None = None,
        on_secrets: SecretsSink | None = None,
        api_budget_share: float | None = None,
    ) -> None:
        o = info.options or {}
        self.info = info
        self.client = SalesforceClient(
            info.instance_url,
            secrets,
            login_url=o.get("login_url") or S.DEFAULT_LOGIN_URL,
            ca_bundle=o.get("ca_bundle"),
            api_version=o.get("api_version") or S.API_VERSION,
            budget=budget or NoBudget(),
            budget_share=api_budget_share or _opt(o, "api_budget_share", S.API_BUDGET_SHARE, float),
            on_secrets=on_secrets,
            retries=_opt(o, "retries", S.RETRIES, int),
            backoff=_opt(o, "retry_backoff_seconds", S.RETRY_BACKOFF_SECONDS, float),
        )
        self.catalog = Catalog(self.client)
        self.reader = Reader(
            self.client,
            ReadOptions(
                bulk_threshold=_opt(o, "bulk_read_threshold", S.BULK_READ_THRESHOLD, int),
                bulk_page=_opt(o, "bulk_results_page", S.BULK_RESULTS_PAGE, int),
                bulk_poll=_opt(o, "bulk_poll_seconds", S.BULK_POLL_SECONDS, float),
            ),
        )
        self.writer = Writer(
            self.client,
            self.catalog,
            WriteOptions(
                bulk_threshold=_opt(o, "bulk_write_threshold", S.BULK_WRITE_THRESHOLD, int),
                bulk_poll=_opt(o, "bulk_poll_seconds", S.BULK_POLL_SECONDS, float),
            ),
        )
        self.webhook_max_bytes = _opt(o, "webhook_max_bytes", S.WEBHOOK_MAX_BYTES, int)
        # Unified object -> read mapping; the sync engine replaces it with the connection's own.
        self.read_mapping: dict[str, dict[str, dict[str, Any]]] = mapping.DEFAULT_READ

    @property
    def api_calls(self) -> int:
        """Every HTTP request this adapter has sent (token grants included)."""
        return self.client.calls

    @property
    def secrets(self) -> dict[str, Any]:
        """The current credentials (a refreshed access token included)."""
        return dict(self.client.secrets)

    def sobject(self, object: str) -> str:
        """The Salesforce object behind a unified object name."""
        try:
            return S.OBJECTS[object]
        except KeyError:
            raise ConfigError(
                f"Salesforce has no unified object {object!r}",
                crm=S.CRM,
                hint=f"use one of {', '.join(S.OBJECTS)}",
            ) from None

    def window(
        self, object: str, since: datetime | None, until: datetime, fields: Sequence[str] | None = None
    ) -> Window:
        """The checked field list and window of one read (a MappingError names fields the org lacks)."""
        sobject = self.sobject(object)
        if fields is None:
            # The mapping's sources, plus any extra fields the connection asks for (options.fields.<object>).
            extra = (self.info.options.get("fields") or {}).get(object) or []
            fields = [*mapping.selected_fields(self.read_mapping.get(object, {})), *extra]
        sources = list(dict.fromkeys(fields))
        types = self.catalog.check(object, sobject, sources)
        selected = soql.field_list(sources, self.catalog.system_fields(sobject))
        return Window(object, sobject, selected, types, since, until)

    def pull(
        self,
        object: str,
        since: datetime | None,
        until: datetime,
        *,
        full: bool = False,
        reconcile: bool = False,
        fields: Sequence[str] | None = None,
    ) -> Iterator[Page]:
        """Changed records with since <= SystemModstamp < until, ascending; deletions and merges included.

        queryAll returns deleted rows inside the window, so a reconcile run reads the same window.
        """
        w = self.window(object, None if full else since, until, fields)
        yield from self.reader.pull(w, bulk_allowed=w.since is None)

    def fetch(self, object: str, external_ids: Sequence[str]) -> list[Change]:
        """The current state of these records; ids the org no longer has come back deleted."""
        w = self.window(object, None, datetime.now(UTC))
        found = {c.external_id: c for c in self.reader.fetch(object, w.sobject, w.fields, external_ids)}
        now = datetime.now(UTC)
        gone = {
            i: Change(object, i, now, {S.ID_FIELD: i}, deleted=True) for i in external_ids if i not in found
        }
        return [found.get(i) or gone[i] for i in external_ids]

    def describe(self, object: str) -> list[FieldInfo]:
        """The fields the org has on this object (described once per adapter)."""
        return self.catalog.field_infos(self.sobject(object))

    def ensure_fields(self, object: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Create the missing fields through the Tooling API; return the names created."""
        return self.writer.ensure_fields(object, self.sobject(object), specs)

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Update records 200 a call (Bulk 2.0 above the threshold); one result per item, in order."""
        if not items:
            return []
        return self.writer.write(object, self.sobject(object), items)

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, url: str, method: str = "POST"
    ) -> list[WebhookEvent]:
        """Verify and parse one Outbound Message."""
        return webhooks.parse_outbound_message(
            headers, body, org_id=self.info.external_org_id, max_bytes=self.webhook_max_bytes, method=method
        )

    def create_task(self, spec: TaskSpec) -> str:
        """Create a follow-up Task on the record; return its id."""
        return self.writer.create_task(spec)

    def organization_id(self) -> str | None:
        """The org's id, read from the Organization object (one query)."""
        records = next(
            self.client.query_pages(
                f"SELECT {S.ID_FIELD} FROM {S.ORGANIZATION_OBJECT}", include_deleted=False
            )
        )
        rows = records.get("records") or []
        return str(rows[0][S.ID_FIELD]) if rows else None


__all__ = ["SalesforceAdapter"]
