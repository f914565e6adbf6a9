"""The unified model: one set of SQL tables for every CRM, keyed by (connection_id, external_id).

Timestamps are timezone-aware UTC everywhere; SQLite stores them naive, `UTCDateTime` restores
the zone on the way out. Each synced row keeps the CRM's raw record so that a mapping change
can be re-applied without calling the CRM again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

UNIFIED_OBJECTS = ("account", "contact", "deal", "case", "activity")
SCORED_OBJECTS = ("account", "contact")
ROLES = ("admin", "revops", "viewer")
CRM_KINDS = ("salesforce", "hubspot")
RUN_KINDS = ("sync_incremental", "sync_full", "score", "writeback", "reconcile", "webhook")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """A DateTime that only accepts aware values and always returns UTC-aware ones."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Rapport stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(nullable: bool = True, index: bool = False, **kw: Any) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index, **kw))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=sa.Column(JSONType, nullable=False))


def _document() -> Any:
    """A CRM record's raw fields or custom values: written and read whole, never searched in SQL, so
    PostgreSQL keeps them as `json` (the text as sent, syntax-checked) instead of converting to jsonb."""
    return Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))


def _json_null() -> Any:
    return Field(default=None, sa_column=sa.Column(JSONType, nullable=True))


def _fk(target: str, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey(target, ondelete="CASCADE"), nullable=nullable, index=index),
    )


# --- tenancy -------------------------------------------------------------------------------


class Workspace(SQLModel, table=True):
    """One customer organization; nothing crosses it."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False, unique=True))
    created_at: datetime = _created()


class User(SQLModel, table=True):
    """A person who signs in to the admin app, with one role in one workspace."""

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = _fk("workspace.id")
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, unique=True))
    password_hash: str = Field(sa_column=sa.Column(sa.String(300), nullable=False))
    role: str = Field(default="viewer", sa_column=sa.Column(sa.String(20), nullable=False))
    created_at: datetime = _created()


class Connection(SQLModel, table=True):
    """One CRM instance: a Salesforce org or a HubSpot portal."""

    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = _fk("workspace.id")
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False, unique=True))
    kind: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    instance_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(500), nullable=True))
    external_org_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(100), nullable=True, index=True))
    credentials_encrypted: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    options: dict[str, Any] = _json()
    status: str = Field(default="active", sa_column=sa.Column(sa.String(20), nullable=False))
    status_detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = _created()
    updated_at: datetime = _created()


# --- synced CRM records ----------------------------------------------------------------------


def _record_table_args(name: str) -> tuple[Any, ...]:
    # Records are found by (connection, external id) and by account; sync cursors live in
    # sync_cursor, so no index on modified_at (each index costs every upsert of a full sync).
    # On PostgreSQL their connection_id reference is kept by statement-level triggers instead of
    # the foreign key (migration 0003): a key checks every inserted row on its own.
    return (sa.UniqueConstraint("connection_id", "external_id", name=f"uq_{name}_conn_ext"),)


class Account(SQLModel, table=True):
    """A Salesforce Account or HubSpot Company."""

    __table_args__ = _record_table_args("account")
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    domain: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    industry: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    employees: int | None = None
    annual_revenue: float | None = None
    owner_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime | None = _ts()
    modified_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    merged_into: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    custom: dict[str, Any] = _document()
    raw: dict[str, Any] = _document()
    synced_at: datetime = _created()


class Contact(SQLModel, table=True):
    """A person at an account."""

    # The extra columns make the index cover the scoring queries, which then never read the wide rows.
    __table_args__ = (
        *_record_table_args("contact"),
        sa.Index("ix_contact_conn_account", "connection_id", "account_external_id", "external_id", "created_at",
                 "last_activity_at", "is_deleted", "merged_into"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    account_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    account_id: int | None = _fk("account.id", nullable=True, index=True)
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    first_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    last_name: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    title: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    owner_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    last_activity_at: datetime | None = _ts()
    created_at: datetime | None = _ts()
    modified_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    merged_into: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    custom: dict[str, Any] = _document()
    raw: dict[str, Any] = _document()
    synced_at: datetime = _created()


class Deal(SQLModel, table=True):
    """A Salesforce Opportunity or HubSpot Deal."""

    __table_args__ = (*_record_table_args("deal"), sa.Index("ix_deal_conn_account", "connection_id", "account_external_id"))
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    account_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    account_id: int | None = _fk("account.id", nullable=True, index=True)
    contact_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    amount: float | None = None
    currency: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    stage: str | None = Field(default=None, sa_column=sa.Column(sa.String(120)))
    is_closed: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    is_won: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    close_date: date | None = None
    deal_type: str | None = Field(default=None, sa_column=sa.Column(sa.String(60)))
    owner_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    created_at: datetime | None = _ts()
    modified_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    merged_into: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    custom: dict[str, Any] = _document()
    raw: dict[str, Any] = _document()
    synced_at: datetime = _created()


class Case(SQLModel, table=True):
    """A Salesforce Case or HubSpot Ticket."""

    __tablename__ = "case"
    __table_args__ = (*_record_table_args("case"), sa.Index("ix_case_conn_account", "connection_id", "account_external_id"))
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    account_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    account_id: int | None = _fk("account.id", nullable=True, index=True)
    contact_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    subject: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    priority: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    status: str | None = Field(default=None, sa_column=sa.Column(sa.String(60)))
    is_closed: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    is_escalated: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    opened_at: datetime | None = _ts()
    closed_at: datetime | None = _ts()
    reopen_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    satisfaction: float | None = None
    created_at: datetime | None = _ts()
    modified_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    merged_into: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    custom: dict[str, Any] = _document()
    raw: dict[str, Any] = _document()
    synced_at: datetime = _created()


class Activity(SQLModel, table=True):
    """A logged activity (Salesforce Task, HubSpot engagement): calls, emails, meetings."""

    # The extra columns make the index cover the scoring queries, which then never read the wide rows.
    __table_args__ = (
        *_record_table_args("activity"),
        sa.Index("ix_activity_conn_account", "connection_id", "account_external_id", "contact_external_id",
                 "occurred_at", "is_deleted", "merged_into"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    account_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    contact_external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    kind: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    subject: str | None = Field(default=None, sa_column=sa.Column(sa.String(300)))
    occurred_at: datetime | None = _ts()
    created_at: datetime | None = _ts()
    modified_at: datetime | None = _ts()
    is_deleted: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    merged_into: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    custom: dict[str, Any] = _document()
    raw: dict[str, Any] = _document()
    synced_at: datetime = _created()


RECORD_MODELS: dict[str, type[SQLModel]] = {
    "account": Account,
    "contact": Contact,
    "deal": Deal,
    "case": Case,
    "activity": Activity,
}


# --- configuration ------------------------------------------------------------------------------


class FieldMapping(SQLModel, table=True):
    """One mapped field: CRM field → unified field (direction `read`) or score → CRM field (`write`)."""

    __tablename__ = "field_mapping"
    __table_args__ = (sa.UniqueConstraint("connection_id", "object", "direction", "target", name="uq_field_mapping_target"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id")
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    direction: str = Field(default="read", sa_column=sa.Column(sa.String(8), nullable=False))
    target: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    source: str | None = Field(default=None, sa_column=sa.Column(sa.String(255), nullable=True))
    transform: dict[str, Any] = _json()
    updated_at: datetime = _created()


class Schedule(SQLModel, table=True):
    """A cron schedule for one kind of run on one connection."""

    __table_args__ = (sa.UniqueConstraint("connection_id", "kind", "cron", name="uq_schedule"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id")
    kind: str = Field(sa_column=sa.Column(sa.String(30), nullable=False))
    cron: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    enabled: bool = Field(default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("true")))
    last_slot: datetime | None = _ts()
    created_at: datetime = _created()


class ScoreModel(SQLModel, table=True):
    """A versioned set of weights and thresholds; scores record the version they came from."""

    __tablename__ = "score_model"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "version", name="uq_score_model_version"),)
    id: int | None = Field(default=None, primary_key=True)
    workspace_id: int = _fk("workspace.id")
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    status: str = Field(default="draft", sa_column=sa.Column(sa.String(20), nullable=False))
    params: dict[str, Any] = _json()
    note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    created_at: datetime = _created()
    published_at: datetime | None = _ts()


# --- scores -------------------------------------------------------------------------------------


_ACCOUNT_SCORES = sa.text("object = 'account'")


class Score(SQLModel, table=True):
    """The current scores of one account or contact."""

    __table_args__ = (
        sa.UniqueConstraint("connection_id", "object", "external_id", name="uq_score_record"),
        # Covers the portfolio read of the scores page and API: an index-only scan, no wide JSON rows.
        # Accounts only: that page never lists contacts, ten times as many rows, whose entries cost a
        # large portfolio's scoring run more than a tenth of its write time.
        sa.Index("ix_score_portfolio", "connection_id", "object", "external_id", "relationship", "experience",
                 "tier", "trend", "at_risk", sqlite_where=_ACCOUNT_SCORES, postgresql_where=_ACCOUNT_SCORES),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    relationship: float | None = None
    experience: float | None = None
    tier: str | None = Field(default=None, sa_column=sa.Column(sa.String(4)))
    at_risk: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    trend: float | None = None
    # Written whole and read whole, never searched: PostgreSQL's json keeps the text as sent, so storing
    # a portfolio's million rows costs a syntax check rather than a jsonb conversion (half the COPY
    # time), and an unchanged row is recognised by comparing text.
    drivers: list[Any] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    components: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    model_version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    scored_at: datetime = _created()


class ScoreHistory(SQLModel, table=True):
    """Append-only snapshots of scores, for trend and audit."""

    __tablename__ = "score_history"
    __table_args__ = (sa.Index("ix_score_history_record", "connection_id", "object", "external_id", "scored_at"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    relationship: float | None = None
    experience: float | None = None
    tier: str | None = Field(default=None, sa_column=sa.Column(sa.String(4)))
    at_risk: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))
    model_version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    scored_at: datetime = _created()


class WritebackState(SQLModel, table=True):
    """What was last written to the CRM for one record, and any pending failure."""

    __tablename__ = "writeback_state"
    __table_args__ = (sa.UniqueConstraint("connection_id", "object", "external_id", name="uq_writeback_record"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    written: dict[str, Any] = _json()
    written_at: datetime | None = _ts()
    failure_count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    last_error_code: str | None = Field(default=None, sa_column=sa.Column(sa.String(80)))
    next_attempt_at: datetime | None = _ts()
    gave_up: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false")))


# --- operations ---------------------------------------------------------------------------------


class SyncCursor(SQLModel, table=True):
    """Where the incremental sync of one object stands: the last committed modified stamp."""

    __tablename__ = "sync_cursor"
    __table_args__ = (sa.UniqueConstraint("connection_id", "object", name="uq_sync_cursor"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    value: datetime | None = _ts()
    seen_ids: list[Any] = _json(list)
    updated_at: datetime = _created()


class SyncRun(SQLModel, table=True):
    """One run (sync, score, write-back, ...) with its counts, API calls, errors and duration."""

    __tablename__ = "sync_run"
    __table_args__ = (sa.Index("ix_sync_run_conn_started", "connection_id", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    kind: str = Field(sa_column=sa.Column(sa.String(30), nullable=False))
    status: str = Field(default="running", sa_column=sa.Column(sa.String(20), nullable=False, index=True))
    trigger: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    job_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    started_at: datetime = _created()
    finished_at: datetime | None = _ts()
    heartbeat_at: datetime | None = _ts()
    window_start: datetime | None = _ts()
    window_end: datetime | None = _ts()
    counts: dict[str, Any] = _json()
    api_calls: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    errors: list[Any] = _json(list)
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    duration_s: float | None = None
    progress: dict[str, Any] = _json()


class WebhookEvent(SQLModel, table=True):
    """A webhook notification, persisted before it is acknowledged."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "dedupe_key", name="uq_webhook_dedupe"),
        sa.Index("ix_webhook_event_pending", "status", "received_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    dedupe_key: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    object: str | None = Field(default=None, sa_column=sa.Column(sa.String(20)))
    external_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    kind: str = Field(sa_column=sa.Column(sa.String(40), nullable=False))
    occurred_at: datetime | None = _ts()
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", sa_column=sa.Column(sa.String(20), nullable=False))
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    received_at: datetime = _created()
    claimed_at: datetime | None = _ts()
    claimed_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    processed_at: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    """A token for automation against the JSON API; only its hash is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _fk("user.id")
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    token_hash: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, unique=True))
    created_at: datetime = _created()
    last_used_at: datetime | None = _ts()


class ScoreAlert(SQLModel, table=True):
    """A score-drop alert: one CRM task per drop of a key account's relationship score."""

    __tablename__ = "score_alert"
    __table_args__ = (sa.UniqueConstraint("connection_id", "object", "external_id", "baseline_at", name="uq_score_alert_drop"),)
    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = _fk("connection.id", index=False)
    object: str = Field(sa_column=sa.Column(sa.String(20), nullable=False))
    external_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    baseline: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    baseline_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    current: float = Field(sa_column=sa.Column(sa.Float, nullable=False))
    task_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    status: str = Field(default="pending", sa_column=sa.Column(sa.String(20), nullable=False))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = _created()
