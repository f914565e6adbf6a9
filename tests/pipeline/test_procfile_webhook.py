"""End to end through honcho: the Procfile's web, worker and scheduler against PostgreSQL and Redis turn
one signed HubSpot webhook into a fresh score on the company in the CRM, then stop cleanly.

(tests/connector/test_procfile.py starts each process on its own; this runs them together.)
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack

import psutil
import pytest
import requests
from rq import Worker
from rq.cron import CronScheduler

from adapters.hubspot.mapping import parse_stamp
from connector.connections import get_connection
from connector.model import utcnow
from connector.queues import bind, redis_for
from connector.scoring import score_connection
from connector.sync import sync_connection
from connector.writeback import targets_for, writeback_connection
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.store import Source
from tests.pipeline.support import (
    BIN,
    ROOT,
    connect_hubspot,
    free_port,
    new_key,
    process_env,
    settings_for,
    signed_post,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_honcho_runs_the_procfile_and_a_webhook_becomes_a_score_in_the_crm(tmp_path, pg_url, pg_engine, redis_url,
                                                                         procs) -> None:
    settings = settings_for(tmp_path, pg_url, redis_url, new_key())
    bind(settings)
    engine = pg_engine
    with ExitStack() as stack:
        stack.callback(bind, None)
        sb = HubSpotSandbox(size="small", seed=12, accounts=15).start()
        stack.callback(sb.stop)
        cid = connect_hubspot(engine, settings, sb)
        sync_connection(engine, settings, cid)
        score_connection(engine, cid)
        writeback_connection(engine, settings, cid)
        score_field = targets_for(engine, get_connection(engine, cid))["account"]["relationship_score"]
        companies = sb.store.tables["companies"]
        deals = sb.store.tables["deals"]

        # a rep closes a big deal of the company with the lowest score
        def score_of(company: int) -> float:
            return float(companies.records[company].props[score_field])

        open_deals = {c: d for d in deals.live if deals.records[d].props.get("dealstage") not in ("closedwon", "closedlost")
                      for c in sb.store.assoc.target_ids("deals", d, "companies")}
        company = min((c for c in companies.live if c in open_deals), key=score_of)
        deal = open_deals[company]
        before = score_of(company)
        with sb.store.lock:
            sb.store.update("deals", deals.records[deal], {"dealstage": "closedwon", "amount": "4800000"},
                            Source("CRM_UI", "userId:9100001"))

        port = free_port()
        env = process_env(settings, HOST="127.0.0.1")
        honcho = procs.start("honcho", [str(BIN / "honcho"), "start", "--no-colour", "-f", str(ROOT / "Procfile"),
                                        "-d", str(ROOT), "-p", str(port), "web", "worker", "scheduler"], env)
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), "the web process to answer", timeout=120,
                 every=0.3)
        conn = redis_for(settings)
        wait_for(lambda: Worker.all(connection=conn) and CronScheduler.all(connection=conn),
                 "the worker and the scheduler to register", timeout=120, every=0.3)

        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        event = {"eventId": 7_100_001, "subscriptionId": 100_020, "portalId": sb.portal_id,
                 "appId": sb.info["app_id"], "occurredAt": int(time.time() * 1000),
                 "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": deal,
                 "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI"}
        session = requests.Session()
        session.trust_env = False
        sent = utcnow()
        assert signed_post(session, url, [event], sb.info["app_secret"]) == 200

        # the company's score in the CRM moves up, written by the worker
        wait_for(lambda: score_of(company) != before, "the new score to reach the CRM", timeout=120, every=0.2)
        assert score_of(company) > before
        stamp = companies.records[company].props[targets_for(engine, get_connection(engine, cid))["account"]["scored_at"]]
        assert parse_stamp(stamp) >= sent

        processes = honcho.tree()
        assert len(processes) >= 4, [p.cmdline() for p in processes]  # honcho, gunicorn (+ its workers), rapport x2
        honcho.popen.send_signal(signal.SIGINT)  # Ctrl-C: honcho stops every process it started
        code = honcho.popen.wait(timeout=60)
        output = honcho.output()
        _, alive = psutil.wait_procs(processes, timeout=30)
        assert alive == [], f"left running: {[p.pid for p in alive]}"
        assert code in (0, 130), output[-3000:]  # 130: honcho's own answer to Ctrl-C
        # each process shut down its own way: gunicorn's master, RQ's warm shutdown, the cron scheduler
        assert "Shutting down: Master" in output and "warm shut down requested" in output, output[-3000:]
        assert "shutdown complete" in output, output[-3000:]
        assert Worker.all(connection=conn) == [] and CronScheduler.all(connection=conn) == [], output[-3000:]
