"""Progress bars: silent off a terminal; `watch_runs` follows the heartbeats of runs started in its block."""

from __future__ import annotations

import io
import time

from connector.connections import create_connection
from connector.db import make_engine
from connector.progress import bar, watch_runs
from connector.runs import heartbeat, open_run


def _until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_bar_off_a_terminal_writes_nothing() -> None:
    out = io.StringIO()
    with bar(3, desc="work", file=out) as b:
        b.update(3)
    assert out.getvalue() == ""


def test_watch_runs_shows_the_records_of_runs_started_inside_the_block(sqlite_url, make_settings) -> None:
    engine = make_engine(sqlite_url)
    cid = create_connection(engine, make_settings(DATABASE_URL=sqlite_url), kind="salesforce", name="acme",
                            secrets={})
    earlier = open_run(engine, cid, "sync_full")
    heartbeat(engine, earlier, object="account", counts={"created": 500})
    out = io.StringIO()
    with watch_runs(engine, cid, desc="sync acme", enabled=True, file=out, every=0.02) as shown:
        run = open_run(engine, cid, "sync_full")
        heartbeat(engine, run, object="account", pages=1, counts={"created": 40, "updated": 2, "skipped": 0})
        assert _until(lambda: shown.n == 42), shown.n
        heartbeat(engine, run, object="contact", pages=1, counts={"created": 7})
        assert _until(lambda: shown.n == 49), shown.n
    assert "sync acme" in out.getvalue() and "contact" in out.getvalue()
    engine.dispose()
