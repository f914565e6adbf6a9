"""Command modules of the `rapport` CLI, listed explicitly."""

from __future__ import annotations

import click

from connector.commands import (
    bench,
    connections,
    demo,
    hubspot,
    ops,
    runs,
    salesforce,
    sandbox,
    scoring,
    sync,
    users,
    writeback,
)

COMMANDS: list[click.Command] = [
    *demo.COMMANDS,
    *ops.COMMANDS,
    *runs.COMMANDS,
    *connections.COMMANDS,
    *sync.COMMANDS,
    *salesforce.COMMANDS,
    *sandbox.COMMANDS,
    *bench.COMMANDS,
    *scoring.COMMANDS,
    *users.COMMANDS,
    *writeback.COMMANDS,
]

connections.connect.add_command(salesforce.connect_salesforce)
connections.connect.add_command(hubspot.connect_hubspot)
