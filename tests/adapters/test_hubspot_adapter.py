"""The HubSpot adapter against the sandbox, through the real hubspot-api-client with validation on."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import ConnectionInfo, TaskSpec, WriteItem
from adapters.hubspot import HubSpotAdapter, mapping
from adapters.hubspot import settings as hs
from connector.errors import BudgetExhausted
from sandbox.hubspot import HubSpotSandbox
from sandbox.hubspot.faults import FaultConfig
from sandbox.hubspot.schema import DEAL_STAGES
from sandbox.hubspot.store import Source

TYPES = {"account": ["companies"], "contact": ["contacts"], "deal": ["deals"], "case": ["tickets"],
         "activity": ["calls", "emails", "meetings"]}


@pytest.fixture(scope="module")
def portal():
    sb = HubSpotSandbox(size="small", seed=5, rate_limits=False, search_lag_s=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def sb(portal):
    portal.reset()
    return portal


SANDBOX_OPTIONS = {"client_side_validation": True, "backoff_scale": 0.01}


def make_adapter(sb, *, webhooks_arriving=True, **options) -> HubSpotAdapter:
    info = ConnectionInfo(1, "hs", "hubspot", instance_url=sb.info["api_base"], external_org_id=str(sb.portal_id),
                          options={**SANDBOX_OPTIONS, **options}, webhooks_arriving=webhooks_arriving)
    return HubSpotAdapter(info, {"access_token": sb.info["access_token"], "app_secret": sb.info["app_secret"]})


def pulled(adapter, obj, since=None, until=None, full=False, reconcile=False):
    until = until or datetime.now(UTC) + timedelta(seconds=1)
    return [c for page in adapter.pull(obj, since, until, full=full, reconcile=reconcile) for c in page.changes]


def primary_company(sb, t, rid):
    targets = sb.store.assoc.targets(t, rid, "companies")
    primary = [to for to, ids in targets.items() if ids & hs.PRIMARY_COMPANY_TYPE_IDS]
    return str(min(primary or targets)) if targets else None


def test_full_pull_equals_the_portal(sb):
    adapter = make_adapter(sb)
    for obj, types in TYPES.items():
        before = adapter.api_calls
        changes = pulled(adapter, obj, full=True)
        live = {c.external_id: c for c in changes if not c.deleted}
        tables = [sb.store.tables[t] for t in types]
        truth = {str(i): (tb.type, tb.records[i]) for tb in tables for i in tb.live}
        assert set(live) == set(truth), obj
        for ident, change in live.items():
            t, rec = truth[ident]
            props = change.raw["properties"]
            assert {k: props.get(k) for k in rec.props if k in props} == {k: v for k, v in rec.props.items() if k in props}
            assert change.modified_at == mapping.parse_stamp(props[hs.MODIFIED_PROPERTY[t]])
            if t in hs.ASSOCIATED:
                assert change.raw["_rapport"]["account_id"] == primary_company(sb, t, rec.id)
        n = sum(len(tb.live) for tb in tables)
        extra = len(types) + (1 if types[0] in hs.PIPELINE_PROPERTY else 0)  # archived pass, pipelines
        assert adapter.api_calls - before <= sum(math.ceil(len(tb.live) / 100) for tb in tables) + extra
        assert n == len(live)
    deals = {c.external_id: c.raw for c in pulled(adapter, "deal", full=True)}
    stages = {s[0]: (s[3], s[0] == "closedwon") for s in DEAL_STAGES}
    for raw in deals.values():
        derived = raw["_rapport"]
        assert (derived["is_closed"], derived["is_won"]) == stages[raw["properties"]["dealstage"]]
    contact = next(c for c in pulled(adapter, "contact", full=True) if c.raw["properties"].get("associatedcompanyid"))
    assert contact.raw["_rapport"]["account_id"] == contact.raw["properties"]["associatedcompanyid"]


@pytest.mark.parametrize("reconcile", [False, True], ids=["archived-pass-every-run", "reconcile"])
def test_incremental_pull_after_changes(sb, reconcile):
    adapter = make_adapter(sb, **({} if reconcile else {"archived_pass": "always"}))
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    done = sb.mutate(150, seed=1)
    assert {d["kind"] for d in done} >= {"archive", "merge", "deal_won", "ticket_new"}
    until = datetime.now(UTC) + timedelta(seconds=1)
    since_ms = int(since.timestamp() * 1000)
    for obj, types in TYPES.items():
        changes = pulled(adapter, obj, since, until, reconcile=reconcile)
        stamps = [c.modified_at for c in changes]
        assert stamps == sorted(stamps), obj
        tables = [sb.store.tables[t] for t in types]
        changed = {str(r.id) for tb in tables for r in tb.records.values() if not r.archived and r.modified >= since_ms}
        gone = {str(r.id): r for tb in tables for r in tb.records.values() if r.archived and r.archived_at >= since_ms}
        assert {c.external_id for c in changes if not c.deleted} == changed, obj
        deleted = {c.external_id: c for c in changes if c.deleted}
        assert set(deleted) == set(gone), obj
        for ident, rec in gone.items():  # merge losers point to the survivor, plain archives do not
            assert deleted[ident].merged_into == (str(rec.merged_into) if rec.merged_into else None)
    # no search call reached past the 10,000 cap, and nothing was refused
    assert not [k for k in sb.stats.snapshot()["statuses"] if k.startswith("4")]


def _assoc_calls(sb) -> int:
    return sum(n for k, n in sb.stats.snapshot()["calls"].items() if k.startswith("POST /crm/v4/associations/"))


def test_incremental_reads_associations_only_for_records_created_in_the_window(sb):
    adapter = make_adapter(sb)
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    done = sb.mutate(80, seed=2, kinds=["deal_stage", "deal_won", "ticket_close", "ticket_escalate"])
    sb.stats.reset()
    updated = pulled(adapter, "deal", since) + pulled(adapter, "case", since)
    assert {c.external_id for c in updated} == {d["id"] for d in done}
    assert _assoc_calls(sb) == 0  # changes of older records: their stored contact stands
    for c in updated:  # and their company comes with the search, as the primary-company property
        t = "deals" if c.object == "deal" else "tickets"
        derived = c.raw["_rapport"]
        assert derived["keep"] == ["contact_id"] and "contact_id" not in derived and "is_closed" in derived
        assert derived["account_id"] == primary_company(sb, t, int(c.external_id))
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    new = {d["id"] for d in sb.mutate(30, seed=3, kinds=["ticket_new", "ticket_close"]) if d["kind"] == "ticket_new"}
    sb.stats.reset()
    changes = {c.external_id: c for c in pulled(adapter, "case", since)}
    assert new and _assoc_calls(sb) == 1  # one v4 batch read, of their contacts
    for ident in new:
        derived = changes[ident].raw["_rapport"]
        assert derived["account_id"] == primary_company(sb, "tickets", int(ident))
        assert derived["contact_id"] == str(sb.store.assoc.target_ids("tickets", int(ident), "contacts")[0])
        assert "keep" not in derived
    # a window that starts at the newest stamp (a cursor, without look-back) re-reads a record created
    # there: stored already, so its associations are not read again
    [last] = sb.mutate(1, seed=4, kinds=["ticket_new"])
    stamp = pulled(adapter, "case", since)[-1].modified_at
    sb.stats.reset()
    again = pulled(adapter, "case", stamp)
    assert [c.external_id for c in again] == [last["id"]] and _assoc_calls(sb) == 0


def test_a_deal_moved_to_another_company_is_found_by_search_with_its_new_company(sb):
    adapter = make_adapter(sb)
    source = Source("CRM_UI", "")
    deal = sb.store.tables["deals"].records[min(sb.store.tables["deals"].live)]
    old = int(primary_company(sb, "deals", deal.id))
    other = next(i for i in sb.store.tables["companies"].live if i != old)
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    with sb.store.lock:
        sb.store.disassociate("deals", deal.id, "companies", old, source)
        sb.store.associate_default("deals", deal.id, "companies", other, source)
    sb.stats.reset()
    [moved] = pulled(adapter, "deal", since)
    assert moved.external_id == str(deal.id) and moved.raw["_rapport"]["account_id"] == str(other)
    assert _assoc_calls(sb) == 0
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    with sb.store.lock:  # no Primary company left: the property empties, and the company is read
        sb.store.disassociate("deals", deal.id, "companies", other, source)
        sb.store.associate("deals", deal.id, "companies", old, 341, source)
    sb.stats.reset()
    [left] = pulled(adapter, "deal", since)
    assert left.raw["_rapport"]["account_id"] == str(old) and _assoc_calls(sb) == 1
    assert left.raw["_rapport"]["keep"] == ["contact_id"]


def test_a_few_companies_to_read_among_new_records_cost_one_read(sb):
    adapter = make_adapter(sb, association_batch_limit=20)
    source = Source("CRM_UI", "")
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    orphans = []
    for n in range(40):  # a new ticket now and then, and three older ones losing their Primary company
        sb.mutate(12, seed=200 + n, kinds=["ticket_close", "ticket_escalate"])
        sb.mutate(1, seed=300 + n, kinds=["ticket_new"])
        if n % 13 == 0:
            ticket = sb.store.tables["tickets"].live[n]
            with sb.store.lock:
                sb.store.disassociate("tickets", ticket, "companies", int(primary_company(sb, "tickets", ticket)),
                                      source)
            orphans.append(str(ticket))
    sb.stats.reset()
    changes = {c.external_id: c for c in pulled(adapter, "case", since)}
    assert _assoc_calls(sb) == 2 + 1  # two full batches of contacts, and one of the companies
    for ident in orphans:
        assert changes[ident].raw["_rapport"]["account_id"] is None
        assert changes[ident].raw["_rapport"]["keep"] == ["contact_id"]


def _archived_lists(sb) -> int:
    return sum(n for k, n in sb.stats.snapshot()["calls"].items() if k.startswith("GET /crm/v3/objects/"))


def test_associations_are_read_in_full_batches_of_new_records(sb):
    adapter = make_adapter(sb, association_batch_limit=20)
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    new = []
    for n in range(40):  # a new ticket among every dozen changes: spread over several search pages
        sb.mutate(12, seed=100 + n, kinds=["ticket_close", "ticket_escalate", "ticket_reopen"])
        new += [d["id"] for d in sb.mutate(1, seed=n, kinds=["ticket_new"])]
    assert len(new) == 40
    sb.stats.reset()
    changes = {c.external_id: c for c in pulled(adapter, "case", since)}
    assert len(changes) > hs.SEARCH_LIMIT  # new records on more than one search page
    assert _assoc_calls(sb) == 2  # two full batches of 20 new records' contacts (their company is a property)
    for ident in new:
        assert changes[ident].raw["_rapport"]["account_id"] == primary_company(sb, "tickets", int(ident))
    stamps = [c.modified_at for c in changes.values()]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(("mode", "secret", "arriving", "archived_lists"), [
    (None, True, True, 0), ("auto", True, True, 0), (None, False, True, 1), (None, True, False, 1),
    ("always", True, True, 1), ("reconcile", False, False, 0)])
def test_archived_pass_of_incremental_runs_is_an_option(sb, mode, secret, arriving, archived_lists):
    # by default, deletions are left to webhooks only where they can be verified and have arrived lately
    adapter = make_adapter(sb, webhooks_arriving=arriving, **({"archived_pass": mode} if mode else {}))
    if not secret:  # a connection that cannot verify webhooks gets no deletion events
        adapter.client.secrets.pop("app_secret")
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    sb.stats.reset()
    pulled(adapter, "deal", since)
    assert _archived_lists(sb) == archived_lists
    assert sum(n for k, n in sb.stats.snapshot()["calls"].items() if k.endswith("/search")) == 1
    sb.stats.reset()
    pulled(adapter, "deal", since, reconcile=True)
    assert _archived_lists(sb) == 1
    sb.stats.reset()
    pulled(adapter, "activity", since)  # no deletion webhooks: their deletions wait for reconcile runs too
    assert _archived_lists(sb) == 3 * archived_lists
    with pytest.raises(Exception, match="archived_pass must be one of"):
        pulled(make_adapter(sb, archived_pass="sometimes"), "deal", since)


def test_plain_deletions_wait_for_their_webhook_or_a_reconcile_run_merges_do_not(sb):
    adapter = make_adapter(sb)
    since = datetime.now(UTC) - timedelta(milliseconds=5)
    sb.mutate(60, seed=3, kinds=["merge", "archive"])
    records = sb.store.tables["contacts"].records

    def survivor(rec):  # the survivor's merged ids name the records merged into its own losers too
        return survivor(records[rec.merged_into]) if rec.merged_into else str(rec.id)

    losers = {str(r.id): survivor(r) for r in records.values() if r.merged_into}
    archived = {str(r.id) for r in records.values() if r.archived and not r.merged_into}
    assert losers and archived
    window = {c.external_id: c for c in pulled(adapter, "contact", since) if c.deleted}
    assert {i: c.merged_into for i, c in window.items()} == losers
    swept = {c.external_id: c for c in pulled(adapter, "contact", since, reconcile=True) if c.deleted}
    assert set(swept) >= archived | set(losers)
    assert all(swept[i].merged_into is None for i in archived)


def test_fetch_by_id(sb):
    adapter = make_adapter(sb)
    sb.mutate(60, seed=3, kinds=["merge", "archive"])
    contacts = sb.store.tables["contacts"]
    loser = next(r for r in contacts.records.values() if r.merged_into)
    archived = next(r for r in contacts.records.values() if r.archived and not r.merged_into)
    live = contacts.records[contacts.live[0]]
    got = {c.external_id: c for c in adapter.fetch("contact", [str(live.id), str(loser.id), str(archived.id), "999999"])}
    assert not got[str(live.id)].deleted and got[str(live.id)].raw["properties"]["email"] == live.props["email"]
    assert got[str(loser.id)].merged_into == str(loser.merged_into)
    assert got[str(archived.id)].deleted and got[str(archived.id)].merged_into is None
    assert got["999999"].deleted


def test_fetched_deals_read_only_their_contacts(sb):
    adapter = make_adapter(sb)
    ids = [str(i) for i in sb.store.tables["deals"].live[:150]]
    sb.stats.reset()
    got = {c.external_id: c.raw["_rapport"] for c in adapter.fetch("deal", ids)}
    assert _assoc_calls(sb) == 1  # their companies come with them, as the primary-company property
    for ident in ids:
        contacts = sb.store.assoc.target_ids("deals", int(ident), "contacts")
        assert got[ident]["account_id"] == primary_company(sb, "deals", int(ident))
        assert got[ident]["contact_id"] == (str(contacts[0]) if contacts else None) and "keep" not in got[ident]


def test_faults_are_retried_and_lose_nothing(sb):
    clean = {obj: {c.external_id: c.raw["properties"] for c in pulled(make_adapter(sb), obj, full=True)}
             for obj in ("contact", "deal", "case", "activity")}
    sb.faults.configure(FaultConfig(error_rate=0.05, truncate_rate=0.03, rate_limit_rate=0.02, seed=4))
    adapter = make_adapter(sb)
    for obj, expected in clean.items():
        got = {c.external_id: c.raw["properties"] for c in pulled(adapter, obj, full=True)}
        assert got == expected, obj
    since = datetime.now(UTC) - timedelta(days=3650)
    assert {c.external_id for c in pulled(adapter, "deal", since)} == set(clean["deal"])
    injected = sb.faults.describe()["injected"]
    assert sum(injected.values()) >= 3  # the run really met server errors, 429s and cut-off bodies


def test_an_account_being_migrated_is_waited_for_as_hubspot_says(sb):
    """477: HubSpot moves the account's data between data centres and says how long in Retry-After."""
    clean = {c.external_id for c in pulled(make_adapter(sb), "deal", full=True)}
    sb.faults.configure(FaultConfig(error_rate=0.3, statuses=[477], retry_after_s=1, seed=2))
    adapter = make_adapter(sb, backoff_scale=0.001)
    waits: list[float] = []
    adapter.client._sleep = waits.append  # type: ignore[method-assign]
    assert {c.external_id for c in pulled(adapter, "deal", full=True)} == clean
    assert sb.faults.describe()["injected"]["477"] > 0 and waits and set(waits) == {0.001}  # 1 s, scaled
    sb.faults.configure(FaultConfig(error_rate=1.0, statuses=[477], retry_after_s=7200))
    with pytest.raises(BudgetExhausted) as paused:  # hours: the run pauses and resumes then
        pulled(make_adapter(sb), "deal", full=True)
    assert (paused.value.code, paused.value.resume_after) == ("MIGRATION_IN_PROGRESS", 7200)


def test_write_scores_in_batches_of_100(sb):
    adapter = make_adapter(sb)
    assert len(adapter.ensure_fields("account", mapping.score_fields("account"))) == 6
    companies = sb.store.tables["companies"]
    ids = [str(i) for i in companies.live[:98]]
    scored = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    items = [WriteItem("account", i, {"rapport_relationship_score": 70 + n % 30, "rapport_tier": "AB"[n % 2],
                                      "rapport_trend": -3.0, "rapport_drivers": "recent meetings; open urgent ticket",
                                      "rapport_scored_at": scored, "rapport_experience_score": 55.5})
             for n, i in enumerate(ids)]
    items[5:5] = [WriteItem("account", "424242", {"rapport_tier": "A"})]  # not in HubSpot
    before = adapter.api_calls
    results = adapter.write("account", items)
    assert adapter.api_calls - before == 1
    assert [r.external_id for r in results] == [i.external_id for i in items]
    failed = [r for r in results if not r.ok]
    assert [(r.external_id, r.error_code, r.retriable) for r in failed] == [("424242", "OBJECT_NOT_FOUND", False)]
    rec = companies.records[int(ids[1])]
    assert rec.props["rapport_tier"] == "B" and rec.props["rapport_trend"] == "-3"
    assert mapping.parse_stamp(rec.props["rapport_scored_at"]) == scored
    adapter.ensure_fields("contact", mapping.score_fields("contact"))
    more = [WriteItem("contact", str(i), {"rapport_tier": "C"}) for i in sb.store.tables["contacts"].live[:250]]
    before = adapter.api_calls
    assert all(r.ok for r in adapter.write("contact", more))
    assert adapter.api_calls - before == 3  # 100 + 100 + 50


def test_ensure_fields_is_idempotent_and_described(sb):
    adapter = make_adapter(sb)
    specs = mapping.score_fields("contact")
    assert sorted(adapter.ensure_fields("contact", specs)) == sorted(s.name for s in specs)
    before = adapter.api_calls
    assert adapter.ensure_fields("contact", specs) == []
    assert adapter.api_calls - before == 2  # list groups, list properties; nothing created
    fields = {f.name: f for f in adapter.describe("contact")}
    assert fields["rapport_tier"].custom and fields["rapport_tier"].updateable
    assert not fields["lastmodifieddate"].custom and not fields["lastmodifieddate"].updateable
    assert fields["rapport_relationship_score"].type == "number"
    groups = {g for g, _ in []}
    assert groups == set()


def test_ensure_fields_refuses_a_conflicting_property(sb):
    adapter = make_adapter(sb)
    adapter.ensure_fields("account", mapping.score_fields("account"))
    clash = [s for s in mapping.score_fields("account") if s.name == "rapport_tier"][0]
    with pytest.raises(Exception, match="exists with type"):
        adapter.ensure_fields("account", [type(clash)(name="rapport_tier", label="x", type="number")])


def test_create_task_on_a_company(sb):
    adapter = make_adapter(sb)
    company = str(sb.store.tables["companies"].live[3])
    due = datetime(2025, 7, 2, 9, 0, tzinfo=UTC)
    task_id = adapter.create_task(TaskSpec("account", company, "Score dropped", "Relationship 80 -> 55", "31000001", due))
    task = sb.store.tables["tasks"].records[int(task_id)]
    assert task.props["hs_task_subject"] == "Score dropped" and task.props["hubspot_owner_id"] == "31000001"
    assert mapping.parse_stamp(task.props["hs_timestamp"]) == due
    assert int(company) in sb.store.assoc.targets("tasks", int(task_id), "companies")


def test_search_rewindows_past_ten_thousand_when_many_share_a_stamp(sb, monkeypatch):
    # a small cap stands in for HubSpot's 10,000 so that 700 records on one millisecond force the id sweep
    monkeypatch.setattr(hs, "SEARCH_RESULT_CAP", 400)
    contacts = sb.store.tables["contacts"]
    stamp = sb.store.clock()
    for rid in list(contacts.live[:700]):
        sb.store.update("contacts", contacts.records[rid], {"jobtitle": "Buyer"}, Source("CRM_UI", "u"), stamp=stamp)
    at = mapping.parse_stamp(str(stamp))
    assert at is not None
    changes = pulled(make_adapter(sb), "contact", at, at + timedelta(milliseconds=1))
    assert len(changes) == 700 and len({c.external_id for c in changes}) == 700


@pytest.mark.parametrize("shared_stamp", [False, True], ids=["own-stamps", "one-stamp"])
def test_a_record_edited_while_a_window_is_paged_costs_no_other_record(sb, monkeypatch, shared_stamp):
    """Search pages by offset: a record already read that a user edits meanwhile leaves the window,
    and the next page's offset would pass over the record that moved up into its place."""
    contacts, ui = sb.store.tables["contacts"], Source("CRM_UI", "u")
    edit_after = 1
    if shared_stamp:  # every record on one millisecond: a small cap forces sweeps by id of two pages each,
        monkeypatch.setattr(hs, "SEARCH_RESULT_CAP", 400)  # the second sweep edited after its first page
        edit_after = 5
        stamp = sb.store.clock()
        for rid in list(contacts.live):
            sb.store.update("contacts", contacts.records[rid], {"jobtitle": "Buyer"}, ui, stamp=stamp)
    since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(seconds=1)
    window = {str(i) for i in contacts.live}
    assert len(window) > 1000
    got: list[str] = []
    for n, page in enumerate(make_adapter(sb).reader._search_windows("contacts", since, until), 1):
        got += [str(r["id"]) for r in page]
        if n == edit_after:
            sb.store.update("contacts", contacts.records[int(got[-1])], {"jobtitle": "Edited meanwhile"}, ui,
                            stamp=int(until.timestamp() * 1000) + 5)
    assert set(got) == window  # the edited one is read again by the next window


def test_oauth_tokens_are_refreshed_and_persisted(sb):
    status, location = sb.oauth.authorize_decision({"client_id": sb.info["client_id"], "decision": "grant",
                                                    "redirect_uri": "https://rapport.example.com/oauth/callback",
                                                    "scope": " ".join(hs.OAUTH_SCOPES)})
    assert status == 302
    code = location.split("code=")[1].split("&")[0]
    saved = []
    info = ConnectionInfo(2, "hs-oauth", "hubspot", instance_url=sb.info["api_base"],
                          options={"client_side_validation": True})
    adapter = HubSpotAdapter(info, {"client_id": sb.info["client_id"], "client_secret": sb.info["client_secret"]},
                             on_secrets=saved.append)
    adapter.client.authorize(code, "https://rapport.example.com/oauth/callback")
    assert adapter.client.portal_id() == str(sb.portal_id)
    first = saved[-1]["access_token"]
    sb.oauth.expire_access_tokens()  # HubSpot answers 401 EXPIRED_AUTHENTICATION: refresh once, go on
    assert pulled(adapter, "account", full=True)
    assert saved[-1]["access_token"] != first and saved[-1]["refresh_token"] == saved[0]["refresh_token"]
    # a token about to expire is refreshed before the call, without a 401
    adapter.client.secrets["expires_at"] = 0
    sb.stats.reset()
    pulled(adapter, "account", full=True)
    assert "401" not in sb.stats.snapshot()["statuses"] and len(saved) == 3


def test_dead_credentials_say_what_to_do(sb):
    info = ConnectionInfo(3, "hs", "hubspot", instance_url=sb.info["api_base"])
    with pytest.raises(Exception, match="reconnect|invalid") as bad_token:
        pulled(HubSpotAdapter(info, {"access_token": "pat-na1-wrong"}), "account", full=True)
    assert type(bad_token.value).__name__ == "AuthError"
    dead = HubSpotAdapter(info, {"client_id": sb.info["client_id"], "client_secret": sb.info["client_secret"],
                                 "refresh_token": "na1-dead"})
    with pytest.raises(Exception, match="refused the OAuth refresh_token grant") as dead_refresh:
        pulled(dead, "account", full=True)
    assert "reinstall" in str(dead_refresh.value)


def test_a_write_to_a_merged_away_id_says_which_record_took_it(sb):
    adapter = make_adapter(sb)
    adapter.ensure_fields("contact", mapping.score_fields("contact"))
    sb.mutate(60, seed=3, kinds=["merge"])
    contacts = sb.store.tables["contacts"]
    loser = next(r for r in contacts.records.values() if r.merged_into)
    survivor = contacts.find(None, str(loser.id))
    other = next(i for i in contacts.live if i != survivor.id)
    results = adapter.write("contact", [WriteItem("contact", str(loser.id), {"rapport_tier": "C"}),
                                        WriteItem("contact", str(other), {"rapport_tier": "A"})])
    # HubSpot applies the merged-away id's values to the survivor: the result says so, so that the
    # survivor's own values are written again
    assert [(r.external_id, r.ok, r.error_code, r.landed_on) for r in results] == [
        (str(loser.id), False, "MERGED", str(survivor.id)), (str(other), True, None, None)]
    assert survivor.props["rapport_tier"] == "C"
