"""Write-back sends only what changed, keeps failures apart, and never retries forever."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import FieldInfo, WriteItem, WriteResult
from connector import writeback
from connector.model import Account, Connection, Score, Workspace, WritebackState, utcnow
from connector.store import upsert

TARGETS = {
    "account": {"relationship_score": "Rel__c", "experience_score": "Exp__c", "tier": "Tier__c",
                "drivers": "Drivers__c", "trend": "Trend__c", "scored_at": "ScoredAt__c"},
    "contact": {"relationship_score": "Rel__c"},
}


class RecordingAdapter:
    """Accepts writes like a CRM; ids in `fail` are refused with the given error code."""

    kind = "memory"

    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.api_calls = 0
        self.fail = fail or {}
        self.written: dict[str, dict] = {}

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        results = []
        for start in range(0, len(items), 200):
            self.api_calls += 1
            for item in items[start : start + 200]:
                code = self.fail.get(item.external_id)
                if code:
                    results.append(WriteResult(item.external_id, False, code, f"{code}: refused", code == "UNABLE_TO_LOCK_ROW"))
                else:
                    self.written[item.external_id] = dict(item.values)
                    results.append(WriteResult(item.external_id, True))
        return results


def _setup(engine: Engine, n: int = 5) -> int:
    now = utcnow()
    with engine.begin() as conn:
        ws = conn.execute(sa.insert(Workspace.__table__).values(name="w", created_at=now).returning(sa.column("id"))).scalar_one()
        cid = conn.execute(sa.insert(Connection.__table__).values(
            workspace_id=ws, name="crm", kind="memory", credentials_encrypted="", options={}, status="active",
            created_at=now, updated_at=now).returning(sa.column("id"))).scalar_one()
        upsert(conn, Account, [dict(connection_id=cid, external_id=f"A{i}", name=f"Acc {i}", raw={}, custom={},
                                    is_deleted=False, synced_at=now) for i in range(n)])
    set_scores(engine, cid, {f"A{i}": (50.0 + i, "B") for i in range(n)})
    return cid


def set_scores(engine: Engine, cid: int, scores: dict[str, tuple[float, str]]) -> None:
    now = utcnow()
    with engine.begin() as conn:
        upsert(conn, Score, [dict(connection_id=cid, object="account", external_id=k, relationship=v, experience=70.0,
                                  tier=t, trend=1.0, drivers=[{"text": "+10 won $10k", "points": 10}],
                                  components={}, model_version=1, scored_at=now, at_risk=False)
                             for k, (v, t) in scores.items()], keys=("connection_id", "object", "external_id"))


def run(engine: Engine, cid: int, adapter: RecordingAdapter, **kw: object) -> dict:
    return writeback.writeback_connection(engine, None, cid, adapter=adapter, defaults=TARGETS, **kw)  # type: ignore[arg-type]


def test_writes_changed_scores_once_and_nothing_when_unchanged(engine: Engine) -> None:
    cid = _setup(engine)
    crm = RecordingAdapter()
    first = run(engine, cid, crm)
    assert first["written"] == 5 and crm.api_calls == 1
    assert crm.written["A0"]["Rel__c"] == 50 and crm.written["A0"]["Tier__c"] == "B"
    assert crm.written["A0"]["Drivers__c"] == "+10 won $10k"
    again = run(engine, cid, crm)
    assert again["written"] == 0 and again["api_calls"] == 0 and crm.api_calls == 1


def test_only_moves_of_a_point_or_a_tier_change_are_written(engine: Engine) -> None:
    cid = _setup(engine)
    crm = RecordingAdapter()
    run(engine, cid, crm)
    crm.written.clear()
    set_scores(engine, cid, {"A0": (50.4, "B"), "A1": (52.6, "B"), "A2": (52.0, "A")})
    out = run(engine, cid, crm)
    assert set(crm.written) == {"A1", "A2"} and out["written"] == 2


def test_failures_are_kept_apart_retried_with_backoff_then_given_up(engine: Engine) -> None:
    cid = _setup(engine)
    crm = RecordingAdapter(fail={"A1": "ENTITY_IS_DELETED", "A2": "UNABLE_TO_LOCK_ROW"})
    out = run(engine, cid, crm)
    assert out["written"] == 3 and out["failed"] == 2
    assert {f["id"]: f["gave_up"] for f in out["failures"]} == {"A1": True, "A2": False}
    # Within the backoff the locked record waits; the deleted one is never tried again.
    assert run(engine, cid, crm)["written"] == 0 and crm.api_calls == 1
    state = WritebackState.__table__
    for _attempt in range(2, writeback.MAX_ATTEMPTS + 1):
        with engine.begin() as conn:
            conn.execute(sa.update(state).where(state.c.external_id == "A2").values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        out = run(engine, cid, crm)
        assert out["failed"] == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(state).where(state.c.external_id == "A2")).one()
    assert row.gave_up and row.failure_count == writeback.MAX_ATTEMPTS and "UNABLE_TO_LOCK_ROW" in row.last_error
    calls = crm.api_calls
    with engine.begin() as conn:
        conn.execute(sa.update(state).values(next_attempt_at=None))
    assert run(engine, cid, crm)["written"] == 0 and crm.api_calls == calls


def test_dry_run_reports_and_writes_nothing(engine: Engine) -> None:
    cid = _setup(engine)
    crm = RecordingAdapter()
    run(engine, cid, crm)
    set_scores(engine, cid, {"A0": (80.0, "A"), "A1": (20.0, "C")})
    report = run(engine, cid, crm, dry_run=True)
    account = report["objects"][0]
    assert account["to_write"] == 2 and account["fields"]["tier"] == 2
    assert account["tier_changes"] == {"B→A": 1, "B→C": 1}
    assert account["before"] == {"50-59": 2} and account["after"] == {"20-29": 1, "80-89": 1}
    assert crm.api_calls == 1
    with engine.connect() as conn:
        written = conn.execute(sa.select(WritebackState.__table__.c.written).where(
            WritebackState.__table__.c.external_id == "A0")).scalar_one()
    assert written["relationship_score"] == 50


def test_deleted_records_are_not_written(engine: Engine) -> None:
    cid = _setup(engine, n=2)
    with engine.begin() as conn:
        conn.execute(sa.update(Account.__table__).where(Account.__table__.c.external_id == "A1").values(is_deleted=True))
    crm = RecordingAdapter()
    run(engine, cid, crm)
    assert set(crm.written) == {"A0"}


def test_named_records_are_planned_as_a_full_pass_would(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _setup(engine, n=8)
    crm = RecordingAdapter(fail={"A3": "UNABLE_TO_LOCK_ROW"})
    run(engine, cid, crm)
    crm.fail.clear()
    crm.written.clear()
    with engine.begin() as conn:
        conn.execute(sa.update(Account.__table__).where(Account.__table__.c.external_id == "A5").values(is_deleted=True))
    set_scores(engine, cid, {f"A{i}": (90.0, "A") for i in range(8)})
    monkeypatch.setattr(writeback, "LOOKUP_CHUNK", 2)  # several lookups per object
    named = ["A6", "A0", "A3", "A5", "A2", "A2", "X9"]
    out = run(engine, cid, crm, external_ids={"account": named})
    # the changed live ones, in id order; the deleted one, the one waiting for its retry and an
    # unknown id are not written
    assert list(crm.written) == ["A0", "A2", "A6"] and out["written"] == 3
    assert crm.written["A0"] == {"Rel__c": 90, "Exp__c": 70, "Tier__c": "A", "Drivers__c": "+10 won $10k",
                                 "Trend__c": 1, "ScoredAt__c": crm.written["A0"]["ScoredAt__c"]}
    full = run(engine, cid, crm, dry_run=True)["objects"][0]
    assert full["to_write"] == 3 and full["waiting_for_retry"] == 1  # A1, A4, A7 left; A3 still waits


class MergingAdapter(RecordingAdapter):
    """A CRM where A0 was merged into A1: a write to A0 lands on A1, as HubSpot does."""

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        self.api_calls += 1
        results = []
        for item in items:
            target = "A1" if item.external_id == "A0" else item.external_id
            self.written[target] = dict(item.values)
            results.append(WriteResult(item.external_id, False, "MERGED", "merged into A1", landed_on="A1")
                           if target != item.external_id else WriteResult(item.external_id, True))
        return results


def test_a_write_landing_on_a_merge_survivor_puts_the_survivors_own_scores_back(engine: Engine) -> None:
    cid = _setup(engine)
    crm = MergingAdapter()
    out = run(engine, cid, crm)
    # A1's values were overwritten by A0's in the CRM (A0 comes first): they are written again at once
    assert crm.written["A1"]["Rel__c"] == 51
    assert crm.api_calls == 2 and out["failed"] == 1


def test_a_refusal_the_crm_calls_final_is_not_retried(engine: Engine) -> None:
    cid = _setup(engine, n=2)
    crm = RecordingAdapter(fail={"A1": "FIELD_CUSTOM_VALIDATION_EXCEPTION"})  # refused, not retriable
    out = run(engine, cid, crm)
    assert {f["id"]: f["gave_up"] for f in out["failures"]} == {"A1": True}
    state = WritebackState.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.update(state).values(next_attempt_at=utcnow() - timedelta(days=1)))
    assert run(engine, cid, crm)["api_calls"] == 0


class FieldsAdapter(RecordingAdapter):
    """A CRM whose Rel__c field is read-only until `writable` is set; 2 records per call."""

    write_batch = 2

    def __init__(self) -> None:
        super().__init__()
        self.writable = False
        self.described = 0

    def describe(self, object: str) -> list[FieldInfo]:
        self.api_calls += 1
        self.described += 1
        return [FieldInfo(f, f, "string", True, updateable=f != "Rel__c" or self.writable) for f in TARGETS[object].values()]

    def write(self, object: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        if self.writable:
            return super().write(object, items)
        self.api_calls += 1
        return [WriteResult(i.external_id, False, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to update fields: Rel__c")
                for i in items]


def test_records_refused_for_a_field_wait_untried_until_the_field_can_be_written(engine: Engine) -> None:
    cid = _setup(engine, n=5)
    crm = FieldsAdapter()
    out = run(engine, cid, crm)
    # the first call meets the refusal; the other records carry the same field and are not sent
    assert crm.api_calls == 1 and out["written"] == 0 and out["failed"] == 5
    assert {(f["code"], f["waits_for_fix"]) for f in out["failures"]} == {("INVALID_FIELD_FOR_INSERT_UPDATE", True)}
    assert out["status"] == "failed" and "account: 5 record(s) wait for this fix" in out["error"]
    # later runs look at the fields once and send nothing while Rel__c stays read-only
    again = run(engine, cid, crm)
    assert crm.api_calls == 2 and crm.described == 1 and again["written"] == again["failed"] == 0
    assert 'field "Rel__c" of account records is read-only in memory' in again["error"]
    assert run(engine, cid, crm, dry_run=True)["objects"][0]["waiting_for_fix"] == 5
    crm.writable = True
    fixed = run(engine, cid, crm)
    assert fixed["written"] == 5 and fixed["error"] is None and fixed["status"] == "succeeded"
    with engine.connect() as conn:
        rows = conn.execute(sa.select(WritebackState.__table__)).all()  # type: ignore[attr-defined]
    assert all(not r.gave_up and r.last_error is None and r.written["relationship_score"] for r in rows)
