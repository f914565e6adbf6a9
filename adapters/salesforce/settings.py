"""Every Salesforce name Rapport relies on: URLs, objects, fields, page sizes, limits and codes.

No other module spells a Salesforce URL, object or field name.
"""

from __future__ import annotations

CRM = "salesforce"
API_VERSION = "59.0"

# --- where to log in -------------------------------------------------------------------------
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"
AUTHORIZE_PATH = "/services/oauth2/authorize"  # web-server flow consent page
OAUTH_SCOPES = "api refresh_token"
JWT_LIFETIME_SECONDS = 180  # Salesforce rejects assertions valid for longer than 3 minutes

# --- objects ----------------------------------------------------------------------------------
OBJECTS: dict[str, str] = {
    "account": "Account",
    "contact": "Contact",
    "deal": "Opportunity",
    "case": "Case",
    "activity": "Task",
}
UNIFIED_BY_SOBJECT: dict[str, str] = {v: k for k, v in OBJECTS.items()}
ORGANIZATION_OBJECT = "Organization"

ID_FIELD = "Id"
STAMP_FIELD = "SystemModstamp"
DELETED_FIELD = "IsDeleted"
MASTER_FIELD = "MasterRecordId"  # set on the losing record of a merge
SYSTEM_FIELDS = (ID_FIELD, STAMP_FIELD, DELETED_FIELD, MASTER_FIELD)
DERIVED_PREFIX = "_rapport."  # mapping sources the adapter computes, never selected

# --- REST paths (relative to /services/data/vXX.X/) -------------------------------------------
COMPOSITE_SOBJECTS = "composite/sobjects"
TOOLING_CUSTOM_FIELD = "sobjects/CustomField"
QUERY_OPTIONS_HEADER = "Sforce-Query-Options"
LIMIT_INFO_HEADER = "Sforce-Limit-Info"

# --- sizes and thresholds ---------------------------------------------------------------------
QUERY_BATCH_SIZE = 2000  # the REST maximum; `batchSize` is only a hint to the server
COMPOSITE_BATCH = 200  # sObject Collections take at most 200 records a call
BULK_READ_THRESHOLD = 20_000  # a full read larger than this moves to a Bulk API 2.0 query job
BULK_WRITE_THRESHOLD = 10_000  # a write larger than this goes through a Bulk API 2.0 ingest job
BULK_RESULTS_PAGE = 100_000  # records per Bulk 2.0 result page (`maxRecords`)
BULK_POLL_SECONDS = 0.5  # first wait before polling a Bulk job; the client backs off from there to 2 s between polls
API_BUDGET_SHARE = 0.5  # share of the org's daily API allocation Rapport may use
RETRIES = 4  # extra attempts for an idempotent call after a 5xx, a timeout or a cut response
RETRY_BACKOFF_SECONDS = 0.5  # doubled on every attempt, capped at RETRY_BACKOFF_CAP
RETRY_BACKOFF_CAP = 8.0
BUDGET_RESUME_SECONDS = 3600  # the allocation is a rolling 24 h: look again in an hour
HTTP_TIMEOUT_SECONDS = 120
DESCRIBE_TTL_SECONDS = 3600  # describes are shared by the runs of a process for this long

# --- error codes ------------------------------------------------------------------------------
INVALID_SESSION = "INVALID_SESSION_ID"
LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
INVALID_FIELD = "INVALID_FIELD"
INVALID_LOCATOR = "INVALID_QUERY_LOCATOR"
DUPLICATE_NAME = "DUPLICATE_DEVELOPER_NAME"
# Per-record write errors worth retrying later (locks and timeouts clear by themselves).
RETRIABLE_WRITE_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_RUNNING_TOO_LONG",
        "SERVER_UNAVAILABLE",
        "UNKNOWN_EXCEPTION",
        "TXN_SECURITY_METERING_ERROR",
    }
)

# --- score fields (Account and Contact) -------------------------------------------------------
SCORE_FIELDS: dict[str, str] = {
    "relationship_score": "Rapport_Relationship_Score__c",
    "experience_score": "Rapport_Experience_Score__c",
    "tier": "Rapport_Tier__c",
    "drivers": "Rapport_Drivers__c",
    "trend": "Rapport_Trend__c",
    "scored_at": "Rapport_Scored_At__c",
}
SCORED_SOBJECTS = ("Account", "Contact")
# Tooling API CustomField metadata type for each FieldSpec type.
CUSTOM_FIELD_TYPES = {"number": "Number", "text": "Text", "longtext": "LongTextArea", "datetime": "DateTime"}
LONGTEXT_VISIBLE_LINES = 5
TEXT_LENGTH = {"Rapport_Tier__c": 1, "Rapport_Drivers__c": 2000}

# --- tasks --------------------------------------------------------------------------------------
TASK_OBJECT = "Task"
TASK_FIELDS = {
    "what": "WhatId",
    "who": "WhoId",
    "owner": "OwnerId",
    "subject": "Subject",
    "body": "Description",
    "due": "ActivityDate",
    "status": "Status",
}
TASK_STATUS = "Not Started"
TASK_SUBJECT_MAX = 255
CONTACT_KEY_PREFIX = "003"  # a task on a contact sets WhoId, on anything else WhatId

# --- Outbound Messages --------------------------------------------------------------------------
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
OUTBOUND_MAX_NOTIFICATIONS = 100
WEBHOOK_MAX_BYTES = 1_000_000
OUTBOUND_STAMP_FIELDS = ("SystemModstamp", "LastModifiedDate", "CreatedDate")
OUTBOUND_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    "<soapenv:Body>"
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)
OUTBOUND_CONTENT_TYPE = "text/xml; charset=utf-8"
