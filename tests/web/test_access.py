"""Who may see and change what: sign-in on every route, viewers change nothing, workspaces never mix, CSRF."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from connector import auth
from connector.model import Schedule
from tests.web.routes import PUBLIC, SCOPED, UNSAFE, admin_routes
from tests.web.support import sign_in

pytestmark = pytest.mark.redis


def _send(client, route, url, token=None, csrf=None, bearer=None):
    headers = {}
    if csrf:
        headers["X-CSRF-Token"] = csrf
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    kwargs = {"json": {}} if route.api and route.method in UNSAFE else {}
    return client.open(url, method=route.method, headers=headers, **kwargs)


def test_every_route_needs_a_signed_in_user(app, tenants) -> None:
    alpha, _ = tenants
    client = app.test_client()
    checked = 0
    for route in admin_routes(app):
        if route.endpoint in PUBLIC:
            continue
        response = _send(client, route, route.url(alpha))
        if route.api:
            assert response.status_code == 401, (route, response.status_code)
            assert "error" in response.get_json()
        elif route.method == "GET":
            assert response.status_code == 302 and "/login" in response.location, route
        else:
            assert response.status_code == 401, route
        checked += 1
    assert checked > 40


def test_a_viewer_gets_403_on_every_change_through_pages_and_api(app, tenants, web_engine) -> None:
    alpha, _ = tenants
    client = app.test_client()
    csrf = sign_in(client, alpha.emails["viewer"])
    with web_engine.connect() as conn:
        uid = conn.execute(sa.text("SELECT id FROM user WHERE email = :e"), {"e": alpha.emails["viewer"]}).scalar()
    _, token = auth.create_token(web_engine, int(uid), "viewer script")
    unsafe = [r for r in admin_routes(app) if r.method in UNSAFE and r.endpoint not in PUBLIC | {"signin.logout"}]
    assert len(unsafe) > 20
    for route in unsafe:
        response = _send(client, route, route.url(alpha), csrf=csrf)
        assert response.status_code == 403, (route, response.status_code, response.get_data(as_text=True)[:300])
        if route.api:
            assert _send(app.test_client(), route, route.url(alpha), bearer=token).status_code == 403, route
    with web_engine.connect() as conn:  # and nothing changed
        assert conn.execute(sa.select(sa.func.count()).select_from(Schedule.__table__)).scalar() == 2
    assert client.get("/schedules").status_code == 200  # the viewer still reads


def test_a_user_never_reaches_another_workspaces_things(app, tenants) -> None:
    alpha, beta = tenants
    client = app.test_client()
    csrf = sign_in(client, alpha.emails["admin"])
    checked = 0
    for route in admin_routes(app):
        if not (route.args & SCOPED) and route.endpoint not in ("scores.scores", "scores.compare", "api.compare",
                                                                "ops.runs", "api.runs"):
            continue
        response = _send(client, route, route.url(beta), csrf=csrf)
        assert response.status_code == 404, (route, response.status_code, response.get_data(as_text=True)[:300])
        assert beta.connection not in response.get_data(as_text=True), route
        checked += 1
    assert checked > 25
    for path in ("/connections", "/schedules", "/runs", "/scores", "/api/v1/connections", "/api/v1/schedules",
                 "/api/v1/runs", "/model"):
        body = client.get(path).get_data(as_text=True)
        assert alpha.connection in body or path == "/model", path
        assert beta.connection not in body, path


def test_an_id_too_large_for_the_database_is_not_found(app, tenants) -> None:
    """An id beyond what an id column holds is a 404 naming the thing, on every route that takes one."""
    alpha, _ = tenants
    huge = dataclasses.replace(alpha, connection_id=2**63, schedule_id=2**64, run_id=2**63 + 7)
    client = app.test_client()
    csrf = sign_in(client, alpha.emails["admin"])
    checked = 0
    for route in admin_routes(app):
        if not route.args & {"connection_id", "schedule_id", "run_id", "version"}:
            continue
        response = _send(client, route, route.url(huge, version=2**63), csrf=csrf)
        assert response.status_code == 404, (route, response.status_code, response.get_data(as_text=True)[:300])
        checked += 1
    assert checked > 20
    response = client.get(f"/api/v1/runs?before={2**63}")
    assert response.status_code == 400 and "before" in response.get_json()["fields"], response.get_json()
    response = client.post("/api/v1/schedules", json={"connection_id": 2**63, "kind": "run", "cron": "*/5 * * * *"},
                           headers={"X-CSRF-Token": csrf})
    assert response.status_code in (400, 404) and "connection" in response.get_data(as_text=True)


def test_the_same_route_with_its_own_ids_answers(app, tenants) -> None:
    alpha, _ = tenants
    client = app.test_client()
    sign_in(client, alpha.emails["viewer"])
    for route in admin_routes(app):
        if route.method != "GET" or route.endpoint in PUBLIC or route.endpoint.startswith("signin."):
            continue
        if route.endpoint in ("connections.new", "connections.oauth_callback", "tokens.revoke", "api.revoke_token"):
            continue  # admin-only form, needs an OAuth state, or a token of one's own
        response = client.get(route.url(alpha))
        assert response.status_code in (200, 302), (route, response.status_code, response.get_data(as_text=True)[:400])


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(app, tenants, web_engine) -> None:
    alpha, _ = tenants
    client = app.test_client()
    sign_in(client, alpha.emails["admin"])
    response = client.post(f"/schedules/{alpha.schedule_id}/delete", data={})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    response = client.post(f"/schedules/{alpha.schedule_id}/delete", data={"csrf_token": "forged"})
    assert response.status_code == 400
    with web_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM schedule WHERE id = :i"), {"i": alpha.schedule_id}).scalar() == 1


def test_a_bearer_token_works_without_csrf_and_a_revoked_one_does_not(app, tenants, web_engine) -> None:
    alpha, _ = tenants
    with web_engine.connect() as conn:
        uid = conn.execute(sa.text("SELECT id FROM user WHERE email = :e"), {"e": alpha.emails["revops"]}).scalar()
    token_id, token = auth.create_token(web_engine, int(uid), "ci")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    me = client.get("/api/v1/me", headers=headers).get_json()
    assert me == {"email": alpha.emails["revops"], "role": "revops", "workspace": "alpha", "can_write": True}
    response = client.patch(f"/api/v1/schedules/{alpha.schedule_id}", json={"enabled": False}, headers=headers)
    assert response.status_code == 200 and response.get_json()["enabled"] is False
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
