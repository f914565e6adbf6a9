"""`rapport connect salesforce NAME` (token, password, refresh token or JWT bearer) and `rapport provision`."""

from __future__ import annotations

import importlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from adapters.base import ConnectionInfo, FieldSpec
from adapters.salesforce import SalesforceAdapter, auth
from adapters.salesforce import settings as S
from connector.config import get_settings
from connector.connections import create_connection, get_connection, open_adapter
from connector.db import engine_for
from connector.errors import ConfigError
from connector.mappings import load_mapping
from connector.model import SCORED_OBJECTS


def _read(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} {path}: {exc.strerror}", hint=f"pass a readable {what} file"
        ) from None


def credentials(
    *,
    access_token: str | None,
    instance_url: str | None,
    username: str | None,
    password: str | None,
    security_token: str | None,
    client_id: str | None,
    client_secret: str | None,
    refresh_token: str | None,
    private_key: str | None,
) -> dict[str, Any]:
    """The secrets to store, checked to allow one way in (a clear error says what is missing)."""
    secrets = {
        k: v
        for k, v in dict(
            access_token=access_token,
            username=username,
            password=password,
            security_token=security_token,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            private_key=_read(private_key, "private key"),
        ).items()
        if v
    }
    if auth.flow_for(secrets) is None:
        if not access_token:
            raise ConfigError(
                "these options allow no way to sign in to Salesforce",
                hint="give --access-token with --instance-url; or --username, --password, --client-id and "
                "--client-secret; or --refresh-token with --client-id; or --client-id, --username and --private-key",
            )
        if not instance_url:
            raise ConfigError("--access-token needs --instance-url (the org's https instance URL)")
    return secrets


@click.command("salesforce")
@click.argument("name")
@click.option("--access-token", help="An OAuth access token (session id); needs --instance-url.")
@click.option("--instance-url", help="The org's https instance URL (its My Domain).")
@click.option("--username", help="Integration user (password and JWT bearer flows).")
@click.option("--password", help="Password of the integration user (OAuth password flow).")
@click.option("--security-token", help="Appended to the password unless the IP range is trusted.")
@click.option("--client-id", help="Connected app consumer key.")
@click.option("--client-secret", help="Connected app consumer secret.")
@click.option("--refresh-token", help="An OAuth refresh token of the connected app.")
@click.option(
    "--private-key", type=click.Path(exists=True, dir_okay=False), help="PEM key for the JWT bearer flow."
)
@click.option(
    "--login-url",
    default=S.DEFAULT_LOGIN_URL,
    show_default=True,
    help="Login host: the default, the sandbox login host, or the org's My Domain URL.",
)
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), help="CA bundle for a private CA.")
@click.option("--workspace", default="default", show_default=True)
def connect_salesforce(
    name: str, instance_url: str | None, login_url: str, ca_bundle: str | None, workspace: str, **given: Any
) -> None:
    """Add a Salesforce org: signs in once to check the credentials and learn the organization id."""
    secrets = credentials(instance_url=instance_url, **given)
    options: dict[str, Any] = {"login_url": auth.require_https(login_url, "login URL")}
    if ca_bundle:
        options["ca_bundle"] = str(Path(ca_bundle).resolve())
    adapter = SalesforceAdapter(ConnectionInfo(0, name, S.CRM, instance_url, None, options), secrets)
    org_id = None
    if auth.flow_for(secrets) is not None and not given.get("access_token"):
        org_id = adapter.client.refresh().organization_id
    org_id = org_id or adapter.organization_id()
    settings = get_settings()
    cid = create_connection(
        engine_for(settings.sqlalchemy_url),
        settings,
        kind=S.CRM,
        name=name,
        secrets=adapter.secrets,
        instance_url=adapter.client.instance_url,
        external_org_id=org_id,
        options=options,
        workspace=workspace,
    )
    click.echo(
        json.dumps(
            {
                "id": cid,
                "name": name,
                "kind": S.CRM,
                "instance_url": adapter.client.instance_url,
                "organization_id": org_id,
                "flow": auth.flow_for(secrets) or "access_token",
                "api_calls": adapter.api_calls,
            }
        )
    )


def score_specs(kind: str, object: str, targets: dict[str, str]) -> list[FieldSpec]:
    """The score fields of a CRM kind, renamed to the connection's write mapping targets."""
    module = importlib.import_module(f"adapters.{kind}.mapping")
    defaults: dict[str, str] = module.DEFAULT_WRITE.get(object, {})
    by_name = {spec.name: spec for spec in module.score_fields(object)}
    return [
        replace(by_name[defaults[key]], name=field)
        for key, field in targets.items()
        if defaults.get(key) in by_name
    ]


@click.command("provision")
@click.argument("name")
def provision(name: str) -> None:
    """Create the score fields on accounts and contacts of a connection's CRM (idempotent)."""
    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    row = get_connection(engine, name)
    assert row.id is not None
    mapping = load_mapping(engine, row.id, row.kind)
    adapter = open_adapter(engine, settings, row.id)
    for object in SCORED_OBJECTS:
        specs = score_specs(row.kind, object, mapping.write.get(object, {}))
        created = adapter.ensure_fields(object, specs)
        kept = [s.name for s in specs if s.name not in created]
        click.echo(
            f"{object}: created {', '.join(created) or 'nothing'}"
            + (f"; already there: {', '.join(kept)}" if kept else "")
        )
    click.echo(f"API calls: {adapter.api_calls}")


COMMANDS: list[click.Command] = [provision]
