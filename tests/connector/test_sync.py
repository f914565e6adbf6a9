"""The sync engine against the in-memory CRM, on SQLite and PostgreSQL: windows, crashes, deletes, merges."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

import adapters
from adapters.base import Change
from connector import cursors
from connector.errors import BudgetExhausted, ConfigError, RetriableError
from connector.mappings import load_mapping
from connector.model import SyncRun
from connector.sync import apply_changes, sync_connection
from sandbox.memory import MemoryCRM
from tests.connector.sync_helpers import MEMORY, add_score, memory_connection, mismatches, rows, scores

ALL = ("account", "contact", "deal", "case", "activity")


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> MemoryCRM:
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)
    return MemoryCRM(page_size=3)


@pytest.fixture
def settings(make_settings):
    return make_settings(RAPPORT_SYNC_LOOKBACK_SECONDS=1)


def run(engine, run_id: int) -> dict:
    t = SyncRun.__table__
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.id == run_id)).mappings().one())


def last_run(engine) -> dict:
    t = SyncRun.__table__
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t).order_by(t.c.id.desc()).limit(1)).mappings().one())


def world(crm: MemoryCRM, accounts: int = 4) -> list[str]:
    ids = [crm.create("account") for _ in range(accounts)]
    for i, a in enumerate(ids):
        c = crm.create("contact", {"AccountId": a})
        crm.create("deal", {"AccountId": a, "ContactId": c})
        crm.create("case", {"AccountId": a, "ContactId": c if i % 2 else None})
        crm.create("activity", {"AccountId": a, "ContactId": c})
        crm.tick(7)
    return ids


def test_first_sync_copies_every_object_and_links_accounts(engine, settings, crm):
    world(crm)
    crm.create("contact", {"AccountId": "001999999999"})  # its account is not visible to us
    crm.tick()
    cid, adapter = memory_connection(engine, settings, crm)
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert mismatches(engine, crm, cid, ALL) == []
    r = run(engine, run_id)
    assert r["status"] == "succeeded" and r["kind"] == "sync_incremental"
    assert r["counts"]["account"]["created"] == 4 and r["counts"]["contact"]["created"] == 5
    assert r["api_calls"] == adapter.api_calls == 2 + 2 + 2 + 2 + 2  # ceil(n/3) pages, plus the empty last one
    assert r["window_end"] == crm.now and r["duration_s"] is not None
    orphan = [row for row in rows(engine, "contact", cid).values() if row["account_external_id"] == "001999999999"]
    assert orphan[0]["account_id"] is None


def test_a_crash_between_pages_of_one_stamp_loses_and_doubles_nothing(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    first = crm.create("account")
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick(2000))  # later reads are windowed
    ids = [crm.create("account") for _ in range(8)]  # all at one stamp, over three pages with `first`
    crm.tick()
    crm.fail_after(1)
    with pytest.raises(RetriableError):
        sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    failed = last_run(engine)
    assert failed["status"] == "failed" and "connection reset" in failed["error"]
    assert failed["counts"]["account"]["created"] == 2 and failed["api_calls"] == 2
    assert sorted(rows(engine, "account", cid)) == [first, *ids[:2]]
    with engine.connect() as conn:
        cursor = cursors.load(conn, cid, "account")
    assert cursor.value == crm.records["account"][ids[0]].stamp and sorted(cursor.seen) == ids[:2]

    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    assert run(engine, run_id)["counts"]["account"] == dict(created=6, updated=0, deleted=0, merged=0, unchanged=2,
                                                           skipped=0)  # the two seen at the cursor's stamp
    assert mismatches(engine, crm, cid, ["account"]) == []


def test_a_first_read_saves_its_cursor_only_when_the_object_is_done(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    ids = [crm.create("account") for _ in range(5)]
    crm.tick()
    crm.fail_after(1)
    with pytest.raises(RetriableError):
        sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    with engine.connect() as conn:
        assert cursors.load(conn, cid, "account") == cursors.Cursor()  # not ascending: nothing to resume from
    assert len(rows(engine, "account", cid)) == 3  # yet the committed page stays
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    with engine.connect() as conn:
        assert sorted(cursors.load(conn, cid, "account").seen) == ids
    assert mismatches(engine, crm, cid, ["account"]) == []


def test_a_change_stamped_at_the_cursor_or_in_the_look_back_is_applied_once(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    a, b = crm.create("account"), crm.create("account")
    crm.tick(2000)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    stamp = crm.records["account"][a].stamp
    crm.update("account", a, {"Name": "Renamed at the same stamp"}, at=stamp)  # same (id, stamp), new content
    crm.update("account", b, {"Name": "Indexed late"}, at=crm.now - timedelta(milliseconds=900))
    crm.tick()
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert run(engine, run_id)["counts"]["account"]["updated"] == 2
    assert mismatches(engine, crm, cid, ALL) == []
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert run(engine, run_id)["counts"]["account"]["updated"] == 0  # re-read by the look-back, not re-applied


def test_the_upper_bound_is_frozen_at_start_so_mid_run_changes_come_next_time(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    ids = [crm.create("account") for _ in range(6)]
    crm.tick()
    until = crm.now

    def meanwhile() -> None:
        crm.between_pages = None
        crm.tick()
        crm.update("account", ids[0], {"Name": "Changed during the run"})
        crm.create("account", {"Name": "Created during the run"})

    crm.between_pages = meanwhile
    sync_connection(engine, settings, cid, adapter=adapter, until=until)
    have = rows(engine, "account", cid)
    assert len(have) == 6 and have[ids[0]]["name"] != "Changed during the run"
    assert mismatches(engine, crm, cid, ["account"], until=until) == []
    crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert mismatches(engine, crm, cid, ["account"]) == []


def test_deletes_restores_and_full_sync_of_purged_records(engine, settings, crm):
    ids = world(crm)
    cid, adapter = memory_connection(engine, settings, crm)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick())
    contact = next(iter(rows(engine, "contact", cid)))
    crm.delete("account", ids[0])
    crm.delete("account", ids[1])
    crm.delete("contact", contact)
    crm.tick()
    crm.restore("account", ids[1])
    crm.purge("contact", contact)  # emptied from the recycle bin before we saw the delete
    crm.tick()
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert run(engine, run_id)["counts"]["account"]["deleted"] == 1
    have = rows(engine, "account", cid)
    assert have[ids[0]]["is_deleted"] and not have[ids[1]]["is_deleted"]
    assert not rows(engine, "contact", cid)[contact]["is_deleted"]  # an incremental read cannot see a purge

    calls = adapter.api_calls
    run_id = sync_connection(engine, settings, cid, adapter=adapter, full=True, until=crm.tick())
    r = run(engine, run_id)
    assert r["kind"] == "sync_full" and r["counts"]["contact"]["deleted"] == 1
    assert rows(engine, "contact", cid)[contact]["is_deleted"]
    assert r["api_calls"] == adapter.api_calls - calls
    assert mismatches(engine, crm, cid, ALL, purged=[contact]) == []


def test_full_sync_keeps_a_record_changed_during_the_run(engine, settings, crm):
    ids = [crm.create("account") for _ in range(5)]
    cid, adapter = memory_connection(engine, settings, crm)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick())

    def meanwhile() -> None:
        crm.between_pages = None
        crm.tick()
        crm.update("account", ids[4], {"Name": "Moved past the bound"})  # the full read will not return it

    crm.between_pages = meanwhile
    sync_connection(engine, settings, cid, adapter=adapter, full=True, until=crm.now)
    have = rows(engine, "account", cid)[ids[4]]
    assert not have["is_deleted"] and have["name"] == "Moved past the bound"  # verified by fetch, not deleted


def test_merge_moves_scores_history_and_children_to_the_survivor(engine, settings, crm):
    loser, survivor, other = world(crm, 3)
    cid, adapter = memory_connection(engine, settings, crm)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick())
    add_score(engine, cid, "account", loser, 40.0)
    add_score(engine, cid, "account", loser, 45.0)
    add_score(engine, cid, "account", other, 70.0)
    crm.merge("account", loser, survivor)
    crm.merge("account", other, survivor)
    crm.tick()
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    assert run(engine, run_id)["counts"]["account"]["merged"] == 2
    have = rows(engine, "account", cid)
    assert have[loser]["is_deleted"] and have[loser]["merged_into"] == survivor
    current, history = scores(engine, cid)
    assert current == [("account", survivor, 45.0)]  # the first loser's score moved; the second's had a place taken
    assert history == sorted([("account", survivor, 40.0), ("account", survivor, 45.0), ("account", survivor, 70.0)])
    survivor_pk = have[survivor]["id"]
    children = [r for o in ("contact", "deal", "case") for r in rows(engine, o, cid).values()]
    assert {(r["account_external_id"], r["account_id"]) for r in children} == {(survivor, survivor_pk)}
    assert mismatches(engine, crm, cid, ALL) == []


@pytest.mark.parametrize("page_size", [1, 3])
def test_a_chain_of_merges_at_one_stamp_ends_at_the_last_survivor(engine, settings, crm, page_size):
    crm.page_size = page_size
    b, a, c = world(crm, 3)  # b has the smallest id: "b into c" is read before "a into b"
    cid, adapter = memory_connection(engine, settings, crm)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick())
    add_score(engine, cid, "account", [a, b], 50.0)
    crm.merge("account", a, b)
    crm.merge("account", b, c)  # the same millisecond
    crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    current, history = scores(engine, cid)
    assert current == [("account", c, 50.0)] and history == [("account", c, 50.0)] * 2
    have = rows(engine, "account", cid)
    assert (have[a]["merged_into"], have[b]["merged_into"]) == (b, c)  # as the CRM says
    assert {r["account_external_id"] for r in rows(engine, "contact", cid).values()} == {c}
    assert mismatches(engine, crm, cid, ALL) == []


def test_merge_seen_before_the_children_sync_repoints_them_at_once(engine, settings, crm):
    loser, survivor = world(crm, 2)
    cid, adapter = memory_connection(engine, settings, crm)
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick())
    crm.merge("account", loser, survivor)
    crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    contacts = rows(engine, "contact", cid).values()
    assert {r["account_external_id"] for r in contacts} == {survivor}


def test_a_record_the_mapping_cannot_read_is_skipped_and_the_rest_sync(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    good = crm.create("account")
    bad = crm.create("account", {"Employees": "a few hundred"})
    crm.tick()
    run_id = sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    r = run(engine, run_id)
    assert r["status"] == "partial" and r["counts"]["account"]["skipped"] == 1
    assert r["errors"] == [{"object": "account", "external_id": bad, "error": "InvalidRecord",
                            "message": r["errors"][0]["message"]}]
    assert "account.employees from Employees" in r["errors"][0]["message"]
    assert "'a few hundred' is not a number" in r["errors"][0]["message"]
    assert list(rows(engine, "account", cid)) == [good]
    crm.update("account", bad, {"Employees": "300"})
    crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.now, objects=["account"])
    assert rows(engine, "account", cid)[bad]["employees"] == 300


def test_a_spent_budget_pauses_the_run_and_keeps_committed_pages(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    for _ in range(5):
        crm.create("account")
    crm.tick()
    crm.fail_after(1, BudgetExhausted("daily share of API calls used", resume_after=3600))
    with pytest.raises(BudgetExhausted):
        sync_connection(engine, settings, cid, adapter=adapter, until=crm.now)
    r = last_run(engine)
    assert r["status"] == "paused" and "daily share" in r["error"]
    assert len(rows(engine, "account", cid)) == 3


def test_unknown_or_unmapped_objects_are_refused(engine, settings, crm):
    cid, adapter = memory_connection(engine, settings, crm)
    with pytest.raises(ConfigError, match="unknown object 'lead'"):
        sync_connection(engine, settings, cid, adapter=adapter, objects=["lead"])
    assert last_run(engine)["status"] == "failed"
    with pytest.raises(ConfigError, match="no connection named 'nope'"):
        sync_connection(engine, settings, "nope", adapter=adapter)  # type: ignore[arg-type]


def test_apply_changes_from_a_webhook_upserts_and_merges(engine, settings, crm):
    a, b = world(crm, 2)
    cid, adapter = memory_connection(engine, settings, crm)
    mapping = load_mapping(engine, cid, "memory")
    crm.update("account", a, {"Name": "Via webhook"})
    counts = apply_changes(engine, cid, "account", adapter.fetch("account", [a]), mapping)
    assert counts["created"] == 1 and rows(engine, "account", cid)[a]["name"] == "Via webhook"
    crm.merge("account", a, b)
    counts = apply_changes(engine, cid, "account", adapter.fetch("account", [a, b]), mapping)
    assert counts["merged"] == 1 and counts["created"] == 1
    gone = Change("account", "001000000404", crm.now, {}, deleted=True)
    assert apply_changes(engine, cid, "account", [gone], mapping)["unchanged"] == 1


def test_an_object_the_first_sync_found_empty_is_searched_by_window_afterwards(engine, settings, crm):
    world(crm)
    crm.records["activity"].clear()  # nothing of this object yet
    cid, adapter = memory_connection(engine, settings, crm)
    bound = crm.tick()
    sync_connection(engine, settings, cid, adapter=adapter, until=bound)
    with engine.connect() as conn:
        assert cursors.load(conn, cid, "activity").value == bound
    windows = []
    pull = adapter.pull

    def recorded(object, since, until, **kwargs):  # type: ignore[no-untyped-def]
        windows.append((object, since))
        return pull(object, since, until, **kwargs)

    adapter.pull = recorded  # type: ignore[method-assign]
    logged = crm.create("activity", {"AccountId": next(iter(crm.records["account"]))})
    sync_connection(engine, settings, cid, adapter=adapter, until=crm.tick(), objects=["activity"])
    assert windows == [("activity", bound - timedelta(seconds=1))]  # not a whole read again
    assert list(rows(engine, "activity", cid)) == [logged]
