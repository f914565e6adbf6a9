"""Derived values an adapter leaves unread (`_rapport.keep`) keep what is stored instead of turning null."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.base import Change
from connector.connections import create_connection
from connector.mappings import load_mapping
from connector.sync import apply_changes, reapply
from tests.connector.sync_helpers import rows

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _deal(ident: str, at: datetime, amount: str, **derived: object) -> Change:
    props = {"dealname": f"Deal {ident}", "amount": amount, "dealstage": "qualifiedtobuy", "pipeline": "default",
             "createdate": "2026-01-01T00:00:00Z", "hs_lastmodifieddate": at.isoformat()}
    raw = {"id": ident, "properties": props, "_rapport": {"stage": "Qualified", "is_closed": False, "is_won": False,
                                                          **derived}}
    return Change("deal", ident, at, raw)


def _account(ident: str, at: datetime) -> Change:
    return Change("account", ident, at, {"id": ident, "properties": {"name": f"Co {ident}",
                                                                     "hs_lastmodifieddate": at.isoformat()}})


def _setup(engine, make_settings):
    settings = make_settings()
    cid = create_connection(engine, settings, kind="hubspot", name="hs", secrets={"access_token": "pat-na1-x"})
    return cid, load_mapping(engine, cid, "hubspot")


def test_unread_associations_keep_the_stored_ones(engine, make_settings):
    cid, mapping = _setup(engine, make_settings)
    apply_changes(engine, cid, "account", [_account("A1", T0)], mapping)
    apply_changes(engine, cid, "deal", [_deal("D1", T0, "100", account_id="A1", contact_id="C1")], mapping)
    later = _deal("D1", T0 + timedelta(minutes=5), "250", keep=["account_id", "contact_id"])
    counts = apply_changes(engine, cid, "deal", [later], mapping)
    assert counts["updated"] == 1
    row = rows(engine, "deal", cid)["D1"]
    assert (row["amount"], row["account_external_id"], row["contact_external_id"]) == (250.0, "A1", "C1")
    assert row["account_id"] is not None  # still linked to the stored account
    # the stored raw record is whole again, so re-applying a mapping keeps the association too
    assert row["raw"]["_rapport"]["account_id"] == "A1" and "keep" not in row["raw"]["_rapport"]
    reapply(engine, cid, "deal", mapping=mapping)
    assert rows(engine, "deal", cid)["D1"]["account_external_id"] == "A1"


def test_a_merged_account_is_not_brought_back(engine, make_settings):
    cid, mapping = _setup(engine, make_settings)
    apply_changes(engine, cid, "account", [_account("A1", T0), _account("A2", T0)], mapping)
    apply_changes(engine, cid, "deal", [_deal("D1", T0, "100", account_id="A1", contact_id=None)], mapping)
    gone = Change("account", "A1", T0 + timedelta(minutes=1), {"id": "A1"}, deleted=True, merged_into="A2")
    apply_changes(engine, cid, "account", [gone], mapping)
    assert rows(engine, "deal", cid)["D1"]["account_external_id"] == "A2"
    later = _deal("D1", T0 + timedelta(minutes=5), "300", keep=["account_id", "contact_id"])
    apply_changes(engine, cid, "deal", [later], mapping)
    row = rows(engine, "deal", cid)["D1"]
    assert (row["amount"], row["account_external_id"], row["contact_external_id"]) == (300.0, "A2", None)


def test_unknown_records_stay_unresolved_and_say_so(engine, make_settings):
    cid, mapping = _setup(engine, make_settings)
    apply_changes(engine, cid, "deal", [_deal("D9", T0, "10", keep=["account_id", "contact_id"])], mapping)
    row = rows(engine, "deal", cid)["D9"]
    assert (row["amount"], row["account_external_id"]) == (10.0, None)
    assert row["raw"]["_rapport"]["keep"] == ["account_id", "contact_id"]
    # a later unread change of it still knows nothing; a read that resolves the values fills them
    apply_changes(engine, cid, "deal", [_deal("D9", T0 + timedelta(minutes=1), "20", keep=["account_id"])], mapping)
    assert rows(engine, "deal", cid)["D9"]["account_external_id"] is None
    apply_changes(engine, cid, "deal", [_deal("D9", T0 + timedelta(minutes=2), "20", account_id="A7")], mapping)
    row = rows(engine, "deal", cid)["D9"]
    assert row["account_external_id"] == "A7" and "keep" not in row["raw"]["_rapport"]
