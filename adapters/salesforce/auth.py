"""OAuth 2.0 grants against a Salesforce login host: refresh token, JWT bearer and password.

simple-salesforce's own login helpers only reach the vendor's fixed login domains and have no
refresh-token grant, so the token request (one form POST on the client's session) lives here;
every REST call still goes through the client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import jwt
import requests

from adapters.salesforce import settings as S
from connector.errors import AuthError, ConfigError, RetriableError

FLOWS = ("refresh_token", "jwt", "password")


@dataclass(frozen=True)
class Token:
    """What the token endpoint granted."""

    access_token: str
    instance_url: str
    identity_url: str | None = None
    refresh_token: str | None = None

    @property
    def organization_id(self) -> str | None:
        """The org id from the identity URL (https://login.../id/00D.../005...)."""
        parts = urlparse(self.identity_url or "").path.strip("/").split("/")
        return parts[1] if len(parts) >= 3 and parts[0] == "id" else None


def require_https(url: str, what: str) -> str:
    """The URL without a trailing slash; anything but https is refused."""
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ConfigError(
            f"the {what} must be an https:// URL, got {url!r}", crm=S.CRM, hint=f"pass the org's https {what}"
        )
    return url.rstrip("/")


def flow_for(secrets: dict[str, Any]) -> str | None:
    """Which grant these credentials allow, best first (None: a bare access token)."""
    if secrets.get("refresh_token") and secrets.get("client_id"):
        return "refresh_token"
    if secrets.get("private_key") and secrets.get("client_id") and secrets.get("username"):
        return "jwt"
    if (
        secrets.get("username")
        and secrets.get("password")
        and secrets.get("client_id")
        and secrets.get("client_secret")
    ):
        return "password"
    return None


def _jwt_assertion(secrets: dict[str, Any], audience: str) -> str:
    claims = {
        "iss": secrets["client_id"],
        "sub": secrets["username"],
        "aud": audience,
        "exp": int(time.time()) + S.JWT_LIFETIME_SECONDS,
    }
    try:
        return jwt.encode(claims, secrets["private_key"], algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AuthError(
            f"the JWT private key cannot sign: {exc}",
            crm=S.CRM,
            hint="pass the PEM RSA key of the connected app's certificate",
        ) from exc


def grant_form(flow: str, secrets: dict[str, Any], login_url: str) -> dict[str, str]:
    """The form fields of one grant."""
    if flow == "refresh_token":
        form = {
            "grant_type": "refresh_token",
            "refresh_token": secrets["refresh_token"],
            "client_id": secrets["client_id"],
        }
        if secrets.get("client_secret"):
            form["client_secret"] = secrets["client_secret"]
        return form
    if flow == "jwt":
        return {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _jwt_assertion(secrets, login_url),
        }
    if flow == "authorization_code":  # the web-server flow's code, from the admin app's callback
        form = {
            "grant_type": "authorization_code",
            "code": secrets["code"],
            "redirect_uri": secrets["redirect_uri"],
            "client_id": secrets["client_id"],
        }
        form.update({k: secrets[k] for k in ("client_secret", "code_verifier") if secrets.get(k)})
        return form
    if flow == "password":
        return {
            "grant_type": "password",
            "client_id": secrets["client_id"],
            "client_secret": secrets["client_secret"],
            "username": secrets["username"],
            "password": secrets["password"] + (secrets.get("security_token") or ""),
        }
    raise ValueError(f"unknown grant {flow!r}")


_HINTS = {
    "refresh_token": "the refresh token was revoked or expired; run `rapport connect salesforce` again",
    "jwt": "check the consumer key, the username and that the certificate is uploaded to the connected app",
    "password": "check the username, password (+ security token), consumer key and secret",
    "authorization_code": "the code expired or was used, or the callback URL differs from the connected app's: connect again",
}


def request_token(session: requests.Session, flow: str, secrets: dict[str, Any], login_url: str) -> Token:
    """POST one grant to the login host's token endpoint and return the token."""
    url = require_https(login_url, "login URL") + S.TOKEN_PATH
    try:
        response = session.post(
            url, data=grant_form(flow, secrets, login_url), timeout=S.HTTP_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise RetriableError(f"the Salesforce login host did not answer: {exc}", crm=S.CRM, url=url) from exc
    if response.status_code >= 500:
        raise RetriableError(
            f"the Salesforce login host failed ({response.status_code})",
            crm=S.CRM,
            url=url,
            status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        code = body.get("error") if isinstance(body, dict) else None
        text = body.get("error_description") if isinstance(body, dict) else None
        raise AuthError(
            f"Salesforce refused the {flow} grant: {code or response.status_code}: {text or response.text[:200]}",
            crm=S.CRM,
            url=url,
            status=response.status_code,
            code=code,
            hint=_HINTS[flow],
        )
    return Token(
        access_token=body["access_token"],
        instance_url=require_https(body.get("instance_url") or "", "instance URL"),
        identity_url=body.get("id"),
        refresh_token=body.get("refresh_token"),
    )
