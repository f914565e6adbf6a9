"""Process commands: migrate, worker, scheduler, web."""

from __future__ import annotations

import click


@click.command()
def migrate() -> None:
    """Apply the database migrations (the Procfile's release step)."""
    from connector.config import get_settings
    from connector.db import engine_for
    from connector.migrate import upgrade

    settings = get_settings()
    upgrade(engine_for(settings.sqlalchemy_url))
    click.echo("database is at the newest schema")


@click.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def web(host: str, port: int) -> None:
    """Serve the web app (development server; production uses gunicorn from the Procfile)."""
    from connector.app import create_app

    create_app().run(host=host, port=port)


COMMANDS: list[click.Command] = [migrate, web]
