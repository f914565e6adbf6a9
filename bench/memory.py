"""Run one measurement in a fresh process, so that the peak memory it reports is its own.

The child resets the kernel's peak-RSS mark (Linux `clear_refs`) once its imports are done; where
that is not allowed, a sampling thread watches the RSS instead.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024
_STATUS = Path("/proc/self/status")


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Call a top-level `fn(*args)` in a spawned process; add `peak_rss_mb` and `peak_rss_delta_mb`."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_measured, fn, args).result()


def _hwm_bytes() -> int | None:
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _hwm_bytes() is not None


class _Sampler(threading.Thread):
    """Polls the RSS every few milliseconds when the kernel's peak mark cannot be reset."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = psutil.Process().memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        proc = psutil.Process()
        while not self.done.wait(0.005):
            self.peak = max(self.peak, proc.memory_info().rss)


def _measured(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    base = psutil.Process().memory_info().rss
    sampler = None if _reset_hwm() else _Sampler()
    if sampler:
        sampler.start()
    result = fn(*args)
    if sampler:
        sampler.done.set()
        sampler.join()
        peak = sampler.peak
    else:
        peak = _hwm_bytes() or base
    return {**result, "peak_rss_mb": round(peak / MB, 1), "peak_rss_delta_mb": round(max(0, peak - base) / MB, 1)}
