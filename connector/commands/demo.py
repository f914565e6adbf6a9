"""`rapport demo`: Rapport end to end on the embedded default, against both CRM sandboxes, in one process."""

from __future__ import annotations

import logging
import sys

import click

from connector.commands.lazy import LazyChoice

# Per-request lines of the webhook receivers and the in-process worker would drown the demo's own output.
QUIET_LOGGERS = ("connector.web", "rq.worker", "rq.queue", "rq.scheduler", "alembic")


@click.command("demo")
@click.option("--serve", is_flag=True, help="Afterwards keep the web app and the sandboxes running until Ctrl-C.")
@click.option("--size", type=LazyChoice("sandbox.world:SIZES"), default="small", show_default=True,
              help="World size of the sandboxes.")
@click.option("--seed", type=int, default=0, show_default=True, help="World seed (same seed, same records).")
def demo(serve: bool, size: str, seed: int) -> None:
    """Connect both CRM sandboxes, sync, score, write back, show live changes; exits 0 with a summary."""
    from connector.demo import DemoFailed, run_demo

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # -v shows everything
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        run_demo(size=size, seed=seed, serve=serve, echo=click.echo)
    except DemoFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


COMMANDS: list[click.Command] = [demo]
