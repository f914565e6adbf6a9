"""The benchmark suite behind `rapport bench`: named sections, listed explicitly in SECTIONS."""

# A section is a top-level function `run(ctx: BenchContext) -> dict[str, float | int | str]`:
# it measures one thing on the world of `ctx.size` (seed `ctx.seed`) and returns flat figures
# whose names carry their unit (`..._per_s`, `..._seconds`, `..._mb`). It may use `ctx.sqlite_url`
# / `ctx.pg_url` (migrated scratch databases shared by the run), `ctx.scratch_sqlite(tag)` /
# `ctx.scratch_pg(tag)` (fresh ones of its own), `ctx.redis_url` with keys under `ctx.redis_prefix`,
# `bench.storage.load_world` to fill a database with the world, and `bench.memory.in_child` to
# measure peak memory in a fresh process. Everything it creates is dropped when the run ends.
# Add a section with one import and one entry below; the order here is the order of the run.

from __future__ import annotations

from collections.abc import Callable

from bench import consistency, hubspot, pipeline, scoring, storage, web, world
from bench.context import BenchContext

Figures = dict[str, float | int | str]

SECTIONS: dict[str, Callable[[BenchContext], Figures]] = {
    "world": world.run,
    "storage": storage.run,
    "scoring": scoring.run,
    "hubspot": hubspot.run,
    "pipeline": pipeline.run,
    "web": web.run,
    "consistency": consistency.run,
}
