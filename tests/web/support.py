"""Helpers for the web tests: sign in with the CSRF token, and a workspace with data in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.engine import Engine

from connector import auth
from connector.connections import create_connection
from connector.model import UNIFIED_OBJECTS
from connector.runs import close_run, open_run
from connector.schedules import add_schedule
from connector.scoring import score_connection
from connector.store import link_accounts, upsert_records
from sandbox.world import generate, unified_rows

PASSWORD = "correct horse battery"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connections fail at once, never leave the machine
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    """The session's CSRF token, read from a page's form."""
    found = _CSRF.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    token = csrf_of(client)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return csrf_of(client, "/tokens")


@dataclass
class Tenant:
    """A workspace with users of each role, one connection with scored records, a schedule and runs."""

    name: str
    connection_id: int
    connection: str
    schedule_id: int
    run_id: int
    account: str
    emails: dict[str, str]


def make_tenant(engine: Engine, settings: Any, name: str, *, accounts: int = 12, seed: int = 1) -> Tenant:
    """Fill a workspace: users (admin, revops, viewer), a HubSpot connection with a small world, scores."""
    emails = {role: f"{role}@{name}.example" for role in ("admin", "revops", "viewer")}
    for role, email in emails.items():
        auth.create_user(engine, email, PASSWORD, role=role, workspace=name)
    conn_name = f"{name}-crm"
    cid = create_connection(engine, settings, kind="hubspot", name=conn_name, secrets={"access_token": "pat-none"},
                            instance_url=UNREACHABLE, external_org_id=str(100 + seed), options={"auth": "private_app", "budget": "off"},
                            workspace=name)
    rows: dict[str, list[dict]] = {o: [] for o in UNIFIED_OBJECTS}
    first = None
    for bundle in generate("small", seed, accounts=accounts):
        first = first or bundle.account.key
        for object, object_rows in unified_rows(bundle, cid).items():
            rows[object].extend(object_rows)
    with engine.begin() as conn:
        for object in UNIFIED_OBJECTS:
            upsert_records(conn, object, rows[object])
        for object in ("contact", "deal", "case"):
            link_accounts(conn, cid, object)
    score_connection(engine, cid)
    run_id = open_run(engine, cid, "sync_full", trigger="test")
    close_run(engine, run_id, "partial", counts={"account": {"created": accounts}}, api_calls=7,
              errors=[{"object": "account", "external_id": "X-1", "error": "InvalidRecord", "message": "bad amount"}])
    sid = add_schedule(engine, cid, "run", "0 * * * *")
    assert first is not None
    return Tenant(name, cid, conn_name, sid, run_id, first, emails)
