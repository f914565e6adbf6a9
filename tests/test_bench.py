"""`rapport bench`: runs its sections on a world, prints a table, writes JSON, cleans up after itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import bench
from bench.context import BenchContext
from bench.runner import render_table, run_bench, select_sections
from connector.cli import main
from tests.conftest import PG_ADMIN_URL


def _scratch_databases() -> set[str]:
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            names = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                 {"p": f"rapport_bench_{os.getpid()}%"}).scalars()
            return set(names)
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_bench_on_the_small_world_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "figures" / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--size", "small", "--only", "world", "storage", "--json", str(out),
                                       "--pg-admin-url", PG_ADMIN_URL])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["size"] == "small" and payload["accounts"] == 100 and payload["failed"] == []
    world, storage = payload["sections"]["world"], payload["sections"]["storage"]
    assert world["accounts"] == 100
    assert world["records"] == sum(world[k] for k in ("accounts", "contacts", "deals", "cases", "activities"))
    for key in ("records_per_s", "records_per_cpu_s", "peak_rss_delta_mb", "peak_rss_delta_mb_small",
                "tracemalloc_peak_mb"):
        assert world[key] >= 0, key
    assert storage["rows"] == world["records"]
    for key in ("sqlite_rows_per_s", "pg_rows_per_s", "sqlite_rows_per_cpu_s", "pg_rows_per_cpu_s",
                "sqlite_peak_rss_delta_mb", "pg_peak_rss_delta_mb"):
        assert storage[key] > 0, key
    assert storage["pg_checkpointed_before"] is True  # the machine's postgres role may checkpoint
    assert "records_per_s" in result.output and "pg_rows_per_s" in result.output
    # the machine's speed at the time, to tell a slower machine from slower code
    assert payload["machine"]["python_loop_5m_s"] > 0 and payload["machine"]["fresh_memory_gb_per_s"] > 0
    assert "fresh memory" in result.output
    assert _scratch_databases() == set()



@pytest.mark.postgres
def test_scoring_is_timed_on_sqlite_and_on_postgres(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--size", "small", "--only", "scoring", "--json", str(out),
                                       "--pg-admin-url", PG_ADMIN_URL])
    assert result.exit_code == 0, result.output
    scoring = json.loads(out.read_text())["sections"]["scoring"]
    records = scoring["accounts"] + scoring["contacts"]
    assert scoring["accounts"] == 100 and scoring["contacts"] > 100
    for prefix in ("", "pg_"):
        for key in ("score_full_seconds", "score_write_seconds", "rescore_one_account_ms"):
            assert scoring[prefix + key] > 0, prefix + key
        # the next day's rerun snapshots every record again, the same day's writes none that did not move
        assert scoring[prefix + "rescore_next_day_rows_written"] == records, prefix
        assert scoring[prefix + "rescore_same_day_rows_written"] < records, prefix
    assert "pg_score_full_seconds" in result.output
    assert _scratch_databases() == set()

@pytest.mark.postgres
def test_a_role_that_may_not_checkpoint_is_told_apart() -> None:
    role = f"rapport_bench_plain_{os.getpid()}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        plain = sa.make_url(PG_ADMIN_URL).set(username=role, password=None).render_as_string(hide_password=False)
        with BenchContext(pg_admin_url=plain) as ctx:
            assert ctx.checkpoint_pg() is False
        with BenchContext(pg_admin_url=PG_ADMIN_URL) as ctx:
            assert ctx.checkpoint_pg() is True
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_unknown_sections_are_refused_with_the_known_ones_named() -> None:
    result = CliRunner().invoke(main, ["bench", "--size", "small", "--only", "wrld"])
    assert result.exit_code == 2
    assert "unknown bench section 'wrld'" in result.output and "world" in result.output
    assert select_sections([]) == list(bench.SECTIONS)
    assert select_sections(["storage", "world"]) == ["world", "storage"]


def test_a_failing_section_is_reported_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(ctx: BenchContext) -> dict[str, float | int | str]:
        raise RuntimeError("no database")

    def fine(ctx: BenchContext) -> dict[str, float | int | str]:
        return {"accounts": ctx.accounts, "rate_per_s": 1234.5}

    monkeypatch.setattr(bench, "SECTIONS", {"broken": broken, "fine": fine})
    monkeypatch.setattr("bench.runner.SECTIONS", bench.SECTIONS)
    with BenchContext(size="small", workdir=tmp_path / "work") as ctx:
        payload = run_bench(ctx, ["broken", "fine"], echo=lambda line: None)
    assert payload["failed"] == ["broken"]
    assert payload["sections"]["broken"]["error"] == "RuntimeError: no database"
    assert payload["sections"]["fine"]["rate_per_s"] == 1234.5
    table = render_table(payload)
    assert "RuntimeError: no database" in table and "1,234" in table
    assert not (tmp_path / "work").exists()
