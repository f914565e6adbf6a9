"""Bench section `world`: how fast the synthetic world streams, and that its memory stays flat."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from bench.context import BenchContext
from bench.memory import MB, in_child
from sandbox.world import SIZES, generate

# tracemalloc slows allocation several times over: trace at most this many accounts.
TRACE_ACCOUNTS = SIZES["medium"]


def stream(size: str, seed: int, accounts: int | None = None) -> dict[str, Any]:
    """Generate the whole world once, counting records by kind."""
    counts = {"accounts": 0, "contacts": 0, "deals": 0, "cases": 0, "activities": 0}
    start, cpu = time.perf_counter(), time.process_time()
    for bundle in generate(size, seed, accounts=accounts):
        counts["accounts"] += 1
        counts["contacts"] += len(bundle.contacts)
        counts["deals"] += len(bundle.deals)
        counts["cases"] += len(bundle.cases)
        counts["activities"] += len(bundle.activities)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {**counts, "records": sum(counts.values()), "seconds": seconds, "cpu_seconds": cpu}


def traced(size: str, seed: int, accounts: int | None = None) -> dict[str, Any]:
    """Generate the world under tracemalloc and report the peak of Python allocations."""
    tracemalloc.start()
    try:
        for _bundle in generate(size, seed, accounts=accounts):
            pass
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"tracemalloc_peak_mb": round(peak / MB, 2)}


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Generation rate of the chosen size, and peak memory against the small world's."""
    full = in_child(stream, ctx.size, ctx.seed)
    small = full if ctx.size == "small" else in_child(stream, "small", ctx.seed)
    trace_accounts = min(ctx.accounts, TRACE_ACCOUNTS)
    trace = in_child(traced, ctx.size, ctx.seed, trace_accounts)
    trace_small = trace if ctx.size == "small" else in_child(traced, "small", ctx.seed)
    return {
        "accounts": full["accounts"],
        "contacts": full["contacts"],
        "deals": full["deals"],
        "cases": full["cases"],
        "activities": full["activities"],
        "records": full["records"],
        "seconds": round(full["seconds"], 2),
        "records_per_s": round(full["records"] / full["seconds"]),
        "records_per_cpu_s": round(full["records"] / full["cpu_seconds"]),
        "peak_rss_delta_mb": full["peak_rss_delta_mb"],
        "peak_rss_delta_mb_small": small["peak_rss_delta_mb"],
        "tracemalloc_accounts": trace_accounts,
        "tracemalloc_peak_mb": trace["tracemalloc_peak_mb"],
        "tracemalloc_peak_mb_small": trace_small["tracemalloc_peak_mb"],
    }
