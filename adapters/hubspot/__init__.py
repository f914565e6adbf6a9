"""The HubSpot adapter: a short class over its rooms (client, reads, writes, mapping, webhooks)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from adapters.base import (
    Budget,
    Change,
    ConnectionInfo,
    FieldInfo,
    FieldSpec,
    MetadataCache,
    Page,
    SecretsSink,
    TaskSpec,
    WebhookEvent,
    WriteItem,
    WriteResult,
)
from adapters.hubspot import settings as hs
from adapters.hubspot import webhooks
from connector.errors import ConfigError

# Imported lazily here (the web process needs none of it); a worker preloads it before forking jobs.
PRELOAD = ("adapters.hubspot.client", "adapters.hubspot.reads", "adapters.hubspot.writes", "hubspot.crm.objects",
           "hubspot.crm.companies", "hubspot.crm.contacts", "hubspot.crm.deals", "hubspot.crm.tickets",
           "hubspot.crm.associations.v4", "hubspot.crm.pipelines", "hubspot.crm.properties")

if TYPE_CHECKING:
    from adapters.hubspot.client import HubSpotClient
    from adapters.hubspot.reads import Reader
    from adapters.hubspot.writes import Writer


class HubSpotAdapter:
    """HubSpot CRM v3 through hubspot-api-client, for account, contact, deal, case and activity."""

    kind = "hubspot"
    write_batch = hs.BATCH_LIMIT  # records per batch update: write-back records each batch as it is answered

    def __init__(self, info: ConnectionInfo, secrets: dict[str, Any], *, budget: Budget | None = None,
                 on_secrets: SecretsSink | None = None) -> None:
        # imported here so that the web process, which only verifies webhooks, never loads the API client
        from adapters.hubspot.client import HubSpotClient
        from adapters.hubspot.reads import Reader
        from adapters.hubspot.writes import Writer

        self.info = info
        self.client: HubSpotClient = HubSpotClient(info, secrets, budget=budget, on_secrets=on_secrets)
        self.reader: Reader = Reader(self.client)
        self.writer: Writer = Writer(self.client)

    @property
    def metadata_cache(self) -> MetadataCache:
        """Where pipelines are kept between runs (the connector sets one shared through Redis)."""
        return self.reader.cache

    @metadata_cache.setter
    def metadata_cache(self, value: MetadataCache) -> None:
        self.reader.cache = value

    @property
    def read_mapping(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Unified object -> read mapping whose `properties.*` sources are requested too."""
        return self.reader.read_mapping

    @read_mapping.setter
    def read_mapping(self, value: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.reader.read_mapping = value

    @property
    def api_calls(self) -> int:
        """Every HTTP call made so far."""
        return self.client.api_calls

    def pull(self, object: str, since: datetime | None, until: datetime, *, full: bool = False,
             reconcile: bool = False) -> Iterator[Page]:
        """Changed records with since <= stamp < until (list on full syncs, search otherwise).

        Plain deletions show only in the archived list: read on full syncs and reconcile runs, and
        on incremental runs only where no deletion webhooks can arrive (option `archived_pass`).
        """
        return self.reader.pull(object, since, until, full, reconcile=reconcile)

    def fetch(self, object: str, external_ids: Sequence[str]) -> list[Change]:
        """Current state of these records by batch read."""
        return self.reader.fetch(object, external_ids)

    def describe(self, object: str) -> list[FieldInfo]:
        """Properties of the object."""
        return self.writer.describe(object)

    def ensure_fields(self, object: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Create the missing score properties in the `rapport` group."""
        return self.writer.ensure_fields(object, specs)

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Batch-update records, 100 a call."""
        return self.writer.write(object, items)

    def already_written(self, object: str, items: Sequence[WriteItem]) -> set[str]:
        """Ids of the items the CRM already holds with these values (read back after an interrupted write-back)."""
        return self.writer.already_written(object, items)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str,
                      method: str = "POST") -> list[WebhookEvent]:
        """Verify (v3 signature, 5-minute window) and parse one webhook request."""
        secret = webhooks.signing_secret(self.client.secrets)
        if not secret:
            raise ConfigError("this HubSpot connection has no secret to check webhook signatures",
                              crm="hubspot", hint="reconnect with --app-secret (private app) or an OAuth client")
        return webhooks.parse(headers, body, url, method, secret)

    def create_task(self, spec: TaskSpec) -> str:
        """A follow-up task associated with the company or contact."""
        return self.writer.create_task(spec)
