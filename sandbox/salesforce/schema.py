"""The org's metadata: standard objects with their standard fields and real types, plus custom
fields added at run time. Lookups by name are case-insensitive, as in SOQL and the REST API.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Any

from sandbox.salesforce.ids import PREFIXES


@dataclass(frozen=True)
class FieldDef:
    """One field as describe reports it (only the attributes that vary)."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    custom: bool = False
    calculated: bool = False
    auto_number: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    default: object = None
    required: bool = False
    name_field: bool = False
    external_id: bool = False
    unique: bool = False
    field_id: str | None = None

    @property
    def is_text(self) -> bool:
        """Text-like types compare case-insensitively in SOQL."""
        return self.type in TEXT_TYPES


TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox"})
READ_ONLY: dict[str, Any] = {"createable": False, "updateable": False}


@dataclass
class ObjectDef:
    """An sObject type: name, key prefix and its fields in describe order."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, FieldDef] = dc_field(default_factory=dict)
    createable: bool = True
    mergeable: bool = False
    has_is_deleted: bool = True

    def __post_init__(self) -> None:
        self._by_lower = {k.lower(): v for k, v in self.fields.items()}
        self._rels = {f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name}

    def field(self, name: str) -> FieldDef | None:
        """The field named `name` (any case), or None."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is `name` (any case), or None."""
        return self._rels.get(name.lower())

    def add(self, fdef: FieldDef) -> None:
        """Add (or replace) a field."""
        self.fields[fdef.name] = fdef
        self._by_lower[fdef.name.lower()] = fdef
        if fdef.relationship_name:
            self._rels[fdef.relationship_name.lower()] = fdef


def _sys(label: str) -> list[FieldDef]:
    ro = READ_ONLY
    return [
        FieldDef("Id", "id", f"{label} ID", length=18, nillable=False, **ro),
        FieldDef("IsDeleted", "boolean", "Deleted", nillable=False, default=False, **ro),
    ]


def _audit() -> list[FieldDef]:
    ro = READ_ONLY
    return [
        FieldDef("CreatedDate", "datetime", "Created Date", nillable=False, **ro),
        FieldDef("CreatedById", "reference", "Created By ID", length=18, nillable=False, reference_to=("User",),
                 relationship_name="CreatedBy", **ro),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, **ro),
        FieldDef("LastModifiedById", "reference", "Last Modified By ID", length=18, nillable=False,
                 reference_to=("User",), relationship_name="LastModifiedBy", **ro),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", nillable=False, **ro),
    ]


def _owner() -> FieldDef:
    return FieldDef("OwnerId", "reference", "Owner ID", length=18, nillable=False, reference_to=("User",),
                    relationship_name="Owner")


def _master(obj: str) -> FieldDef:
    return FieldDef("MasterRecordId", "reference", "Master Record ID", length=18, reference_to=(obj,),
                    relationship_name="MasterRecord", **READ_ONLY)


def _ref(name: str, label: str, to: tuple[str, ...], rel: str, **kw: object) -> FieldDef:
    return FieldDef(name, "reference", label, length=18, reference_to=to, relationship_name=rel, **kw)  # type: ignore[arg-type]


def _s(name: str, label: str, length: int, **kw: object) -> FieldDef:
    return FieldDef(name, "string", label, length=length, **kw)  # type: ignore[arg-type]


def _pick(name: str, label: str, values: tuple[str, ...], **kw: object) -> FieldDef:
    return FieldDef(name, "picklist", label, length=255, picklist=values, **kw)  # type: ignore[arg-type]


INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
    "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
    "Manufacturing", "Media", "Not For Profit", "Recreation", "Retail", "Shipping", "Technology",
    "Telecommunications", "Transportation", "Utilities", "Other",
)
# Stage -> (probability, forecast category, is closed, is won): the standard sales process.
STAGES: dict[str, tuple[int, str, bool, bool]] = {
    "Prospecting": (10, "Pipeline", False, False),
    "Qualification": (10, "Pipeline", False, False),
    "Needs Analysis": (20, "Pipeline", False, False),
    "Value Proposition": (50, "Pipeline", False, False),
    "Id. Decision Makers": (60, "Pipeline", False, False),
    "Perception Analysis": (70, "Pipeline", False, False),
    "Proposal/Price Quote": (75, "Pipeline", False, False),
    "Negotiation/Review": (90, "Commit", False, False),
    "Closed Won": (100, "Closed", True, True),
    "Closed Lost": (0, "Omitted", True, False),
}
OPEN_STAGES = tuple(s for s, v in STAGES.items() if not v[2])
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
CASE_PRIORITIES = ("High", "Medium", "Low", "Urgent")
OPP_TYPES = ("New Customer", "Renewal", "Existing Customer - Upgrade", "Existing Customer - Replacement",
             "Existing Customer - Downgrade")
TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


def _objects() -> list[ObjectDef]:
    ro = READ_ONLY
    account = [
        *_sys("Account"), _master("Account"),
        _s("Name", "Account Name", 255, nillable=False, required=True, name_field=True),
        _pick("Type", "Account Type", ("Prospect", "Customer - Direct", "Customer - Channel",
                                       "Channel Partner / Reseller", "Installation Partner", "Technology Partner", "Other")),
        _ref("ParentId", "Parent Account ID", ("Account",), "Parent"),
        _s("BillingCity", "Billing City", 40), _s("BillingCountry", "Billing Country", 80),
        FieldDef("Phone", "phone", "Account Phone", length=40),
        FieldDef("Website", "url", "Website", length=255),
        _pick("Industry", "Industry", INDUSTRIES),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        FieldDef("NumberOfEmployees", "int", "Employees", digits=8),
        FieldDef("Description", "textarea", "Account Description", length=32000),
        _owner(), *_audit(),
        FieldDef("LastActivityDate", "date", "Last Activity", **ro),
    ]
    contact = [
        *_sys("Contact"), _master("Contact"),
        _ref("AccountId", "Account ID", ("Account",), "Account"),
        _s("LastName", "Last Name", 80, nillable=False, required=True),
        _s("FirstName", "First Name", 40),
        _pick("Salutation", "Salutation", ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")),
        _s("Name", "Full Name", 121, name_field=True, nillable=False, **ro),
        _s("Title", "Title", 128), _s("Department", "Department", 80),
        FieldDef("Email", "email", "Email", length=80),
        FieldDef("Phone", "phone", "Business Phone", length=40),
        FieldDef("MobilePhone", "phone", "Mobile Phone", length=40),
        _pick("LeadSource", "Lead Source", ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")),
        FieldDef("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False, default=False),
        FieldDef("Description", "textarea", "Contact Description", length=32000),
        _owner(), *_audit(),
        FieldDef("LastActivityDate", "date", "Last Activity", **ro),
    ]
    opportunity = [
        *_sys("Opportunity"),
        _ref("AccountId", "Account ID", ("Account",), "Account"),
        _s("Name", "Name", 120, nillable=False, required=True, name_field=True),
        FieldDef("Description", "textarea", "Description", length=32000),
        _pick("StageName", "Stage", tuple(STAGES), nillable=False, required=True),
        FieldDef("Amount", "currency", "Amount", precision=18, scale=2),
        FieldDef("Probability", "percent", "Probability (%)", precision=3, scale=0),
        FieldDef("ExpectedRevenue", "currency", "Expected Amount", precision=18, scale=2, calculated=True, **ro),
        FieldDef("CloseDate", "date", "Close Date", nillable=False, required=True),
        _pick("Type", "Opportunity Type", OPP_TYPES),
        _s("NextStep", "Next Step", 255),
        _pick("LeadSource", "Lead Source", ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, default=False, **ro),
        FieldDef("IsWon", "boolean", "Won", nillable=False, default=False, **ro),
        _pick("ForecastCategoryName", "Forecast Category", ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
        _ref("ContactId", "Contact ID", ("Contact",), "Contact"),
        _owner(), *_audit(),
        FieldDef("LastActivityDate", "date", "Last Activity", **ro),
    ]
    case = [
        *_sys("Case"), _master("Case"),
        _s("CaseNumber", "Case Number", 30, nillable=False, auto_number=True, name_field=True, **ro),
        _ref("ContactId", "Contact ID", ("Contact",), "Contact"),
        _ref("AccountId", "Account ID", ("Account",), "Account"),
        _ref("ParentId", "Parent Case ID", ("Case",), "Parent"),
        FieldDef("SuppliedEmail", "email", "Web Email", length=80),
        _pick("Type", "Case Type", ("Mechanical", "Electrical", "Electronic", "Structural", "Other")),
        _pick("Status", "Status", CASE_STATUSES, default="New"),
        _pick("Reason", "Case Reason", ("Installation", "Equipment Complexity", "Performance", "Breakdown",
                                        "Equipment Design", "Feedback", "Other")),
        _pick("Origin", "Case Origin", ("Phone", "Email", "Web")),
        _s("Subject", "Subject", 255),
        _pick("Priority", "Priority", CASE_PRIORITIES, default="Medium"),
        FieldDef("Description", "textarea", "Description", length=32000),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, default=False, **ro),
        FieldDef("ClosedDate", "datetime", "Closed Date", **ro),
        FieldDef("IsEscalated", "boolean", "Escalated", nillable=False, default=False),
        _ref("OwnerId", "Owner ID", ("User",), "Owner", nillable=False),
        *_audit(),
    ]
    task = [
        *_sys("Activity"),
        _ref("WhoId", "Name ID", ("Contact",), "Who"),
        _ref("WhatId", "Related To ID", ("Account", "Opportunity", "Case"), "What"),
        FieldDef("Subject", "combobox", "Subject", length=255),
        FieldDef("ActivityDate", "date", "Due Date Only"),
        _pick("Status", "Status", TASK_STATUSES, nillable=False, default="Not Started"),
        _pick("Priority", "Priority", ("High", "Normal", "Low"), nillable=False, default="Normal"),
        FieldDef("IsHighPriority", "boolean", "High Priority", nillable=False, default=False, **ro),
        _owner(),
        FieldDef("Description", "textarea", "Description", length=32000),
        _pick("Type", "Type", ("Call", "Email", "Meeting", "Other")),
        _ref("AccountId", "Account ID", ("Account",), "Account", **ro),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, default=False, **ro),
        *_audit(),
        _pick("TaskSubtype", "Task Subtype", ("Task", "Email", "ListEmail", "Cadence", "Call"), updateable=False),
        FieldDef("CompletedDateTime", "datetime", "Completed Date/Time", **ro),
    ]
    user = [
        FieldDef("Id", "id", "User ID", length=18, nillable=False, **ro),
        _s("Username", "Username", 80, nillable=False, required=True, unique=True),
        _s("LastName", "Last Name", 80, nillable=False, required=True),
        _s("FirstName", "First Name", 40),
        _s("Name", "Full Name", 121, name_field=True, nillable=False, **ro),
        FieldDef("Email", "email", "Email", length=128, nillable=False, required=True),
        _s("Alias", "Alias", 8, nillable=False, required=True),
        FieldDef("IsActive", "boolean", "Active", nillable=False, default=True),
        _s("Title", "Title", 80),
        *_audit(),
    ]
    org = [
        FieldDef("Id", "id", "Organization ID", length=18, nillable=False, **ro),
        _s("Name", "Name", 80, nillable=False, name_field=True, **ro),
        _pick("OrganizationType", "Edition", ("Developer Edition", "Enterprise Edition", "Unlimited Edition"), **ro),
        _s("InstanceName", "Instance Name", 5, **ro),
        FieldDef("IsSandbox", "boolean", "Is Sandbox", nillable=False, **ro),
        *_audit(),
    ]

    def mk(name: str, label: str, plural: str, fields: list[FieldDef], **kw: object) -> ObjectDef:
        return ObjectDef(name, label, plural, PREFIXES[name], {f.name: f for f in fields}, **kw)  # type: ignore[arg-type]

    return [
        mk("Account", "Account", "Accounts", account, mergeable=True),
        mk("Contact", "Contact", "Contacts", contact, mergeable=True),
        mk("Opportunity", "Opportunity", "Opportunities", opportunity),
        mk("Case", "Case", "Cases", case, mergeable=True),
        mk("Task", "Task", "Tasks", task),
        mk("User", "User", "Users", user, has_is_deleted=False),
        mk("Organization", "Organization", "Organizations", org, createable=False, has_is_deleted=False),
    ]


class Schema:
    """All object definitions of one org; custom fields can be added while the org runs."""

    def __init__(self, objects: list[ObjectDef] | None = None) -> None:
        self._objects = {o.name: o for o in (objects if objects is not None else _objects())}
        self._by_lower = {k.lower(): v for k, v in self._objects.items()}
        self._lock = threading.Lock()

    def objects(self) -> list[ObjectDef]:
        """Every object, in a stable order."""
        return list(self._objects.values())

    def get(self, name: str) -> ObjectDef | None:
        """The object named `name` (any case), or None."""
        return self._by_lower.get(name.lower())

    def by_prefix(self, prefix: str) -> ObjectDef | None:
        """The object whose ids start with `prefix`."""
        for obj in self._objects.values():
            if obj.key_prefix == prefix:
                return obj
        return None

    def add_custom_field(self, obj: ObjectDef, fdef: FieldDef) -> FieldDef:
        """Add a custom field to an object (the caller checked for duplicates)."""
        with self._lock:
            fdef = replace(fdef, custom=True)
            obj.add(fdef)
            return fdef


def tooling_objects() -> list[ObjectDef]:
    """The Tooling API objects this org answers queries on."""
    ro = READ_ONLY
    fields = [
        FieldDef("Id", "id", "Custom Field Definition ID", length=18, nillable=False, **ro),
        _s("DeveloperName", "Field Name", 40, nillable=False, **ro),
        _s("TableEnumOrId", "Table Enum or ID", 40, nillable=False, **ro),
        _s("NamespacePrefix", "Namespace Prefix", 15, **ro),
        _s("FullName", "Full Name", 255, **ro),
        FieldDef("Description", "textarea", "Description", length=1000, **ro),
        _s("InlineHelpText", "Help Text", 510, **ro),
        _pick("ManageableState", "Manageable State", ("unmanaged",), **ro),
        *_audit(),
    ]
    return [ObjectDef("CustomField", "Custom Field Definition", "Custom Field Definitions", PREFIXES["CustomField"],
                      {f.name: f for f in fields}, createable=True, has_is_deleted=False)]
