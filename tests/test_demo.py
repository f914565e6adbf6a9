"""`rapport demo`: the real thing end to end on the small world, and a failing step that says why."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector import demo_stack
from connector.cli import main
from connector.config import get_settings
from connector.demo import DemoFailed, run_demo


@pytest.fixture(autouse=True)
def embedded_env(monkeypatch):
    """The demo reads the environment once: make it the embedded default, whatever other tests left."""
    for name in ("DATABASE_URL", "REDIS_URL", "RAPPORT_DATA_DIR", "RAPPORT_ENV", "RAPPORT_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_demo_scores_every_account_and_shows_live_changes_through_the_crm_apis(tmp_path) -> None:
    lines: list[str] = []
    summary = run_demo(size="small", seed=0, data_dir=tmp_path / "data", echo=lines.append)

    assert set(summary["crms"]) == {"salesforce", "hubspot"}
    for kind, crm in summary["crms"].items():
        # read back through simple-salesforce / hubspot-api-client, not from our database
        assert crm["accounts_in_crm"] == 100, kind
        assert crm["accounts_with_score"] == 100 and crm["accounts_missing_score"] == [], kind
        assert crm["accounts_scored"] == 100 and crm["contacts_scored"] > 100, kind
        assert crm["records_written"] >= crm["accounts_scored"] + crm["contacts_scored"], kind
        assert crm["fields_written"] == crm["records_written"] * 6, kind
        assert crm["api_calls"] > 0 and crm["webhook_rescores"] == 2, kind  # our own writes' echoes rescore nothing

    changes = {(c["crm"], c["kind"]): c for c in summary["changes"]}
    assert set(changes) == {(k, c) for k in ("salesforce", "hubspot") for c in ("deal", "case")}
    for (kind, change), c in changes.items():
        before, after = c["before"], c["after"]
        assert after["scored_at"] != before["scored_at"], (kind, change)
        # The drivers field shows the top three reasons; a change may move the score without
        # reordering them, so the score's direction is what is checked.
        assert 0 < c["freshness_s"] < 60, (kind, change)
        if change == "deal":
            assert float(after["relationship_score"]) > float(before["relationship_score"]), kind
        else:
            assert float(after["experience_score"]) < float(before["experience_score"]), kind
    assert changes[("salesforce", "deal")]["account"] != changes[("salesforce", "case")]["account"]

    printed = "\n".join(lines)
    assert "check: every live account in both CRMs has a relationship score" in printed
    assert "salesforce big deal won on" in printed and "hubspot    urgent case escalated" in printed


def test_a_crm_that_refuses_the_sign_in_stops_the_demo_with_the_reason(monkeypatch) -> None:
    started: list[demo_stack.Sandboxes] = []
    real = demo_stack.start_sandboxes

    def refusing(size: str, seed: int, accounts: int | None = None) -> demo_stack.Sandboxes:
        sandboxes = real(size, seed, accounts=3)
        sandboxes.salesforce.sb.auth.certificates.clear()  # the connected app's certificate was removed
        started.append(sandboxes)
        return sandboxes

    monkeypatch.setattr(demo_stack, "start_sandboxes", refusing)
    result = CliRunner().invoke(main, ["demo"])

    assert result.exit_code == 1, result.output
    assert "error: demo step 'connect Salesforce" in result.output
    assert "jwt" in result.output.lower()
    assert "connect HubSpot" not in result.output, "nothing runs after the failed step"
    [sandboxes] = started
    assert sandboxes.hubspot._server is None, "the sandboxes are stopped on the way out"


def test_the_demo_refuses_production_settings(monkeypatch) -> None:
    monkeypatch.setenv("RAPPORT_ENV", "production")
    for name in ("RAPPORT_ENCRYPTION_KEY", "RAPPORT_SECRET_KEY"):
        monkeypatch.setenv(name, "x" * 44)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with pytest.raises(DemoFailed, match="only runs on the embedded default"):
        run_demo(echo=lambda line: None)
