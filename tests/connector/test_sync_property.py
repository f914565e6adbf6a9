"""Property: whatever happens in the CRM and however syncs fail, a final clean sync matches the CRM.

A hypothesis state machine drives the in-memory CRM with creates, updates (many at one stamp,
some stamped at the cursor or in the look-back), deletes, restores, purges and merges, scores
records, and interleaves incremental and full syncs that fail between pages. After every sync
that completes, and after a final clean one, the unified tables equal the CRM: nothing lost,
nothing doubled, deleted ones marked, merged scores moved.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test
from sqlmodel import SQLModel

import adapters
from connector import cursors
from connector.db import make_engine
from connector.errors import BudgetExhausted, RetriableError
from connector.mappings import load_mapping
from connector.model import SyncRun
from connector.sync import sync_connection
from sandbox.memory import MemoryCRM
from tests.connector.sync_helpers import MEMORY, add_score, memory_connection, mismatches, rows, scores

OBJECTS = ("account", "contact", "deal")
SCORED = ("account", "contact")
LOOKBACK_S = 1
EXAMPLES = 500
CRASHES = st.sampled_from(["retriable", "budget", "killed"])


class WorkerKilled(Exception):
    """Stands for the process dying mid-run (no error handling of ours sees it coming)."""


def _truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(table.delete())


class SyncMachine(RuleBasedStateMachine):
    """The CRM is the model; the database must follow it."""

    def __init__(self, engine: sa.Engine, app_settings) -> None:
        super().__init__()
        self.engine, self.settings = engine, app_settings
        _truncate(engine)
        self.crm = MemoryCRM(page_size=3)
        self.cid, self.adapter = memory_connection(engine, app_settings, self.crm)
        self.mapping = load_mapping(engine, self.cid, "memory")
        self.merged: dict[str, str] = {}
        self.purged: set[str] = set()
        self.history: list[tuple[str, str, float]] = []
        self.synced_full_since_purge = True
        self.n = 0

    @initialize(page_size=st.sampled_from([3, 5]), accounts=st.integers(0, 6))
    def start(self, page_size: int, accounts: int) -> None:
        """A CRM with some records, synced once, so cursors exist from the first step."""
        self.crm.page_size = page_size
        for n in range(accounts):
            account = self.crm.create("account")
            contact = self.crm.create("contact", {"AccountId": account})
            if n % 2:
                self.crm.create("deal", {"AccountId": account, "ContactId": contact})
        self.crm.tick()
        sync_connection(self.engine, self.settings, self.cid, adapter=self.adapter, until=self.crm.now,
                        objects=OBJECTS)

    # --- what happens in the CRM --------------------------------------------------------------

    def live(self, object: str) -> list[str]:
        return sorted(i for i, r in self.crm.records[object].items() if not r.deleted)

    def parent(self, data: st.DataObject, object: str) -> str | None:
        ids = self.live(object)  # a CRM refuses a lookup to a deleted record
        return data.draw(st.sampled_from(ids)) if ids and data.draw(st.booleans()) else None

    @rule(object=st.sampled_from(OBJECTS), count=st.integers(1, 4), data=st.data())
    def create(self, object: str, count: int, data: st.DataObject) -> None:
        for _ in range(count):
            fields = {}
            if object != "account":
                fields["AccountId"] = self.parent(data, "account")
            if object == "deal":
                fields["ContactId"] = self.parent(data, "contact")
            self.crm.create(object, fields)

    @rule(object=st.sampled_from(OBJECTS), data=st.data(), same=st.booleans())
    def update(self, object: str, data: st.DataObject, same: bool) -> None:
        """Change a record now, or again within the millisecond of its last change."""
        self._update(object, data, "same" if same else "now", 0)

    @rule(object=st.sampled_from(OBJECTS), data=st.data(), when=st.sampled_from(["cursor", "behind", "late"]),
          back_ms=st.sampled_from([1, 2, 10, 500, LOOKBACK_S * 1000]))
    def update_in_the_past(self, object: str, data: st.DataObject, when: str, back_ms: int) -> None:
        """Change a record stamped at the cursor, just under it, or in the past as a late index entry."""
        self._update(object, data, when, back_ms)

    def _update(self, object: str, data: st.DataObject, when: str, back_ms: int) -> None:
        # Past stamps stay within the look-back of the stored cursor: the lag the CRM's index
        # promises; anything older only a full sync can find.
        live = self.live(object)
        if not live:
            return
        with self.engine.connect() as conn:
            cursor = cursors.load(conn, self.cid, object).value
        floor = cursor - timedelta(seconds=LOOKBACK_S) if cursor else None
        if when == "same" and cursor is not None:
            # Prefer a record under the cursor but in the look-back: only the stored row can tell it changed.
            behind = [i for i in live if floor <= self.crm.records[object][i].stamp < cursor]  # type: ignore[operator]
            live = behind or live
        external_id = data.draw(st.sampled_from(live))
        at = {
            "now": None,
            "cursor": cursor,
            "behind": cursor - timedelta(milliseconds=back_ms) if cursor else None,
            "late": self.crm.now - timedelta(milliseconds=back_ms),
            "same": self.crm.records[object][external_id].stamp,
        }[when]
        if at is not None and floor is not None and at < floor:
            at = None
        self.n += 1
        field = {"account": "Name", "contact": "Email", "deal": "Amount"}[object]
        value = f"{self.n}.5" if object == "deal" else f"v{self.n}"
        self.crm.update(object, external_id, {field: value}, at=at)

    @rule(object=st.sampled_from(OBJECTS), data=st.data())
    def resave_under_the_cursor(self, object: str, data: st.DataObject) -> None:
        """X changes, then Y a millisecond later, a sync reads both, then X changes again within its millisecond.

        The second change of X sits under the cursor with the stamp we stored: only its content differs.
        """
        live = self.live(object)
        if len(live) < 2:
            return
        x, y = data.draw(st.lists(st.sampled_from(live), min_size=2, max_size=2, unique=True))
        self.n += 1
        field = {"account": "Name", "contact": "Email", "deal": "Amount"}[object]
        self.crm.update(object, x, {field: f"{self.n}.25" if object == "deal" else f"x{self.n}"}, at=self.crm.tick())
        self.crm.update(object, y, {"OwnerId": f"005{self.n:06d}"}, at=self.crm.tick())
        self.crm.tick()
        self.sync(full=False, crash_after=None, crash="retriable")
        self.crm.update(object, x, {field: f"{self.n}.75" if object == "deal" else f"z{self.n}"},
                        at=self.crm.records[object][x].stamp)

    @rule(object=st.sampled_from(OBJECTS), data=st.data())
    def touch_many(self, object: str, data: st.DataObject) -> None:
        """Many records change at one stamp (a mass update)."""
        live = self.live(object)
        if live:
            for external_id in data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=8, unique=True)):
                self.crm.update(object, external_id, {"OwnerId": f"005{self.n:06d}"})
            self.n += 1

    @rule(object=st.sampled_from(OBJECTS), data=st.data())
    def delete(self, object: str, data: st.DataObject) -> None:
        live = self.live(object)
        if live:
            self.crm.delete(object, data.draw(st.sampled_from(live)))

    @rule(object=st.sampled_from(OBJECTS), data=st.data())
    def restore(self, object: str, data: st.DataObject) -> None:
        binned = sorted(i for i, r in self.crm.records[object].items() if r.deleted and not r.merged_into)
        if binned:
            self.crm.restore(object, data.draw(st.sampled_from(binned)))

    @rule(object=st.sampled_from(OBJECTS), data=st.data())
    def purge(self, object: str, data: st.DataObject) -> None:
        binned = sorted(i for i, r in self.crm.records[object].items() if r.deleted and not r.merged_into)
        if binned:
            external_id = data.draw(st.sampled_from(binned))
            self.crm.purge(object, external_id)
            self.purged.add(external_id)
            self.synced_full_since_purge = False

    @rule(object=st.sampled_from(SCORED), data=st.data())
    def merge(self, object: str, data: st.DataObject) -> None:
        live = self.live(object)
        if len(live) >= 2:
            loser, survivor = data.draw(st.lists(st.sampled_from(live), min_size=2, max_size=2, unique=True))
            self.crm.merge(object, loser, survivor)
            self.merged[loser] = survivor

    @rule(object=st.sampled_from(SCORED), data=st.data())
    def merge_twice(self, object: str, data: st.DataObject) -> None:
        """A into B, then B into C, in one millisecond: read by id, "B into C" may come first."""
        live = self.live(object)
        if len(live) >= 3:
            picked = sorted(data.draw(st.lists(st.sampled_from(live), min_size=3, max_size=3, unique=True)))
            b, a, c = picked[0], picked[1], picked[2]
            self.crm.merge(object, a, b)
            self.crm.merge(object, b, c)
            self.merged[a], self.merged[b] = b, c

    @rule(ms=st.sampled_from([0, 1, 1, 2, 400, 1500]))
    def tick(self, ms: int) -> None:
        self.crm.tick(ms)

    # --- what Rapport does --------------------------------------------------------------------

    @rule(object=st.sampled_from(SCORED))
    def score(self, object: str) -> None:
        """A scoring run: a current score and a history row for every record we hold."""
        self.n += 1
        held = sorted(i for i, row in rows(self.engine, object, self.cid).items() if not row["is_deleted"])
        add_score(self.engine, self.cid, object, held, float(self.n))
        self.history.extend((object, i, float(self.n)) for i in held)

    @rule(full=st.booleans(), crash_after=st.none() | st.integers(0, 8), crash=CRASHES)
    def sync(self, full: bool, crash_after: int | None, crash: str) -> None:
        exc = {"retriable": None, "budget": BudgetExhausted("budget spent"), "killed": WorkerKilled("killed")}[crash]
        self.crm.fail_after(crash_after, exc)
        until = self.crm.now
        try:
            sync_connection(self.engine, self.settings, self.cid, adapter=self.adapter, full=full, until=until,
                            objects=OBJECTS)
        except (RetriableError, WorkerKilled):
            status = self._last_run_status()
            assert status == ("paused" if crash == "budget" else "failed")
            return
        finally:
            self.crm.fail_after(None)
        if full:
            self.synced_full_since_purge = True
        assert self._last_run_status() == "succeeded"
        self.check(until)

    def _last_run_status(self) -> str:
        t = SyncRun.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(t.c.status).order_by(t.c.id.desc()).limit(1)).scalar_one())

    # --- what must hold -----------------------------------------------------------------------

    def check(self, until=None) -> None:
        purged = self.purged if self.synced_full_since_purge else set(self.purged) | set(
            i for o in OBJECTS for i in rows(self.engine, o, self.cid) if i in self.purged)
        problems = mismatches(self.engine, self.crm, self.cid, OBJECTS, until=until, purged=purged,
                              mapping=self.mapping)
        if not self.synced_full_since_purge:  # only a full sync can notice a purge
            problems = [p for p in problems if "purged from the CRM" not in p]
        assert problems == []
        assert len(scores(self.engine, self.cid)[1]) == len(self.history)  # no score history is ever lost

    def owner(self, external_id: str) -> str:
        while external_id in self.merged:
            external_id = self.merged[external_id]
        return external_id

    def teardown(self) -> None:
        self.crm.tick()
        sync_connection(self.engine, self.settings, self.cid, adapter=self.adapter, until=self.crm.now, objects=OBJECTS)
        self.check()
        sync_connection(self.engine, self.settings, self.cid, adapter=self.adapter, full=True, until=self.crm.tick(),
                        objects=OBJECTS)
        self.synced_full_since_purge = True
        self.check()
        current, history = scores(self.engine, self.cid)
        assert Counter(history) == Counter((o, self.owner(i), v) for o, i, v in self.history)
        assert {(o, i) for o, i, _ in current} == {(o, self.owner(i)) for o, i, _ in self.history}


@pytest.fixture
def memory_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(adapters.ADAPTERS, "memory", MEMORY)


def test_unified_tables_follow_the_crm(sqlite_url, make_settings, memory_kind):
    # One migrated SQLite file, emptied per example: fast enough for 500 examples.
    engine = make_engine(sqlite_url)
    app_settings = make_settings(RAPPORT_SYNC_LOOKBACK_SECONDS=LOOKBACK_S)
    try:
        run_state_machine_as_test(
            lambda: SyncMachine(engine, app_settings),
            settings=settings(max_examples=EXAMPLES, stateful_step_count=16, deadline=None, database=None,
                              suppress_health_check=list(HealthCheck)),
        )
    finally:
        engine.dispose()


def test_the_same_on_postgresql_and_sqlite_deterministically(engine, make_settings, memory_kind):
    # A fixed, smaller set of sequences through the `engine` fixture: PostgreSQL too.
    app_settings = make_settings(RAPPORT_SYNC_LOOKBACK_SECONDS=LOOKBACK_S)
    run_state_machine_as_test(
        lambda: SyncMachine(engine, app_settings),
        settings=settings(max_examples=6, stateful_step_count=20, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck)),
    )
