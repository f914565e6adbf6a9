"""The connection page shows the secret HubSpot signs this connection's webhooks with."""

from __future__ import annotations

import pytest

from connector import auth
from connector.connections import create_connection
from tests.web.support import PASSWORD, sign_in

OAUTH = {"client_id": "app-client", "client_secret": "oauth-client-secret-1111", "refresh_token": "r-1",
         "access_token": "a-1", "app_secret": "left-from-a-private-app-2222"}
PRIVATE = {"access_token": "pat-na1-1", "app_secret": "private-app-secret-3333", "client_secret": "unused-4444"}


@pytest.fixture
def admin(app, web_engine):
    auth.create_user(web_engine, "admin@acme.example", PASSWORD, role="admin", workspace="acme")
    client = app.test_client()
    sign_in(client, "admin@acme.example")
    return client


@pytest.mark.parametrize(("secrets", "signing", "other"), [
    (OAUTH, OAUTH["client_secret"], OAUTH["app_secret"]),
    (PRIVATE, PRIVATE["app_secret"], PRIVATE["client_secret"]),
], ids=["oauth-app", "private-app"])
def test_the_page_shows_the_signing_secret_masked_then_revealed(admin, web_engine, web_settings, secrets, signing,
                                                                other) -> None:
    cid = create_connection(web_engine, web_settings, kind="hubspot", name="hs", secrets=secrets,
                            external_org_id="123", workspace="acme")
    masked = admin.get(f"/connections/{cid}").get_data(as_text=True)
    assert f"••••••••{signing[-4:]}" in masked and signing not in masked
    revealed = admin.get(f"/connections/{cid}?reveal=1").get_data(as_text=True)
    assert signing in revealed and other not in revealed
