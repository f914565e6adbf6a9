"""Who may call what: private-app tokens and OAuth 2.0 (authorize page, codes, access and refresh tokens),
each holding scopes, and the scopes each CRM call needs."""

from __future__ import annotations

import html
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sandbox.hubspot.errors import ApiError, correlation_id
from sandbox.hubspot.store import Source
from sandbox.hubspot.values import now_ms

# Which scopes each object type's records and schema need, as (read, write). Calls, emails, meetings
# and tasks are covered by the contacts scopes, tickets by the one legacy `tickets` scope (the
# per-operation `security` of HubSpot's public API specs; owners: the owners API guide).
_CONTACTS = ("crm.objects.contacts.read", "crm.objects.contacts.write")
_CONTACT_SCHEMAS = ("crm.schemas.contacts.read", "crm.schemas.contacts.write")
OBJECT_SCOPES: dict[str, tuple[str, str]] = {
    "contacts": _CONTACTS, "companies": ("crm.objects.companies.read", "crm.objects.companies.write"),
    "deals": ("crm.objects.deals.read", "crm.objects.deals.write"), "tickets": ("tickets", "tickets"),
    **{t: _CONTACTS for t in ("calls", "emails", "meetings", "notes", "tasks")},
}
SCHEMA_SCOPES: dict[str, tuple[str, str]] = {
    "contacts": _CONTACT_SCHEMAS, "companies": ("crm.schemas.companies.read", "crm.schemas.companies.write"),
    "deals": ("crm.schemas.deals.read", "crm.schemas.deals.write"), "tickets": ("tickets", "tickets"),
    **{t: _CONTACT_SCHEMAS for t in ("calls", "emails", "meetings", "notes", "tasks")},
}
OWNERS_SCOPE = "crm.objects.owners.read"
# every scope the consent page grants, and what the sandbox's private app carries unless told otherwise
SCOPES = sorted({"oauth", OWNERS_SCOPE, *(s for pair in (*OBJECT_SCOPES.values(), *SCHEMA_SCOPES.values())
                                          for s in pair)})
SCOPES_DOC = "https://developers.hubspot.com/scopes"
DOC = "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
CODE_TTL_MS = 10 * 60 * 1000


@dataclass
class Caller:
    """An authenticated caller: which app, and how its writes show up in webhooks."""

    kind: str  # "private" | "oauth"
    app_id: int
    token: str
    scopes: frozenset[str] = frozenset()
    source: Source = field(init=False)

    def __post_init__(self) -> None:
        self.source = Source("INTEGRATION", str(self.app_id))


@dataclass
class _Access:
    client_id: str
    scopes: list[str]
    expires: int
    user: str


class OAuthServer:
    """Tokens of one portal: its private apps and one public (OAuth) app."""

    def __init__(self, portal_id: int, *, seed: int, token_ttl_s: float = 1800.0,
                 private_scopes: Iterable[str] | None = None) -> None:
        self.portal_id = portal_id
        self.private_app_id = 1_000_000 + seed % 900_000
        self.public_app_id = 2_000_000 + seed % 900_000
        self._lock = threading.Lock()
        self._private: dict[str, tuple[int, frozenset[str]]] = {}  # token -> (app id, scopes)
        self.private_token = self.add_private_app(SCOPES if private_scopes is None else private_scopes)
        self.app_secret = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = str(uuid.uuid4())
        self.token_ttl_ms = int(token_ttl_s * 1000)
        self.user = "admin@rapport-sandbox.example"
        self.user_id = 7_000_001
        self._codes: dict[str, tuple[str, str, list[str], int]] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, list[str]] = {}

    def add_private_app(self, scopes: Iterable[str]) -> str:
        """Create a private app in the portal with these scopes; its access token (`pat-na1-...`)."""
        granted = frozenset(scopes)
        unknown = sorted(granted - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes for a private app: {', '.join(unknown)}")
        token = f"pat-na1-{uuid.uuid4()}"
        with self._lock:
            self._private[token] = (self.private_app_id + len(self._private), granted)
        return token

    # -- API authentication ----------------------------------------------------------------------

    def authenticate(self, header: str | None) -> Caller:
        """The caller behind an `Authorization: Bearer` header, or a 401 as HubSpot sends it."""
        if not header or not header.lower().startswith("bearer "):
            raise ApiError(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API "
                           f"supports OAuth 2.0 authentication and you can find more details at {DOC}")
        token = header[7:].strip()
        private = self._private.get(token)
        if private is not None:
            return Caller("private", private[0], token, private[1])
        access = self._access.get(token)
        if access is None:
            raise ApiError(401, "INVALID_AUTHENTICATION", "The OAuth token used to make this call is not valid.")
        left = access.expires - now_ms()
        if left <= 0:
            raise ApiError(401, "EXPIRED_AUTHENTICATION",
                           f"The OAuth token used to make this call expired {max(1, -left // 1000)} second(s) ago.")
        return Caller("oauth", self.public_app_id, token, frozenset(access.scopes))

    # -- authorize page --------------------------------------------------------------------------

    def authorize_page(self, args: dict[str, str]) -> tuple[int, str]:
        """The consent page: app name, scopes, and a Grant button that posts back."""
        problem = self._check_authorize(args)
        if problem:
            return 400, _page("Authorization failed", f"<p>{html.escape(problem)}</p>")
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in args.items() if k in ("client_id", "redirect_uri", "scope", "optional_scope", "state"))
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in _asked(args))
        body = (f"<p>Rapport wants to connect to HubSpot account <b>{self.portal_id}</b> as "
                f"{html.escape(self.user)}.</p><p>It asks for:</p><ul>{scopes}</ul>"
                f'<form method="post" action="/oauth/authorize">{hidden}'
                '<button type="submit" name="decision" value="grant" id="grant">Grant access</button> '
                '<button type="submit" name="decision" value="deny" id="deny">Cancel</button></form>')
        return 200, _page("Connect app", body)

    def authorize_decision(self, form: dict[str, str]) -> tuple[int, str]:
        """The Grant (or Cancel) click: a redirect back to the app with `code` (or `error`)."""
        problem = self._check_authorize(form)
        if problem:
            return 400, _page("Authorization failed", f"<p>{html.escape(problem)}</p>")
        query: dict[str, str] = {}
        if form.get("decision") == "grant":
            code = str(uuid.uuid4())
            with self._lock:
                self._codes[code] = (form["client_id"], form["redirect_uri"], _asked(form), now_ms() + CODE_TTL_MS)
            query["code"] = code
        else:
            query["error"] = "access_denied"
        if form.get("state"):
            query["state"] = form["state"]
        sep = "&" if "?" in form["redirect_uri"] else "?"
        return 302, form["redirect_uri"] + sep + urlencode(query)

    def _check_authorize(self, args: dict[str, str]) -> str | None:
        if args.get("client_id") != self.client_id:
            return "The client_id is missing or unknown; copy it from the app's Auth settings."
        if not args.get("redirect_uri", "").startswith(("http://", "https://")):
            return "redirect_uri is missing or is not an absolute http(s) URL."
        unknown = [s for s in _asked(args) if s not in SCOPES]
        if unknown:
            return f"Unknown scopes requested: {', '.join(unknown)}."
        return None

    # -- token endpoint --------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        """`POST /oauth/v1/token` for authorization_code and refresh_token grants."""
        grant = form.get("grant_type")
        if grant not in ("authorization_code", "refresh_token"):
            return _bad("BAD_GRANT_TYPE", "unsupported_grant_type", "grant_type must be authorization_code or "
                        "refresh_token")
        if form.get("client_id") != self.client_id:
            return _bad("BAD_CLIENT_ID", "invalid_client", "missing or invalid client_id")
        if form.get("client_secret") != self.client_secret:
            return _bad("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client_secret")
        with self._lock:
            if grant == "authorization_code":
                entry = self._codes.pop(form.get("code", ""), None)
                if entry is None or entry[3] < now_ms():
                    return _bad("BAD_AUTH_CODE", "invalid_grant", "missing or unknown auth code")
                if form.get("redirect_uri") != entry[1]:
                    return _bad("BAD_REDIRECT_URI", "invalid_grant", "redirect_uri does not match initial auth code URL")
                scopes = entry[2]
                refresh = f"na1-{secrets.token_hex(2)}-{uuid.uuid4()}"
                self._refresh[refresh] = scopes
            else:
                refresh = form.get("refresh_token", "")
                if refresh not in self._refresh:
                    return _bad("BAD_REFRESH_TOKEN", "invalid_grant", "missing or unknown refresh token")
                scopes = self._refresh[refresh]
            access = "C" + secrets.token_urlsafe(120)
            self._access[access] = _Access(self.client_id, scopes, now_ms() + self.token_ttl_ms, self.user)
        return 200, {"token_type": "bearer", "refresh_token": refresh, "access_token": access,
                     "expires_in": self.token_ttl_ms // 1000}

    def access_token_info(self, token: str) -> tuple[int, dict]:
        """`GET /oauth/v1/access-tokens/{token}`."""
        access = self._access.get(token)
        if access is None or access.expires <= now_ms():
            return 404, {"status": "error", "message": "Token not found or expired", "correlationId": correlation_id(),
                         "category": "OBJECT_NOT_FOUND"}
        return 200, {"token": token, "user": access.user, "hub_domain": f"portal-{self.portal_id}.example",
                     "scopes": access.scopes, "hub_id": self.portal_id, "app_id": self.public_app_id,
                     "expires_in": max(0, (access.expires - now_ms()) // 1000), "user_id": self.user_id,
                     "token_type": "access"}

    def refresh_token_info(self, token: str) -> tuple[int, dict]:
        """`GET /oauth/v1/refresh-tokens/{token}`."""
        scopes = self._refresh.get(token)
        if scopes is None:
            return _bad("BAD_REFRESH_TOKEN", "invalid_grant", "missing or unknown refresh token")
        return 200, {"token": token, "user": self.user, "hub_domain": f"portal-{self.portal_id}.example",
                     "scopes": scopes, "hub_id": self.portal_id, "client_id": self.client_id,
                     "user_id": self.user_id, "token_type": "refresh"}

    def revoke_refresh(self, token: str) -> tuple[int, dict | None]:
        """`DELETE /oauth/v1/refresh-tokens/{token}`: the token (and app install) is dead."""
        with self._lock:
            if self._refresh.pop(token, None) is None:
                return _bad("BAD_REFRESH_TOKEN", "invalid_grant", "missing or unknown refresh token")
        return 204, None

    def expire_access_tokens(self) -> int:
        """Test hook: every issued access token expires now; returns how many."""
        with self._lock:
            for access in self._access.values():
                access.expires = min(access.expires, now_ms() - 1000)
            return len(self._access)

    def reset(self) -> None:
        """Forget every code and OAuth token (the private-app token stays)."""
        with self._lock:
            self._codes.clear()
            self._access.clear()
            self._refresh.clear()


def required_scopes(endpoint: str, method: str, object_type: str, to: str = "", op: str = "") -> list[tuple[str, ...]]:
    """What a CRM call needs: one scope out of every group.

    Searches and batch reads are reads. Properties, groups and pipelines are read with the type's
    schema scope or either of its object scopes, and written with its schema write scope. Reading
    associations needs both types readable; writing them, the first writable and the second readable.
    """
    if endpoint == "owners":
        return [(OWNERS_SCOPE,)]
    read, write = OBJECT_SCOPES[object_type]
    reading = method == "GET" or endpoint in ("search", "assoc_batch_read") or (endpoint == "batch" and op == "read")
    if endpoint in ("objects", "object", "search", "batch", "merge"):
        return [(read if reading else write,)]
    schema_read, schema_write = SCHEMA_SCOPES[object_type]
    if endpoint in ("properties", "groups", "property", "pipelines", "pipeline", "stages"):
        return [tuple(dict.fromkeys((schema_read, read, write)))] if reading else [(schema_write,)]
    groups: list[tuple[str, ...]] = [(read if reading else write,), (OBJECT_SCOPES[to][0],)]
    return groups[:1] if groups[0] == groups[1] else groups


def require(caller: Caller, groups: list[tuple[str, ...]]) -> None:
    """Nothing when the caller holds a scope of every group, else the 403 MISSING_SCOPES HubSpot sends."""
    missing = [g for g in groups if caller.scopes.isdisjoint(g)]
    if not missing:
        return
    message = ("This app hasn't been granted all required scopes to make this call. Read more about required "
               f"scopes here: {SCOPES_DOC}.")
    raise ApiError(403, "MISSING_SCOPES", message, body={
        "status": "error", "message": message, "correlationId": correlation_id(),
        "errors": [{"message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": list(g)}} for g in missing],
        "links": {"scopes": SCOPES_DOC}, "category": "MISSING_SCOPES"})


def _asked(args: dict[str, str]) -> list[str]:
    """The scopes an install asks for: required and optional (the sandbox's account can grant them all)."""
    return list(dict.fromkeys((args.get("scope", "") + " " + args.get("optional_scope", "")).split()))


def _bad(status: str, error: str, message: str) -> tuple[int, dict]:
    return 400, {"status": status, "message": message, "correlationId": correlation_id(), "error": error,
                 "error_description": message}


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")
