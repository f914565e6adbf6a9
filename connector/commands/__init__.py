"""Command modules of the `rapport` CLI, listed explicitly."""

from __future__ import annotations

import click

from connector.commands import ops

COMMANDS: list[click.Command] = [
    *ops.COMMANDS,
]
