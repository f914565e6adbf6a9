"""Experience end to end: a case open now counts whatever its age, and its escalation registers."""

from __future__ import annotations

import sqlalchemy as sa

from connector.model import Score
from connector.scoring import score_connection
from enrichment.scores import COMPONENT_NAMES
from tests.connector.scoring_support import NOW, add, case, days_ago, deal, make_connection

S = Score.__table__  # type: ignore[attr-defined]


def _seed(engine) -> int:
    """Ten customers with recent cases, and OLD whose only case is an urgent one opened three years ago, still open."""
    cid = make_connection(engine)
    ids = [f"A{i}" for i in range(10)] + ["OLD"]
    add(engine, cid, "account", *({"external_id": a, "name": a, "created_at": days_ago(2000)} for a in ids))
    add(engine, cid, "contact", *({"external_id": f"{a}-C{j}", "account_external_id": a, "created_at": days_ago(1500)}
                                  for a in ids for j in range(3)))
    add(engine, cid, "deal", *(deal(f"{a}-D{j}", a, closed_days_ago=days, created_days_ago=days + 30)
                               for a in ids for j, days in enumerate((1500, 100))))
    add(engine, cid, "case", *(case(f"{a}-K{j}", a, priority=("low", "high")[j % 2], opened_days_ago=30 + 40 * j + i,
                                    closed_days_ago=25 + 40 * j, escalated=(i + j) % 4 == 0, reopens=(i * j) % 3)
                               for i, a in enumerate(ids[:-1]) for j in range(1 + i % 4)))
    add(engine, cid, "case", case("OLD-K", "OLD", priority="urgent", opened_days_ago=3 * 365, closed_days_ago=None))
    return cid


def _old(engine, cid) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(S.c.experience, S.c.components, S.c.drivers).where(
            S.c.connection_id == cid, S.c.object == "account", S.c.external_id == "OLD")).mappings().one())


def _points(row: dict, component: str) -> float:
    comps = row["components"]
    return comps["points"][COMPONENT_NAMES["account"].index(f"experience.{component}")]


def test_an_old_open_urgent_case_counts_and_its_escalation_registers(engine) -> None:
    cid = _seed(engine)
    score_connection(engine, cid, now=NOW)
    before = _old(engine, cid)
    assert _points(before, "backlog") < 0  # opened three years ago, open now: in the backlog

    add(engine, cid, "case", dict(case("OLD-K", "OLD", priority="urgent", opened_days_ago=3 * 365, closed_days_ago=None,
                                       escalated=True), status="escalated"))
    score_connection(engine, cid, account_ids=["OLD"], now=NOW)  # the rescoring a webhook triggers
    after = _old(engine, cid)
    assert after["experience"] < before["experience"]
    assert _points(after, "escalations") < _points(before, "escalations")

    score_connection(engine, cid, now=NOW)  # a full run agrees
    assert _old(engine, cid)["experience"] < before["experience"]
