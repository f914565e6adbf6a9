"""Progress bars for long terminal work: tqdm on standard error, silent when that is not a terminal.

`bar` and `track` wrap tqdm; `watch_runs` shows the runs of a connection that start inside a block
(sync, score, write-back), fed by the heartbeats they store, so a command need not change the code
it calls to show how far it got.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _enabled(stream: IO[str], enabled: bool | None) -> bool:
    if enabled is not None:
        return enabled
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def bar(total: float | None = None, *, desc: str = "", unit: str = "it", enabled: bool | None = None,
        file: IO[str] | None = None, leave: bool = False) -> tqdm:
    """A progress bar on standard error (or `file`); disabled when it is not a terminal, unless `enabled`."""
    stream = file or sys.stderr
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not _enabled(stream, enabled), leave=leave,
                dynamic_ncols=True, mininterval=0.2)


def track(items: Iterable[T], *, total: float | None = None, desc: str = "", unit: str = "it",
          enabled: bool | None = None) -> Iterator[T]:
    """Iterate over `items` with a bar (total taken from `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc=desc, unit=unit, enabled=enabled) as b:
        for item in items:
            yield item
            b.update(1)


def progress_count(progress: dict[str, Any] | None) -> int:
    """Records a run's heartbeat says it has handled so far (the sum of its counts)."""
    counts = (progress or {}).get("counts") or {}
    return int(sum(v for v in counts.values() if isinstance(v, int | float)))


@contextmanager
def watch_runs(engine: Any, connection_id: int, *, desc: str, unit: str = " records", every: float = 0.5,
               enabled: bool | None = None, file: IO[str] | None = None) -> Iterator[tqdm]:
    """Show the progress of the runs of one connection that start inside the block, per object."""
    import sqlalchemy as sa

    from connector.model import SyncRun, utcnow

    t = SyncRun.__table__  # type: ignore[attr-defined]
    since = utcnow()
    stop = threading.Event()
    done: dict[tuple[int, str], int] = {}  # (run, object) -> records handled, as last reported
    with bar(desc=desc, unit=unit, enabled=enabled, file=file) as b:
        if b.disable:
            yield b
            return

        def poll() -> None:
            while not stop.wait(every):
                with engine.connect() as conn:
                    rows = conn.execute(sa.select(t.c.id, t.c.progress).where(
                        t.c.connection_id == connection_id, t.c.started_at >= since)).all()
                for run_id, progress in rows:
                    obj = str((progress or {}).get("object") or "")
                    done[(run_id, obj)] = max(done.get((run_id, obj), 0), progress_count(progress))
                    if obj:
                        b.set_postfix_str(obj, refresh=False)
                if not b.update(sum(done.values()) - b.n):
                    b.refresh()  # a new object or a quiet run still shows

        thread = threading.Thread(target=poll, name="progress", daemon=True)
        thread.start()
        try:
            yield b
        finally:
            stop.set()
            thread.join(timeout=every * 4)
