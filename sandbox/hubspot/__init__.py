"""A faithful, offline HubSpot CRM API: `HubSpotSandbox(size, seed).start()` serves a seeded portal."""

from sandbox.hubspot.sandbox import DEFAULT_SUBSCRIPTIONS, HubSpotSandbox

__all__ = ["DEFAULT_SUBSCRIPTIONS", "HubSpotSandbox"]
