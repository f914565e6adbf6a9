"""The whole adapter contract: a small Protocol and the plain types that cross it.

Objects are named by their unified name ("account", "contact", "deal", "case", "activity");
each adapter maps them to its CRM's objects in its own `settings` module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

EventKind = Literal["created", "updated", "deleted", "merged", "restored", "associated"]


@dataclass(frozen=True)
class Change:
    """One record as the CRM has it now (or its deletion / merge)."""

    object: str
    external_id: str
    modified_at: datetime
    raw: dict[str, Any]
    deleted: bool = False
    merged_into: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of changes, ascending by `modified_at`."""

    object: str
    changes: list[Change]


@dataclass(frozen=True)
class FieldInfo:
    """A field as the CRM describes it."""

    name: str
    label: str
    type: str
    custom: bool = False
    updateable: bool = True
    nillable: bool = True
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldSpec:
    """A field Rapport wants to exist in the CRM (score targets)."""

    name: str
    label: str
    type: Literal["number", "text", "longtext", "datetime"]
    precision: int | None = None
    scale: int | None = None
    description: str = ""


@dataclass(frozen=True)
class WriteItem:
    """Values to write to one CRM record, by CRM field name."""

    object: str
    external_id: str
    values: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What the CRM said about one written record."""

    external_id: str
    ok: bool
    error_code: str | None = None
    message: str | None = None
    retriable: bool = False
    # the record was merged into this one, which took the write instead: what was written there is stale
    landed_on: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """One verified notification from the CRM, ready to persist."""

    dedupe_key: str
    object: str | None
    external_id: str | None
    kind: EventKind
    occurred_at: datetime | None
    changed_fields: tuple[str, ...] = ()
    source: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A follow-up task for a record owner (score-drop alerts)."""

    object: str
    external_id: str
    subject: str
    body: str
    owner_id: str | None = None
    due: datetime | None = None


@runtime_checkable
class Adapter(Protocol):
    """What every CRM adapter offers the connector."""

    kind: str
    api_calls: int

    def pull(self, object: str, since: datetime | None, until: datetime, *, full: bool = False,
             reconcile: bool = False) -> Iterator[Page]:
        """Changed records with since <= modified_at < until, ascending; deletions and merges included.

        `reconcile` also sweeps for deletions that the window's reads cannot see (where a CRM shows
        them only in a recycle bin and by webhook), whenever they happened before `until`.
        """
        ...

    def fetch(self, object: str, external_ids: Sequence[str]) -> list[Change]:
        """The current state of these records (missing ones come back as deleted)."""
        ...

    def describe(self, object: str) -> list[FieldInfo]:
        """The fields the CRM has on this object."""
        ...

    def ensure_fields(self, object: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Create the fields that do not exist yet; return the names created."""
        ...

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Update records in the CRM's largest batches; one result per item, in order."""
        ...

    def parse_webhook(
        self, headers: Mapping[str, str], body: bytes, url: str, method: str = "POST"
    ) -> list[WebhookEvent]:
        """Verify and parse one webhook request; raise WebhookRejected when it must be refused."""
        ...

    def create_task(self, spec: TaskSpec) -> str:
        """Create a follow-up task in the CRM; return its id."""
        ...


@dataclass(frozen=True)
class ConnectionInfo:
    """What an adapter needs to know about its connection (secrets are passed separately)."""

    id: int
    name: str
    kind: str
    instance_url: str | None = None
    external_org_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # webhook events for the connection arrived lately (within `connector.webhooks.RECEIVING_TTL_S`)
    webhooks_arriving: bool = False


class Budget(Protocol):
    """The shared per-connection API budget (Redis-backed in production)."""

    def acquire(self, bucket: str = "default", weight: int = 1) -> None:
        """Block until `weight` calls may be made in `bucket`; raise BudgetExhausted past the daily share."""
        ...

    def observe(self, used: int, limit: int) -> None:
        """Record the CRM's own count of calls used today against its daily limit."""
        ...


class SecretsSink(Protocol):
    """Called by an adapter when its credentials change (a refreshed access token)."""

    def __call__(self, secrets: dict[str, Any]) -> None: ...


class MetadataCache(Protocol):
    """CRM metadata an adapter keeps between runs (pipelines, say), shared by every process of the
    connection. An adapter that uses one declares a `metadata_cache` attribute; the connector sets it."""

    def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None when there is none (or it expired)."""
        ...

    def set(self, key: str, value: Any, ttl_s: float) -> None:
        """Keep a JSON-serialisable `value` under `key` for `ttl_s` seconds."""
        ...


class NoCache:
    """A metadata cache that keeps nothing: every run reads the CRM's metadata afresh."""

    def get(self, key: str) -> Any | None:
        return None

    def set(self, key: str, value: Any, ttl_s: float) -> None:
        return None


class NoBudget:
    """A budget that never waits: for tests and one-off commands against a sandbox."""

    def acquire(self, bucket: str = "default", weight: int = 1) -> None:
        return None

    def observe(self, used: int, limit: int) -> None:
        return None
