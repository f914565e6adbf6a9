"""Server-side query cursors behind `nextRecordsUrl`: the matching ids are fixed when the query
runs; each page renders the records as they are when it is fetched. Idle cursors expire.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sandbox.salesforce.ids import IdFactory
from sandbox.salesforce.query import Plan

IDLE_SECONDS = 15 * 60


@dataclass
class Cursor:
    """One open query result."""

    plan: Plan
    ids: list[str]
    batch: int
    endpoint: str
    touched: float = field(default_factory=time.monotonic)


class Cursors:
    """Open cursors by locator id (01g...)."""

    def __init__(self, id_factory: IdFactory) -> None:
        self._ids = id_factory
        self._open: dict[str, Cursor] = {}
        self._lock = threading.Lock()

    def open(self, plan: Plan, ids: list[str], batch: int, endpoint: str) -> str:
        """Keep a result for paging; returns its locator."""
        locator = self._ids.for_object("QueryLocator")
        now = time.monotonic()
        with self._lock:
            for key in [k for k, c in self._open.items() if now - c.touched > IDLE_SECONDS]:
                del self._open[key]
            self._open[locator] = Cursor(plan, ids, batch, endpoint, now)
        return locator

    def get(self, locator: str) -> Cursor | None:
        """The cursor for a locator, or None when unknown or expired."""
        with self._lock:
            cursor = self._open.get(locator)
            if cursor is None or time.monotonic() - cursor.touched > IDLE_SECONDS:
                self._open.pop(locator, None)
                return None
            cursor.touched = time.monotonic()
            return cursor

    def clear(self) -> None:
        """Forget every cursor."""
        with self._lock:
            self._open.clear()
