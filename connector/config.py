"""The one typed settings object, built from the environment and validated at start.

This is the only module that reads environment variables.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import ConfigError


class Settings(BaseSettings):
    """Rapport's settings; secrets are `SecretStr` so they never show in a repr or a log."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    secret_key: SecretStr | None = Field(default=None, alias="RAPPORT_SECRET_KEY")
    encryption_key: SecretStr | None = Field(default=None, alias="RAPPORT_ENCRYPTION_KEY")
    data_dir: Path = Field(default=Path(".rapport"), alias="RAPPORT_DATA_DIR")
    env: Literal["development", "production", "test"] = Field(default="development", alias="RAPPORT_ENV")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="RAPPORT_LOG_LEVEL")
    public_url: str = Field(default="http://127.0.0.1:5000", alias="RAPPORT_PUBLIC_URL")
    api_budget_share: float = Field(default=0.5, alias="RAPPORT_API_BUDGET_SHARE", gt=0, le=1)
    webhook_max_bytes: int = Field(default=1_000_000, alias="RAPPORT_WEBHOOK_MAX_BYTES", gt=0)
    sync_lookback_seconds: int = Field(default=60, alias="RAPPORT_SYNC_LOOKBACK_SECONDS", ge=0)

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str | None) -> str | None:
        if v and not v.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if v and v.startswith("postgres://"):
            v = "postgresql://" + v[len("postgres://") :]
        if v and v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v[len("postgresql://") :]
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://host:port/db URL")
        return v

    @property
    def embedded(self) -> bool:
        """True when no REDIS_URL is set: in-process queue (fakeredis + SimpleWorker)."""
        return not self.redis_url

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rapport.db').resolve()}"

    def validate_for_start(self) -> None:
        """Refuse to start in production without the secrets that protect data at rest."""
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("RAPPORT_ENCRYPTION_KEY", self.encryption_key),
                    ("RAPPORT_SECRET_KEY", self.secret_key),
                    ("DATABASE_URL", self.database_url),
                    ("REDIS_URL", self.redis_url),
                )
                if not value
            ]
            if missing:
                raise ConfigError(
                    f"production mode needs {', '.join(missing)}",
                    hint="set them in the environment (see the README's configuration table)",
                )


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from the environment (or a given mapping); a bad value names the variable."""
    source = dict(os.environ if environ is None else environ)
    try:
        if environ is not None:
            settings = Settings.model_validate({**source, **overrides})
        else:
            settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else "?"
            field = Settings.model_fields.get(str(loc))
            name = field.alias if field and field.alias else str(loc).upper()
            shown = "***" if any(w in name for w in ("KEY", "SECRET", "TOKEN", "PASSWORD")) else repr(err.get("input"))
            lines.append(f"{name}: {err['msg']} (got {shown})")
        raise ConfigError("invalid configuration: " + "; ".join(lines), hint="fix the environment variable") from None
    settings.validate_for_start()
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return load_settings()
