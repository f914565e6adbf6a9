"""CRM adapters, one package per CRM; `ADAPTERS` is the explicit list."""

from __future__ import annotations

ADAPTERS: dict[str, str] = {
    "salesforce": "adapters.salesforce:SalesforceAdapter",
    "hubspot": "adapters.hubspot:HubSpotAdapter",
}
