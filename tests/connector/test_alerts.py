"""A key account's score drop makes exactly one task for its owner, with the reasons."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.base import TaskSpec
from connector.alerts import raise_alerts
from connector.errors import RetriableError
from connector.model import Account, Connection, Score, ScoreAlert, ScoreHistory, Workspace, utcnow
from connector.store import upsert


class TaskRecorder:
    kind = "memory"
    api_calls = 0

    def __init__(self, fail: bool = False) -> None:
        self.tasks: list[TaskSpec] = []
        self.fail = fail

    def create_task(self, spec: TaskSpec) -> str:
        if self.fail:
            raise RetriableError("CRM unavailable")
        self.tasks.append(spec)
        return f"T{len(self.tasks)}"


def _conn(engine: Engine) -> int:
    now = utcnow()
    with engine.begin() as c:
        ws = c.execute(sa.insert(Workspace.__table__).values(name="w", created_at=now).returning(sa.column("id"))).scalar_one()
        cid = c.execute(sa.insert(Connection.__table__).values(
            workspace_id=ws, name="crm", kind="memory", credentials_encrypted="", options={}, status="active",
            created_at=now, updated_at=now).returning(sa.column("id"))).scalar_one()
        upsert(c, Account, [dict(connection_id=cid, external_id=k, name=f"Acme {k}", owner_id="005OWNER", raw={},
                                 custom={}, is_deleted=False, synced_at=now) for k in ("A", "B")])
    return cid


def _score(engine: Engine, cid: int, key: str, value: float, tier: str, at) -> None:
    drivers = [{"text": "−12 three high-priority cases open for over 7 days", "points": -12}]
    with engine.begin() as c:
        upsert(c, Score, [dict(connection_id=cid, object="account", external_id=key, relationship=value, tier=tier,
                               drivers=drivers, components={}, model_version=1, scored_at=at, at_risk=False)],
               keys=("connection_id", "object", "external_id"))
        c.execute(sa.insert(ScoreHistory.__table__).values(connection_id=cid, object="account", external_id=key,
                                                           relationship=value, tier=tier, model_version=1, scored_at=at,
                                                           at_risk=False))


def test_one_task_per_drop_with_drivers(engine: Engine) -> None:
    cid = _conn(engine)
    t0 = utcnow() - timedelta(days=3)
    _score(engine, cid, "A", 90, "A", t0)
    _score(engine, cid, "B", 60, "B", t0)
    crm = TaskRecorder()
    assert raise_alerts(engine, crm, cid, points=10) == {"created": 0, "failed": 0}
    _score(engine, cid, "A", 84, "A", t0 + timedelta(days=1))   # −6: not yet a drop
    _score(engine, cid, "B", 30, "C", t0 + timedelta(days=1))   # not a key account
    assert raise_alerts(engine, crm, cid, points=10)["created"] == 0
    _score(engine, cid, "A", 78, "B", t0 + timedelta(days=2))   # −12 from the A-tier peak
    assert raise_alerts(engine, crm, cid, points=10)["created"] == 1
    task = crm.tasks[0]
    assert task.external_id == "A" and task.owner_id == "005OWNER"
    assert "90 → 78" in task.subject and "high-priority cases" in task.body
    # The same drop never makes a second task.
    assert raise_alerts(engine, crm, cid, points=10)["created"] == 0 and len(crm.tasks) == 1


def test_failed_task_is_retried_not_duplicated(engine: Engine) -> None:
    cid = _conn(engine)
    t0 = utcnow() - timedelta(days=2)
    _score(engine, cid, "A", 95, "A", t0)
    _score(engine, cid, "A", 70, "B", t0 + timedelta(days=1))
    assert raise_alerts(engine, TaskRecorder(fail=True), cid)["failed"] == 1
    crm = TaskRecorder()
    assert raise_alerts(engine, crm, cid)["created"] == 1
    assert raise_alerts(engine, crm, cid)["created"] == 0
    with engine.connect() as c:
        rows = list(c.execute(sa.select(ScoreAlert.__table__)))
    assert len(rows) == 1 and rows[0].status == "created" and rows[0].task_id == "T1"
