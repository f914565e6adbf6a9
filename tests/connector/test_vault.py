"""Credentials are encrypted at rest and the key is required in production."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlmodel import Session

from connector.errors import ConfigError
from connector.model import Connection, Workspace
from connector.vault import Vault, vault_for


def test_stored_credentials_hold_no_plaintext(engine: sa.engine.Engine, make_settings) -> None:
    vault = vault_for(make_settings())
    token = "00Dxx0000001gPL!AQ4AQFakeTokenValue1234567890"
    with Session(engine) as s:
        ws = Workspace(name="acme")
        s.add(ws)
        s.flush()
        s.add(Connection(workspace_id=ws.id, name="sf", kind="salesforce",
                         credentials_encrypted=vault.encrypt({"access_token": token, "refresh_token": "5Aep861refresh"})))
        s.commit()
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM connection")) for v in row)
    assert token not in dump and "5Aep861refresh" not in dump
    stored = dump.split()
    assert any(vault.decrypt(part).get("access_token") == token for part in stored if part.startswith("gAAAA"))


def test_embedded_key_file_is_created_once(make_settings) -> None:
    settings = make_settings()
    first = vault_for(settings).encrypt({"a": 1})
    assert vault_for(settings).decrypt(first) == {"a": 1}
    assert (settings.data_dir / "encryption.key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_key(make_settings) -> None:
    with pytest.raises(ConfigError, match="RAPPORT_ENCRYPTION_KEY"):
        make_settings(RAPPORT_ENV="production", DATABASE_URL="sqlite:///x.db", REDIS_URL="redis://x:1/0",
                      RAPPORT_SECRET_KEY="s")


def test_key_rotation_reads_old_tokens() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Vault(old).encrypt({"t": "x"})
    assert Vault(f"{new},{old}").decrypt(token) == {"t": "x"}
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        Vault(new).decrypt(token)


def test_bad_key_says_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as info:
        Vault("not-a-key")
    assert "Fernet.generate_key" in str(info.value)
