"""Connection commands: the `connect` group (one subcommand per CRM) and `connections` to list them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import sqlalchemy as sa


@click.group()
def connect() -> None:
    """Add a connection to a CRM (token, OAuth client or sandbox); one subcommand per CRM."""


def _last_syncs(engine: sa.Engine) -> dict[int, dict[str, object]]:
    import sqlalchemy as sa

    from connector.model import SyncRun

    t = SyncRun.__table__  # type: ignore[attr-defined]
    newest = (sa.select(t.c.connection_id, sa.func.max(t.c.id).label("id"))
              .where(t.c.kind.in_(("sync_incremental", "sync_full", "reconcile"))).group_by(t.c.connection_id).subquery())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.connection_id, t.c.status, t.c.started_at)
                            .join(newest, newest.c.id == t.c.id)).all()
    return {r.connection_id: {"status": r.status, "started_at": r.started_at.isoformat()} for r in rows}


def _when(sync: dict[str, object] | None) -> str:
    return f"{sync['status']} {str(sync['started_at'])[:19]}" if sync else "never"


@click.command("connections")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def connections_command(as_json: bool) -> None:
    """List the connections with their kind, status and last sync."""
    import sqlalchemy as sa

    from connector.config import get_settings
    from connector.connections import list_connections
    from connector.db import engine_for
    from connector.model import Workspace

    engine = engine_for(get_settings().sqlalchemy_url)
    rows = list_connections(engine)
    last = _last_syncs(engine)
    w = Workspace.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        workspaces: dict[int, str] = dict(conn.execute(sa.select(w.c.id, w.c.name)).all())
    if as_json:
        for c in rows:
            click.echo(json.dumps({"id": c.id, "name": c.name, "kind": c.kind, "workspace": workspaces.get(c.workspace_id),
                                   "status": c.status, "instance_url": c.instance_url,
                                   "last_sync": last.get(c.id or 0)}))
        return
    if not rows:
        click.echo("no connections yet; add one with `rapport connect salesforce|hubspot`")
        return
    header = ("ID", "NAME", "KIND", "WORKSPACE", "STATUS", "LAST SYNC", "INSTANCE")
    table = [header] + [
        (str(c.id), c.name, c.kind, str(workspaces.get(c.workspace_id, "")), c.status,
         _when(last.get(c.id or 0)), c.instance_url or "")
        for c in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        click.echo("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())


COMMANDS: list[click.Command] = [connect, connections_command]
