"""Users of the admin app and API tokens: hashed passwords, roles per workspace, login throttling.

Passwords are hashed with scrypt (werkzeug.security); API tokens are random and only their SHA-256
is stored. Failed sign-ins are counted in Redis per client address and email, so every web process
shares the same limit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from werkzeug.security import check_password_hash, generate_password_hash

from connector.connections import ensure_workspace
from connector.errors import ConfigError
from connector.model import ROLES, ApiToken, User, Workspace, utcnow

_U = User.__table__  # type: ignore[attr-defined]
_T = ApiToken.__table__  # type: ignore[attr-defined]
_W = Workspace.__table__  # type: ignore[attr-defined]
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "rpt_"
WRITERS = ("admin", "revops")  # roles that may change things; viewers only look
# A hash to check against when the email is unknown, so a miss costs the same time as a hit.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


@dataclass(frozen=True)
class Principal:
    """A signed-in user (or the owner of an API token): who, which workspace, which role."""

    user_id: int
    email: str
    role: str
    workspace_id: int
    workspace: str

    @property
    def can_write(self) -> bool:
        """Admins and RevOps may change things; viewers may not."""
        return self.role in WRITERS


def hash_password(password: str) -> str:
    """A salted scrypt hash of the password."""
    return generate_password_hash(password, method="scrypt")


def check_email(email: str) -> str:
    """The email, trimmed and lower-cased; ConfigError if it does not look like an address."""
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise ConfigError(f"{email!r} is not an email address", hint="write it as name@example.com")
    return email


def check_password(password: str) -> str:
    """The password if it is long enough; ConfigError saying what is wrong otherwise."""
    if len(password or "") < MIN_PASSWORD:
        raise ConfigError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ConfigError("the password is too long: use at most 1024 characters")
    return password


def create_user(engine: Engine, email: str, password: str, *, role: str, workspace: str = "default") -> int:
    """Add a user to a workspace (created if new); bad input and duplicates raise ConfigError."""
    email = check_email(email)
    check_password(password)
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    workspace_id = ensure_workspace(engine, workspace)
    with engine.begin() as conn:
        if conn.execute(sa.select(_U.c.id).where(_U.c.email == email)).first() is not None:
            raise ConfigError(f"a user {email} already exists", hint="sign in with it, or choose another email")
        return int(conn.execute(sa.insert(_U).values(
            workspace_id=workspace_id, email=email, password_hash=hash_password(password), role=role,
            created_at=utcnow()).returning(_U.c.id)).scalar_one())


def _principal(row: sa.Row) -> Principal:
    return Principal(int(row.id), row.email, row.role, int(row.workspace_id), row.workspace)


def _users_query() -> sa.Select:
    return sa.select(_U.c.id, _U.c.email, _U.c.role, _U.c.workspace_id, _U.c.password_hash,
                     _W.c.name.label("workspace")).join(_W, _W.c.id == _U.c.workspace_id)


def authenticate(engine: Engine, email: str, password: str) -> Principal | None:
    """The user whose email and password match, else None (same work either way)."""
    email = (email or "").strip().lower()
    with engine.connect() as conn:
        row = conn.execute(_users_query().where(_U.c.email == email)).first()
    ok = check_password_hash(row.password_hash if row else _DUMMY_HASH, password or "")
    return _principal(row) if row is not None and ok else None


def get_principal(engine: Engine, user_id: int) -> Principal | None:
    """The user with this id (None if deleted since the session began)."""
    with engine.connect() as conn:
        row = conn.execute(_users_query().where(_U.c.id == user_id)).first()
    return _principal(row) if row is not None else None


def list_users(engine: Engine, workspace: str | None = None) -> list[dict]:
    """Users (of one workspace if named), by workspace then email."""
    q = _users_query().order_by(_W.c.name, _U.c.email)
    if workspace is not None:
        q = q.where(_W.c.name == workspace)
    with engine.connect() as conn:
        return [dict(email=r.email, role=r.role, workspace=r.workspace) for r in conn.execute(q)]


# --- API tokens -----------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, user_id: int, name: str) -> tuple[int, str]:
    """A new API token for a user: (id, the token itself, shown once and never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ConfigError("give the token a name of 1 to 100 characters, e.g. 'nightly export'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id = conn.execute(sa.insert(_T).values(user_id=user_id, name=name, token_hash=_digest(token),
                                                     created_at=utcnow()).returning(_T.c.id)).scalar_one()
    return int(token_id), token


def principal_for_token(engine: Engine, token: str) -> Principal | None:
    """The owner of a bearer token, recording its use; None for an unknown token."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(token)
    with engine.begin() as conn:
        row = conn.execute(sa.select(_T.c.id, _T.c.user_id, _T.c.token_hash).where(_T.c.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        conn.execute(sa.update(_T).where(_T.c.id == row.id).values(last_used_at=utcnow()))
    return get_principal(engine, int(row.user_id))


def list_tokens(engine: Engine, user_id: int) -> list[dict]:
    """A user's tokens (names and dates, never the token)."""
    q = sa.select(_T.c.id, _T.c.name, _T.c.created_at, _T.c.last_used_at).where(_T.c.user_id == user_id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(_T.c.id))]


def revoke_token(engine: Engine, user_id: int, token_id: int) -> bool:
    """Delete one of the user's tokens; False if the user has no such token."""
    with engine.begin() as conn:
        return bool(conn.execute(sa.delete(_T).where(_T.c.id == token_id, _T.c.user_id == user_id)).rowcount)


# --- sign-in throttling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginLimit:
    """At most `attempts` failed sign-ins per client address and email within `window_s` seconds."""

    attempts: int = 5
    window_s: int = 900


class LoginThrottle:
    """Counts failed sign-ins in Redis; a key per (address, email) that expires with its window."""

    def __init__(self, conn: redis.Redis, limit: LoginLimit | None = None, prefix: str = "rapport:login:") -> None:
        self.conn = conn
        self.limit = limit or LoginLimit()
        self.prefix = prefix

    def _key(self, address: str, email: str) -> str:
        return self.prefix + _digest(f"{address}|{email.strip().lower()}")

    def blocked_for(self, address: str, email: str) -> int:
        """Seconds until this address may try this email again (0: it may now)."""
        key = self._key(address, email)
        count = int(self.conn.get(key) or 0)
        if count < self.limit.attempts:
            return 0
        ttl = int(self.conn.ttl(key))
        return max(ttl, 1)

    def failed(self, address: str, email: str) -> None:
        """Count one failed attempt; the window starts at the first failure."""
        key = self._key(address, email)
        pipe = self.conn.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.limit.window_s, nx=True)
        pipe.execute()

    def succeeded(self, address: str, email: str) -> None:
        """Forget the failures of this address and email."""
        self.conn.delete(self._key(address, email))
