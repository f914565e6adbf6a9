"""`rapport connect salesforce NAME` (token, password, refresh token or JWT bearer) and `rapport provision`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from adapters.base import FieldSpec
    from connector.config import Settings


# The credential options of `connect` (private_key is the path of a PEM file).
SECRET_OPTIONS = ("access_token", "username", "password", "security_token", "client_id", "client_secret",
                  "refresh_token", "private_key")


def get_settings() -> Settings:
    """The process-wide settings (loaded on first use, so `rapport --help` stays quick)."""
    from connector import config

    return config.get_settings()


def _login_url() -> str:
    from adapters.salesforce import settings as S

    return S.DEFAULT_LOGIN_URL


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
    from adapters.salesforce import auth

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
    default=_login_url,
    show_default="Salesforce's production login host",
    help="Login host: the default, the sandbox login host, or the org's My Domain URL.",
)
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), help="CA bundle for a private CA.")
@click.option("--workspace", default="default", show_default=True)
def connect_salesforce(
    name: str, instance_url: str | None, login_url: str, ca_bundle: str | None, workspace: str, **given: Any
) -> None:
    """Add a Salesforce org: signs in once to check the credentials and learn the organization id."""
    shown = connect(get_settings(), name, instance_url=instance_url, login_url=login_url, ca_bundle=ca_bundle,
                    workspace=workspace, **given)
    click.echo(json.dumps(shown))


def connect(
    settings: Settings,
    name: str,
    *,
    instance_url: str | None = None,
    login_url: str | None = None,
    ca_bundle: str | None = None,
    workspace: str = "default",
    **given: Any,
) -> dict[str, Any]:
    """Sign in once, store the connection and return what `rapport connect salesforce` prints."""
    from adapters.base import ConnectionInfo
    from adapters.salesforce import SalesforceAdapter, auth
    from adapters.salesforce import settings as S
    from connector.connections import create_connection
    from connector.db import engine_for

    unknown = sorted(set(given) - set(SECRET_OPTIONS))
    if unknown:
        raise TypeError(f"unknown credential option(s): {', '.join(unknown)}")
    given = {k: given.get(k) for k in SECRET_OPTIONS}
    secrets = credentials(instance_url=instance_url, **given)
    options: dict[str, Any] = {"login_url": auth.require_https(login_url or S.DEFAULT_LOGIN_URL, "login URL")}
    if ca_bundle:
        options["ca_bundle"] = str(Path(ca_bundle).resolve())
    adapter = SalesforceAdapter(ConnectionInfo(0, name, S.CRM, instance_url, None, options), secrets)
    org_id = None
    if auth.flow_for(secrets) is not None and not given.get("access_token"):
        org_id = adapter.client.refresh().organization_id
    org_id = org_id or adapter.organization_id()
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
    return {
        "id": cid,
        "name": name,
        "kind": S.CRM,
        "instance_url": adapter.client.instance_url,
        "organization_id": org_id,
        "flow": auth.flow_for(secrets) or "access_token",
        "api_calls": adapter.api_calls,
    }


def score_specs(kind: str, object: str, targets: dict[str, str]) -> list[FieldSpec]:
    """The score fields of a CRM kind, renamed to the connection's write mapping targets."""
    from dataclasses import replace

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
    from connector.db import engine_for

    settings = get_settings()
    done = provision_fields(engine_for(settings.sqlalchemy_url), settings, name)
    for object, (created, kept) in done["objects"].items():
        click.echo(
            f"{object}: created {', '.join(created) or 'nothing'}"
            + (f"; already there: {', '.join(kept)}" if kept else "")
        )
    click.echo(f"API calls: {done['api_calls']}")


def provision_fields(engine: Engine, settings: Settings, name: str | int) -> dict[str, Any]:
    """Create the missing score fields; {"objects": {object: (created, already there)}, "api_calls": n}."""
    from connector.connections import get_connection, open_adapter
    from connector.mappings import load_mapping
    from connector.model import SCORED_OBJECTS

    row = get_connection(engine, name)
    assert row.id is not None
    mapping = load_mapping(engine, row.id, row.kind)
    adapter = open_adapter(engine, settings, row.id)
    objects: dict[str, tuple[list[str], list[str]]] = {}
    for object in SCORED_OBJECTS:
        specs = score_specs(row.kind, object, mapping.write.get(object, {}))
        created = adapter.ensure_fields(object, specs)
        objects[object] = (list(created), [s.name for s in specs if s.name not in created])
    return {"objects": objects, "api_calls": adapter.api_calls}


COMMANDS: list[click.Command] = [provision]
