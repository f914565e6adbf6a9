"""The `rapport` command line: one explicit list of command modules."""

from __future__ import annotations

import logging
import sys

import click

from connector.errors import RapportError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RapportError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Rapport: relationship and experience scores inside your CRM."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from connector.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register()
