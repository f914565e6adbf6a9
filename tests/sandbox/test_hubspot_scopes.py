"""Scopes: a token may call only what its OAuth grant or its private app carries; anything else is 403
MISSING_SCOPES, as HubSpot answers it."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from hubspot.crm.associations.v4 import ApiException as AssociationsError
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import ApiException as CompaniesError
from hubspot.crm.companies import PublicObjectSearchRequest
from hubspot.crm.contacts import ApiException as ContactsError
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hubspot.crm.deals import ApiException as DealsError
from hubspot.crm.owners import ApiException as OwnersError
from hubspot.crm.properties import ApiException as PropertiesError
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.tickets import ApiException as TicketsError

from tests.sandbox.hs_fixtures import client, fresh_sandbox, raw  # noqa: F401

REDIRECT = "https://app.example.com/oauth/callback"
SCOPES_LINK = "https://developers.hubspot.com/scopes"


def _consent(sb, scope: str) -> str:
    """Open the consent page for `scope`, press Grant, and trade the code for an access token."""
    page = requests.get(sb.api_base + "/oauth/authorize", timeout=10, params={
        "client_id": sb.info["client_id"], "redirect_uri": REDIRECT, "scope": scope})
    assert page.status_code == 200, page.text
    assert all(f"<li>{s}</li>" in page.text for s in scope.split())
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    answer = requests.post(sb.api_base + "/oauth/authorize", data={**form, "decision": "grant"},
                           allow_redirects=False, timeout=10)
    code = parse_qs(urlparse(answer.headers["Location"]).query)["code"][0]
    tokens = client(sb).oauth.tokens_api.create(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                                               client_id=sb.info["client_id"],
                                               client_secret=sb.info["client_secret"])
    return str(tokens.access_token)


def _missing(err: pytest.ExceptionInfo, *scopes: str) -> None:
    """The 403 HubSpot sends when the token lacks a scope, naming the scopes that would do."""
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["status"] == "error" and body["category"] == "MISSING_SCOPES" and body["correlationId"]
    assert body["message"] == ("This app hasn't been granted all required scopes to make this call. "
                               f"Read more about required scopes here: {SCOPES_LINK}.")
    assert body["errors"] == [{"message": "One or more of the following scopes are required.",
                               "context": {"requiredGranularScopes": list(scopes)}}]
    assert body["links"] == {"scopes": SCOPES_LINK}


def test_a_token_without_the_scope_gets_403_missing_scopes(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    user = client(sb, _consent(sb, "oauth crm.objects.contacts.read"))
    assert user.crm.contacts.basic_api.get_page(limit=1).results
    assert user.crm.objects.basic_api.get_page(object_type="calls", limit=1).results  # calls go with contacts
    with pytest.raises(DealsError) as err:
        user.crm.deals.basic_api.get_page(limit=1)
    _missing(err, "crm.objects.deals.read")
    contacts = len(sb.store.tables["contacts"].live)
    with pytest.raises(ContactsError) as err:
        user.crm.contacts.basic_api.create(simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"email": "new@example.com"}))
    _missing(err, "crm.objects.contacts.write")
    assert len(sb.store.tables["contacts"].live) == contacts
    with pytest.raises(CompaniesError) as err:  # search is a read
        user.crm.companies.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(limit=1))
    _missing(err, "crm.objects.companies.read")
    with pytest.raises(TicketsError) as err:
        user.crm.tickets.basic_api.get_page(limit=1)
    _missing(err, "tickets")
    with pytest.raises(PropertiesError) as err:
        user.crm.properties.core_api.create(object_type="contacts", property_create=PropertyCreate(
            name="x_score", label="X", type="number", field_type="number", group_name="contactinformation"))
    _missing(err, "crm.schemas.contacts.write")
    with pytest.raises(OwnersError) as err:
        user.crm.owners.owners_api.get_page()
    _missing(err, "crm.objects.owners.read")
    with pytest.raises(AssociationsError) as err:  # the associated type must be readable as well
        user.crm.associations.v4.batch_api.get_page(
            from_object_type="contacts", to_object_type="companies",
            batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[{"id": str(sb.store.tables["contacts"].live[0])}]))
    _missing(err, "crm.objects.companies.read")
    assert user.crm.properties.core_api.get_all(object_type="contacts").results  # the object's read scope reads them


def test_the_consent_page_takes_the_scopes_the_api_needs(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    user = client(sb, _consent(sb, "oauth crm.objects.owners.read crm.schemas.companies.read "
                                   "crm.schemas.companies.write crm.objects.companies.read"))
    assert user.crm.owners.owners_api.get_page().results
    group = user.crm.properties.groups_api.create(object_type="companies", property_group_create=PropertyGroupCreate(
        name="rapport", label="Rapport"))
    assert group.name == "rapport"
    page = requests.get(sb.api_base + "/oauth/authorize", timeout=10, params={
        "client_id": sb.info["client_id"], "redirect_uri": REDIRECT, "scope": "oauth crm.objects.unicorns.read"})
    assert page.status_code == 400 and "crm.objects.unicorns.read" in page.text


def test_private_apps_carry_their_own_scopes(fresh_sandbox):  # noqa: F811
    sb = fresh_sandbox
    app = client(sb)  # the sandbox's private app has every scope its API needs
    assert app.crm.owners.owners_api.get_page().results
    assert app.crm.tickets.basic_api.get_page(limit=1).results
    assert app.crm.properties.core_api.create(object_type="deals", property_create=PropertyCreate(
        name="x_score", label="X", type="number", field_type="number", group_name="dealinformation")).name == "x_score"
    narrow = client(sb, sb.oauth.add_private_app(["crm.objects.contacts.read"]))
    assert narrow.crm.contacts.basic_api.get_page(limit=1).results
    with pytest.raises(DealsError) as err:
        narrow.crm.deals.basic_api.get_page(limit=1)
    _missing(err, "crm.objects.deals.read")
    r = raw(sb, "GET", "/crm/v3/objects/deals?limit=1")
    assert r.status_code == 200
