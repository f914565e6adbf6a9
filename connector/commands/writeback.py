"""`rapport writeback NAME [--dry-run]`: write the changed scores, or show what would change."""

from __future__ import annotations

import json

import click


@click.command("writeback")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Write nothing: show counts by field, tier changes and score bands.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def writeback(name: str, dry_run: bool, as_json: bool) -> None:
    """Write the scores that changed since the last write-back to the CRM records."""
    from connector.config import get_settings
    from connector.connections import get_connection
    from connector.db import engine_for
    from connector.writeback import writeback_connection

    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    result = writeback_connection(engine, settings, connection.id, dry_run=dry_run, trigger="cli")
    if as_json:
        click.echo(json.dumps(result, default=str, indent=2))
        return
    if dry_run:
        click.echo(f"dry run for {name}: nothing was written")
        for report in result["objects"]:
            click.echo(f"\n{report['object']}: {report['to_write']} to write, {report['unchanged']} unchanged, "
                       f"{report['waiting_for_retry']} waiting for a retry")
            for label, key in (("fields", "fields"), ("tier changes", "tier_changes")):
                if report[key]:
                    click.echo(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(report[key].items())))
            bands = sorted(set(report["before"]) | set(report["after"]))
            if bands:
                click.echo("  relationship score  band   before  after")
                for band in bands:
                    click.echo(f"                      {band}  {report['before'].get(band, 0):>6}  {report['after'].get(band, 0):>5}")
        return
    click.echo(f"write-back of {name}: {result['written']} written, {result['failed']} refused, "
               f"{result['api_calls']} API call(s)")
    if result.get("error"):
        click.echo(f"  to fix: {result['error']}")
    for failure in result["failures"][:20]:
        retry = "waits for the fix" if failure.get("waits_for_fix") else "given up" if failure["gave_up"] else "will retry"
        click.echo(f"  {failure['id']}: {failure['code']} {failure['message']} ({retry})")


COMMANDS: list[click.Command] = [writeback]
