"""HubSpot names and numbers: objects, properties, URLs, page sizes, rate limits.

Every HubSpot object name, property name and URL the adapter uses is written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.errors import ConfigError

API_BASE = "https://api.hubapi.com"
AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
# What the OAuth install asks for, and why: read the scoring inputs (the contacts scopes also cover calls,
# emails, meetings and tasks; `tickets` covers tickets and their pipelines, `crm.objects.deals.read` deals and
# theirs); write the scores on companies and contacts and create score-drop tasks; read and create the score
# properties and their group (`rapport provision`). No owners scope: records carry `hubspot_owner_id` as a value.
OAUTH_SCOPES = ("oauth", "crm.objects.companies.read", "crm.objects.companies.write", "crm.objects.contacts.read",
                "crm.objects.contacts.write", "crm.objects.deals.read", "tickets", "crm.schemas.companies.read",
                "crm.schemas.companies.write", "crm.schemas.contacts.read", "crm.schemas.contacts.write")
CRM = "hubspot"

# unified object -> HubSpot object type
OBJECTS: dict[str, str] = {
    "account": "companies",
    "contact": "contacts",
    "deal": "deals",
    "case": "tickets",
}
# engagement objects read as unified "activity", with the kind each one stands for
ACTIVITY_OBJECTS: dict[str, str] = {"calls": "call", "emails": "email", "meetings": "meeting"}
SCORED_OBJECTS = ("account", "contact")

# the last-modified property each object is windowed on
MODIFIED_PROPERTY: dict[str, str] = {
    "companies": "hs_lastmodifieddate",
    "contacts": "lastmodifieddate",
    "deals": "hs_lastmodifieddate",
    "tickets": "hs_lastmodifieddate",
    "calls": "hs_lastmodifieddate",
    "emails": "hs_lastmodifieddate",
    "meetings": "hs_lastmodifieddate",
}
CREATED_PROPERTY: dict[str, str] = {t: "hs_createdate" if t in ("calls", "emails", "meetings") else "createdate"
                                    for t in MODIFIED_PROPERTY}
MERGED_IDS_PROPERTY = "hs_merged_object_ids"
# the rollup HubSpot keeps of a record's Primary company association (a property change, so it
# bumps the record's last-modified stamp; other association changes do not)
PRIMARY_COMPANY_PROPERTY = {"contacts": "associatedcompanyid", "deals": "hs_primary_associated_company",
                            "tickets": "hs_primary_company_id"}
CONTACT_COMPANY_PROPERTY = PRIMARY_COMPANY_PROPERTY["contacts"]

_COMMON = ("createdate", "hubspot_owner_id", MERGED_IDS_PROPERTY)
PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": (*_COMMON, "hs_lastmodifieddate", "name", "domain", "industry", "numberofemployees",
                  "annualrevenue"),
    "contacts": (*_COMMON, "lastmodifieddate", "email", "firstname", "lastname", "jobtitle",
                 CONTACT_COMPANY_PROPERTY, "notes_last_updated", "hs_last_sales_activity_timestamp"),
    "deals": (*_COMMON, "hs_lastmodifieddate", "dealname", "amount", "deal_currency_code", "dealstage",
              "pipeline", "closedate", "dealtype", PRIMARY_COMPANY_PROPERTY["deals"]),
    "tickets": (*_COMMON, "hs_lastmodifieddate", "subject", "hs_ticket_priority", "hs_pipeline",
                "hs_pipeline_stage", "closed_date", "hs_ticket_category", "csat_score", "is_escalated",
                "reopen_count", PRIMARY_COMPANY_PROPERTY["tickets"]),
    "calls": ("hs_timestamp", "hs_call_title", "hubspot_owner_id", "hs_lastmodifieddate", "hs_createdate"),
    "emails": ("hs_timestamp", "hs_email_subject", "hubspot_owner_id", "hs_lastmodifieddate", "hs_createdate"),
    "meetings": ("hs_timestamp", "hs_meeting_title", "hubspot_owner_id", "hs_lastmodifieddate", "hs_createdate"),
}

# objects whose company and contact come from associations (contacts carry their company as a
# property, deals and tickets their Primary company)
ASSOCIATED = ("deals", "tickets", "calls", "emails", "meetings")
COMPANIES = "companies"
CONTACTS = "contacts"
# the `_rapport` value each associated type resolves, and the key listing those an incremental read
# left unread (the sync keeps what it stored for them)
LINK_KEYS = {COMPANIES: "account_id", CONTACTS: "contact_id"}
KEEP_STORED = "keep"
# incremental runs list archived records every run ("always"), or leave plain deletions to deletion
# webhooks and to full and reconcile runs ("reconcile"); "auto": "reconcile" when webhooks can be verified
ARCHIVED_PASS_MODES = ("auto", "always", "reconcile")
ARCHIVED_PASS_DEFAULT = "auto"
ACTIVITY_TITLE = {"calls": "hs_call_title", "emails": "hs_email_subject", "meetings": "hs_meeting_title"}
# v4 association type ids of the primary company (labelled "Primary"); the first association wins otherwise
PRIMARY_COMPANY_TYPE_IDS = {1, 5, 26}
# Pipelines (stage ids, closed / won, probability) kept between runs: a stage id not in the kept
# table is read afresh at once, a full sync always reads them; what may wait this long is a change
# to an existing stage's closed / won metadata (option `pipelines_cache_seconds`, 0: every run).
PIPELINES_CACHE_SECONDS = 3600
PIPELINE_PROPERTY = {"deals": ("pipeline", "dealstage"), "tickets": ("hs_pipeline", "hs_pipeline_stage")}
CLOSED_TICKET_STATE = "CLOSED"

# paging and batching
LIST_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
BATCH_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 1_000  # v4 associations batch read (changelog 2025-02: at most 1,000 ids)
PAGE_RECORDS = 1_000  # changes per Page handed to the sync (it commits once per Page)
# searched records held back until their new ones fill an associations batch (or this many are held)
SEARCH_BLOCK_RECORDS = 10_000

# score properties, group and types
SCORE_GROUP = "rapport"
SCORE_GROUP_LABEL = "Rapport"
SCORE_PROPERTIES: dict[str, str] = {
    "relationship_score": "rapport_relationship_score",
    "experience_score": "rapport_experience_score",
    "tier": "rapport_tier",
    "drivers": "rapport_drivers",
    "trend": "rapport_trend",
    "scored_at": "rapport_scored_at",
}
# FieldSpec.type -> HubSpot (type, fieldType)
PROPERTY_TYPES: dict[str, tuple[str, str]] = {
    "number": ("number", "number"),
    "text": ("string", "text"),
    "longtext": ("string", "textarea"),
    "datetime": ("datetime", "date"),
}

# tasks (score-drop alerts)
TASKS = "tasks"
TASK_PROPERTIES = {"subject": "hs_task_subject", "body": "hs_task_body", "due": "hs_timestamp",
                   "owner": "hubspot_owner_id", "status": "hs_task_status", "type": "hs_task_type"}
TASK_DEFAULTS = {"hs_task_status": "NOT_STARTED", "hs_task_type": "TODO"}
TASK_TO_COMPANY_TYPE_ID = 192  # HUBSPOT_DEFINED task -> company
TASK_TO_CONTACT_TYPE_ID = 204  # HUBSPOT_DEFINED task -> contact

# rate limits: per 10 s rolling per app and account; search per second per account
RATE_WINDOW_MS = 10_000
RATE_LIMITS = {"private_app": 190, "oauth": 110}
SEARCH_WINDOW_MS = 1_000
SEARCH_RATE_LIMIT = 5
BUDGET_HEADROOM = 0.9
# HubSpot counts a call when it arrives, we when we send it: windows are widened by the spread
# of that delay so that no rolling window on HubSpot's side ever sees more than we admitted
BUDGET_WINDOW_MARGIN_MS = 250
SEARCH_WINDOW_MARGIN_MS = 100
DAILY_LIMIT_HEADER = "X-HubSpot-RateLimit-Daily"
DAILY_REMAINING_HEADER = "X-HubSpot-RateLimit-Daily-Remaining"
# how long to back off on a 429, by the policy HubSpot names in the body (Retry-After wins when sent)
BACKOFF_SECONDS = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": 3600.0}
SERVER_ERROR_BACKOFF = 0.2
LOCKED_BACKOFF = 2.0
MIGRATION_STATUS = 477  # the account's data is moving between data centres, for Retry-After seconds
LONGEST_INLINE_WAIT_S = 60.0  # a longer Retry-After pauses the run (resumed then) rather than a worker
MAX_RETRIES = 5

# OAuth: access tokens last 30 minutes; refresh a minute early
TOKEN_REFRESH_MARGIN_S = 60
ACCESS_TOKEN_TTL_S = 1800
EXPIRED_AUTH_CATEGORY = "EXPIRED_AUTHENTICATION"

# webhooks (v3 signature)
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
SIGNATURE_MAX_AGE_S = 300
# the escapes HubSpot decodes in the URI before signing (validating-requests doc)
URI_DECODES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
               "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
WEBHOOK_OBJECTS = {"contact": "contact", "company": "account", "deal": "deal", "ticket": "case"}
WEBHOOK_OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "account", "0-3": "deal", "0-5": "case"}
WEBHOOK_KINDS = {"creation": "created", "deletion": "deleted", "privacyDeletion": "deleted",
                 "propertyChange": "updated", "merge": "merged", "restore": "restored",
                 "associationChange": "associated"}


def auth_kind(secrets: dict[str, Any]) -> str:
    """'oauth' when the secrets hold an OAuth client or refresh token, else 'private_app'."""
    return "oauth" if secrets.get("refresh_token") or secrets.get("client_id") else "private_app"


def number_option(options: Mapping[str, Any], name: str, default: float, *, unit: str = "", whole: bool = False,
                  minimum: float = 0) -> float:
    """A numeric connection option (its default when unset), or a ConfigError naming it and what it takes."""
    value = options.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind}{f' of {unit}' if unit else ''}, {minimum:g} or more, not {value!r}",
                          crm=CRM, hint="fix the connection's options")
    return int(number) if whole else number


def budget_rates(options: dict[str, Any], auth: str = "private_app") -> dict[str, list[tuple[int, int]]]:
    """Budget buckets as (limit, window ms) at ~90% of the published limits.

    Options override the published numbers: `rate_limit` (per window), `rate_window_ms`, and
    `search_rate_limit` (per second), e.g. for an API add-on or a sandbox configured otherwise.
    """
    burst = int(number_option(options, "rate_limit", RATE_LIMITS.get(auth, RATE_LIMITS["oauth"]), whole=True,
                              minimum=1, unit="calls per window"))
    window = int(number_option(options, "rate_window_ms", RATE_WINDOW_MS, whole=True, minimum=1, unit="ms"))
    search = number_option(options, "search_rate_limit", SEARCH_RATE_LIMIT, minimum=0.1, unit="calls per second")
    margin = int(number_option(options, "rate_margin_ms", BUDGET_WINDOW_MARGIN_MS, whole=True, unit="ms"))
    return {
        "default": [(max(1, int(burst * BUDGET_HEADROOM)), window + margin)],
        "search": [(max(1, int(search * BUDGET_HEADROOM)), SEARCH_WINDOW_MS + min(margin, SEARCH_WINDOW_MARGIN_MS))],
    }
