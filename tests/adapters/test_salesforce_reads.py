"""Reading from the Salesforce sandbox with the real simple-salesforce client over HTTPS."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import Change
from connector.errors import AuthError, BudgetExhausted, MappingError, RetriableError
from tests.adapters.salesforce_support import Org, later, org_fixture, sf_sandbox_fixture  # noqa: F401 - fixtures

QUERY = "GET /services/data/v<version:version>/queryAll"
MORE = "GET /services/data/v<version:version>/queryAll/<locator>"


def _ids(pages) -> list[Change]:
    return [c for p in pages for c in p.changes]


def _ascending(changes: list[Change]) -> bool:
    keys = [(c.modified_at, c.external_id) for c in changes]
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


def test_paging_through_more_than_ten_thousand_records_costs_the_minimum(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 10_500})
    adapter = org.adapter()
    changes = _ids(adapter.pull("account", None, later()))
    total = org.count("Account")
    assert total > 10_000
    assert len(changes) == total
    assert len({c.external_id for c in changes}) == total
    assert _ascending(changes)
    stats = org.stats()
    pages = stats.get(QUERY, 0) + stats.get(MORE, 0)
    assert pages == math.ceil(total / 2000)  # batchSize=2000 is asked for and honoured
    assert adapter.api_calls == pages + 1  # plus one describe


def test_a_big_first_sync_moves_to_bulk_and_stays_ascending(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 7_000})
    rest = _ids(org.adapter().pull("account", None, later()))
    bulk_adapter = org.adapter(bulk_read_threshold=3000, bulk_poll_seconds=0, bulk_results_page=2500)
    org.hook("stats", method="DELETE")
    bulk = _ids(bulk_adapter.pull("account", None, later()))
    assert [c.external_id for c in bulk] == [c.external_id for c in rest]
    assert [c.raw["Name"] for c in bulk] == [c.raw["Name"] for c in rest]
    assert [c.modified_at for c in bulk] == [c.modified_at for c in rest]
    assert [c.raw.get("NumberOfEmployees") for c in bulk] == [c.raw.get("NumberOfEmployees") for c in rest]
    stats = org.stats()
    assert any(k.startswith("POST") and "jobs/query" in k for k in stats), stats
    # describe, the first REST page, create, poll(s), then result pages of 2500 merged in order
    assert bulk_adapter.api_calls <= 2 + 1 + 2 + math.ceil((len(rest) - 2000) / 2500)
    # An incremental window never uses Bulk, whatever its size.
    org.hook("stats", method="DELETE")
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert len(_ids(bulk_adapter.pull("account", since, later()))) == len(rest)
    assert not any("jobs/query" in k for k in org.stats())


def test_queryall_brings_deleted_rows_and_merges_in_the_same_pass(org: Org) -> None:
    adapter = org.adapter()
    contacts = _ids(adapter.pull("contact", None, later()))
    since = datetime.now(UTC) - timedelta(seconds=1)
    gone = contacts[0].external_id
    adapter.client.call(lambda sf: sf.Contact.delete(gone))
    accounts = _ids(adapter.pull("account", None, later()))
    winner, loser = accounts[0].external_id, accounts[1].external_id
    org.hook("merge", {"object": "Account", "winner": winner, "losers": [loser]})

    changed = {c.external_id: c for c in _ids(adapter.pull("contact", since, later()))}
    assert changed[gone].deleted and changed[gone].merged_into is None
    merged = {c.external_id: c for c in _ids(adapter.pull("account", since, later()))}
    assert merged[loser].deleted and merged[loser].merged_into == winner
    assert not merged[winner].deleted


def test_a_session_expiring_mid_sync_is_refreshed_once_and_persisted(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 6000})
    stored: list[dict] = []
    adapter = org.adapter(org.password_secrets(access_token=org.info["access_token"]))
    adapter.client.on_secrets = stored.append
    pages = adapter.pull("account", None, later())
    first = next(pages)
    org.hook("sessions", {"expire": True})
    rest = _ids(pages)
    assert len(first.changes) + len(rest) == org.count("Account")
    assert len(stored) == 1 and stored[0]["access_token"] != org.info["access_token"]
    assert org.stats().get("POST /services/oauth2/token") == 1


def test_an_expired_token_without_a_way_to_refresh_is_an_auth_error(org: Org) -> None:
    adapter = org.adapter()
    org.hook("sessions", {"expire": True})
    with pytest.raises(AuthError, match="no refresh token"):
        list(adapter.pull("case", None, later()))


def test_a_lost_query_cursor_resumes_after_the_last_record(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 5000})
    adapter = org.adapter()
    pages = adapter.pull("account", None, later())
    first = next(pages)
    org.sandbox.sb.cursors.clear()  # the server forgets the locator (as after 15 idle minutes)
    changes = first.changes + _ids(pages)
    assert len(changes) == len({c.external_id for c in changes}) == org.count("Account")
    assert _ascending(changes)


def test_bursts_of_503_and_cut_responses_are_retried(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 4500})
    org.hook("faults", {"fail_next": 3, "fail_status": 503})
    adapter = org.adapter()
    assert len(_ids(adapter.pull("account", None, later()))) == org.count("Account")
    org.hook("faults", {"truncate_rate": 0.3, "seed": 7, "path_contains": "query"})
    assert len(_ids(adapter.pull("account", None, later()))) == org.count("Account")
    injected = org.hook("faults", method="GET")["injected"]
    assert injected.get("503") == 3 and injected.get("truncated", 0) >= 1


def test_a_longer_outage_gives_up_with_a_retriable_error(org: Org) -> None:
    org.hook("faults", {"fail_next": 50, "fail_status": 503})
    with pytest.raises(RetriableError, match="503"):
        list(org.adapter(retries=2).pull("account", None, later()))
    assert org.hook("faults", method="GET")["injected"]["503"] == 3  # one try and two retries


def test_a_mapping_naming_a_missing_field_fails_that_object_before_any_query(org: Org) -> None:
    adapter = org.adapter()
    adapter.read_mapping = {**adapter.read_mapping, "contact": {"x": {"source": "Loyalty_Tier__c"}, "e": {"source": "Email"}}}
    with pytest.raises(MappingError) as caught:
        list(adapter.pull("contact", None, later()))
    err = caught.value
    assert err.object == "contact" and err.field == "Loyalty_Tier__c"  # type: ignore[attr-defined]
    assert "the org has no field Loyalty_Tier__c on Contact; create it or remove it from the mapping" in str(err)
    assert not any("query" in k for k in org.stats())
    assert len(_ids(adapter.pull("account", None, later()))) == org.count("Account")  # other objects still sync
    # A parent field through a lookup is checked on the parent object.
    with pytest.raises(MappingError, match="Account.Nope"):
        list(adapter.pull("case", None, later(), fields=["Subject", "Account.Nope"]))
    assert len(_ids(adapter.pull("case", None, later(), fields=["Subject", "Account.Name"]))) == org.count("Case")


def test_invalid_field_from_the_api_is_a_mapping_error(org: Org) -> None:
    adapter = org.adapter()
    with pytest.raises(MappingError, match="Gone__c"):
        list(adapter.client.query_pages("SELECT Id, Gone__c FROM Contact", object="contact"))


def test_the_daily_budget_share_stops_reads_before_it_is_exceeded(org: Org) -> None:
    org.hook("records", {"object": "Account", "count": 9000})
    org.hook("limits", {"used": 995, "max": 2000})
    adapter = org.adapter(api_budget_share=0.5)
    seen: list[Change] = []
    with pytest.raises(BudgetExhausted, match="share is 50%"):
        for page in adapter.pull("account", None, later()):
            seen.extend(page.changes)
    assert org.hook("limits", {})["used"] == 1000  # never past the share
    assert 0 < len(seen) < org.count("Account")


def test_a_spent_daily_allocation_is_budget_exhausted(org: Org) -> None:
    org.hook("limits", {"exhaust": True})
    with pytest.raises(BudgetExhausted, match="daily API allocation"):
        list(org.adapter().pull("account", None, later()))


def test_fetch_returns_current_records_and_gone_ones_as_deleted(org: Org) -> None:
    adapter = org.adapter()
    some = [c.external_id for c in _ids(adapter.pull("deal", None, later()))[:3]]
    adapter.client.call(lambda sf: sf.Opportunity.delete(some[1]))
    missing = "006000000000000AAA"
    found = adapter.fetch("deal", [*some, missing])
    assert [c.external_id for c in found] == [*some, missing]
    assert [c.deleted for c in found] == [False, True, False, True]


def test_a_connection_can_ask_for_extra_fields_such_as_custom_ones(org: Org) -> None:
    adapter = org.adapter(fields={"case": ["CSAT__c", "Reopen_Count__c"]})
    cases = _ids(adapter.pull("case", None, later()))
    assert all("CSAT__c" in c.raw and "Reopen_Count__c" in c.raw for c in cases)
    assert any(c.raw["CSAT__c"] is not None for c in cases)
