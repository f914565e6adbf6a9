"""Browser tests: Debian's Chromium driven by Playwright, against the app served on 127.0.0.1 with a worker thread.

Chromium is installed with apt when missing; the tests are skipped (with the reason) only when that
cannot be done. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _ensure_chromium() -> str | None:
    """None when Chromium is there (installed now if need be), else why it cannot be."""
    if Path(CHROMIUM).exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Chromium is not installed and apt-get cannot be run here (needs root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}"
    return None if Path(CHROMIUM).exists() else "apt installed chromium but /usr/bin/chromium is missing"


@pytest.fixture(scope="session")
def browser():
    """A headless Debian Chromium."""
    why = _ensure_chromium()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (RAPPORT_SCREENSHOT_DIR if set, else a temporary directory)."""
    folder = Path(os.environ.get("RAPPORT_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class Served:
    """The app on a free port of 127.0.0.1, in a thread, plus an in-process worker draining the queues."""

    def __init__(self, app, settings, port: int) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.settings = settings
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._work, daemon=True)]

    def _work(self) -> None:
        from connector.queues import drain

        while not self._stop.is_set():
            drain(self.settings)
            self._stop.wait(0.3)

    def __enter__(self) -> Served:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        for t in self._threads:
            t.join(timeout=30)


@pytest.fixture
def served(make_settings, sqlite_url: str, redis_url: str) -> Iterator[Served]:
    """The app whose public URL is where it is served (OAuth redirects come back to it)."""
    from connector.app import create_app

    probe = make_server("127.0.0.1", 0, lambda e, s: [])  # learn a free port, then serve the app on it
    port = probe.server_port
    probe.server_close()
    settings = make_settings(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, RAPPORT_PUBLIC_URL=f"http://127.0.0.1:{port}")
    server = Served(create_app(settings), settings, port)
    with server:
        yield server
