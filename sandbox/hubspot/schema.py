"""What a fresh HubSpot portal defines: object types, default properties, groups and pipelines.

Custom properties a typical service team adds (`csat_score`, `is_escalated`, `reopen_count` on
tickets) are defined here too, marked `hubspotDefined: false`, so they look like any portal's own.
"""

from __future__ import annotations

from dataclasses import dataclass

OBJECT_TYPE_IDS = {
    "contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5",
    "tasks": "0-27", "notes": "0-46", "meetings": "0-47", "calls": "0-48", "emails": "0-49",
}
# the rollup of a record's Primary company association, kept by HubSpot itself (read-only; deals'
# and tickets' are `calculation_rollup` properties in real portals' property lists, not on the
# documentation's default-property pages)
PRIMARY_COMPANY_PROPERTY = {"contacts": "associatedcompanyid", "deals": "hs_primary_associated_company",
                            "tickets": "hs_primary_company_id"}

SINGULAR = {
    "contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket",
    "tasks": "task", "notes": "note", "meetings": "meeting", "calls": "call", "emails": "email",
}
# Only these four send classic webhooks (`contact.creation`, ...).
WEBHOOK_TYPES = ("contacts", "companies", "deals", "tickets")
ENGAGEMENTS = ("tasks", "notes", "calls", "emails", "meetings")


def modified_property(object_type: str) -> str:
    """The last-modified property: `lastmodifieddate` on contacts, `hs_lastmodifieddate` elsewhere."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def created_property(object_type: str) -> str:
    """The creation property: `hs_createdate` on engagements, `createdate` elsewhere."""
    return "hs_createdate" if object_type in ENGAGEMENTS else "createdate"


GROUPS = {
    "contacts": [("contactinformation", "Contact information"), ("contact_activity", "Contact activity")],
    "companies": [("companyinformation", "Company information"), ("company_activity", "Company activity"),
                  ("deal_information", "Deal information")],
    "deals": [("dealinformation", "Deal information"), ("deal_activity", "Deal activity")],
    "tickets": [("ticketinformation", "Ticket information")],
    "tasks": [("taskinformation", "Task information")],
    "notes": [("noteinformation", "Note information")],
    "calls": [("callinformation", "Call information")],
    "emails": [("emailinformation", "Email information")],
    "meetings": [("meetinginformation", "Meeting information")],
}


@dataclass(frozen=True)
class PropDef:
    """One property definition as `GET /crm/v3/properties/{objectType}` describes it."""

    name: str
    label: str
    type: str
    field_type: str
    group: str
    options: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    calculated: bool = False
    unique: bool = False
    hubspot_defined: bool = True
    external_options: bool = False
    description: str = ""


def _opts(*pairs: str) -> tuple[tuple[str, str], ...]:
    """`"VALUE:Label"` strings to (value, label) pairs."""
    return tuple((p.split(":", 1)[0], p.split(":", 1)[1]) for p in pairs)


INDUSTRY_OPTIONS = _opts(
    "ACCOUNTING:Accounting", "BANKING:Banking", "BIOTECHNOLOGY:Biotechnology", "COMPUTER_SOFTWARE:Computer Software",
    "CONSTRUCTION:Construction", "CONSUMER_GOODS:Consumer Goods", "EDUCATION_MANAGEMENT:Education Management",
    "FINANCIAL_SERVICES:Financial Services", "HOSPITAL_HEALTH_CARE:Hospital & Health Care", "INSURANCE:Insurance",
    "INFORMATION_TECHNOLOGY_AND_SERVICES:Information Technology and Services", "LOGISTICS_AND_SUPPLY_CHAIN:Logistics and Supply Chain",
    "MANAGEMENT_CONSULTING:Management Consulting", "MARKETING_AND_ADVERTISING:Marketing and Advertising",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING:Mechanical or Industrial Engineering", "MEDIA_PRODUCTION:Media Production",
    "PHARMACEUTICALS:Pharmaceuticals", "REAL_ESTATE:Real Estate", "RETAIL:Retail", "TELECOMMUNICATIONS:Telecommunications",
    "OIL_ENERGY:Oil & Energy", "HOSPITALITY:Hospitality", "FARMING:Farming",
    "GOVERNMENT_ADMINISTRATION:Government Administration",
)
LIFECYCLE_OPTIONS = _opts(
    "subscriber:Subscriber", "lead:Lead", "marketingqualifiedlead:Marketing Qualified Lead",
    "salesqualifiedlead:Sales Qualified Lead", "opportunity:Opportunity", "customer:Customer",
    "evangelist:Evangelist", "other:Other",
)


def _common(object_type: str, group: str) -> list[PropDef]:
    """Properties every object has: id, create and modify stamps, owner, merges."""
    created = created_property(object_type)
    return [
        PropDef("hs_object_id", "Record ID", "number", "number", group, read_only=True,
                description="The unique ID for this record. This value is set automatically by HubSpot."),
        PropDef(created, "Create Date", "datetime", "date", group, description="The date the record was created"),
        PropDef(modified_property(object_type), "Last Modified Date", "datetime", "date", group, read_only=True,
                calculated=True, description="Most recent timestamp of any property update for this record"),
        PropDef("hubspot_owner_id", "Owner", "enumeration", "select", group, external_options=True,
                description="The owner of the record"),
        PropDef("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox", group, read_only=True,
                calculated=True, description="The list of record IDs merged into this one"),
    ]


_LAST_ACTIVITY = "The last time a call, meeting, note, sales email or task was logged for this {}"


def _contacts() -> list[PropDef]:
    g = "contactinformation"
    return _common("contacts", g) + [
        PropDef("email", "Email", "string", "text", g, unique=True, description="A contact's email address"),
        PropDef("firstname", "First Name", "string", "text", g),
        PropDef("lastname", "Last Name", "string", "text", g),
        PropDef("jobtitle", "Job Title", "string", "text", g),
        PropDef("phone", "Phone Number", "string", "phonenumber", g),
        PropDef("company", "Company Name", "string", "text", g),
        PropDef("associatedcompanyid", "Primary Associated Company ID", "number", "number", g, read_only=True,
                calculated=True, description="HubSpot defined ID of a contact's primary associated company"),
        PropDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", g, options=LIFECYCLE_OPTIONS),
        PropDef("hs_email_domain", "Email Domain", "string", "text", g, read_only=True, calculated=True),
        PropDef("notes_last_updated", "Last Activity Date", "datetime", "date", "contact_activity", read_only=True,
                calculated=True, description=_LAST_ACTIVITY.format("contact")),
        PropDef("hs_last_sales_activity_timestamp", "Last Engagement Date", "datetime", "date",
                "contact_activity", read_only=True, calculated=True),
    ]


def _companies() -> list[PropDef]:
    g, d = "companyinformation", "deal_information"
    return _common("companies", g) + [
        PropDef("name", "Company name", "string", "text", g),
        PropDef("domain", "Company Domain Name", "string", "text", g),
        PropDef("website", "Website URL", "string", "text", g),
        PropDef("industry", "Industry", "enumeration", "select", g, options=INDUSTRY_OPTIONS),
        PropDef("numberofemployees", "Number of Employees", "number", "number", g),
        PropDef("annualrevenue", "Annual Revenue", "number", "number", g),
        PropDef("city", "City", "string", "text", g),
        PropDef("country", "Country/Region", "string", "text", g),
        PropDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", g, options=LIFECYCLE_OPTIONS),
        PropDef("num_associated_contacts", "Number of Associated Contacts", "number", "number", g, read_only=True,
                calculated=True, description="The number of contacts associated with this company"),
        PropDef("notes_last_updated", "Last Activity Date", "datetime", "date", "company_activity", read_only=True,
                calculated=True, description=_LAST_ACTIVITY.format("company")),
        PropDef("hs_last_sales_activity_timestamp", "Last Engagement Date", "datetime", "date",
                "company_activity", read_only=True, calculated=True),
        PropDef("num_associated_deals", "Number of Associated Deals", "number", "number", d, read_only=True,
                calculated=True, description="The number of deals associated with this company"),
        PropDef("hs_num_open_deals", "Number of open deals", "number", "number", d, read_only=True,
                calculated=True, description="The number of open deals associated with this company"),
        PropDef("total_revenue", "Total Revenue", "number", "calculation_rollup", d, read_only=True,
                calculated=True, description="The total amount of closed won deals"),
        PropDef("recent_deal_amount", "Recent Deal Amount", "number", "number", d, read_only=True, calculated=True,
                description="Amount of last closed won deal associated with this company. Set automatically."),
        PropDef("recent_deal_close_date", "Recent Deal Close Date", "datetime", "date", d, read_only=True,
                calculated=True, description='Date of the last "closed won" deal associated with this company record.'),
    ]


def _deals(stages: tuple[tuple[str, str], ...]) -> list[PropDef]:
    g = "dealinformation"
    return _common("deals", g) + [
        PropDef("dealname", "Deal Name", "string", "text", g),
        PropDef("amount", "Amount", "number", "number", g),
        PropDef("deal_currency_code", "Currency", "enumeration", "select", g,
                options=_opts("USD:US Dollar", "EUR:Euro", "GBP:British Pound")),
        PropDef("pipeline", "Pipeline", "enumeration", "select", g, options=(("default", "Sales Pipeline"),)),
        PropDef("dealstage", "Deal Stage", "enumeration", "radio", g, options=stages),
        PropDef("closedate", "Close Date", "datetime", "date", g),
        PropDef("dealtype", "Deal Type", "enumeration", "radio", g,
                options=_opts("newbusiness:New Business", "existingbusiness:Existing Business")),
        PropDef("description", "Deal Description", "string", "textarea", g),
        PropDef("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", g, read_only=True, calculated=True,
                options=_opts("true:True", "false:False")),
        PropDef("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", g, read_only=True,
                calculated=True, options=_opts("true:True", "false:False")),
        PropDef("hs_deal_stage_probability", "Deal probability", "number", "number", g, read_only=True,
                calculated=True),
        PropDef("hs_closed_won_date", "Closed Won Date", "datetime", "date", g, read_only=True, calculated=True),
        PropDef("hs_primary_associated_company", "Primary Associated Company ID", "number", "calculation_rollup", g,
                read_only=True, calculated=True, description="The ID of the deal's primary associated company"),
    ]


PRIORITY_OPTIONS = _opts("LOW:Low", "MEDIUM:Medium", "HIGH:High", "URGENT:Urgent")


def _tickets(stages: tuple[tuple[str, str], ...]) -> list[PropDef]:
    g = "ticketinformation"
    return _common("tickets", g) + [
        PropDef("subject", "Ticket name", "string", "text", g),
        PropDef("content", "Ticket description", "string", "textarea", g),
        PropDef("hs_pipeline", "Pipeline", "enumeration", "select", g, options=(("0", "Support Pipeline"),)),
        PropDef("hs_pipeline_stage", "Ticket status", "enumeration", "select", g, options=stages),
        PropDef("hs_ticket_priority", "Priority", "enumeration", "select", g, options=PRIORITY_OPTIONS),
        PropDef("hs_ticket_category", "Category", "enumeration", "checkbox", g, options=_opts(
            "PRODUCT_ISSUE:Product issue", "BILLING_ISSUE:Billing issue", "FEATURE_REQUEST:Feature request",
            "GENERAL_INQUIRY:General inquiry")),
        PropDef("source_type", "Source", "enumeration", "select", g,
                options=_opts("CHAT:Chat", "EMAIL:Email", "FORM:Form", "PHONE:Phone")),
        PropDef("closed_date", "Close date", "datetime", "date", g),
        PropDef("time_to_close", "Time to close", "number", "number", g, read_only=True, calculated=True,
                description="Milliseconds from creation to close"),
        PropDef("csat_score", "CSAT score", "number", "number", g, hubspot_defined=False,
                description="Customer satisfaction survey answer, 1 (very unhappy) to 5 (very happy)"),
        PropDef("is_escalated", "Escalated", "bool", "booleancheckbox", g, hubspot_defined=False,
                options=_opts("true:Yes", "false:No"), description="Set when the ticket was escalated"),
        PropDef("hs_primary_company_id", "Primary Company ID", "number", "calculation_rollup", g, read_only=True,
                calculated=True, description="Primary company ID of a ticket"),
        PropDef("reopen_count", "Times reopened", "number", "number", g, hubspot_defined=False,
                description="How many times the ticket was reopened after being closed"),
    ]


def _engagement(object_type: str, title: str, body: str) -> list[PropDef]:
    g = GROUPS[object_type][0][0]
    return _common(object_type, g) + [
        PropDef("hs_timestamp", "Activity date", "datetime", "date", g),
        PropDef(title, "Title", "string", "text", g),
        PropDef(body, "Body", "string", "textarea", g),
    ]


def _tasks() -> list[PropDef]:
    g = "taskinformation"
    return _engagement("tasks", "hs_task_subject", "hs_task_body") + [
        PropDef("hs_task_status", "Task Status", "enumeration", "select", g, options=_opts(
            "NOT_STARTED:Not started", "IN_PROGRESS:In progress", "WAITING:Waiting", "COMPLETED:Completed",
            "DEFERRED:Deferred")),
        PropDef("hs_task_priority", "Priority", "enumeration", "select", g,
                options=_opts("NONE:None", "LOW:Low", "MEDIUM:Medium", "HIGH:High")),
        PropDef("hs_task_type", "Task Type", "enumeration", "select", g,
                options=_opts("TODO:To-do", "CALL:Call", "EMAIL:Email")),
    ]


def _notes() -> list[PropDef]:
    g = "noteinformation"
    return _common("notes", g) + [
        PropDef("hs_timestamp", "Activity date", "datetime", "date", g,
                description="When the note was logged; places it on the record timeline"),
        PropDef("hs_note_body", "Note body", "string", "textarea", g, description="The note's text (65,536 characters)"),
        PropDef("hs_attachment_ids", "Attachment IDs", "enumeration", "checkbox", g, external_options=True,
                description="IDs of the note's attached files, separated by semicolons"),
    ]


DEAL_STAGES = (  # id, label, probability, closed
    ("appointmentscheduled", "Appointment Scheduled", "0.2", False),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", False),
    ("presentationscheduled", "Presentation Scheduled", "0.6", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
    ("contractsent", "Contract Sent", "0.9", False),
    ("closedwon", "Closed Won", "1.0", True),
    ("closedlost", "Closed Lost", "0.0", True),
)
TICKET_STAGES = (("1", "New", "OPEN"), ("2", "Waiting on contact", "OPEN"), ("3", "Waiting on us", "OPEN"),
                 ("4", "Closed", "CLOSED"))


def default_properties() -> dict[str, list[PropDef]]:
    """Every object type's default property definitions."""
    return {
        "contacts": _contacts(),
        "companies": _companies(),
        "deals": _deals(tuple((s[0], s[1]) for s in DEAL_STAGES)),
        "tickets": _tickets(tuple((s[0], s[1]) for s in TICKET_STAGES)),
        "tasks": _tasks(),
        "notes": _notes(),
        "calls": _engagement("calls", "hs_call_title", "hs_call_body"),
        "emails": _engagement("emails", "hs_email_subject", "hs_email_text"),
        "meetings": _engagement("meetings", "hs_meeting_title", "hs_meeting_body"),
    }


# Properties returned when a list or search names none (as in HubSpot's docs).
DEFAULT_RETURNED = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "tickets": ("content", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_pipeline",
                "hs_pipeline_stage", "hs_ticket_category", "hs_ticket_priority", "subject"),
}


def default_returned(object_type: str) -> tuple[str, ...]:
    """Properties a read returns when none are requested."""
    return DEFAULT_RETURNED.get(object_type, ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"))


# Free-text `query` in search looks at these.
QUERY_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "companies": ("name", "domain", "website", "phone"),
    "deals": ("dealname",),
    "tickets": ("subject", "content"),
}
