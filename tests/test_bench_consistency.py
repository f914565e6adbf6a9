"""The consistency bench's comparison: equal after a sync of the small world, unequal once a unified row is changed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bench.consistency import Crm, Side, all_equal, check, compare, start_salesforce
from connector.db import make_engine
from connector.model import RECORD_MODELS
from connector.sync import sync_connection


@pytest.fixture(scope="module")
def crm() -> Iterator[Crm]:
    started = start_salesforce("small", 0)
    yield started
    started.stop()


def test_sync_of_small_world_compares_equal_and_a_planted_difference_is_caught(crm, sqlite_url, make_settings):
    settings = make_settings(DATABASE_URL=sqlite_url, RAPPORT_ENCRYPTION_KEY=Fernet.generate_key().decode())
    engine = make_engine(sqlite_url)
    cid = crm.connect(settings, "consistency-test")
    sync_connection(engine, settings, cid, full=True)

    result = check(engine, settings, cid)
    assert all_equal(result), result
    assert result["account"]["expected_live"] == result["account"]["unified_live"] == 100
    assert result["contact"]["unified_live"] > 0

    account = RECORD_MODELS["account"].__table__  # type: ignore[attr-defined]
    contact = RECORD_MODELS["contact"].__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        changed = conn.execute(sa.select(account.c.external_id).where(account.c.connection_id == cid)
                               .order_by(account.c.external_id).limit(1)).scalar_one()
        conn.execute(sa.update(account).where(account.c.connection_id == cid, account.c.external_id == changed)
                     .values(name="Planted Difference Ltd"))
        gone = conn.execute(sa.select(contact.c.external_id).where(contact.c.connection_id == cid)
                            .order_by(contact.c.external_id).limit(1)).scalar_one()
        conn.execute(sa.delete(contact).where(contact.c.connection_id == cid, contact.c.external_id == gone))

    result = check(engine, settings, cid)
    assert not all_equal(result)
    assert not result["account"]["equal"]
    assert result["account"]["differ"] == [changed]
    assert result["account"]["expected_hash"] != result["account"]["unified_hash"]
    assert list(result["account"]["differ_fields"][changed]) == ["name"]
    assert result["contact"]["missing"] == [gone]
    assert result["deal"]["equal"]
    engine.dispose()


def test_a_deleted_row_must_be_deleted_in_the_crm_with_the_same_survivor():
    expected = {"account": Side(live={"a": "1"}, deleted={"b": "a", "c": None})}
    assert compare(expected, {"account": Side(live={"a": "1"}, deleted={"b": "a"})})["account"]["equal"]
    wrong = compare(expected, {"account": Side(live={"a": "1"}, deleted={"b": None})})["account"]
    assert not wrong["equal"] and wrong["merged_into_differs"] == ["b"]
    live_gone = compare(expected, {"account": Side(live={}, deleted={"a": None})})["account"]
    assert not live_gone["equal"] and live_gone["wrongly_deleted"] == ["a"] and live_gone["missing"] == ["a"]
