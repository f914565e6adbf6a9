"""The mapping editor against the HubSpot sandbox: live fields, type checks, preview, save, YAML, provisioning."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from connector import auth
from connector.connections import create_connection
from connector.mappings import load_mapping
from connector.model import Account
from connector.sync import sync_connection
from sandbox.hubspot import HubSpotSandbox
from tests.web.support import PASSWORD, sign_in

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def hubspot():
    sb = HubSpotSandbox("small", seed=12, accounts=6, search_lag_s=0, rate_limits=False).start()
    yield sb
    sb.stop()


@pytest.fixture
def hs(app, web_engine, web_settings, hubspot):
    info = hubspot.info
    auth.create_user(web_engine, "admin@acme.example", PASSWORD, role="admin", workspace="acme")
    cid = create_connection(web_engine, web_settings, kind="hubspot", name="hs", workspace="acme",
                            secrets={"access_token": info["access_token"], "app_secret": info["app_secret"]},
                            instance_url=info["api_base"], external_org_id=str(info["portal_id"]),
                            options={"auth": "private_app", "budget": "off"})
    client = app.test_client()
    return client, sign_in(client, "admin@acme.example"), cid


def _form(client, cid, object="account"):
    """The editor's current form values, as the browser would submit them."""
    import re

    body = client.get(f"/connections/{cid}/mappings/{object}").get_data(as_text=True)
    values = dict(re.findall(r'<input name="((?:src|default|const|fmt|write)\.[^"]+)" value="([^"]*)"', body))
    for name, chosen in re.findall(r'<select name="(cast\.[^"]+)"[^>]*>(.*?)</select>', body, re.S):
        picked = re.search(r'<option value="([^"]*)" selected', chosen)
        values[name] = picked.group(1) if picked else ""
    return values


def test_the_editor_shows_the_crms_fields_beside_the_unified_ones(hs) -> None:
    client, _, cid = hs
    body = client.get(f"/connections/{cid}/mappings/account").get_data(as_text=True)
    assert "<code>hs_lastmodifieddate</code>" in body and "<code>domain</code>" in body  # live from the properties API
    assert 'name="src.name" value="properties.name"' in body  # the default mapping, editable
    assert "Write-back targets" in body and 'name="write.relationship_score"' in body


def test_bad_input_is_refused_next_to_the_field_and_nothing_is_stored(hs, web_engine) -> None:
    client, csrf, cid = hs
    form = _form(client, cid) | {"csrf_token": csrf, "src.name": "properties.no_such_field",
                                 "cast.employees": "datetime", "write.tier": "", "map.industry": "no equals sign"}
    response = client.post(f"/connections/{cid}/mappings/account", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-name"' in body and "names no field the CRM has" in body
    assert 'id="err-employees"' in body and "gives a datetime but the field holds a int" in body
    assert 'id="err-write-tier"' in body
    assert 'id="err-industry"' in body and "not `CRM value = unified value`" in body
    assert load_mapping(web_engine, cid, "hubspot").origin[("account", "read")] == "default"


def test_preview_maps_five_real_records_with_the_draft(hs) -> None:
    client, csrf, cid = hs
    form = _form(client, cid) | {"csrf_token": csrf, "src.industry": "properties.city", "cast.industry": ""}
    response = client.post(f"/connections/{cid}/mappings/account/preview", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body
    assert body.count("<tr><td><code>") == 5  # five records, fetched from the CRM before any sync
    assert "industry" in body


def test_saving_stores_the_mapping_and_rederives_stored_rows(hs, web_engine, web_settings) -> None:
    client, csrf, cid = hs
    sync_connection(web_engine, web_settings, cid, full=True, objects=["account"])
    form = _form(client, cid) | {"csrf_token": csrf, "src.industry": "properties.city", "cast.industry": "",
                                 "new.target": "hq_country", "new.source": "properties.country"}
    response = client.post(f"/connections/{cid}/mappings/account", data=form)
    assert response.status_code == 302, re.findall(r"field-error[^<]*<", response.get_data(as_text=True))
    mapping = load_mapping(web_engine, cid, "hubspot")
    assert mapping.read["account"]["industry"] == {"source": "properties.city"}
    assert mapping.read["account"]["custom.hq_country"]["source"] == "properties.country"
    a = Account.__table__  # type: ignore[attr-defined]
    with web_engine.connect() as conn:
        rows = conn.execute(sa.select(a.c.industry, a.c.raw).where(a.c.connection_id == cid)).all()
    assert rows and all(r.industry == (r.raw["properties"].get("city") or None) for r in rows)
    flash = client.get(response.location).get_data(as_text=True)
    assert f"{len(rows)} stored record(s) re-derived" in flash
    assert "Newly read CRM fields (properties.city, properties.country)" in flash  # raw records lack them



def test_yaml_export_then_import_round_trips_and_a_broken_file_changes_nothing(hs, web_engine) -> None:
    client, csrf, cid = hs
    text = client.get(f"/connections/{cid}/mappings.yaml").get_data(as_text=True)
    assert "objects:" in text and "properties.name" in text
    changed = text.replace("source: properties.domain", "source: properties.website")
    ok = client.post(f"/connections/{cid}/mappings/import", data={"csrf_token": csrf, "yaml": changed})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:1000]
    assert load_mapping(web_engine, cid, "hubspot").read["account"]["domain"]["source"] == "properties.website"
    broken = client.post(f"/connections/{cid}/mappings/import", data={"csrf_token": csrf,
                                                                       "yaml": text.replace("properties.name", "properties.nope")})
    body = broken.get_data(as_text=True)
    assert broken.status_code == 400 and 'id="err-yaml"' in body and "nothing changed" in body
    assert load_mapping(web_engine, cid, "hubspot").read["account"]["name"]["source"] == "properties.name"


def test_create_missing_fields_provisions_the_score_properties(hs, hubspot) -> None:
    client, csrf, cid = hs
    first = client.post(f"/connections/{cid}/provision", data={"csrf_token": csrf})
    assert first.status_code == 302
    assert "rapport_relationship_score" in client.get(first.location).get_data(as_text=True)
    again = client.post(f"/connections/{cid}/provision", data={"csrf_token": csrf})
    assert "nothing new" in client.get(again.location).get_data(as_text=True)


def test_the_api_behind_the_editor(hs) -> None:
    client, csrf, cid = hs
    headers = {"X-CSRF-Token": csrf}
    view = client.get(f"/api/v1/connections/{cid}/mappings/contact").get_json()
    assert view["origin"]["read"] == "default" and any(f["name"] == "email" for f in view["crm_fields"])
    read = view["read"] | {"title": {"source": "properties.jobtitle"}}
    preview = client.post(f"/api/v1/connections/{cid}/mappings/contact/preview", json={"read": read}, headers=headers)
    assert preview.status_code == 200 and len(preview.get_json()["records"]) == 5
    bad = client.put(f"/api/v1/connections/{cid}/mappings/contact", headers=headers,
                     json={"read": read | {"title": {"source": "properties.jobtitle", "cast": "nope"}}})
    assert bad.status_code == 400 and "unknown cast" in bad.get_json()["fields"]["title"]
