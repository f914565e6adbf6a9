"""Schedules, runs, scores and the score model through the pages a person uses (and their API twins)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from rq import Queue

from connector.model import Schedule, ScoreModel
from connector.queues import redis_for
from connector.runs import heartbeat, open_run
from tests.web.support import sign_in

pytestmark = pytest.mark.redis


@pytest.fixture
def alpha(app, tenants):
    client = app.test_client()
    return client, sign_in(client, tenants[0].emails["revops"]), tenants[0]


def test_a_bad_cron_is_explained_next_to_the_field_and_nothing_is_added(alpha, web_engine) -> None:
    client, csrf, t = alpha
    response = client.post("/schedules", data={"csrf_token": csrf, "connection_id": t.connection_id, "kind": "score",
                                               "cron": "61 * * * *"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-cron"' in body and "the minute field &#39;61&#39; is invalid" in body
    bad_kind = client.post("/schedules", data={"csrf_token": csrf, "connection_id": "999", "kind": "nap",
                                               "cron": "* * *"})
    body = bad_kind.get_data(as_text=True)
    for field in ("connection_id", "kind", "cron"):
        assert f'id="err-{field}"' in body, field
    with web_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Schedule.__table__)).scalar() == 2


def test_the_cron_editor_describes_the_expression_and_its_next_runs(alpha) -> None:
    client, _, _ = alpha
    fragment = client.get("/schedules/describe?cron=*/15+9-17+*+*+1-5").get_data(as_text=True)
    assert "Every 15 minutes, between 09:00 and 17:59, Monday through Friday (UTC)" in fragment
    assert fragment.count(":") >= 5  # five next run times
    api = client.get("/api/v1/cron?expr=0+6+*+*+*").get_json()
    assert api["description"] == "At 06:00 (UTC)" and len(api["next_runs"]) == 5
    assert all(t.endswith("T06:00:00+00:00") for t in api["next_runs"])


def test_add_disable_enable_and_run_a_schedule(alpha, web_settings) -> None:
    client, csrf, t = alpha
    added = client.post("/schedules", data={"csrf_token": csrf, "connection_id": t.connection_id, "kind": "score",
                                            "cron": "30 2 * * *"})
    assert added.status_code == 302
    schedules = client.get("/api/v1/schedules").get_json()["schedules"]
    new = next(s for s in schedules if s["cron"] == "30 2 * * *")
    assert new["enabled"] and new["description"] == "At 02:30 (UTC)"
    client.post(f"/schedules/{new['id']}/disable", data={"csrf_token": csrf})
    assert client.get(f"/api/v1/schedules/{new['id']}").get_json()["enabled"] is False
    client.post(f"/schedules/{new['id']}/enable", data={"csrf_token": csrf})
    assert client.get(f"/api/v1/schedules/{new['id']}").get_json()["enabled"] is True
    ran = client.post(f"/schedules/{new['id']}/run", data={"csrf_token": csrf})
    assert ran.status_code == 302 and ran.location.endswith("/runs")
    queued = Queue("score", connection=redis_for(web_settings)).get_job_ids()
    assert queued == [f"score-{t.connection_id}"]  # enqueued by dotted path for a worker, not run in the web process
    again = client.post(f"/schedules/{new['id']}/run", data={"csrf_token": csrf})
    assert "already waiting" in client.get(again.location).get_data(as_text=True)


def test_runs_show_counts_calls_and_the_failing_records_with_the_crms_error(alpha) -> None:
    client, _, t = alpha
    listing = client.get("/runs").get_data(as_text=True)
    assert f'href="/runs/{t.run_id}"' in listing and "partial" in listing
    detail = client.get(f"/runs/{t.run_id}").get_data(as_text=True)
    assert "X-1" in detail and "bad amount" in detail and "InvalidRecord" in detail
    api = client.get(f"/api/v1/runs/{t.run_id}").get_json()
    assert api["api_calls"] == 7 and api["failures"][0] == {"record": "X-1", "object": "account",
                                                            "code": "InvalidRecord", "message": "bad amount"}
    bad = client.get("/api/v1/runs?status=sleeping")
    assert bad.status_code == 400 and "status" in bad.get_json()["fields"]


def test_a_running_run_polls_its_live_progress(alpha, web_engine) -> None:
    client, _, t = alpha
    run_id = open_run(web_engine, t.connection_id, "sync_incremental", trigger="schedule")
    heartbeat(web_engine, run_id, object="contact", pages=3, counts={"created": 40})
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert f'hx-get="/runs/{run_id}/progress"' in page and 'hx-trigger="every 1s"' in page
    fragment = client.get(f"/runs/{run_id}/progress").get_data(as_text=True)
    assert "contact, 3 page(s)" in fragment and "<th>created</th><td>40</td>" in fragment
    assert 'hx-trigger="every 2s"' in client.get("/runs").get_data(as_text=True)


def test_the_scores_page_draws_both_histograms_tiers_and_the_lists(alpha) -> None:
    client, _, t = alpha
    body = client.get(f"/scores?connection_id={t.connection_id}").get_data(as_text=True)
    assert body.count("<svg") == 3 and 'aria-label="Relationship score distribution"' in body
    summary = client.get(f"/api/v1/connections/{t.connection_id}/scores").get_json()
    assert summary["accounts"] == 12 and sum(summary["histograms"]["relationship"]) == 12
    assert sum(summary["tiers"].values()) == 12
    assert body.count('id="at-risk"') == 1 and 'id="risers"' in body and 'id="fallers"' in body


def test_the_account_page_shows_components_drivers_and_the_trend(alpha) -> None:
    client, _, t = alpha
    body = client.get(f"/scores/{t.connection_id}/accounts/{t.account}").get_data(as_text=True)
    assert "<polyline" in body and 'id="components"' in body and "relationship" in body
    api = client.get(f"/api/v1/connections/{t.connection_id}/scores/accounts/{t.account}").get_json()
    assert len(api["components"]) == 12 and api["history"] and api["drivers"]
    assert client.get(f"/scores/{t.connection_id}/accounts/NOPE").status_code == 404


def test_a_draft_with_bad_weights_is_refused_next_to_the_field(alpha, web_engine) -> None:
    client, csrf, _ = alpha
    response = client.post("/model/drafts", data={"csrf_token": csrf, "relationship.weights.value": "-1",
                                                  "experience.weights.speed": "fast"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-experience-weights-speed"' in body and "is not a number" in body
    tiers = client.post("/model/drafts", data={"csrf_token": csrf, "tiers.a_min_value": "0.2",
                                               "tiers.b_min_value": "0.5"})
    assert tiers.status_code == 400 and 'id="err-tiers-b_min_value"' in tiers.get_data(as_text=True)
    with web_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ScoreModel.__table__)).scalar() == 2  # v1 each


def test_a_draft_is_compared_on_distribution_and_backtest_then_published(alpha) -> None:
    client, csrf, t = alpha
    made = client.post("/model/drafts", data={"csrf_token": csrf, "relationship.weights.value": "0.6",
                                              "note": "value matters more"})
    assert made.status_code == 302 and made.location.endswith("/model/2/compare")
    page = client.get(made.location + f"?connection_id={t.connection_id}").get_data(as_text=True)
    assert page.count("<svg") == 2 and 'id="backtest"' in page and 'id="distribution"' in page
    assert "churn AUC" in page and "Publish version 2" in page
    api = client.get(f"/api/v1/score-model/versions/2/compare?connection_id={t.connection_id}").get_json()
    assert api["distribution"]["draft"]["accounts"] == 12 and api["backtest"]["published"]["relationship"]
    client.post("/model/2/publish", data={"csrf_token": csrf})
    assert client.get("/api/v1/score-model").get_json()["published"] == 2
