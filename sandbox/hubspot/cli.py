"""`rapport sandbox hubspot`: serve a seeded portal until interrupted, after one JSON line of connection info."""

from __future__ import annotations

import json
import signal
import sys
import threading

from sandbox.hubspot.sandbox import HubSpotSandbox


def run(port: int = 0, size: str = "small", seed: int = 0, webhook_url: str | None = None,
        host: str = "127.0.0.1") -> None:
    """Start the sandbox, print its info as one JSON line, and serve until SIGINT or SIGTERM."""
    sandbox = HubSpotSandbox(size=size, seed=seed, host=host, port=port, webhook_url=webhook_url).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(json.dumps(sandbox.info), flush=True)
    try:
        done.wait()
    finally:
        sandbox.stop()
    sys.stdout.flush()
