"""`rapport users add|list`: the people who sign in to the admin app (the first admin comes from here)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from connector.commands.lazy import LazyChoice

if TYPE_CHECKING:
    from connector.config import Settings


def get_settings() -> Settings:
    """The process-wide settings (loaded on first use, so `rapport --help` stays quick)."""
    from connector import config

    return config.get_settings()


@click.group("users")
def users() -> None:
    """Add and list the users of the admin app."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=LazyChoice("connector.model:ROLES"), default="viewer", show_default=True,
              help="admin: everything; revops: schedules, runs, score model; viewer: read only.")
@click.option("--workspace", default="default", show_default=True, help="The workspace (created if new).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def add(email: str, role: str, workspace: str, password_stdin: bool) -> None:
    """Add a user with a password (asked twice, or read from standard input)."""
    from connector import auth
    from connector.db import engine_for

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    auth.create_user(engine, email, password, role=role, workspace=workspace)
    click.echo(f"user {auth.check_email(email)} added to workspace {workspace} as {role}")


@users.command("list")
@click.option("--workspace", default=None, help="Only this workspace.")
def list_(workspace: str | None) -> None:
    """List users with their workspace and role."""
    from connector import auth
    from connector.db import engine_for

    settings = get_settings()
    rows = auth.list_users(engine_for(settings.sqlalchemy_url), workspace)
    if not rows:
        click.echo("no users yet; add the first admin with `rapport users add EMAIL --role admin`")
        return
    width = max(len(r["email"]) for r in rows)
    click.echo(f"{'EMAIL':{width}s}  {'ROLE':8s}  WORKSPACE")
    for r in rows:
        click.echo(f"{r['email']:{width}s}  {r['role']:8s}  {r['workspace']}")


COMMANDS: list[click.Command] = [users]
