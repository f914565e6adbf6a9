"""Settings are validated at start, name the bad variable, and mask secrets."""

from __future__ import annotations

import pytest

from connector.config import load_settings
from connector.errors import ConfigError


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DATABASE_URL": "mysql://x", "RAPPORT_ENV": "test"})
    assert "DATABASE_URL" in str(info.value) and "postgresql" in str(info.value)
    with pytest.raises(ConfigError, match="RAPPORT_API_BUDGET_SHARE"):
        load_settings({"RAPPORT_API_BUDGET_SHARE": "1.5"})


def test_secrets_are_masked_in_repr() -> None:
    s = load_settings({"RAPPORT_SECRET_KEY": "hunter2-secret", "RAPPORT_ENCRYPTION_KEY": "k" * 44})
    assert "hunter2-secret" not in repr(s) and "kkkk" not in repr(s)
    assert s.secret_key is not None and s.secret_key.get_secret_value() == "hunter2-secret"


def test_bad_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"RAPPORT_WEBHOOK_MAX_BYTES": "lots", "RAPPORT_SECRET_KEY": "hunter2-secret"})
    assert "RAPPORT_WEBHOOK_MAX_BYTES" in str(info.value) and "hunter2" not in str(info.value)


def test_postgres_urls_use_psycopg() -> None:
    s = load_settings({"DATABASE_URL": "postgres://u@h/db"})
    assert s.sqlalchemy_url == "postgresql+psycopg://u@h/db"
    assert not load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0"}).embedded
