"""`rapport connect hubspot`: add a HubSpot connection with a private-app token or an OAuth client.

The credentials are checked with one read before anything is stored; OAuth connections learn
their portal id from the token, private apps take it from `--portal-id` (needed for webhooks).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from connector.config import Settings


def get_settings() -> Settings:
    """The process-wide settings (loaded on first use, so `rapport --help` stays quick)."""
    from connector import config

    return config.get_settings()


def _api_base() -> str:
    from adapters.hubspot import settings as hs

    return hs.API_BASE


def _secrets(token: str | None, client_id: str | None, client_secret: str | None, refresh_token: str | None,
             code: str | None, redirect_uri: str | None, app_secret: str | None) -> dict[str, Any]:
    oauth = any((client_id, client_secret, refresh_token, code))
    if token and oauth:
        raise click.UsageError("give either --token (private app) or the OAuth options, not both")
    if not token and not oauth:
        raise click.UsageError("give --token PAT for a private app, or --client-id/--client-secret with "
                               "--refresh-token (or --code and --redirect-uri) for an OAuth app")
    if token:
        return {"access_token": token, **({"app_secret": app_secret} if app_secret else {})}
    if not (client_id and client_secret):
        raise click.UsageError("OAuth needs both --client-id and --client-secret")
    if bool(refresh_token) == bool(code):
        raise click.UsageError("OAuth needs exactly one of --refresh-token or --code")
    if code and not redirect_uri:
        raise click.UsageError("--code needs the --redirect-uri the app was installed with")
    if app_secret:
        raise click.UsageError("an OAuth app's webhooks are signed with its client secret; --app-secret is "
                               "for private apps only")
    secrets = {"client_id": client_id, "client_secret": client_secret}
    if refresh_token:
        secrets["refresh_token"] = refresh_token
    return secrets


@click.command("hubspot")
@click.argument("name")
@click.option("--token", envvar="HUBSPOT_ACCESS_TOKEN", help="Private-app access token (pat-...).")
@click.option("--client-id", help="OAuth app client id.")
@click.option("--client-secret", help="OAuth app client secret (also signs its webhooks).")
@click.option("--refresh-token", help="OAuth refresh token of an existing install.")
@click.option("--code", help="OAuth authorization code from the install redirect.")
@click.option("--redirect-uri", help="The redirect URI the code was issued for.")
@click.option("--app-secret", help="Secret that signs webhooks (a private app's client secret).")
@click.option("--portal-id", help="HubSpot portal (hub) id; found from the token for OAuth apps.")
@click.option("--api-base", default=_api_base, show_default="HubSpot's API", help="API base URL (a sandbox's api_base).")
@click.option("--rate-limit", type=int, help="Published requests per 10 s if not the default for the app kind.")
@click.option("--workspace", default="default", show_default=True)
def connect_hubspot(name: str, token: str | None, client_id: str | None, client_secret: str | None,
                    refresh_token: str | None, code: str | None, redirect_uri: str | None, app_secret: str | None,
                    portal_id: str | None, api_base: str, rate_limit: int | None, workspace: str) -> None:
    """Add a HubSpot connection (private-app token or OAuth) after checking the credentials."""
    shown = connect(get_settings(), name, token=token, client_id=client_id, client_secret=client_secret,
                    refresh_token=refresh_token, code=code, redirect_uri=redirect_uri, app_secret=app_secret,
                    portal_id=portal_id, api_base=api_base, rate_limit=rate_limit, workspace=workspace)
    click.echo(json.dumps(shown))
    if not shown["portal_id"]:
        click.echo("note: without --portal-id, webhooks from this portal cannot be matched to the connection",
                   err=True)
    elif not (app_secret or client_secret):
        click.echo("note: without --app-secret, webhook signatures cannot be checked; webhooks will be refused",
                   err=True)


def connect(settings: Settings, name: str, *, token: str | None = None, client_id: str | None = None,
            client_secret: str | None = None, refresh_token: str | None = None, code: str | None = None,
            redirect_uri: str | None = None, app_secret: str | None = None, portal_id: str | None = None,
            api_base: str | None = None, rate_limit: int | None = None, workspace: str = "default") -> dict[str, Any]:
    """Check the credentials, store the connection and return what `rapport connect hubspot` prints."""
    from adapters.base import ConnectionInfo
    from adapters.hubspot import settings as hs
    from adapters.hubspot.client import HubSpotClient
    from connector.connections import create_connection
    from connector.db import engine_for
    from connector.errors import RapportError

    api_base = api_base or hs.API_BASE
    secrets = _secrets(token, client_id, client_secret, refresh_token, code, redirect_uri, app_secret)
    auth = hs.auth_kind(secrets)
    instance_url = None if api_base.rstrip("/") == hs.API_BASE else api_base.rstrip("/")
    client = HubSpotClient(ConnectionInfo(id=0, name=name, kind=hs.CRM, instance_url=instance_url), secrets)
    try:
        if code:
            client.authorize(code, str(redirect_uri))
        found = client.portal_id()
        if portal_id and found and str(portal_id) != found:
            raise click.UsageError(f"--portal-id {portal_id} does not match the token's portal {found}")
        portal_id = portal_id or found
        client.call("crm.objects.basic_api", "get_page", object=hs.COMPANIES, object_type=hs.COMPANIES, limit=1)
    except RapportError as exc:
        raise click.ClickException(f"HubSpot did not accept these credentials: {exc}") from None
    options: dict[str, Any] = {"auth": auth}
    if rate_limit:
        options["rate_limit"] = rate_limit
    connection_id = create_connection(engine_for(settings.sqlalchemy_url), settings, kind=hs.CRM, name=name,
                                      secrets=client.secrets, instance_url=instance_url,
                                      external_org_id=portal_id, options=options, workspace=workspace)
    return {"id": connection_id, "name": name, "kind": hs.CRM, "auth": auth, "portal_id": portal_id,
            "api_base": api_base.rstrip("/")}
