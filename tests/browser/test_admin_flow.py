"""A person's path through the admin app in a real browser: sign in, connect HubSpot through OAuth, edit and
save a mapping, add a schedule and run it, then look at the run and at the scores with their charts.
"""

from __future__ import annotations

import re
import time

import pytest

from connector import auth
from connector.db import make_engine
from sandbox.hubspot import HubSpotSandbox

pytestmark = pytest.mark.redis
PASSWORD = "correct horse battery"


@pytest.fixture
def hubspot():
    sb = HubSpotSandbox("small", seed=21, accounts=10, search_lag_s=0, rate_limits=False).start()
    yield sb
    sb.stop()


def _runs_done(page, *, expected: int, timeout: float = 120.0) -> list[str]:
    """Reload the runs page until `expected` runs are listed and none is still going; their statuses."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = page.locator("#runs tbody tr td:nth-child(4) .status").all_inner_texts()
        if len(statuses) >= expected and "running" not in statuses:
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"the runs did not finish within {timeout} s: {statuses}")
        page.wait_for_timeout(1000)
        page.reload()


def test_admin_connects_hubspot_maps_schedules_runs_and_sees_scores(browser, hubspot, served, screenshots) -> None:
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    try:
        _walk(page, hubspot, served, screenshots)
    except BaseException:
        page.screenshot(path=str(screenshots / "failure.png"), full_page=True)
        raise
    finally:
        page.close()


def _walk(page, hubspot, served, screenshots) -> None:
    engine = make_engine(served.settings.sqlalchemy_url)
    auth.create_user(engine, "admin@acme.example", PASSWORD, role="admin", workspace="acme")
    info = hubspot.info
    page.set_default_timeout(60_000)  # a loaded 2-core machine can be slow

    # sign in
    page.goto(served.url + "/connections")
    assert "/login" in page.url
    page.fill("input[name=email]", "admin@acme.example")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("#err-password").inner_text() == "wrong email or password"
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.url + "/connections")
    page.screenshot(path=str(screenshots / "01-connections-empty.png"), full_page=True)

    # connect HubSpot through OAuth: our form, HubSpot's consent page, back to us
    page.click("text=Add a connection")
    page.fill("input[name=name]", "acme-hubspot")
    page.fill("input[name=client_id]", info["client_id"])
    page.fill("input[name=client_secret]", info["client_secret"])
    page.fill("input[name=api_base]", info["api_base"])
    page.click("#connect")
    page.wait_for_url(re.compile(re.escape(info["authorize_url"]) + r"\?.*"))
    assert str(info["portal_id"]) in page.content()
    page.click("#grant")
    page.wait_for_url(re.compile(re.escape(served.url) + r"/connections/\d+$"))
    assert "Connected through OAuth." in page.content()
    assert page.locator("#webhook-url").inner_text() == served.url + "/webhooks/hubspot"
    page.screenshot(path=str(screenshots / "02-connection.png"), full_page=True)

    # edit the account mapping: preview five records, then save; create the score fields
    page.click("text=Field mappings")
    page.wait_for_selector("text=HubSpot fields")
    page.fill("input[name='src.industry']", "properties.nope")
    page.click("#save-mapping")
    assert "names no field the CRM has" in page.locator("#err-industry").inner_text()
    page.fill("input[name='src.industry']", "properties.city")
    page.click("#preview-mapping")
    page.wait_for_selector("#preview-table")
    assert page.locator("#preview-table tbody tr").count() == 5
    page.screenshot(path=str(screenshots / "03-mapping-preview.png"), full_page=True)
    page.click("#save-mapping")
    page.wait_for_selector("text=Saved the account mapping")
    page.click("button:has-text('Create missing fields')")
    page.wait_for_selector("text=Score fields created")

    # add a schedule (the cron editor explains it) and run it now
    page.click("nav >> text=Schedules")
    page.select_option("select[name=kind]", "run")
    page.fill("#cron-input", "*/30 6-18 * * 1-5")
    page.wait_for_selector("#cron-preview >> text=Every 30 minutes")
    page.screenshot(path=str(screenshots / "04-schedule-editor.png"), full_page=True)
    page.click("#add-schedule")
    page.wait_for_selector("text=Schedule 1 added.")
    page.click("#run-1")
    page.wait_for_url(served.url + "/runs")
    statuses = _runs_done(page, expected=3)  # sync, score, write-back, chained by the worker
    assert set(statuses) <= {"succeeded", "partial"}, statuses
    assert {"sync_incremental", "score", "writeback"} <= set(page.locator("#runs tbody tr td:nth-child(3)").all_inner_texts()
                                                             and [k.split()[0] for k in page.locator(
                                                                 "#runs tbody tr td:nth-child(3)").all_inner_texts()])
    page.screenshot(path=str(screenshots / "05-runs.png"), full_page=True)
    page.click("#runs tbody tr:last-child a")  # the sync run
    page.wait_for_selector("#counts")
    assert "sync_incremental" in page.content() and "created" in page.content()
    page.screenshot(path=str(screenshots / "06-run.png"), full_page=True)

    # scores: both histograms and the tiers, then one account with its trend chart
    page.click("nav >> text=Scores")
    page.wait_for_selector("svg[aria-label='Relationship score distribution']")
    assert page.locator("svg.chart").count() == 3
    assert page.locator("svg.chart rect").count() > 10
    page.screenshot(path=str(screenshots / "07-scores.png"), full_page=True)
    page.click("#top tbody a >> nth=0")
    page.wait_for_selector("#components")
    assert page.locator("svg.chart").count() == 1
    page.screenshot(path=str(screenshots / "08-account.png"), full_page=True)
    engine.dispose()
