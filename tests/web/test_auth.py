"""Users, passwords, tokens and sign-in throttling; `rapport users add|list`."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from connector import auth
from connector.cli import main
from connector.errors import ConfigError
from tests.web.support import PASSWORD, csrf_of, sign_in

pytestmark = pytest.mark.redis


def test_passwords_are_stored_hashed_and_checked(web_engine) -> None:
    auth.create_user(web_engine, "Ada@Example.com", PASSWORD, role="admin", workspace="w")
    with web_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM user")).scalar()
    assert PASSWORD not in stored and stored.startswith("scrypt:")
    assert auth.authenticate(web_engine, "ada@example.com", PASSWORD).role == "admin"
    assert auth.authenticate(web_engine, "ada@example.com", PASSWORD + "x") is None
    assert auth.authenticate(web_engine, "nobody@example.com", PASSWORD) is None


@pytest.mark.parametrize(("email", "password", "role", "says"), [
    ("not-an-email", PASSWORD, "admin", "not an email address"),
    ("b@example.com", "short", "admin", "too short"),
    ("b@example.com", PASSWORD, "owner", "unknown role"),
])
def test_bad_users_are_refused_with_the_reason(web_engine, email, password, role, says) -> None:
    with pytest.raises(ConfigError, match=says):
        auth.create_user(web_engine, email, password, role=role)


def test_the_cli_adds_the_first_admin_and_lists_users(web_settings, monkeypatch) -> None:
    monkeypatch.setattr("connector.commands.users.get_settings", lambda: web_settings)
    runner = CliRunner()
    result = runner.invoke(main, ["users", "add", "root@acme.example", "--role", "admin", "--workspace", "acme",
                                  "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    again = runner.invoke(main, ["users", "add", "root@acme.example", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code == 2 and "already exists" in again.output
    listed = runner.invoke(main, ["users", "list"])
    assert "root@acme.example" in listed.output and "admin" in listed.output and "acme" in listed.output


def test_the_sign_in_form_says_what_is_wrong_next_to_the_field(app, web_engine) -> None:
    auth.create_user(web_engine, "eve@example.com", PASSWORD, role="viewer")
    client = app.test_client()
    token = csrf_of(client)
    empty = client.post("/login", data={"email": "", "password": "", "csrf_token": token})
    assert empty.status_code == 400
    body = empty.get_data(as_text=True)
    assert 'id="err-email">enter your email' in body and 'id="err-password">enter your password' in body
    wrong = client.post("/login", data={"email": "eve@example.com", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong email or password" in wrong.get_data(as_text=True)


def test_sign_in_attempts_are_limited_per_address_and_email(app, web_engine) -> None:
    auth.create_user(web_engine, "mallory@example.com", PASSWORD, role="admin")
    client = app.test_client()
    token = csrf_of(client)
    for _ in range(auth.LoginLimit().attempts):
        assert client.post("/login", data={"email": "mallory@example.com", "password": "guess",
                                           "csrf_token": token}).status_code == 401
    blocked = client.post("/login", data={"email": "mallory@example.com", "password": PASSWORD, "csrf_token": token})
    assert blocked.status_code == 429 and "too many failed attempts" in blocked.get_data(as_text=True)
    other = app.test_client()  # another address is not blocked for this email
    other_token = csrf_of(other)
    ok = other.post("/login", data={"email": "mallory@example.com", "password": PASSWORD, "csrf_token": other_token},
                    environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert ok.status_code == 302


def test_sign_in_keeps_a_same_site_next_and_drops_others(app, web_engine) -> None:
    auth.create_user(web_engine, "kim@example.com", PASSWORD, role="viewer")
    client = app.test_client()
    token = csrf_of(client)
    r = client.post("/login", data={"email": "kim@example.com", "password": PASSWORD, "csrf_token": token,
                                    "next": "https://evil.example/"})
    assert r.location == "/"
    assert sign_in(app.test_client(), "kim@example.com")


def test_tokens_are_shown_once_and_only_their_hash_is_kept(app, web_engine) -> None:
    auth.create_user(web_engine, "ops@example.com", PASSWORD, role="revops")
    client = app.test_client()
    csrf = sign_in(client, "ops@example.com")
    bad = client.post("/tokens", data={"name": "", "csrf_token": csrf})
    assert bad.status_code == 400 and 'id="err-name"' in bad.get_data(as_text=True)
    made = client.post("/tokens", data={"name": "nightly", "csrf_token": csrf})
    token = made.get_data(as_text=True).split('id="new-token">')[1].split("<")[0]
    with web_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT token_hash FROM api_token")).scalar() != token
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in client.get("/tokens").get_data(as_text=True)
