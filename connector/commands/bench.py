"""`rapport bench`: run the benchmark suite on a synthetic world, print a table and write JSON."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


@click.command()
@click.argument("sections", nargs=-1)
@click.option("--size", type=click.Choice(["small", "medium", "large"]), default="medium", show_default=True,
              help="World size: about 100, 10k or 100k accounts.")
@click.option("--seed", default=0, type=int, show_default=True, help="World seed.")
@click.option("--only", multiple=True, metavar="SECTION",
              help="Run only these sections (repeatable; names may also follow as arguments).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the figures [default: bench/results/bench-<size>.json].")
@click.option("--pg-admin-url", default=None,
              help="PostgreSQL URL allowed to create and drop scratch databases [default: the machine's].")
@click.option("--redis-url", default=None, help="Redis for sections that need one [default: REDIS_URL or local].")
def bench(
    sections: tuple[str, ...],
    size: str,
    seed: int,
    only: tuple[str, ...],
    json_path: Path | None,
    pg_admin_url: str | None,
    redis_url: str | None,
) -> None:
    """Run the benchmark suite (all sections, or those named) and report the figures."""
    from bench.context import DEFAULT_PG_ADMIN_URL, DEFAULT_REDIS_URL, BenchContext
    from bench.runner import render_table, run_bench, select_sections, write_json
    from connector.config import get_settings

    try:
        names = select_sections([*only, *sections])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    redis_url = redis_url or get_settings().redis_url or DEFAULT_REDIS_URL
    logging.getLogger("alembic").setLevel(logging.WARNING)  # scratch databases are migrated often
    with BenchContext(size=size, seed=seed, pg_admin_url=pg_admin_url or DEFAULT_PG_ADMIN_URL,
                      redis_url=redis_url) as ctx:
        payload = run_bench(ctx, names, echo=lambda line: click.echo(line, err=True))
    click.echo(render_table(payload))
    path = write_json(payload, json_path or Path("bench") / "results" / f"bench-{size}.json")
    click.echo(f"figures written to {path}")
    if payload["failed"]:
        click.echo(f"error: section(s) failed: {', '.join(payload['failed'])} (see the log above)", err=True)
        sys.exit(1)


COMMANDS: list[click.Command] = [bench]
