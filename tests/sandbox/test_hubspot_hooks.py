"""Test hooks: fault injection, call statistics, seeded mutations, reset, and `rapport sandbox hubspot`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import urllib3
from hubspot.crm.contacts import ApiException

from sandbox.hubspot import HubSpotSandbox
from tests.sandbox.hs_fixtures import client, fresh_sandbox, raw  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _hook(sb, method, path, **kw):
    r = requests.request(method, sb.api_base + "/__sandbox__/" + path, timeout=10, **kw)
    r.raise_for_status()
    return r.json()


def test_injected_server_errors_and_429s(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    _hook(sb, "PUT", "faults", json={"error_rate": 1.0, "statuses": [502, 503], "seed": 1})
    api = client(sb)
    with pytest.raises(ApiException) as err:
        api.crm.contacts.basic_api.get_page()
    assert err.value.status in (502, 503)
    statuses = {raw(sb, "GET", "/crm/v3/objects/contacts").status_code for _ in range(20)}
    assert statuses == {502, 503}
    assert requests.post(sb.api_base + "/oauth/v1/token", data={}, timeout=10).status_code == 400  # /crm/ only
    _hook(sb, "PUT", "faults", json={"rate_limit_rate": 1.0})
    r = raw(sb, "GET", "/crm/v3/objects/contacts")
    assert r.status_code == 429 and r.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    _hook(sb, "DELETE", "faults")
    assert raw(sb, "GET", "/crm/v3/objects/contacts").status_code == 200
    bad = requests.put(sb.api_base + "/__sandbox__/faults", json={"error_rate": 2}, timeout=10)
    assert bad.status_code == 400


def test_client_retry_recovers_from_a_share_of_failures(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    _hook(sb, "PUT", "faults", json={"error_rate": 0.3, "statuses": [500, 502, 504], "seed": 4})
    retry = urllib3.Retry(total=10, backoff_factor=0, status_forcelist=(500, 502, 504), allowed_methods=None)
    api = client(sb, retry=retry)
    ids = [r.id for r in api.crm.contacts.get_all()]
    assert sorted(ids, key=int) == [str(i) for i in sb.store.tables["contacts"].live]
    injected = _hook(sb, "GET", "stats")["faults"]["injected"]
    assert sum(injected.values()) > 0


def test_truncated_and_slow_responses(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    _hook(sb, "PUT", "faults", json={"truncate_rate": 1.0})
    r = raw(sb, "GET", "/crm/v3/objects/contacts?limit=5")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)
    _hook(sb, "PUT", "faults", json={"slow_rate": 1.0, "slow_seconds": 0.3})
    r = raw(sb, "GET", "/crm/v3/objects/contacts?limit=1")
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.3


def test_statistics_by_endpoint(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    _hook(sb, "DELETE", "stats")
    api = client(sb)
    api.crm.contacts.basic_api.get_page(limit=2)
    api.crm.contacts.basic_api.get_page(limit=2)
    api.crm.deals.search_api.do_search(public_object_search_request={"limit": 1})
    raw(sb, "GET", "/crm/v3/objects/contacts", token="")
    stats = _hook(sb, "GET", "stats")
    assert stats["calls"]["GET /crm/v3/objects/contacts"] == 3
    assert stats["calls"]["POST /crm/v3/objects/deals/search"] == 1
    assert stats["by_endpoint_status"]["GET /crm/v3/objects/contacts 401"] == 1
    assert stats["total"] == 4 and stats["statuses"]["200"] == 3


def test_mutations_are_seeded_and_bump_modified_stamps(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    before = {t: dict((i, r.modified) for i, r in tab.records.items()) for t, tab in sb.store.tables.items()}
    done = _hook(sb, "POST", "mutate", json={"count": 60, "seed": 11})["applied"]
    assert len(done) == 60
    kinds = {d["kind"] for d in done}
    assert {"ticket_new", "contact_new", "ticket_close"} <= kinds and kinds & {"deal_stage", "deal_won", "deal_lost"}
    for d in done:
        rec = sb.store.tables[d["objectType"]].records[int(d["id"])]
        assert rec.modified > before[d["objectType"]].get(rec.id, 0)
    twin = HubSpotSandbox("small", seed=5, accounts=4, search_lag_s=0)
    assert [(d["kind"], d["objectType"]) for d in twin.mutate(60, seed=11)] == [
        (d["kind"], d["objectType"]) for d in done]
    bad = requests.post(sb.api_base + "/__sandbox__/mutate", json={"count": 0}, timeout=10)
    assert bad.status_code == 400


@pytest.mark.parametrize("accounts", [3, 8])
def test_mutations_only_touch_live_records_whatever_the_seed(accounts):
    # archived contacts keep their association edges, so a mutation that follows edges must skip them
    for seed in range(15):
        sb = HubSpotSandbox("small", seed=seed, accounts=accounts, engagements=False, rate_limits=False)
        tables, linked_dead = sb.store.tables, []

        def watch(events, tables=tables, linked_dead=linked_dead):
            for e in events:  # emitted inside the write: the target's state is the one the write saw
                if e["kind"] == "associationChange" and not e["associationRemoved"]:
                    target = tables[e["toObjectType"]].records[e["toObjectId"]]
                    if target.archived:
                        linked_dead.append(e)

        sb.store.listeners.append(watch)
        done = sb.mutate(150, seed=seed)
        assert len(done) == 150 and not linked_dead, seed
        assert any(r.archived for r in tables["contacts"].records.values()), seed  # the hazard was there


def test_reset_returns_to_the_seeded_portal(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    contacts = sorted(sb.store.tables["contacts"].live)
    client(sb).crm.contacts.basic_api.archive(str(contacts[0]))
    _hook(sb, "POST", "mutate", json={"count": 20})
    _hook(sb, "POST", "reset")
    assert sorted(sb.store.tables["contacts"].live) == contacts
    assert _hook(sb, "GET", "stats")["total"] == 0
    assert _hook(sb, "GET", "info")["access_token"] == sb.info["access_token"]


def test_cli_prints_one_json_line_and_serves():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from connector.cli import main; main()", "sandbox", "hubspot"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) >= {"api_base", "access_token", "client_id", "client_secret", "app_secret", "portal_id"}
        assert info["api_base"].startswith("http://127.0.0.1:")
        r = requests.get(info["api_base"] + "/crm/v3/objects/companies?limit=100", timeout=10,
                         headers={"Authorization": f"Bearer {info['access_token']}"})
        assert r.status_code == 200 and len(r.json()["results"]) == 100
    finally:
        proc.terminate()
        proc.wait(timeout=20)
