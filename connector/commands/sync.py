"""Sync commands: `rapport sync NAME [--full | --reconcile]` and `rapport mappings show|export|import`."""

from __future__ import annotations

import sys
from typing import IO

import click

from connector.commands.lazy import LazyChoice

_OBJECT = LazyChoice("connector.model:UNIFIED_OBJECTS")


@click.command("sync")
@click.argument("name")
@click.option("--full", is_flag=True, help="Read everything again and mark what the CRM no longer has as deleted.")
@click.option("--reconcile", is_flag=True,
              help="Incremental, and also sweep for deletions a lost webhook missed (HubSpot's archived records).")
@click.option("--object", "objects", multiple=True, type=_OBJECT, help="Only this object (repeatable).")
def sync(name: str, full: bool, reconcile: bool, objects: tuple[str, ...]) -> None:
    """Pull the connection's changes (incremental by default) into the unified tables."""
    import sqlalchemy as sa

    from connector.config import get_settings
    from connector.connections import get_connection
    from connector.db import engine_for
    from connector.model import SyncRun
    from connector.records import COUNT_KEYS
    from connector.sync import sync_connection

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    run_id = sync_connection(engine, settings, connection.id, full=full, objects=objects or None, trigger="cli",
                             reconcile=reconcile)
    t = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        run = conn.execute(sa.select(t).where(t.c.id == run_id)).mappings().one()
    click.echo(f"{run['kind']} of {name}: {run['status']} in {run['duration_s']:.1f}s, {run['api_calls']} API call(s)")
    click.echo("OBJECT    " + "".join(k.upper().ljust(10) for k in COUNT_KEYS))
    for object, counts in run["counts"].items():
        click.echo(object.ljust(10) + "".join(str(counts.get(k, 0)).ljust(10) for k in COUNT_KEYS))
    for error in run["errors"][:20]:
        which = " ".join(str(error[k]) for k in ("object", "external_id") if error.get(k))
        click.echo(f"skipped {which}: {error['message']}", err=True)
    if run["errors"]:
        click.echo("skipped records are read again when they change in the CRM, or with --full", err=True)


@click.group()
def mappings() -> None:
    """Show, export and import a connection's field mappings (YAML)."""


@mappings.command("show")
@click.argument("name")
@click.option("--object", "objects", multiple=True, type=_OBJECT, help="Only this object (repeatable).")
def show(name: str, objects: tuple[str, ...]) -> None:
    """Print the mapping in use, field by field, and whether it is stored or the CRM kind's default."""
    from connector.config import get_settings
    from connector.connections import get_connection
    from connector.db import engine_for
    from connector.mappings import load_mapping
    from connector.model import UNIFIED_OBJECTS

    engine = engine_for(get_settings().sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    mapping = load_mapping(engine, connection.id, connection.kind)
    for object in UNIFIED_OBJECTS:
        if objects and object not in objects:
            continue
        if mapping.read.get(object):
            click.echo(f"{object} read ({mapping.origin.get((object, 'read'), 'default')})")
            for target, spec in mapping.read[object].items():
                source = spec.get("source", f"constant {spec.get('constant')!r}")
                rest = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k not in ("source", "constant"))
                click.echo(f"  {target:<24} <- {source}" + (f"  ({rest})" if rest else ""))
        if mapping.write.get(object):
            click.echo(f"{object} write ({mapping.origin.get((object, 'write'), 'default')})")
            for key, crm_field in mapping.write[object].items():
                click.echo(f"  {key:<24} -> {crm_field}")


@mappings.command("export")
@click.argument("name")
@click.argument("file", required=False, type=click.Path(dir_okay=False, writable=True))
@click.option("--object", "objects", multiple=True, type=_OBJECT, help="Only this object (repeatable).")
def export(name: str, file: str | None, objects: tuple[str, ...]) -> None:
    """Write the mapping in use as YAML to FILE (or standard output)."""
    from connector.config import get_settings
    from connector.connections import get_connection
    from connector.db import engine_for
    from connector.mapping_files import dump, export_document
    from connector.mappings import load_mapping

    engine = engine_for(get_settings().sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    text = dump(export_document(load_mapping(engine, connection.id, connection.kind), connection=connection.name,
                                objects=objects or None))
    if file:
        with open(file, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote the mapping of {name} to {file}")
    else:
        sys.stdout.write(text)


@mappings.command("import")
@click.argument("name")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--object", "objects", multiple=True, type=_OBJECT, help="Only this object of the file (repeatable).")
@click.option("--no-check", is_flag=True, help="Do not check the source fields against the CRM's own metadata.")
def import_(name: str, file: IO[str], objects: tuple[str, ...], no_check: bool) -> None:
    """Validate and store the mapping in FILE ("-" for standard input), then re-derive the rows from raw records."""
    from connector.config import get_settings
    from connector.connections import get_connection, open_adapter
    from connector.db import engine_for
    from connector.mapping_files import import_document, parse

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    doc = parse(file.read())
    describe = None if no_check else open_adapter(engine, settings, connection.id).describe
    imported = import_document(engine, connection.id, doc, describe=describe, objects=objects or None)
    click.echo(f"stored the mapping of {name}")
    for object, tally in imported.tallies.items():
        counts = tally.counts.get(object, {})
        click.echo(f"{object}: re-derived {counts.get('updated', 0)} row(s) from stored records, "
                   f"{counts.get('skipped', 0)} skipped")
        for error in tally.errors[:20]:
            click.echo(f"  skipped {error.get('external_id', object)}: {error['message']}", err=True)
    for object, sources in imported.new_sources.items():
        click.echo(f"{object} now reads {', '.join(sources)}, which the stored records may not hold: "
                   f"run `rapport sync {name} --full` to read them from the CRM")


COMMANDS: list[click.Command] = [sync, mappings]
