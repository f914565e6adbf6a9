"""Connections to CRM instances: create, look up, and open an adapter with decrypted credentials.

Credentials are stored encrypted (connector.vault); an adapter that refreshes its token hands the
new secrets back, and they are stored encrypted again. Each connection belongs to a workspace,
created on first use.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from adapters import ADAPTERS
from adapters.base import Adapter, Budget, ConnectionInfo
from connector.config import Settings
from connector.errors import ConfigError
from connector.model import Connection, Workspace, utcnow
from connector.vault import vault_for

_C = Connection.__table__  # type: ignore[attr-defined]
_W = Workspace.__table__  # type: ignore[attr-defined]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def ensure_workspace(engine: Engine, name: str = "default") -> int:
    """The id of the workspace with this name, created if it does not exist yet."""
    with engine.begin() as conn:
        found = conn.execute(sa.select(_W.c.id).where(_W.c.name == name)).scalar()
        if found is not None:
            return int(found)
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(insert(_W).values(name=name, created_at=utcnow()).on_conflict_do_nothing(index_elements=["name"]))
        return int(conn.execute(sa.select(_W.c.id).where(_W.c.name == name)).scalar_one())


def create_connection(
    engine: Engine,
    settings: Settings,
    *,
    kind: str,
    name: str,
    secrets: dict[str, Any],
    instance_url: str | None = None,
    external_org_id: str | None = None,
    options: dict[str, Any] | None = None,
    workspace: str = "default",
) -> int:
    """Store a new connection with its secrets encrypted; return its id."""
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown CRM kind {kind!r}", hint=f"use one of {', '.join(ADAPTERS)}")
    if not _NAME.match(name):
        raise ConfigError(f"connection name {name!r} is not allowed",
                          hint="use up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    token = vault_for(settings).encrypt(secrets)
    workspace_id = ensure_workspace(engine, workspace)
    now = utcnow()
    with engine.begin() as conn:
        if conn.execute(sa.select(_C.c.id).where(_C.c.name == name)).first() is not None:
            raise ConfigError(f"a connection named {name!r} already exists", hint="choose another name")
        return int(conn.execute(
            sa.insert(_C).values(
                workspace_id=workspace_id, name=name, kind=kind, instance_url=instance_url,
                external_org_id=external_org_id, credentials_encrypted=token, options=options or {},
                status="active", created_at=now, updated_at=now,
            ).returning(_C.c.id)
        ).scalar_one())


def get_connection(engine: Engine, name_or_id: str | int) -> Connection:
    """The connection with this name (or id); ConfigError naming it if there is none."""
    with engine.connect() as conn:
        row = None
        if isinstance(name_or_id, str):
            row = conn.execute(sa.select(_C).where(_C.c.name == name_or_id)).mappings().first()
        if row is None and str(name_or_id).isdigit():
            row = conn.execute(sa.select(_C).where(_C.c.id == int(name_or_id))).mappings().first()
    if row is None:
        raise ConfigError(f"no connection named {name_or_id!r}",
                          hint="list them with `rapport connections`, add one with `rapport connect`")
    return Connection.model_validate(dict(row))


def list_connections(engine: Engine) -> list[Connection]:
    """Every connection, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_C).order_by(_C.c.id)).mappings().all()
    return [Connection.model_validate(dict(r)) for r in rows]


def store_secrets(engine: Engine, settings: Settings, connection_id: int, secrets: dict[str, Any]) -> None:
    """Replace a connection's secrets (encrypted)."""
    token = vault_for(settings).encrypt(secrets)
    with engine.begin() as conn:
        conn.execute(sa.update(_C).where(_C.c.id == connection_id)
                     .values(credentials_encrypted=token, updated_at=utcnow()))


def set_status(engine: Engine, connection_id: int, status: str, detail: str | None = None) -> None:
    """Record the connection's health (active, error, disabled) and why."""
    with engine.begin() as conn:
        conn.execute(sa.update(_C).where(_C.c.id == connection_id)
                     .values(status=status, status_detail=detail, updated_at=utcnow()))


def connection_info(row: Connection) -> ConnectionInfo:
    """What an adapter may know of its connection (no secrets)."""
    assert row.id is not None
    return ConnectionInfo(id=row.id, name=row.name, kind=row.kind, instance_url=row.instance_url,
                          external_org_id=row.external_org_id, options=dict(row.options or {}))


def _default_budget(settings: Settings, row: Connection) -> Budget:
    from connector.budget import budget_for  # Redis-backed; only needed once an adapter is opened

    return budget_for(settings, row)


def open_adapter(engine: Engine, settings: Settings, connection_id: int, *, budget: Budget | None = None) -> Adapter:
    """The connection's adapter, built from `adapters.ADAPTERS` with its decrypted secrets."""
    row = get_connection(engine, connection_id)
    path = ADAPTERS.get(row.kind)
    if path is None:
        raise ConfigError(f"connection {row.name!r} is of unknown kind {row.kind!r}",
                          hint=f"Rapport knows {', '.join(ADAPTERS)}")
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    secrets = vault_for(settings).decrypt(row.credentials_encrypted)
    assert row.id is not None
    connection_id = row.id

    def persist(new: dict[str, Any]) -> None:
        # Refresh responses often omit the refresh token; keep what they do not replace.
        secrets.update(new)
        store_secrets(engine, settings, connection_id, dict(secrets))

    from connector.webhooks import arriving  # Redis; only needed once an adapter is opened

    info = replace(connection_info(row), webhooks_arriving=arriving(settings, connection_id))
    adapter = cls(info, dict(secrets), budget=budget or _default_budget(settings, row), on_secrets=persist)
    if hasattr(adapter, "metadata_cache"):  # the adapter keeps CRM metadata between runs: in Redis, for every worker
        from connector.budget import metadata_cache_for

        adapter.metadata_cache = metadata_cache_for(settings, row)
    return adapter  # type: ignore[no-any-return]
