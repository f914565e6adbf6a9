"""Secrets at rest: connection credentials encrypted with Fernet.

Production requires RAPPORT_ENCRYPTION_KEY; the embedded default creates a key file in the data
directory on first use (mode 0600).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.config import Settings
from connector.errors import ConfigError


class Vault:
    """Encrypts and decrypts JSON secrets; accepts several comma-separated keys for rotation."""

    def __init__(self, keys: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "RAPPORT_ENCRYPTION_KEY is not a valid Fernet key",
                hint="generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
            ) from exc

    def __repr__(self) -> str:
        return "Vault(keys=***)"

    def encrypt(self, secrets: dict[str, Any]) -> str:
        """Encrypt a dict of secrets into one token string."""
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        """Decrypt a token made by `encrypt`."""
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ConfigError(
                "stored credentials cannot be decrypted with the configured key",
                hint="set RAPPORT_ENCRYPTION_KEY to the key they were stored with (or list both keys, new first)",
            ) from exc


def vault_for(settings: Settings) -> Vault:
    """The vault for these settings; creates the embedded key file when allowed."""
    if settings.encryption_key is not None:
        return Vault(settings.encryption_key.get_secret_value())
    if settings.env == "production":
        raise ConfigError("RAPPORT_ENCRYPTION_KEY is required in production", hint="set it to a Fernet key")
    path = Path(settings.data_dir) / "encryption.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode())
    return Vault(path.read_text().strip())
