"""`rapport sandbox salesforce|hubspot`: run a local CRM emulator and print how to reach it."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from typing import Any

import click


def _salesforce(port: int, size: str, seed: int, webhook_url: str | None) -> Any:
    from sandbox.salesforce import SalesforceSandbox

    return SalesforceSandbox(size=size, seed=seed, port=port, webhook_url=webhook_url)


def _hubspot(port: int, size: str, seed: int, webhook_url: str | None) -> Any:
    from sandbox.hubspot import HubSpotSandbox

    return HubSpotSandbox(size=size, seed=seed, port=port, webhook_url=webhook_url)


# kind -> factory(port, size, seed, webhook_url) returning an object with start() -> self, stop(), info.
SANDBOXES: dict[str, Callable[[int, str, int, str | None], Any]] = {
    "salesforce": _salesforce,
    "hubspot": _hubspot,
}


@click.command()
@click.argument("kind", type=click.Choice(["salesforce", "hubspot"]))
@click.option("--port", default=0, type=int, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--size", default="small", show_default=True, help="World size: small, medium or large.")
@click.option("--seed", default=0, type=int, show_default=True, help="World seed (same seed, same records).")
@click.option("--webhook-url", default=None, help="Where to deliver webhooks / outbound messages.")
def sandbox(kind: str, port: int, size: str, seed: int, webhook_url: str | None) -> None:
    """Run a local CRM sandbox; prints one JSON line with what a client needs, then serves until stopped."""
    factory = SANDBOXES.get(kind)
    if factory is None:
        raise click.ClickException(f"the {kind} sandbox is not available in this build")
    from sandbox.world import SIZES

    if size not in SIZES:
        raise click.BadParameter(f"use one of {', '.join(SIZES)}", param_hint="--size")
    server = factory(port, size, seed, webhook_url).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(json.dumps(server.info), nl=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


COMMANDS: list[click.Command] = [sandbox]
