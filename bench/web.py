"""Bench section `web`: p50/p95 latency of every admin page (and the main API reads) with the world loaded and scored.

The world goes into a fresh SQLite database (the embedded default) and is scored twice, 30 days
apart, so trends, risers and fallers exist; a signed-in admin then loads each page in-process.
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bench.context import BenchContext
from bench.scoring import load_world
from connector import auth
from connector.config import load_settings
from connector.db import make_engine
from connector.model import Score
from connector.runs import close_run, open_run
from connector.schedules import add_schedule
from connector.scoring import score_connection
from sandbox.world import DEFAULT_NOW, generate

REQUESTS = 30  # timed loads per page, after two warm-up loads
TARGET_MS = 200
PASSWORD = "bench-password-123"


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _prepare(engine: Any, cid: int) -> dict[str, Any]:
    """Runs with failing records, a schedule, a user; returns the ids the pages need."""
    for kind in ("sync_full", "score", "writeback"):
        run_id = open_run(engine, cid, kind, trigger="bench")
        close_run(engine, run_id, "partial", counts={"account": {"updated": 100}}, api_calls=42,
                  errors=[{"object": "account", "external_id": f"A{i}", "error": "InvalidRecord",
                           "message": "value out of range"} for i in range(50)])
    add_schedule(engine, cid, "run", "*/15 * * * *")
    auth.create_user(engine, "bench@rapport.example", PASSWORD, role="admin", workspace="bench-web")
    s = Score.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        account = conn.execute(sa.select(s.c.external_id).where(s.c.connection_id == cid, s.c.object == "account")
                               .order_by(s.c.relationship.desc()).limit(1)).scalar_one()
    return {"run_id": run_id, "account": account}


def _pages(cid: int, ids: dict[str, Any]) -> dict[str, str]:
    return {
        "connections": "/connections",
        "connection": f"/connections/{cid}",
        "mapping": f"/connections/{cid}/mappings/account",
        "schedules": "/schedules",
        "runs": "/runs",
        "run": f"/runs/{ids['run_id']}",
        "scores": f"/scores?connection_id={cid}",
        "account": f"/scores/{cid}/accounts/{ids['account']}",
        "score_model": "/model",
        "tokens": "/tokens",
        "api_scores": f"/api/v1/connections/{cid}/scores",
        "api_runs": "/api/v1/runs",
        "api_account": f"/api/v1/connections/{cid}/scores/accounts/{ids['account']}",
    }


def run(ctx: BenchContext) -> dict[str, float | int | str]:
    """Load and score the world, then time each page."""
    url = ctx.scratch_sqlite("web")
    engine = make_engine(url)
    try:
        cid, _ = load_world(engine, generate(ctx.size, ctx.seed, now=DEFAULT_NOW), name="bench-web")
        score_connection(engine, cid, now=DEFAULT_NOW - timedelta(days=30), trigger="bench")
        score_connection(engine, cid, now=DEFAULT_NOW, trigger="bench")
        ids = _prepare(engine, cid)
        settings = load_settings({"RAPPORT_ENV": "test", "DATABASE_URL": url, "REDIS_URL": ctx.redis_url,
                                  "RAPPORT_DATA_DIR": str(ctx.workdir / "web-data")})
        return _measure(engine, settings, cid, ids)
    finally:
        engine.dispose()


def _signed_in(settings: Any) -> tuple[Any, str]:
    """A test client of the app with the bench admin signed in, and the session's CSRF token."""
    from connector.app import create_app

    client = create_app(settings).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True))
    assert token is not None
    signed = client.post("/login", data={"email": "bench@rapport.example", "password": PASSWORD,
                                         "csrf_token": token.group(1)})
    if signed.status_code != 302:
        raise RuntimeError(f"bench sign-in failed with {signed.status_code}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/tokens").get_data(as_text=True))
    assert token is not None  # a new session (and CSRF token) since signing in
    return client, token.group(1)


def _measure(engine: Any, settings: Any, cid: int, ids: dict[str, Any]) -> dict[str, float | int | str]:
    client, csrf = _signed_in(settings)
    figures: dict[str, float | int | str] = {}
    worst = 0.0
    pages = _pages(cid, ids)
    # the score summary is kept until the next run: time it also as the first load after a rescore
    pages |= {"scores_after_rescore": pages["scores"], "api_scores_after_rescore": pages["api_scores"]}
    for name, path in pages.items():
        samples = []
        for i in range(REQUESTS + 2):
            if name.endswith("_after_rescore"):
                close_run(engine, open_run(engine, cid, "score", trigger="bench"), "succeeded")
            began = time.perf_counter()
            response = client.get(path)
            elapsed = 1000 * (time.perf_counter() - began)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}")
            if i >= 2:
                samples.append(elapsed)
        p95 = _p95(samples)
        worst = max(worst, p95)
        figures[f"{name}_p50_ms"] = round(statistics.median(samples), 1)
        figures[f"{name}_p95_ms"] = round(p95, 1)
    figures["slowest_page_p95_ms"] = round(worst, 1)
    figures["pages_over_200ms_p95"] = sum(1 for k, v in figures.items() if k.endswith("_p95_ms")
                                          and k != "slowest_page_p95_ms" and float(v) > TARGET_MS)
    began = time.perf_counter()
    draft = client.post("/model/drafts", data={"csrf_token": csrf, "relationship.weights.value": "0.4"})
    compared = client.get(draft.location + f"?connection_id={cid}") if draft.status_code == 302 else draft
    if compared.status_code != 200:
        raise RuntimeError(f"the score model comparison answered {compared.status_code}")
    figures["model_draft_compare_seconds"] = round(time.perf_counter() - began, 2)
    return figures
