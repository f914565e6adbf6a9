"""Run benchmark sections in order, then show the figures as a table and keep them as JSON."""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench import SECTIONS
from bench.context import BenchContext

log = logging.getLogger(__name__)


def select_sections(names: Sequence[str]) -> list[str]:
    """The sections to run, in suite order (all when none named); unknown names are refused."""
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown bench section {', '.join(map(repr, unknown))}: choose from {', '.join(SECTIONS)}")
    return [n for n in SECTIONS if not names or n in names]


def machine() -> dict[str, Any]:
    """What the figures depend on: cores, memory, Python, how busy the machine is, and how fast it
    runs plain Python and hands out fresh memory right now (see `speed`)."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **speed(),
    }


CALIBRATION_LOOP = 5_000_000
CALIBRATION_MB = 256


def speed() -> dict[str, float]:
    """Two quick probes that explain much of the drift between runs on the same code: seconds for a
    plain Python loop, and GB/s at which the system hands out and zeroes fresh memory (a virtual
    machine whose host has not yet backed its memory can be ten times slower there, and every bulk
    load and scoring run allocates hundreds of megabytes)."""
    began = time.perf_counter()
    for _ in range(CALIBRATION_LOOP):
        pass
    loop_s = time.perf_counter() - began
    began = time.perf_counter()
    block = np.ones(CALIBRATION_MB * 2**20 // 8)  # every page written once
    fresh_s = time.perf_counter() - began
    del block
    return {"python_loop_5m_s": round(loop_s, 3), "fresh_memory_gb_per_s": round(CALIBRATION_MB / 1024 / fresh_s, 2)}


def run_bench(
    ctx: BenchContext, names: Sequence[str], *, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the sections; a failing section is recorded with its error and the others still run."""
    payload: dict[str, Any] = {
        "size": ctx.size,
        "seed": ctx.seed,
        "accounts": ctx.accounts,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sections": {},
        "failed": [],
    }
    for name in names:
        echo(f"bench {name} ({ctx.size}) ...")
        began = time.perf_counter()
        try:
            figures: dict[str, Any] = dict(SECTIONS[name](ctx))
        except Exception as exc:  # one broken section must not hide the others' figures
            log.exception("bench section %s failed", name)
            figures = {"error": f"{type(exc).__name__}: {exc}"}
            payload["failed"].append(name)
        figures["section_seconds"] = round(time.perf_counter() - began, 2)
        payload["sections"][name] = figures
    payload["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    payload["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return payload


def _show(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def render_table(payload: dict[str, Any]) -> str:
    """A plain-text table: one line per figure, grouped by section."""
    lines = [(f"section ({payload['size']}, seed {payload['seed']})", "figure", "value")]
    for section, figures in payload["sections"].items():
        for i, (key, value) in enumerate(figures.items()):
            lines.append((section if i == 0 else "", key, _show(value)))
    widths = [max(len(row[c]) for row in lines) for c in range(3)]
    out = []
    for n, (a, b, c) in enumerate(lines):
        out.append(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}")
        if n == 0:
            out.append("-" * (sum(widths) + 4))
    load = payload["machine"]
    out.append(f"machine: {load['cpus']} cpus, load average {load['load_avg_1m']} at start, "
               f"{load.get('load_avg_1m_end', '?')} at end; {CALIBRATION_LOOP / 1e6:.0f}M-step Python loop "
               f"{load.get('python_loop_5m_s', '?')} s, fresh memory {load.get('fresh_memory_gb_per_s', '?')} GB/s")
    return "\n".join(out)


def write_json(payload: dict[str, Any], path: Path) -> Path:
    """Write the figures as JSON, creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path
