"""An in-memory CRM and an adapter over it: the fake the sync engine is tested against.

It behaves like the real CRMs wherever the sync engine can tell: modified stamps with millisecond
resolution that many records share, deletes kept in a recycle bin (and purged later), merges that
mark the loser deleted with its survivor and re-parent its children, pages of a fixed size read
by (stamp, id) keyset, and, on demand, a failure between two pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

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
from connector.errors import RetriableError, WebhookRejected

KIND = "memory"
START = datetime(2024, 1, 1, tzinfo=UTC)
PREFIX = {"account": "001", "contact": "003", "deal": "006", "case": "500", "activity": "00T"}
# Which field of a child holds a reference to a parent object (re-pointed when the parent merges).
REFERENCES = {"account": "AccountId", "contact": "ContactId"}
SCHEMA: dict[str, tuple[str, ...]] = {
    "account": ("Id", "Name", "Website", "Industry", "Employees", "Revenue", "OwnerId", "CreatedDate",
                "LastModified", "Segment__x"),
    "contact": ("Id", "AccountId", "Email", "FirstName", "LastName", "Title", "OwnerId", "LastActivity",
                "CreatedDate", "LastModified"),
    "deal": ("Id", "AccountId", "ContactId", "Name", "Amount", "Stage", "Closed", "Won", "CloseDate", "Kind",
             "OwnerId", "CreatedDate", "LastModified"),
    "case": ("Id", "AccountId", "ContactId", "Subject", "Priority", "Status", "Closed", "Escalated", "Opened",
             "ClosedAt", "Reopens", "CSAT", "CreatedDate", "LastModified"),
    "activity": ("Id", "AccountId", "ContactId", "Type", "Subject", "When", "CreatedDate", "LastModified"),
}

DEFAULT_READ: dict[str, dict[str, dict[str, Any]]] = {
    "account": {
        "name": {"source": "Name"}, "domain": {"source": "Website"}, "industry": {"source": "Industry"},
        "employees": {"source": "Employees", "cast": "int"}, "annual_revenue": {"source": "Revenue", "cast": "float"},
        "owner_id": {"source": "OwnerId"}, "created_at": {"source": "CreatedDate", "cast": "datetime"},
        "custom.segment": {"source": "Segment__x", "default": "unknown"},
    },
    "contact": {
        "account_external_id": {"source": "AccountId"}, "email": {"source": "Email"},
        "first_name": {"source": "FirstName"}, "last_name": {"source": "LastName"}, "title": {"source": "Title"},
        "owner_id": {"source": "OwnerId"}, "last_activity_at": {"source": "LastActivity", "cast": "datetime"},
        "created_at": {"source": "CreatedDate", "cast": "datetime"},
    },
    "deal": {
        "account_external_id": {"source": "AccountId"}, "contact_external_id": {"source": "ContactId"},
        "name": {"source": "Name"}, "amount": {"source": "Amount", "cast": "float"}, "stage": {"source": "Stage"},
        "is_closed": {"source": "Closed", "cast": "bool", "default": False},
        "is_won": {"source": "Won", "cast": "bool", "default": False},
        "close_date": {"source": "CloseDate", "cast": "date"},
        "deal_type": {"source": "Kind", "map": {"New Business": "new", "Renewal": "renewal", "Upsell": "expansion"}},
        "owner_id": {"source": "OwnerId"}, "currency": {"constant": "USD"},
        "created_at": {"source": "CreatedDate", "cast": "datetime"},
    },
    "case": {
        "account_external_id": {"source": "AccountId"}, "contact_external_id": {"source": "ContactId"},
        "subject": {"source": "Subject"},
        "priority": {"source": "Priority", "map": {"P1": "urgent", "P2": "high", "P3": "medium", "P4": "low"}},
        "status": {"source": "Status"}, "is_closed": {"source": "Closed", "cast": "bool", "default": False},
        "is_escalated": {"source": "Escalated", "cast": "bool", "default": False},
        "opened_at": {"source": "Opened", "cast": "epoch_ms"}, "closed_at": {"source": "ClosedAt", "cast": "datetime"},
        "reopen_count": {"source": "Reopens", "cast": "int", "default": 0},
        "satisfaction": {"source": "CSAT", "cast": "float"}, "created_at": {"source": "CreatedDate", "cast": "datetime"},
    },
    "activity": {
        "account_external_id": {"source": "AccountId"}, "contact_external_id": {"source": "ContactId"},
        "kind": {"source": "Type", "map": {"Call": "call", "Email": "email", "Meeting": "meeting"}},
        "subject": {"source": "Subject"}, "occurred_at": {"source": "When", "cast": "datetime"},
        "created_at": {"source": "CreatedDate", "cast": "datetime"},
    },
}
_SCORE_TARGETS = {"relationship_score": "RelationshipScore__x", "experience_score": "ExperienceScore__x",
                  "tier": "Tier__x", "drivers": "Drivers__x", "trend": "Trend__x", "scored_at": "ScoredAt__x"}
DEFAULT_WRITE: dict[str, dict[str, str]] = {"account": dict(_SCORE_TARGETS), "contact": dict(_SCORE_TARGETS)}


def stamp_text(at: datetime) -> str:
    """A datetime as the fake writes it: 2024-01-02T03:04:05.000+0000."""
    v = at.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"


def epoch_ms(at: datetime) -> str:
    """A datetime as milliseconds since 1970, as text."""
    return str(round(at.timestamp() * 1000))


def sample(object: str, n: int, *, account: str | None = None, contact: str | None = None) -> dict[str, Any]:
    """Plausible, varied field values for the n-th record of an object (deterministic)."""
    at = START + timedelta(days=n % 400, minutes=n)
    common = {"OwnerId": f"005{n % 7:06d}", "AccountId": account, "ContactId": contact}
    table: dict[str, dict[str, Any]] = {
        "account": {"Name": f"Company {n}", "Website": f"company{n}.example", "Industry": ["Tech", "Retail", None][n % 3],
                    "Employees": str(10 + n * 7), "Revenue": float(n * 1000), "Segment__x": ["smb", "ent", ""][n % 3]},
        "contact": {"Email": f"person{n}@example.com", "FirstName": f"First{n}", "LastName": f"Last{n}",
                    "Title": ["CTO", "Buyer", None][n % 3],
                    "LastActivity": None if n % 4 == 0 else (at + timedelta(days=3)).isoformat().replace("+00:00", "Z")},
        "deal": {"Name": f"Deal {n}", "Amount": f"{n * 150}.50", "Stage": ["Open", "Closed Won", "Closed Lost"][n % 3],
                 "Closed": ["false", "true", "true"][n % 3], "Won": ["false", "true", "false"][n % 3],
                 "CloseDate": (at + timedelta(days=30)).date().isoformat(), "Kind": ["New Business", "Renewal", "Upsell"][n % 3]},
        "case": {"Subject": f"Case {n}", "Priority": f"P{1 + n % 4}", "Status": ["New", "Working", "Closed"][n % 3],
                 "Closed": n % 3 == 2, "Escalated": n % 5 == 0, "Opened": epoch_ms(at),
                 "ClosedAt": stamp_text(at + timedelta(hours=n % 50)) if n % 3 == 2 else None,
                 "Reopens": n % 2, "CSAT": None if n % 2 else float(1 + n % 5)},
        "activity": {"Type": ["Call", "Email", "Meeting"][n % 3], "Subject": f"Touch {n}",
                     "When": (at + timedelta(days=1)).isoformat()},
    }
    values = table[object]
    return {**{k: v for k, v in common.items() if k in SCHEMA[object]}, "CreatedDate": stamp_text(at), **values}


@dataclass
class Record:
    """One record as the fake CRM holds it."""

    fields: dict[str, Any]
    stamp: datetime
    deleted: bool = False
    merged_into: str | None = None


@dataclass
class MemoryCRM:
    """The fake CRM: records per object, a millisecond clock, a recycle bin, and failure injection."""

    now: datetime = START
    page_size: int = 50
    records: dict[str, dict[str, Record]] = field(default_factory=lambda: {o: {} for o in SCHEMA})
    schema: dict[str, list[str]] = field(default_factory=lambda: {o: list(f) for o, f in SCHEMA.items()})
    tasks: list[TaskSpec] = field(default_factory=list)
    between_pages: Callable[[], None] | None = None
    _seq: int = 0
    _fail_in: int | None = None
    _fail_exc: BaseException | None = None
    named: ClassVar[dict[str, MemoryCRM]] = {}

    @classmethod
    def by_name(cls, name: str) -> MemoryCRM:
        """The in-process CRM of this name, made on first use (lets a connection row find its fake)."""
        return cls.named.setdefault(name, cls())

    def tick(self, ms: int = 1) -> datetime:
        """Move the clock forward."""
        self.now += timedelta(milliseconds=ms)
        return self.now

    def _stamp(self, rec: Record, at: datetime | None) -> None:
        rec.stamp = at if at is not None else self.now
        rec.fields["LastModified"] = epoch_ms(rec.stamp)

    def create(self, object: str, fields: Mapping[str, Any] | None = None, *, at: datetime | None = None) -> str:
        """Add a record (sample values unless given); return its id."""
        self._seq += 1
        external_id = f"{PREFIX[object]}{self._seq:09d}"
        values = {**sample(object, self._seq), **(fields or {}), "Id": external_id}
        rec = Record(values, self.now)
        self._stamp(rec, at)
        self.records[object][external_id] = rec
        return external_id

    def update(self, object: str, external_id: str, fields: Mapping[str, Any], *, at: datetime | None = None) -> None:
        """Change fields of a live record; `at` stamps it in the past, like a late index entry."""
        rec = self._live(object, external_id)
        rec.fields.update(fields)
        self._stamp(rec, at)

    def delete(self, object: str, external_id: str, *, at: datetime | None = None) -> None:
        """Move a live record to the recycle bin."""
        rec = self._live(object, external_id)
        rec.deleted = True
        self._stamp(rec, at)

    def restore(self, object: str, external_id: str) -> None:
        """Undelete a record from the recycle bin (not a merge loser)."""
        rec = self.records[object][external_id]
        if not rec.deleted or rec.merged_into:
            raise ValueError(f"{object} {external_id} is not in the recycle bin")
        rec.deleted = False
        self._stamp(rec, None)

    def purge(self, object: str, external_id: str) -> None:
        """Empty a deleted record from the recycle bin: it is gone from every read."""
        if not self.records[object][external_id].deleted:
            raise ValueError(f"{object} {external_id} is not deleted")
        del self.records[object][external_id]

    def merge(self, object: str, loser: str, survivor: str) -> None:
        """Merge loser into survivor: children move to the survivor, the loser is deleted pointing at it."""
        if loser == survivor:
            raise ValueError("a record cannot be merged into itself")
        self._live(object, survivor)
        rec = self._live(object, loser)
        ref = REFERENCES.get(object)
        for child in self.records:
            for other in self.records[child].values():
                if ref and other.fields.get(ref) == loser:  # those in the recycle bin too
                    other.fields[ref] = survivor
                    self._stamp(other, None)
        rec.deleted, rec.merged_into = True, survivor
        self._stamp(rec, None)
        self._stamp(self.records[object][survivor], None)

    def _live(self, object: str, external_id: str) -> Record:
        rec = self.records[object].get(external_id)
        if rec is None or rec.deleted:
            raise KeyError(f"{object} {external_id} does not exist or is deleted")
        return rec

    def change(self, object: str, external_id: str) -> Change:
        """The record as a Change (deleted ones carry IsDeleted and the survivor)."""
        rec = self.records[object][external_id]
        raw = {**rec.fields, "IsDeleted": rec.deleted, "MasterId": rec.merged_into}
        return Change(object, external_id, rec.stamp, json.loads(json.dumps(raw)), rec.deleted, rec.merged_into)

    def fail_after(self, pages: int | None, exc: BaseException | None = None) -> None:
        """Make the request after `pages` more requests raise `exc` (default: a dropped connection), once; None disarms."""
        self._fail_in, self._fail_exc = pages, exc

    def serve(self) -> None:
        """Account for one request: raise the injected failure when it is due."""
        if self._fail_in is None:
            return
        if self._fail_in == 0:
            exc = self._fail_exc or RetriableError("connection reset by the CRM", crm=KIND)
            self._fail_in, self._fail_exc = None, None
            raise exc
        self._fail_in -= 1


class MemoryAdapter:
    """The adapter contract over a MemoryCRM; counts one API call per request."""

    kind = KIND

    def __init__(self, info: ConnectionInfo, secrets: dict[str, Any], *, budget: Budget | None = None,
                 on_secrets: SecretsSink | None = None, crm: MemoryCRM | None = None) -> None:
        self.info, self.secrets = info, dict(secrets)
        self.budget = budget or NoBudget()
        self.on_secrets = on_secrets
        self.crm = crm or MemoryCRM.by_name(str(info.options.get("crm", info.name)))
        self.api_calls = 0

    def _call(self) -> None:
        self.budget.acquire()
        if not self.secrets.get("access_token") and self.secrets.get("refresh_token"):
            # The first call of a fresh process trades the refresh token for an access token.
            self.secrets["access_token"] = f"mem-{self.info.id}-{self.crm._seq}"
            if self.on_secrets is not None:
                self.on_secrets(dict(self.secrets))
        self.api_calls += 1
        self.crm.serve()

    def pull(self, object: str, since: datetime | None, until: datetime, *, full: bool = False,
             reconcile: bool = False) -> Iterator[Page]:
        """Records (deleted ones too) with since <= stamp < until, by (stamp, id), a page per request."""
        after: tuple[datetime, str] | None = None
        while True:
            self._call()
            keys = sorted((r.stamp, i) for i, r in self.crm.records[object].items()
                          if (since is None or r.stamp >= since) and r.stamp < until and (after is None or (r.stamp, i) > after))
            batch = keys[: self.crm.page_size]
            if batch:
                yield Page(object, [self.crm.change(object, i) for _, i in batch])
            if len(batch) < self.crm.page_size:
                return
            after = batch[-1]
            if self.crm.between_pages is not None:
                self.crm.between_pages()

    def fetch(self, object: str, external_ids: Sequence[str]) -> list[Change]:
        """Current state by id, 100 per request; a purged or unknown id comes back deleted."""
        out = []
        for start in range(0, len(external_ids), 100):
            self._call()
            for i in external_ids[start:start + 100]:
                if i in self.crm.records[object]:
                    out.append(self.crm.change(object, i))
                else:
                    out.append(Change(object, i, self.crm.now, {"Id": i, "IsDeleted": True}, deleted=True))
        return out

    def describe(self, object: str) -> list[FieldInfo]:
        """The object's fields; references and custom (`__x`) fields flagged."""
        self._call()
        return [FieldInfo(name=f, label=f, type="reference" if f in REFERENCES.values() else ("id" if f == "Id" else "string"),
                          custom=f.endswith("__x"), updateable=f not in ("Id", "LastModified"))
                for f in self.crm.schema[object]]

    def ensure_fields(self, object: str, specs: Sequence[FieldSpec]) -> list[str]:
        """Add the fields that are missing."""
        self._call()
        made = [s.name for s in specs if s.name not in self.crm.schema[object]]
        self.crm.schema[object].extend(made)
        return made

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Update records 200 per request; each result says whether its record took the values."""
        results = []
        for start in range(0, len(items), 200):
            self._call()
            for item in items[start:start + 200]:
                unknown = [k for k in item.values if k not in self.crm.schema[object]]
                rec = self.crm.records[object].get(item.external_id)
                if rec is None or rec.deleted:
                    results.append(WriteResult(item.external_id, False, "ENTITY_IS_DELETED", "record not found"))
                elif unknown:
                    results.append(WriteResult(item.external_id, False, "INVALID_FIELD", f"no field {unknown[0]}"))
                else:
                    self.crm.update(object, item.external_id, {k: stamp_text(v) if isinstance(v, datetime) else v
                                                               for k, v in item.values.items()})
                    results.append(WriteResult(item.external_id, True))
        return results

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, url: str, method: str = "POST") -> list[WebhookEvent]:
        """Events of a JSON body `{"events": [{"object", "id", "kind", "at"}]}` sent with the shared secret."""
        if headers.get("X-Memory-Secret") != self.secrets.get("webhook_secret"):
            raise WebhookRejected("webhook secret does not match", status=401, crm=KIND)
        try:
            events = json.loads(body)["events"]
            return [WebhookEvent(dedupe_key=f"{e['object']}:{e['id']}:{e['kind']}:{e['at']}", object=e["object"],
                                 external_id=e["id"], kind=e["kind"],
                                 occurred_at=datetime.fromtimestamp(int(e["at"]) / 1000, UTC), payload=e)
                    for e in events]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"malformed webhook body: {exc}", status=400, crm=KIND) from None

    def create_task(self, spec: TaskSpec) -> str:
        """Record a follow-up task; return its id."""
        self._call()
        self.crm.tasks.append(spec)
        return f"{PREFIX['activity']}T{len(self.crm.tasks):08d}"
